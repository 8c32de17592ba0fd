//! One fuzzing thread: its memory (slabs of atoms, rings, scratch and
//! victim regions), random syslets built from the table, and the exact
//! accounting of the strict rings.

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use syslet_sys::{async_head_user, syslet_uatom};

use crate::fixtures::{Fixtures, SCRATCH_HI, SCRATCH_LO};
use crate::rng::Rng;
use crate::shared::{op, Slot, ThreadLog, C};
use crate::sys;
use crate::table::{self, Sys, K};

const PAGE: usize = 4096;
/// Most atoms in one syslet (a sentinel follows them).
pub const MAX_ATOMS: usize = 12;
/// Slabs for strict syslets.
pub const STRICT_SLABS: usize = 40;
/// Slabs for loose syslets (recycled after `LOOSE_REUSE_NS`).
pub const LOOSE_SLABS: usize = 16;
const SLABS: usize = STRICT_SLABS + LOOSE_SLABS;
const LOOSE_REUSE_NS: u64 = 3_000_000_000;
const SCRATCH_LEN: usize = 1 << 20;
const VICTIM_LEN: usize = 512 << 10;
/// Each thread's fixed regions live at `BASE + index * STRIDE`.
const VICTIM_BASE: usize = 0x2000_0000_0000;
const UNMAPPED_BASE: usize = 0x3000_0000_0000;
/// The slabs: far below where mmap(NULL) puts things, so that the hole a
/// racer's munmap leaves for a moment is never taken by another mapping.
const SLAB_BASE: usize = 0x4000_0000_0000;
const STRIDE: usize = 0x100_0000;
/// A value no system call returns: "not run".
pub const UNTOUCHED: i64 = 0x5a5a_5a5a_5a5a_5a5a;

// Slab layout.
const OFF_ARGS: usize = 1152;
const OFF_RETS: usize = 1728;
const OFF_CTR: usize = 1840;
const OFF_BLOB: usize = 1920;
const BLOB: usize = 128;
/// Where timeouts go in a blob (32 bytes): pollfds, fd_sets and sigsets
/// use 0..32, iovecs 64..128 (never in a call with a timeout).
const TIME_AT: usize = 96;
const _: () = assert!(std::mem::size_of::<syslet_uatom>() == 88);
const _: () = assert!((MAX_ATOMS + 1) * 88 <= OFF_ARGS);
const _: () = assert!(OFF_ARGS + MAX_ATOMS * 48 <= OFF_RETS);
const _: () = assert!(OFF_RETS + (MAX_ATOMS + 1) * 8 <= OFF_CTR);
const _: () = assert!(OFF_BLOB + MAX_ATOMS * BLOB <= PAGE);

/// Slab states (shared with the racer thread).
pub mod slab {
    /// Free for the owner.
    pub const FREE: u8 = 0;
    /// A syslet that went async is in it.
    pub const INFLIGHT: u8 = 1;
    /// A racer holds it (mprotected or munmapped); it gives it back as
    /// INFLIGHT.
    pub const RACED: u8 = 2;
    /// It was raced at least once while in flight (results unreliable).
    pub const TAINT: u8 = 0x80;
}

/// What a racer thread may see of a fuzzing thread.
pub struct Reg {
    /// Its TID (0: none).
    pub tid: AtomicI32,
    /// Base of its slabs.
    pub slabs: AtomicUsize,
    /// States of its slabs.
    pub states: [AtomicU8; SLABS],
    /// Its strict rings: (ahu address, slots).
    pub rings: [(AtomicUsize, AtomicUsize); 3],
    /// Its loose ring's ahu (0: none) and lock (0 free, 1 owner, 2 racer).
    pub loose: AtomicUsize,
    /// See [`Reg::loose`].
    pub loose_lock: AtomicU8,
    /// Races done on it.
    pub raced: AtomicU64,
}

/// The registry of a worker's fuzzing threads.
pub static REG: [Reg; 16] = [const {
    Reg {
        tid: AtomicI32::new(0),
        slabs: AtomicUsize::new(0),
        states: [const { AtomicU8::new(0) }; SLABS],
        rings: [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; 3],
        loose: AtomicUsize::new(0),
        loose_lock: AtomicU8::new(0),
        raced: AtomicU64::new(0),
    }
}; 16];

/// The next thread index for fixed regions (per process; a forked child
/// continues from its parent's value, so it never reuses a live index).
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

/// `FUZZ_SKIP=name,name`: system calls left out of this run (to bisect a
/// failure to one call; a skipped call becomes a read).
fn skipped(name: &str) -> bool {
    static SKIP: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("FUZZ_SKIP")
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    })
    .iter()
    .any(|s| s == name)
}

/// A completion ring: the head and its slot array in one mapping.
pub struct Ring {
    /// The head (`struct async_head_user`).
    pub ahu: usize,
    /// Number of slots.
    pub slots: usize,
    map: usize,
    map_len: usize,
}

impl Ring {
    fn new(slots: usize) -> Option<Ring> {
        let map_len = (64 + slots * 8).div_ceil(PAGE) * PAGE;
        let map = sys::map(0, map_len, libc::PROT_READ | libc::PROT_WRITE)?;
        let r = Ring {
            ahu: map,
            slots,
            map,
            map_len,
        };
        r.init();
        Some(r)
    }

    /// (Re)write the head: indices 0, ring after the head, no fallbacks.
    fn init(&self) {
        let h = self.head();
        // SAFETY: the mapping is ours, read-write, and holds the head
        // followed by the slots.
        unsafe {
            core::ptr::write_bytes(self.map as *mut u8, 0, 64 + self.slots * 8);
            (*h).completion_ring = (self.map + 64) as *mut *mut syslet_uatom;
            (*h).ring_size_bytes = (self.slots * 8) as u64;
        }
    }

    fn head(&self) -> *mut async_head_user {
        self.ahu as *mut async_head_user
    }

    fn slot(&self, i: usize) -> &AtomicUsize {
        // SAFETY: slot `i` < slots lies in the mapping; an 8-byte aligned
        // word the kernel writes atomically.
        unsafe { &*((self.map + 64 + i * 8) as *const AtomicUsize) }
    }

    fn user_idx(&self) -> usize {
        // SAFETY: the head is ours; only this thread writes user_ring_idx.
        unsafe { (*self.head()).user_ring_idx as usize }
    }

    fn set_user_idx(&self, i: usize) {
        // SAFETY: as above.
        unsafe { (*self.head()).user_ring_idx = i as u64 };
    }
}

/// A strict syslet in flight.
#[derive(Clone, Copy)]
struct Outstanding {
    ring: usize,
    serial: u64,
    at: u64,
    /// The atoms' system call numbers at submission (a racer may zero
    /// the slab meanwhile).
    nrs: [u16; MAX_ATOMS + 1],
    /// Atoms built (a trailing read has number 0).
    n: usize,
}

/// Options of a fuzzing thread.
#[derive(Clone, Copy)]
pub struct Mode {
    /// Loose syslets may loop without a guard and run exit_group (only in
    /// children that are killed or exit anyway).
    pub wild: bool,
}

/// One fuzzing thread's state.
pub struct Fuzzer {
    /// Its random numbers.
    pub rng: Rng,
    fx: &'static Fixtures,
    slot: &'static Slot,
    log: Option<&'static ThreadLog>,
    reg: Option<&'static Reg>,
    mode: Mode,
    slabs: usize,
    badzone: usize,
    unmapped: usize,
    scratch: usize,
    ro: usize,
    victim: usize,
    rings: Vec<Ring>,
    loose: Option<Ring>,
    ro_ring: Option<Ring>,
    out: [Option<Outstanding>; STRICT_SLABS],
    loose_at: [u64; LOOSE_SLABS],
    loose_next: usize,
    serial: u64,
    /// TIDs of the worker's fuzzing threads (signal targets).
    pub tids: &'static [AtomicI32],
    ops: u64,
    local_states: [AtomicU8; SLABS],
    inexec: AtomicU64,
}

fn states_of(reg: Option<&'static Reg>, local: &[AtomicU8; SLABS]) -> *const [AtomicU8; SLABS] {
    match reg {
        Some(r) => &r.states,
        None => local,
    }
}

impl Fuzzer {
    /// A fuzzing thread with its own memory and rings.  `reg` publishes it
    /// to the racers; `log` to the watchdog.
    pub fn new(
        seed: u64,
        fx: &'static Fixtures,
        slot: &'static Slot,
        log: Option<&'static ThreadLog>,
        reg: Option<&'static Reg>,
        mode: Mode,
        tids: &'static [AtomicI32],
    ) -> Option<Fuzzer> {
        let mut rng = Rng::new(seed);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let badzone = sys::map(0, SLABS * PAGE, libc::PROT_NONE)?;
        let scratch = sys::map(0, SCRATCH_LEN + PAGE, rw)?;
        // SAFETY: the page after the scratch area of our own mapping
        // becomes a guard.
        unsafe {
            libc::mprotect(
                (scratch + SCRATCH_LEN) as *mut libc::c_void,
                PAGE,
                libc::PROT_NONE,
            );
        }
        let ro = sys::map(0, PAGE, rw)?;
        // SAFETY: our fresh page; then made read-only.
        unsafe {
            core::ptr::write_bytes(ro as *mut u8, 0x41, PAGE);
            libc::mprotect(ro as *mut libc::c_void, PAGE, libc::PROT_READ);
            // The scratch area starts with random-ish bytes.
            let s = std::slice::from_raw_parts_mut(scratch as *mut u64, 4096);
            for w in s {
                *w = rng.next();
            }
        }
        let (victim, unmapped, slabs) = loop {
            let i = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
            if i > 4000 {
                return None;
            }
            if let Some(v) = sys::map(VICTIM_BASE + i * STRIDE, VICTIM_LEN, rw) {
                if let Some(sl) = sys::map(SLAB_BASE + i * STRIDE, SLABS * PAGE, rw) {
                    break (v, UNMAPPED_BASE + i * STRIDE, sl);
                }
                // SAFETY: the victim region just mapped, unused.
                unsafe { libc::munmap(v as *mut libc::c_void, VICTIM_LEN) };
            }
        };
        let nrings = rng.range(1, 3) as usize;
        let mut rings = Vec::new();
        for _ in 0..nrings {
            let slots = rng.pick(&[1usize, 2, 3, 4, 8, 16, 64, 512]);
            rings.push(Ring::new(slots)?);
        }
        let loose = Ring::new(rng.pick(&[1usize, 4, 16]));
        let ro_ring = Ring::new(4).map(|r| {
            // SAFETY: the slot page (after the head) of our own mapping;
            // the head stays writable, the slots do not.
            unsafe {
                if r.map_len > PAGE {
                    libc::mprotect(
                        (r.map + PAGE) as *mut libc::c_void,
                        r.map_len - PAGE,
                        libc::PROT_READ,
                    );
                } else {
                    libc::mprotect(r.map as *mut libc::c_void, PAGE, libc::PROT_READ);
                }
            }
            r
        });
        if let Some(reg) = reg {
            reg.slabs.store(slabs, Ordering::Relaxed);
            for (i, r) in rings.iter().enumerate() {
                reg.rings[i].0.store(r.ahu, Ordering::Relaxed);
                reg.rings[i].1.store(r.slots, Ordering::Relaxed);
            }
            reg.loose
                .store(loose.as_ref().map_or(0, |r| r.ahu), Ordering::Relaxed);
            reg.tid.store(sys::gettid(), Ordering::Release);
        }
        Some(Fuzzer {
            rng,
            fx,
            slot,
            log,
            reg,
            mode,
            slabs,
            badzone,
            unmapped,
            scratch,
            ro,
            victim,
            rings,
            loose,
            ro_ring,
            out: [None; STRICT_SLABS],
            loose_at: [0; LOOSE_SLABS],
            loose_next: 0,
            serial: 0,
            tids,
            ops: 0,
            local_states: [const { AtomicU8::new(0) }; SLABS],
            inexec: AtomicU64::new(0),
        })
    }

    fn states(&self) -> &[AtomicU8; SLABS] {
        // SAFETY: either the registry (static) or our own field.
        unsafe { &*states_of(self.reg, &self.local_states) }
    }

    /// Log an operation (and count progress for the watchdog).
    pub fn log(&self, what: u64, a: u64, b: u64, c: u64) {
        if let Some(l) = self.log {
            l.log(what, a, b, c);
        }
    }

    /// Strict syslets in flight.
    pub fn outstanding(&self) -> usize {
        self.out.iter().filter(|o| o.is_some()).count()
    }

    fn slab_addr(&self, s: usize) -> usize {
        self.slabs + s * PAGE
    }

    /// Which slab a posted pointer belongs to.
    fn slab_of(&self, p: usize) -> Option<usize> {
        for base in [self.slabs, self.badzone, self.unmapped] {
            if p >= base && p < base + SLABS * PAGE {
                return Some((p - base) / PAGE);
            }
        }
        None
    }

    // ---- argument generation ----------------------------------------------

    fn bad_ptr(&mut self, s: usize) -> u64 {
        let off = (self.rng.below(PAGE as u64 / 8) * 8) as usize;
        match self.rng.below(7) {
            0 => 0,
            1 => (self.badzone + s * PAGE + off) as u64,
            2 => (self.unmapped + s * PAGE + off) as u64,
            3 => self.ro as u64,
            4 => 0xffff_8880_0000_0000,
            5 => 0x8000_0000_0000_0000,
            _ => (self.scratch + SCRATCH_LEN) as u64, // the guard page after scratch
        }
    }

    fn buf(&mut self) -> u64 {
        (self.scratch + (self.rng.below(256 << 10) as usize & !7)) as u64
    }

    fn fd(&mut self) -> u64 {
        let fx = self.fx;
        match self.rng.below(20) {
            0 => self.rng.pick(&[u32::MAX as u64, 99999, 1 << 31, 150]),
            1 | 2 => self.rng.range(SCRATCH_LO as u64, (SCRATCH_LO + 8) as u64),
            3 => self.rng.range(3, 12),
            _ => self.rng.pick(&fx.fds) as u64,
        }
    }

    fn path(&mut self, s: usize) -> u64 {
        if self.rng.chance(40) {
            return self.bad_ptr(s);
        }
        let fx = self.fx;
        let i = self.rng.below(fx.paths.len() as u64) as usize;
        fx.paths[i].as_ptr() as u64
    }

    fn pid(&mut self) -> u64 {
        let me = sys::getpid() as i64;
        match self.rng.below(6) {
            0 => 0,
            1 => (-me) as u64,
            2 => 0x7fff_fff0,
            _ => me as u64,
        }
    }

    fn tid(&mut self) -> u64 {
        let n = self.tids.len() as u64;
        match self.rng.below(5) {
            0 => 0,
            1 => 0x7fff_fff0,
            2 => sys::gettid() as u64,
            _ => {
                let t = self.tids[self.rng.below(n) as usize].load(Ordering::Relaxed);
                if t > 1 {
                    t as u64
                } else {
                    sys::gettid() as u64
                }
            }
        }
    }

    fn sig(&mut self) -> u64 {
        self.rng.pick(&[
            0, 10, 12, 14, 17, 13, 23, 26, 27, 28, 29, 18, 34, 35, 36, 40, 64, 65,
        ])
    }

    fn blob(&self, s: usize, i: usize) -> usize {
        self.slab_addr(s) + OFF_BLOB + i * BLOB
    }

    /// A value for an argument of kind `k` of atom `i` in slab `s`.
    fn value(&mut self, k: K, s: usize, i: usize) -> u64 {
        let blob = self.blob(s, i);
        let w = |off: usize, v: u64| {
            // SAFETY: the blob of atom `i` in our own slab (128 bytes).
            unsafe { *((blob + off) as *mut u64) = v };
        };
        match k {
            K::Zero => 0,
            K::Of(v) => self.rng.pick(v),
            K::Bits(v) => {
                let mut x = 0;
                for &b in v {
                    if self.rng.chance(250) {
                        x |= b;
                    }
                }
                x
            }
            K::Small => self.rng.below(17),
            K::Nb(v) => {
                let mut x = 0x800;
                for &b in v {
                    if self.rng.chance(250) {
                        x |= b;
                    }
                }
                x
            }
            K::Pkey => {
                // Not 1 << 32 either: pkey_free takes an int.
                if self.rng.chance(100) {
                    self.rng.pick(&[u64::MAX, 16, 1 << 31, 0x7fff_ffff])
                } else {
                    self.rng.range(1, 15)
                }
            }
            K::Fd => self.fd(),
            K::ScratchFd => {
                if self.rng.chance(100) {
                    self.rng.pick(&[u32::MAX as u64, 99999])
                } else {
                    self.rng.range(SCRATCH_LO as u64, SCRATCH_HI as u64)
                }
            }
            K::Dirfd => match self.rng.below(6) {
                0 => u32::MAX as u64,
                1 | 2 => self.fx.dir_fd as u64,
                _ => (-100i64) as u64,
            },
            K::Buf | K::IntPtr => {
                if self.rng.chance(60) {
                    self.bad_ptr(s)
                } else {
                    self.buf()
                }
            }
            K::RBuf => {
                if self.rng.chance(60) {
                    self.bad_ptr(s)
                } else if self.rng.chance(200) {
                    self.ro as u64
                } else {
                    self.buf()
                }
            }
            K::Len => {
                if self.rng.chance(50) {
                    self.rng.pick(&[1 << 47, 1 << 63, u64::MAX, (1 << 48) - 1])
                } else {
                    self.rng.pick(&[0, 1, 7, 8, 64, 100, 4096, 4097, 65536])
                }
            }
            K::Off => self
                .rng
                .pick(&[0, 1, 4096, 65535, 1 << 20, 1 << 40, u64::MAX, 1 << 63]),
            K::FileLen => self
                .rng
                .pick(&[0, 1, 4096, 65536, 1 << 20, 1 << 40, u64::MAX]),
            K::AllocLen => self.rng.pick(&[0, 1, 4096, 65536, 1 << 20]),
            K::Path => self.path(s),
            K::Pid => self.pid(),
            K::Tid => self.tid(),
            K::Sig => self.sig(),
            K::Addr => {
                if self.rng.chance(50) {
                    self.rng
                        .pick(&[0, 0xffff_8880_0000_0000, 0x8000_0000_0000_0000])
                } else {
                    let pages = (VICTIM_LEN / 2 / PAGE) as u64;
                    let a = (self.victim + self.rng.below(pages) as usize * PAGE) as u64;
                    if self.rng.chance(30) {
                        a + 1
                    } else {
                        a
                    }
                }
            }
            K::MLen => self
                .rng
                .pick(&[0, 1, 4096, 8192, 65536, (VICTIM_LEN / 2) as u64]),
            K::Ts | K::Itimer => {
                if self.rng.chance(40) {
                    // Never NULL: a NULL timeout of ppoll, pselect6,
                    // epoll_pwait2, futex or rt_sigtimedwait waits forever
                    // (a false "lost").
                    let p = self.bad_ptr(s);
                    return if p == 0 || p == self.ro as u64 {
                        (self.badzone + s * PAGE) as u64
                    } else {
                        p
                    };
                }
                // At TIME_AT in the blob, where no other kind writes: a
                // pollfd array, fd_set or sigset of the same atom would
                // otherwise overwrite tv_sec (ppoll, epoll_pwait2: a
                // random tv_sec waits "forever").
                let ns = self.rng.below(20_000_000);
                w(TIME_AT, 0);
                w(TIME_AT + 8, ns);
                w(TIME_AT + 16, 0);
                w(
                    TIME_AT + 24,
                    if self.rng.chance(500) { ns } else { 1_000_000 },
                );
                if self.rng.chance(20) {
                    w(TIME_AT + 8, 2_000_000_000); // tv_nsec out of range: EINVAL
                }
                (blob + TIME_AT) as u64
            }
            K::Tv => {
                w(TIME_AT, 0);
                w(TIME_AT + 8, self.rng.below(20_000));
                (blob + TIME_AT) as u64
            }
            K::Ms => self.rng.below(21),
            K::Iov | K::Msghdr => {
                if self.rng.chance(40) {
                    return self.bad_ptr(s);
                }
                let n = self.rng.range(1, 4) as usize;
                for j in 0..n {
                    let b = self.buf();
                    w(64 + j * 16, b);
                    w(64 + j * 16 + 8, self.rng.pick(&[0, 1, 100, 4096]));
                }
                if let K::Msghdr = k {
                    // struct msghdr: name, namelen, iov, iovlen, control,
                    // controllen, flags.
                    w(0, 0);
                    w(8, 0);
                    w(16, (blob + 64) as u64);
                    w(24, n as u64);
                    let ctl = if self.rng.chance(200) { self.buf() } else { 0 };
                    w(32, ctl);
                    w(40, if ctl != 0 { 64 } else { 0 });
                    w(48, 0);
                    blob as u64
                } else {
                    (blob + 64) as u64
                }
            }
            K::IovCnt => self.rng.pick(&[0, 1, 2, 4, 1025, u64::MAX]),
            K::Sockaddr => {
                if self.rng.chance(40) {
                    return self.bad_ptr(s);
                }
                let fx = self.fx;
                let i = self.rng.below(fx.addrs.len() as u64) as usize;
                &*fx.addrs[i].0 as *const libc::sockaddr_un as u64
            }
            K::SockLen => self.rng.pick(&[0, 3, 110, 200, 20]),
            K::PollFds => {
                let fx = self.fx;
                for j in 0..4 {
                    let fd = fx.fds[self.rng.below(fx.fds.len() as u64) as usize];
                    let ev = self.rng.pick(&[1u64, 4, 5, 0x2000]);
                    w(j * 8, fd as u64 | ev << 32);
                }
                blob as u64
            }
            K::FdSet => {
                if self.rng.chance(300) {
                    return 0;
                }
                for j in 0..4 {
                    w(j * 8, 0);
                }
                for _ in 0..3 {
                    let fx = self.fx;
                    let fd = fx.fds[self.rng.below(fx.fds.len() as u64) as usize] as usize;
                    // SAFETY: fd < 256 fits in the 32 bytes cleared above.
                    if fd < 256 {
                        unsafe { *((blob + fd / 8) as *mut u8) |= 1 << (fd % 8) };
                    }
                }
                blob as u64
            }
            K::SelNfds => self.rng.pick(&[0, 64, 256, 1025, u32::MAX as u64]),
            K::Sigset => {
                w(0, self.rng.next() & !(1 << 8) & !(1 << 18));
                blob as u64
            }
            K::EpEvent => {
                w(0, 1 | 4 << 32);
                blob as u64
            }
            K::Sigev => {
                // struct sigevent: value, signo, notify, thread id.
                w(0, 0);
                let signo = self.rng.pick(&[10u64, 12, 14, 34]);
                let notify = self.rng.pick(&[0u64, 1, 4]);
                w(8, signo | notify << 32);
                w(16, sys::gettid() as u64);
                blob as u64
            }
            K::TimerId => self.rng.below(8),
            K::Counter => {
                if self.rng.chance(100) {
                    self.bad_ptr(s)
                } else {
                    (self.slab_addr(s) + OFF_CTR + 8 * self.rng.range(1, 3) as usize) as u64
                }
            }
            K::Inc => self.rng.pick(&[1, u64::MAX, 0, 4096, 1 << 40]),
            K::CpuMask => {
                w(0, self.rng.pick(&[1, 2, 3, 0, u64::MAX]));
                blob as u64
            }
            K::SchedParam => {
                w(0, 0);
                blob as u64
            }
            K::CapHdr => {
                w(0, self.rng.pick(&[0x2008_0522u64, 0x1998_0330, 0xdead]));
                blob as u64
            }
            K::FcntlArg => match self.rng.below(4) {
                0 => self.buf(),
                1 => libc::O_NONBLOCK as u64,
                // F_SETSIG and PR_SET_PDEATHSIG take these as signals: only
                // handled ones (or 0).
                _ => self.rng.pick(&[0, 10, 12, 34, 4096]),
            },
            K::Any => self.rng.next(),
        }
    }

    // ---- building -----------------------------------------------------------

    fn atom(&self, s: usize, i: usize) -> *mut syslet_uatom {
        (self.slab_addr(s) + i * 88) as *mut syslet_uatom
    }

    fn ret(&self, s: usize, i: usize) -> *mut i64 {
        (self.slab_addr(s) + OFF_RETS + i * 8) as *mut i64
    }

    fn counter(&self, s: usize, j: usize) -> *mut u64 {
        (self.slab_addr(s) + OFF_CTR + j * 8) as *mut u64
    }

    /// Build a random syslet in slab `s`; returns its number of atoms.
    fn build(&mut self, s: usize, strict: bool) -> usize {
        self.serial += 1;
        let serial = self.serial;
        let n = self.rng.small(MAX_ATOMS as u64 - 1) as usize + 1;
        // SAFETY: our slab, read-write, not in flight (FREE); cleared.
        unsafe { core::ptr::write_bytes(self.slab_addr(s) as *mut u8, 0, PAGE) };
        for i in 0..=MAX_ATOMS {
            // SAFETY: the result cells of our slab.
            unsafe { *self.ret(s, i) = UNTOUCHED };
        }
        // SAFETY: the counters of our slab.
        unsafe {
            *self.counter(s, 0) = self.rng.range(1, 16);
            for j in 1..4 {
                *self.counter(s, j) = self.rng.pick(&[0, 1, 5, u64::MAX]);
            }
        }
        let guard = if self.rng.chance(250) {
            Some(self.rng.below(n as u64) as usize)
        } else {
            None
        };
        let wild = self.mode.wild && !strict;
        let tw = table::total_weight();
        for i in 0..n {
            let sys: &Sys = if Some(i) == guard {
                &table::TABLE[table::TABLE.len() - 1] // placeholder, replaced below
            } else if wild && self.rng.chance(5) {
                &table::EXIT_GROUP
            } else {
                let x = self.rng.below(tw);
                let t = table::by_weight(x);
                if skipped(t.name) {
                    &table::TABLE[0]
                } else {
                    t
                }
            };
            let a = self.atom(s, i);
            let mut flags: u64 = 0;
            for (bit, pm) in [
                (0x20u64, 250),
                (0x08, 80),
                (0x10, 80),
                (0x40, 60),
                (0x80, 100),
                (0x02, 80),
            ] {
                if self.rng.chance(pm) {
                    flags |= bit;
                }
            }
            if self.rng.chance(if strict { 60 } else { 120 }) {
                flags |= 0x01;
            }
            if !strict && self.rng.chance(200) {
                flags |= 0x04;
            }
            if self.rng.chance(4) {
                flags |= 0x100 << self.rng.below(8);
            }
            let mut nr = sys.nr;
            let mut args_k: &[K] = sys.args;
            if Some(i) == guard {
                nr = table::NR_UMEM_ADD;
                args_k = &[];
                flags = 0x10 | (flags & 0x03);
            }
            let argbase = self.slab_addr(s) + OFF_ARGS + i * 48;
            // SAFETY: atom `i` and its argument cells are in our slab.
            unsafe {
                (*a).flags = flags;
                (*a).nr = nr;
                (*a).private = serial as *mut libc::c_void;
                (*a).ret_ptr = match self.rng.below(100) {
                    0..=1 => core::ptr::null_mut(),
                    2 => self.bad_ptr(s) as *mut i64,
                    _ => self.ret(s, i),
                };
                if Some(i) == guard {
                    *(argbase as *mut u64) = self.counter(s, 0) as u64;
                    *((argbase + 8) as *mut u64) = u64::MAX;
                    (*a).arg_ptr[0] = argbase as *mut u64;
                    (*a).arg_ptr[1] = (argbase + 8) as *mut u64;
                    (*a).ret_ptr = self.ret(s, i);
                }
            }
            // The list must reach a timeout or a pkey: a NULL argument
            // pointer ends it and leaves the rest 0; a NULL timeout of
            // ppoll, select, pselect6, futex or rt_sigtimedwait waits
            // forever, and pkey_free(0) frees the default key.
            let reach = args_k
                .iter()
                .rposition(|k| matches!(k, K::Ts | K::Tv | K::Pkey | K::Nb(_)))
                .map_or(0, |t| t + 1);
            let mut cmd: Option<u64> = None;
            for (k, &kind) in args_k.iter().enumerate() {
                let cell = argbase + k * 8;
                let mut v = self.value(kind, s, i);
                if let (K::FcntlArg, Some(&c)) = (kind, cmd.as_ref()) {
                    if c == libc::F_SETFL as u64 {
                        // Never make a descriptor blocking (see K::Nb).
                        v |= libc::O_NONBLOCK as u64;
                    }
                }
                if k == 1 && sys.nr == libc::SYS_fcntl as u64 {
                    cmd = Some(v);
                }
                // SAFETY: argument cell `k` of atom `i` in our slab.
                unsafe { *(cell as *mut u64) = v };
                // Never lengths: an earlier result (time(), lseek(), ...) as a
                // length would let the kernel write past the scratch area.
                let chainable = matches!(kind, K::Fd | K::Small | K::TimerId);
                let p: u64 = if i > 0 && chainable && self.rng.chance(150) {
                    {
                        let j = self.rng.below(i as u64) as usize;
                        self.ret(s, j) as u64
                    }
                } else if self.rng.chance(8) {
                    match self.bad_ptr(s) {
                        0 if k < reach => (self.badzone + s * PAGE) as u64,
                        // The read-only page holds 0x41 bytes: as a poll
                        // timeout in ms, 12 days.
                        p if p == self.ro as u64 && matches!(kind, K::Ms) => {
                            (self.badzone + s * PAGE) as u64
                        }
                        p => p,
                    }
                } else {
                    cell as u64
                };
                if self.rng.chance(10) && k >= reach {
                    break; // a NULL argument pointer ends the list early
                }
                // SAFETY: as above.
                unsafe { (*a).arg_ptr[k] = p as *mut u64 };
            }
        }
        // Control flow: forward edges, back edges only to the guard.
        for i in 0..n {
            let next: u64 = if self.rng.chance(30) {
                self.bad_next(s, strict)
            } else if let Some(g) = guard.filter(|&g| i >= g && self.rng.chance(500)) {
                self.atom(s, g) as u64
            } else if wild && self.rng.chance(100) {
                {
                    let j = self.rng.below(n as u64) as usize;
                    self.atom(s, j) as u64
                }
            } else if i + 1 < n {
                if self.rng.chance(80) {
                    {
                        let j = self.rng.range(i as u64 + 1, n as u64) as usize;
                        self.atom(s, j) as u64
                    }
                } else {
                    self.atom(s, i + 1) as u64
                }
            } else {
                0
            };
            // SAFETY: atom `i` of our slab.
            unsafe { (*self.atom(s, i)).next = next as *mut syslet_uatom };
        }
        // The sentinel after the last atom, reached by a skip.
        let t = self.atom(s, n);
        // SAFETY: atom `n` <= MAX_ATOMS of our slab.
        unsafe {
            (*t).nr = libc::SYS_getpid as u64;
            (*t).ret_ptr = self.ret(s, n);
            (*t).private = serial as *mut libc::c_void;
        }
        n
    }

    fn bad_next(&mut self, s: usize, strict: bool) -> u64 {
        let off = (self.rng.below(PAGE as u64 / 88) * 88) as usize;
        match self.rng.below(if strict { 2 } else { 4 }) {
            0 => (self.badzone + s * PAGE + off) as u64,
            1 => (self.unmapped + s * PAGE + off) as u64,
            2 => 0xffff_8880_0000_0000,
            _ => self.ro as u64,
        }
    }

    // ---- submitting and reaping ---------------------------------------------

    /// One fuzzing step: submit a syslet (strict, loose or to a bad ring),
    /// reap, wait, or a rare thread-level race.
    pub fn step(&mut self) {
        self.ops += 1;
        let x = self.rng.below(1000);
        if x < 700 {
            self.submit_strict();
        } else if x < 800 {
            self.submit_loose();
        } else if x < 830 {
            self.submit_bad_ring();
        } else if x < 950 {
            self.reap_all();
            if self.outstanding() > 0 && self.rng.chance(400) {
                self.wait_one();
            }
        } else if x < 952 {
            self.thread_race();
        } else {
            self.reap_all();
        }
        if self.ops % 256 == 0 {
            // Close what atoms opened (fixtures and the waker are safe).
            // SAFETY: only descriptors the fuzzer does not use itself.
            unsafe {
                sys::call(libc::SYS_close_range, &[3, 99, 0]);
                sys::call(
                    libc::SYS_close_range,
                    &[SCRATCH_LO as u64, u32::MAX as u64, 0],
                );
            }
        }
    }

    fn free_strict_slab(&mut self) -> Option<usize> {
        let start = self.rng.below(STRICT_SLABS as u64) as usize;
        (0..STRICT_SLABS)
            .map(|k| (start + k) % STRICT_SLABS)
            .find(|&s| {
                self.out[s].is_none() && self.states()[s].load(Ordering::Acquire) & 3 == slab::FREE
            })
    }

    /// Take slab `s` back from the in-flight state (waiting for a racer
    /// to give it back); returns whether it was raced meanwhile.
    fn release(&self, s: usize) -> bool {
        let st = &self.states()[s];
        loop {
            let cur = st.load(Ordering::Acquire);
            if cur & 3 == slab::RACED {
                sys::sleep_us(100);
                continue;
            }
            if st
                .compare_exchange(cur, slab::FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return cur & slab::TAINT != 0;
            }
        }
    }

    fn account_atoms(&self, s: usize, n: usize) {
        let mut run = 0;
        let mut wrong = 0;
        for i in 0..=n {
            // SAFETY: our slab, not in flight, mapped (not raced).
            let (r, nr) = unsafe { (*self.ret(s, i), (*self.atom(s, i)).nr) };
            if r == UNTOUCHED {
                continue;
            }
            run += 1;
            if let Some(sys) = table::TABLE.iter().find(|t| t.nr == nr) {
                let bad = (sys.refused && r != -22 && r != -4)
                    || (sys.nr == 506 || sys.nr == u64::MAX) && r != -38 && r != -4;
                if bad {
                    wrong += 1;
                    sys::say(&format!(
                        "fuzz: WRONG: atom {} ({}) of syslet {} gave {r}",
                        i,
                        sys.name,
                        // SAFETY: as above.
                        unsafe { (*self.atom(s, i)).private as u64 }
                    ));
                }
            }
        }
        self.slot.add(C::AtomsRun, run);
        if wrong > 0 {
            self.slot.add(C::Wrong, wrong);
        }
    }

    fn reset_timers(&self, s: usize, n: usize) {
        // timer_create's ID lands in the scratch buffer, not the slab: the
        // leak is bounded by deleting a window of IDs now and then.
        let _ = (s, n);
        if self.ops % 512 == 0 {
            for id in 0..64u64 {
                // SAFETY: deleting a POSIX timer by ID touches no memory.
                unsafe { sys::call(libc::SYS_timer_delete, &[id]) };
            }
        }
    }

    fn submit_strict(&mut self) {
        let Some(s) = self.free_strict_slab() else {
            self.reap_all();
            self.wait_one();
            return;
        };
        let n = self.build(s, true);
        let r = self.rng.below(self.rings.len() as u64) as usize;
        let ahu = self.rings[r].ahu;
        // SAFETY: atom 0 of our slab, before it is in flight (a racer may
        // unmap it once it is).
        let nr0 = unsafe { (*self.atom(s, 0)).nr };
        let mut nrs = [0u16; MAX_ATOMS + 1];
        for (i, x) in nrs.iter_mut().enumerate().take(n) {
            // SAFETY: as above.
            *x = unsafe { (*self.atom(s, i)).nr } as u16;
        }
        self.states()[s].store(slab::INFLIGHT, Ordering::Release);
        let atom0 = self.atom(s, 0) as u64;
        let tid = sys::gettid();
        self.inexec.store(self.serial, Ordering::SeqCst);
        // SAFETY: the syslet lives in our slab; its pointers are ours or
        // bad on purpose; the ring is ours.
        let ret = unsafe { sys::sys(500, [atom0, ahu as u64, 0, 0, 0, 0]) };
        // Exactly one context may come back from one async_exec call, with
        // the caller's TID (v3-abi B.3).
        let token = self.inexec.swap(0, Ordering::SeqCst);
        if token != self.serial || sys::gettid() != tid {
            sys::say(&format!(
                "fuzz: DOUBLE RETURN or wrong identity after async_exec: serial {} token {token} tid {tid} -> {} ret {ret:#x}",
                self.serial,
                sys::gettid()
            ));
            self.slot.add(C::Wrong, 1);
            // SAFETY: stop here, before two contexts share one stack for long.
            unsafe { libc::abort() };
        }
        self.slot.add(C::Syslets, 1);
        self.slot.add(C::Atoms, n as u64);
        self.log(
            op::EXEC,
            nr0 & 0xffff | (n as u64) << 16 | (r as u64) << 24,
            self.serial,
            ret as u64,
        );
        if ret == 0 {
            self.slot.add(C::Async, 1);
            self.slot.inflight.fetch_add(1, Ordering::Relaxed);
            self.out[s] = Some(Outstanding {
                ring: r,
                serial: self.serial,
                at: sys::now_ns(),
                nrs,
                n,
            });
            return;
        }
        let tainted = self.release(s);
        if (-4095..0).contains(&ret) {
            self.slot.add(C::ExecErrors, 1);
        } else {
            self.slot.add(C::Cached, 1);
            let p = ret as usize;
            let ok = p >= self.slab_addr(s)
                && p <= self.atom(s, n) as usize
                && (p - self.slab_addr(s)) % 88 == 0;
            if !ok {
                self.slot.add(C::Wrong, 1);
                sys::say(&format!(
                    "fuzz: WRONG: async_exec of syslet {} returned {p:#x}, not one of its atoms",
                    self.serial
                ));
            }
        }
        if !tainted {
            self.account_atoms(s, n);
        }
        self.reset_timers(s, n);
    }

    fn submit_loose(&mut self) {
        let k = self.loose_next;
        let now = sys::now_ns();
        if self.loose_at[k] != 0 && now - self.loose_at[k] < LOOSE_REUSE_NS {
            return;
        }
        let s = STRICT_SLABS + k;
        let st = &self.states()[s];
        let cur = st.load(Ordering::Acquire);
        if cur & 3 == slab::RACED
            || st
                .compare_exchange(cur, slab::FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.loose_next = (k + 1) % LOOSE_SLABS;
        let n = self.build(s, false);
        let ahu = match self.rng.below(10) {
            0 => self.ro_ring.as_ref().map_or(0, |r| r.ahu),
            _ => self.loose.as_ref().map_or(0, |r| r.ahu),
        };
        self.states()[s].store(slab::INFLIGHT, Ordering::Release);
        let atom0 = self.atom(s, 0) as u64;
        // SAFETY: as in submit_strict.
        let ret = unsafe { sys::sys(500, [atom0, ahu as u64, 0, 0, 0, 0]) };
        self.slot.add(C::Syslets, 1);
        self.slot.add(C::Atoms, n as u64);
        self.log(op::LOOSE, 1, self.serial, ret as u64);
        if ret == 0 {
            self.slot.add(C::LooseAsync, 1);
            self.loose_at[k] = now.max(1);
        } else {
            self.loose_at[k] = 0;
            self.release(s);
            if (-4095..0).contains(&ret) {
                self.slot.add(C::ExecErrors, 1);
            } else {
                self.slot.add(C::Cached, 1);
            }
        }
        self.reap_loose();
    }

    /// A syslet with a ring the kernel must refuse before any atom runs.
    fn submit_bad_ring(&mut self) {
        let Some(s) = self.free_strict_slab() else {
            return;
        };
        let n = self.build(s, true);
        let good = &self.rings[0];
        // A copy of a good head in the slab's last blob, then spoiled.
        let h = self.slab_addr(s) + PAGE - 64;
        let kind = self.rng.below(8);
        let ahu: u64 = match kind {
            0 => 0,
            1 => (self.badzone + s * PAGE) as u64,
            2 => 0xffff_8880_0000_0000,
            _ => {
                let (ring, size): (u64, u64) = match kind {
                    3 => ((good.map + 64) as u64, 0),
                    4 => ((good.map + 64) as u64, 12),
                    5 => ((good.map + 64) as u64, 32 << 20),
                    6 => (0, 64),
                    _ => ((good.map + 68) as u64, 64),
                };
                // SAFETY: 64 bytes at the end of our slab (past the blobs).
                unsafe {
                    core::ptr::write_bytes(h as *mut u8, 0, 64);
                    let hh = h as *mut async_head_user;
                    (*hh).completion_ring = ring as *mut *mut syslet_uatom;
                    (*hh).ring_size_bytes = size;
                }
                h as u64
            }
        };
        let atom0 = self.atom(s, 0) as u64;
        // SAFETY: as in submit_strict; the ring is refused.
        let ret = unsafe { sys::sys(500, [atom0, ahu, 0, 0, 0, 0]) };
        self.slot.add(C::BadRings, 1);
        self.log(op::EXEC, 0xbad0 | kind, self.serial, ret as u64);
        let mut ran = 0;
        for i in 0..=n {
            // SAFETY: our slab.
            if unsafe { *self.ret(s, i) } != UNTOUCHED {
                ran += 1;
            }
        }
        if !(ret == -22 || ret == -14) || ran > 0 {
            self.slot.add(C::Wrong, 1);
            sys::say(&format!(
                "fuzz: WRONG: async_exec with bad ring kind {kind} returned {ret}, {ran} atoms ran (serial {})",
                self.serial
            ));
            if ret == 0 {
                // It went async after all: never reuse the slab.
                self.out[s] = Some(Outstanding {
                    ring: usize::MAX,
                    serial: self.serial,
                    at: sys::now_ns(),
                    nrs: [0; MAX_ATOMS + 1],
                    n: 0,
                });
            }
        }
    }

    /// Reap every strict ring.
    pub fn reap_all(&mut self) {
        for r in 0..self.rings.len() {
            self.reap(r);
        }
        self.reap_loose();
    }

    fn reap(&mut self, r: usize) {
        loop {
            let ring = &self.rings[r];
            let i = ring.user_idx();
            let p = ring.slot(i).load(Ordering::Acquire);
            if p == 0 {
                return;
            }
            ring.slot(i).store(0, Ordering::Release);
            ring.set_user_idx((i + 1) % ring.slots);
            let s = self.slab_of(p).filter(|&s| s < STRICT_SLABS);
            match s.and_then(|s| self.out[s].map(|o| (s, o))) {
                Some((s, o)) if o.ring == r => {
                    self.out[s] = None;
                    self.slot.add(C::Completions, 1);
                    self.slot.inflight.fetch_sub(1, Ordering::Relaxed);
                    self.log(op::COMPLETE, s as u64, o.serial, p as u64);
                    // Wait for a racer to give the slab back.
                    if !self.release(s) {
                        // The sentinel is after the last atom; count them all.
                        self.account_atoms(s, MAX_ATOMS);
                    }
                }
                _ => {
                    self.slot.add(C::Unexpected, 1);
                    sys::say(&format!(
                        "fuzz: UNEXPECTED completion {p:#x} on ring {r} (slab {s:?}, tid {})",
                        sys::gettid()
                    ));
                    self.log(op::COMPLETE, u64::MAX, 0, p as u64);
                    // What this thread did before, for the slab's history
                    // (submitted where, returned what, reaped when).
                    if let Some(l) = self.log {
                        for line in l.last(40) {
                            sys::say(&format!("fuzz:     {line}"));
                        }
                    }
                }
            }
        }
    }

    fn reap_loose(&mut self) {
        let Some(reg_lock) = self.reg.map(|r| &r.loose_lock) else {
            return self.reap_loose_locked();
        };
        if reg_lock
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.reap_loose_locked();
            reg_lock.store(0, Ordering::Release);
        }
    }

    fn reap_loose_locked(&mut self) {
        let Some(ring) = &self.loose else { return };
        for _ in 0..ring.slots {
            let i = ring.user_idx() % ring.slots;
            let p = ring.slot(i).load(Ordering::Acquire);
            if p == 0 {
                return;
            }
            ring.slot(i).store(0, Ordering::Release);
            ring.set_user_idx((i + 1) % ring.slots);
            self.slot.add(C::LooseCompletions, 1);
        }
    }

    /// async_wait for one completion on the ring with the oldest syslet.
    pub fn wait_one(&mut self) {
        let Some(o) = self
            .out
            .iter()
            .flatten()
            .filter(|o| o.ring < self.rings.len())
            .min_by_key(|o| o.at)
            .copied()
        else {
            return;
        };
        let ring = &self.rings[o.ring];
        // SAFETY: async_wait only reads the ring.
        let r = unsafe { sys::sys(502, [1, ring.user_idx() as u64, ring.ahu as u64, 0, 0, 0]) };
        self.slot.add(C::Waits, 1);
        self.log(op::WAIT, o.ring as u64, 1, r as u64);
        self.reap(o.ring);
    }

    /// At the end: reap until nothing strict is in flight or `deadline_ns`
    /// passes; returns the number lost, after printing them.
    pub fn drain(&mut self, deadline_ns: u64) -> usize {
        crate::fixtures::DRAINING.store(true, Ordering::Relaxed);
        loop {
            self.reap_all();
            let n = self.outstanding();
            self.log(op::DRAIN, n as u64, 0, 0);
            if n == 0 {
                return 0;
            }
            if sys::now_ns() > deadline_ns {
                for (s, o) in self.out.iter().enumerate() {
                    let Some(o) = o else { continue };
                    let mut atoms = Vec::new();
                    for i in 0..=MAX_ATOMS {
                        // SAFETY: our slab (it may have been raced: then
                        // these are zeros, which is still readable).
                        let (nr, r, fl) = unsafe {
                            (
                                (*self.atom(s, i)).nr,
                                *self.ret(s, i),
                                (*self.atom(s, i)).flags,
                            )
                        };
                        if nr == 0 && r == 0 {
                            continue;
                        }
                        let name = table::TABLE
                            .iter()
                            .find(|t| t.nr == nr)
                            .map_or("?", |t| t.name);
                        atoms.push(format!(
                            "{i}:{name}/{fl:#x}={}",
                            if r == UNTOUCHED {
                                "-".to_owned()
                            } else {
                                r.to_string()
                            }
                        ));
                    }
                    let built: Vec<&str> = o.nrs[..o.n.max(n_atoms(&o.nrs))]
                        .iter()
                        .map(|&nr| {
                            table::TABLE
                                .iter()
                                .find(|t| t.nr == u64::from(nr))
                                .map_or("?", |t| t.name)
                        })
                        .collect();
                    sys::say(&format!(
                        "fuzz: LOST: tid {} syslet {} slab {s} ring {} submitted {} ms ago: {} (built: {})",
                        sys::gettid(),
                        o.serial,
                        o.ring,
                        (sys::now_ns() - o.at) / 1_000_000,
                        atoms.join(" "),
                        built.join(",")
                    ));
                }
                for (r, ring) in self.rings.iter().enumerate() {
                    // SAFETY: the head of our own ring.
                    let k = unsafe { (*ring.head()).kernel_ring_idx };
                    let full: Vec<String> = (0..ring.slots)
                        .filter_map(|i| {
                            let p = ring.slot(i).load(Ordering::Acquire);
                            (p != 0).then(|| format!("{i}:{p:#x}/slab {:?}", self.slab_of(p)))
                        })
                        .collect();
                    sys::say(&format!(
                        "fuzz: ring {r}: {} slots kernel_idx {k} user_idx {} full: {}",
                        ring.slots,
                        ring.user_idx(),
                        full.join(" ")
                    ));
                }
                blocked_report();
                self.slot.add(C::Lost, n as u64);
                return n;
            }
            // Not async_wait: a syslet that never completes would hold
            // the drain past its deadline (with SA_RESTART on the ticker's
            // signal, for good), and nothing would be reported.
            sys::sleep_us(2000);
        }
    }

    /// Rare races done by the fuzzing thread itself: unshare its files or
    /// fs, change its affinity, munmap/mprotect its own in-flight loose
    /// ring.
    fn thread_race(&mut self) {
        self.slot.add(C::Races, 1);
        let k = self.rng.below(4);
        let r = match k {
            0 => {
                let flags = self.rng.pick(&[
                    libc::CLONE_FILES,
                    libc::CLONE_FS,
                    libc::CLONE_FILES | libc::CLONE_FS,
                ]);
                // SAFETY: unshare of this thread's own tables.
                unsafe { sys::call(libc::SYS_unshare, &[flags as u64]) }
            }
            1 => {
                let mask: u64 = self.rng.pick(&[1, 2, 3]);
                // SAFETY: a valid 8-byte mask.
                unsafe {
                    sys::call(
                        libc::SYS_sched_setaffinity,
                        &[0, 8, &mask as *const u64 as u64],
                    )
                }
            }
            _ => self.race_loose_ring(),
        };
        self.log(op::RACE, k, 0, r as u64);
    }

    /// munmap or mprotect the loose ring (head and slots) for a moment.
    fn race_loose_ring(&mut self) -> i64 {
        let Some(ring) = &self.loose else { return -1 };
        let lock = self.reg.map(|r| &r.loose_lock);
        if let Some(l) = lock {
            if l.compare_exchange(0, 2, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return -1;
            }
        }
        let r = race_ring_memory(ring.map, ring.map_len, ring.slots, &mut self.rng);
        if let Some(l) = lock {
            l.store(0, Ordering::Release);
        }
        self.slot.add(C::RingsRaced, 1);
        r
    }
}

/// munmap or mprotect a ring mapping for up to 5 ms, then give it back
/// fresh (zeroed, re-initialised).  The caller holds the ring's lock.
pub fn race_ring_memory(map: usize, map_len: usize, slots: usize, rng: &mut Rng) -> i64 {
    let how = rng.below(3);
    // SAFETY: the ring mapping is the fuzzer's; its owner does not touch
    // it while the lock is held; it is remapped read-write before the
    // lock is released.
    unsafe {
        let r = match how {
            // Not munmap: the rings live where mmap(NULL) puts things, and
            // another thread's mapping could take the hole before the
            // remap below clobbers it.  A PROT_NONE mapping replaces the
            // pages (they are unmapped) without a hole.
            0 => {
                let p = libc::mmap(
                    map as *mut libc::c_void,
                    map_len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    -1
                } else {
                    0
                }
            }
            1 => libc::mprotect(map as *mut libc::c_void, map_len, libc::PROT_READ),
            _ => libc::mprotect(map as *mut libc::c_void, map_len, libc::PROT_NONE),
        };
        sys::sleep_us(rng.below(5000));
        if !sys::remap_fixed(map, map_len) {
            sys::say("fuzz: remap of a raced ring failed");
            libc::abort();
        }
        core::ptr::write_bytes(map as *mut u8, 0, 64);
        let h = map as *mut async_head_user;
        (*h).completion_ring = (map + 64) as *mut *mut syslet_uatom;
        (*h).ring_size_bytes = (slots * 8) as u64;
        i64::from(r)
    }
}

/// A racer's attack on a fuzzing thread's slabs: munmap or mprotect one
/// that is in flight for a moment.  Returns whether it found one.
pub fn race_slab(reg: &Reg, rng: &mut Rng) -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *OFF.get_or_init(|| std::env::var_os("FUZZ_NO_SLAB_RACE").is_some()) {
        return false;
    }
    let base = reg.slabs.load(Ordering::Relaxed);
    if base == 0 {
        return false;
    }
    let start = rng.below(SLABS as u64) as usize;
    let Some(s) = (0..SLABS)
        .map(|k| (start + k) % SLABS)
        .find(|&s| reg.states[s].load(Ordering::Relaxed) & 3 == slab::INFLIGHT)
    else {
        return false;
    };
    let st = &reg.states[s];
    let cur = st.load(Ordering::Acquire);
    if cur & 3 != slab::INFLIGHT
        || st
            .compare_exchange(
                cur,
                slab::RACED | slab::TAINT,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
    {
        return false;
    }
    let a = base + s * PAGE;
    // SAFETY: the slab is ours and in flight: its owner does not touch it
    // while it is RACED.  It is given back (remapped if it was unmapped)
    // before the state goes back to INFLIGHT.
    unsafe {
        match rng.below(3) {
            0 => {
                libc::munmap(a as *mut libc::c_void, PAGE);
                sys::sleep_us(rng.below(3000));
                if !sys::remap_fixed(a, PAGE) {
                    libc::abort();
                }
            }
            1 => {
                libc::mprotect(a as *mut libc::c_void, PAGE, libc::PROT_READ);
                sys::sleep_us(rng.below(3000));
                libc::mprotect(
                    a as *mut libc::c_void,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                );
            }
            _ => {
                libc::mprotect(a as *mut libc::c_void, PAGE, libc::PROT_NONE);
                sys::sleep_us(rng.below(3000));
                libc::mprotect(
                    a as *mut libc::c_void,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                );
            }
        }
    }
    st.store(slab::INFLIGHT | slab::TAINT, Ordering::Release);
    reg.raced.fetch_add(1, Ordering::Relaxed);
    true
}

/// Once per process, at the first lost syslet: every task of this process
/// that sleeps in a system call (cachemiss threads with a blocked atom),
/// with its system call, arguments and what its first argument names as a
/// descriptor.
fn blocked_report() {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for e in dir.flatten() {
        let t = e.path();
        // comm may be any bytes (PR_SET_NAME atoms): not UTF-8.
        let stat = String::from_utf8_lossy(&std::fs::read(t.join("stat")).unwrap_or_default())
            .into_owned();
        let state = stat.rsplit_once(')').map_or("?", |(_, r)| {
            r.trim_start().split(' ').next().unwrap_or("?")
        });
        if state == "R" {
            continue;
        }
        let sc = std::fs::read_to_string(t.join("syscall")).unwrap_or_default();
        let mut it = sc.split_whitespace();
        let nr: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(u64::MAX);
        let a0 = it
            .next()
            .and_then(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok())
            .unwrap_or(u64::MAX);
        let name = table::TABLE
            .iter()
            .find(|x| x.nr == nr)
            .map_or("?", |x| x.name);
        // The task's own table: it may have unshared its files.
        let fd = std::fs::read_link(t.join(format!("fd/{a0}")))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let wchan = std::fs::read_to_string(t.join("wchan")).unwrap_or_default();
        let comm = String::from_utf8_lossy(&std::fs::read(t.join("comm")).unwrap_or_default())
            .into_owned();
        sys::say(&format!(
            "fuzz: BLOCKED task {} ({}) {state} in {name}: {} [{fd}] wchan {wchan}",
            e.file_name().to_string_lossy(),
            comm.trim(),
            sc.trim()
        ));
    }
}

/// The number of atoms recorded in `nrs` (trailing zeros are unused;
/// a read, number 0, in the middle counts).
fn n_atoms(nrs: &[u16]) -> usize {
    nrs.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1)
}
