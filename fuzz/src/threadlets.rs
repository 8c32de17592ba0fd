//! Threadlets: functions that block (pipes, sleeps, faults), run
//! syslets, or exit their thread, run with the crate's `threadlet_exec`
//! on stacks of the fuzzing thread.

use core::ffi::{c_long, c_void};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use syslet_sys::{async_head_user, syslet_uatom};

use crate::shared::{op, Slot, C};
use crate::sys;

const STACK: usize = 64 << 10;
const STACKS: usize = 4;
/// Most threadlets that exit their thread, per process.
const MAX_EXITS: u64 = 8;
static EXITS: AtomicU64 = AtomicU64::new(0);

/// What a threadlet does.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Kind {
    Nothing,
    ReadPipe,
    Sleep,
    Fault,
    Syslet,
    Exit,
}

/// Per-stack context: everything the function uses (never the caller's
/// stack).
#[repr(C)]
struct Ctx {
    kind: u32,
    fd: i32,
    done: AtomicU32,
    result: i64,
    page: usize,
    atoms: [syslet_uatom; 2],
    rets: [i64; 2],
    args: [u64; 4],
    ring: [usize; 4],
    head: async_head_user,
    slot: *const Slot,
}

/// A fuzzing thread's threadlet stacks.
pub struct Threadlets {
    stacks: Vec<(usize, *mut Ctx, bool)>,
    pipe_fd: i32,
    pending: [bool; STACKS],
}

unsafe extern "C" fn body(data: *mut c_void) -> c_long {
    let c = data.cast::<Ctx>();
    // SAFETY: `data` is the context of this stack; its owner does not
    // touch it until the stack word is 0 again.
    unsafe {
        let slot = &*(*c).slot;
        let kind = (*c).kind;
        let r: i64 = match kind {
            k if k == Kind::ReadPipe as u32 => {
                let mut b = [0u8; 1];
                sys::call(libc::SYS_read, &[(*c).fd as u64, b.as_mut_ptr() as u64, 1])
            }
            k if k == Kind::Sleep as u32 => {
                let ts = [0u64, 2_000_000];
                sys::call(libc::SYS_nanosleep, &[ts.as_ptr() as u64, 0])
            }
            k if k == Kind::Fault as u32 => {
                // Touch a page we dropped: a fault (maybe a sleep).
                let p = (*c).page as *mut u8;
                libc::madvise(p.cast(), 4096, libc::MADV_DONTNEED);
                core::ptr::write_volatile(p, 1);
                i64::from(core::ptr::read_volatile(p))
            }
            k if k == Kind::Syslet as u32 => {
                // getpid, then a short sleep; wait for it if it went async.
                (*c).head = core::mem::zeroed();
                (*c).ring = [0; 4];
                (*c).head.completion_ring = (*c).ring.as_mut_ptr().cast();
                (*c).head.ring_size_bytes = 32;
                (*c).args = [(*c).args.as_ptr().add(2) as u64, 0, 0, 1_000_000];
                (*c).atoms = core::mem::zeroed();
                (*c).rets = [0; 2];
                (*c).atoms[0].nr = libc::SYS_getpid as u64;
                (*c).atoms[0].ret_ptr = &mut (*c).rets[0];
                (*c).atoms[0].next = &mut (*c).atoms[1];
                (*c).atoms[1].nr = libc::SYS_nanosleep as u64;
                (*c).atoms[1].ret_ptr = &mut (*c).rets[1];
                (*c).atoms[1].arg_ptr[0] = (*c).args.as_mut_ptr();
                let r = sys::call(
                    500,
                    &[(*c).atoms.as_ptr() as u64, &(*c).head as *const _ as u64],
                );
                slot.add(C::Syslets, 1);
                slot.add(C::Atoms, 2);
                if r == 0 {
                    slot.add(C::Async, 1);
                    let deadline = sys::now_ns() + 30_000_000_000;
                    loop {
                        let p = core::ptr::read_volatile(&(*c).ring[0]);
                        if p != 0 {
                            slot.add(C::Completions, 1);
                            break;
                        }
                        if sys::now_ns() > deadline {
                            slot.add(C::Lost, 1);
                            sys::say("fuzz: LOST: a threadlet's syslet never completed");
                            break;
                        }
                        sys::call(502, &[1, 0, &(*c).head as *const _ as u64]);
                    }
                } else if r > 0 {
                    slot.add(C::Cached, 1);
                }
                r
            }
            _ => 0,
        };
        (*c).result = r;
        let off = syslet::threadlet_complete();
        if kind == Kind::Exit as u32
            && off == 1
            && EXITS.fetch_add(1, Ordering::Relaxed) < MAX_EXITS
        {
            // In a thread of its own: leave it.  The stack stays marked
            // in use for good (nobody clears its word).
            slot.add(C::ThreadExits, 1);
            (*c).done.store(2, Ordering::Release);
            sys::call(libc::SYS_exit, &[0]);
        }
        (*c).done.store(1, Ordering::Release);
        off
    }
}

impl Threadlets {
    /// Stacks for one fuzzing thread; `pipe_fd` is a pipe the waker feeds.
    pub fn new(pipe_fd: i32) -> Threadlets {
        let mut stacks = Vec::new();
        for _ in 0..STACKS {
            let Some(m) = sys::map(0, STACK + 8192, libc::PROT_READ | libc::PROT_WRITE) else {
                break;
            };
            // SAFETY: the first page of our mapping becomes a guard page.
            unsafe { libc::mprotect(m as *mut c_void, 4096, libc::PROT_NONE) };
            // SAFETY: a zeroed Ctx at the stack's bottom (above the guard).
            let ctx = (m + 4096) as *mut Ctx;
            stacks.push((m + STACK + 8192, ctx, true));
        }
        Threadlets {
            stacks,
            pipe_fd,
            pending: [false; STACKS],
        }
    }

    fn word(top: usize) -> &'static AtomicU32 {
        // SAFETY: the stack word lies inside our stack mapping, which is
        // never unmapped.
        unsafe { &*((top - syslet::STACK_WORD_OFFSET) as *const AtomicU32) }
    }

    /// Count threadlets that went async and have finished since.
    pub fn poll(&mut self, slot: &Slot) {
        for (k, st) in self.stacks.iter_mut().enumerate() {
            let (top, ctx, live) = *st;
            if !self.pending[k] || !live {
                continue;
            }
            if Self::word(top).load(Ordering::Acquire) == 0 {
                self.pending[k] = false;
                slot.add(C::ThreadletsDone, 1);
                // SAFETY: the stack is free: nobody uses the context.
                let _ = unsafe { (*ctx).result };
            // SAFETY: `done` is an atomic in the context, which lives as
            // long as the stack mapping (for good).
            } else if unsafe { (*ctx).done.load(Ordering::Acquire) } == 2 {
                // An asynchronous Exit threadlet: it completed
                // (threadlet_complete() said 1) and its thread leaves with
                // exit().  That thread has the spare's clear_child_tid, not
                // the stack word, so the word stays 1 for good: count it
                // done here and retire the stack.
                self.pending[k] = false;
                st.2 = false;
                slot.add(C::ThreadletsDone, 1);
            }
        }
    }

    /// Threadlets still running asynchronously.
    pub fn pending(&self) -> usize {
        self.pending.iter().filter(|&&p| p).count()
    }

    /// Run one random threadlet; returns (kind, threadlet_exec's result).
    pub fn run(
        &mut self,
        x: u64,
        scratch_page: usize,
        slot: &'static Slot,
        ahu: usize,
    ) -> (u64, i64) {
        self.poll(slot);
        let Some(k) = (0..self.stacks.len()).find(|&k| {
            !self.pending[k]
                && self.stacks[k].2
                && Self::word(self.stacks[k].0).load(Ordering::Acquire) == 0
        }) else {
            return (u64::MAX, 0);
        };
        let (top, ctx, _) = self.stacks[k];
        // SAFETY: checked above: no thread uses this stack or its context.
        let done = unsafe { (*ctx).done.load(Ordering::Acquire) };
        if done == 2 {
            self.stacks[k].2 = false; // its thread exited on it
            return (u64::MAX, 0);
        }
        let kind = match x % 12 {
            0 | 1 => Kind::Nothing,
            2..=4 => Kind::ReadPipe,
            5 | 6 => Kind::Sleep,
            7 | 8 => Kind::Fault,
            9 | 10 => Kind::Syslet,
            _ => Kind::Exit,
        };
        // SAFETY: as above; the context is plain data.
        unsafe {
            core::ptr::write_bytes(ctx.cast::<u8>(), 0, core::mem::size_of::<Ctx>());
            (*ctx).kind = kind as u32;
            (*ctx).fd = self.pipe_fd;
            (*ctx).page = scratch_page;
            (*ctx).slot = slot;
        }
        slot.add(C::Threadlets, 1);
        // SAFETY: `top` is the 16-byte aligned end of a stack nobody uses;
        // `body` uses only its context (which outlives it) and system
        // calls; it ends with threadlet_complete().
        let r =
            unsafe { syslet::threadlet_exec(body, ctx.cast(), top as *mut c_void, ahu as *mut _) };
        if r == syslet::THREADLET_ASYNC {
            self.pending[k] = true;
            slot.add(C::ThreadletsAsync, 1);
        }
        (kind as u64, r)
    }
}

/// Log code for threadlets, re-exported for the worker.
pub const OP: u64 = op::THREADLET;
