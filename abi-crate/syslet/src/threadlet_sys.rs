//! The raw threadlet helpers: `threadlet_exec` and `threadlet_complete`
//! (assembly, exported under their C names) and the spare threads they
//! need.
//!
//! # How a threadlet runs
//!
//! `threadlet_exec(fn, data, stack_top, ahu)` saves the callee-saved
//! registers, MXCSR and the x87 control word on the caller's stack (the
//! *restore frame*), switches to `stack_top` and calls
//! `threadlet_on(restore frame, restore label, ahu)` there — on the new
//! stack, so that a signal handler that runs on the way out of the call
//! (and may block) never uses the caller's stack — and then `fn(data)`.
//!
//!  - If `fn` returns without having blocked, `threadlet_off()` (called by
//!    [`threadlet_complete`] or, failing that, by `threadlet_exec` itself)
//!    says 0: `threadlet_exec` switches back and returns
//!    [`THREADLET_DONE`].
//!  - If `fn` blocked and a spare parked in `async_thread()` took over, the
//!    spare comes out of the kernel at the restore label, with the
//!    caller's identity and TLS: it reloads the registers from the restore
//!    frame and returns [`THREADLET_ASYNC`] to the caller.  The blocked
//!    thread goes on with `fn` in a thread of its own that has the spare's
//!    former thread ID and TLS.  When `fn` returns, `threadlet_off()` says
//!    1: the thread switches to the spare's *home stack* (recorded in the
//!    spare's TLS when it started, free since the spare's own context was
//!    discarded), marks the threadlet stack free and parks in
//!    `async_thread()` there, as that spare.
//!
//! # The stack word
//!
//! The 32-bit word at `stack_top - 8` (`threadlet_exec` keeps the 16
//! bytes below `stack_top` for itself) is 1 while a thread may still use
//! the stack and 0 once none does: `threadlet_exec` sets it before it
//! switches, clears it when it returns `THREADLET_DONE` or an error, and
//! the thread that went on clears it and wakes it (`FUTEX_WAKE`, not
//! private) once it has left the stack.  Should that thread have no home
//! stack (it was not parked by this crate), it exits with the word as its
//! `clear_child_tid`, which the kernel clears and wakes the same way.
//!
//! # Spares
//!
//! Only threads parked in `async_thread()` take over threadlets, and only
//! if they are idle when the threadlet blocks; otherwise the threadlet
//! blocks in place, like a function call.  So the number of idle spares
//! bounds how many threadlets can go asynchronous at once.  The spares of
//! [`start_spares`] are threads of this process with a TLS and a stack of
//! their own; a parked spare blocks every signal but the C library's
//! internal ones (whose handlers run on its home stack).  Each one that
//! takes over
//! a threadlet's caller is replaced, once the threadlet ends, by the
//! thread that ran it: the number of spare identities stays the same, and
//! the safe [`Threadlets`](crate::Threadlets) starts more while threadlets
//! are pending.

use core::arch::global_asm;
use core::ffi::{c_long, c_void};
use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicU64, Ordering};
use std::io;

use crate::abi::{nr, AsyncHead};

/// [`threadlet_exec`] returned after the function ran to its end in the
/// caller, without blocking.
pub const THREADLET_DONE: c_long = 0;

/// [`threadlet_exec`] returned because the function blocked: it goes on
/// in a thread of its own.
pub const THREADLET_ASYNC: c_long = 1;

/// The stack word is at `stack_top - STACK_WORD_OFFSET`.
pub const STACK_WORD_OFFSET: usize = 8;

/// How many spares are idle or about to be: incremented by
/// [`start_spares`] before it starts a thread and by a thread that ended
/// an asynchronous threadlet before it parks again, decremented when a
/// spare takes over a threadlet's caller (at the restore label) or leaves
/// the loop on an error.
static IDLE: AtomicIsize = AtomicIsize::new(0);

/// The process the spares were started in (0: none yet); a child after
/// `fork` has none of them.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Spares started by this process.
static STARTED: AtomicIsize = AtomicIsize::new(0);

/// The signal mask of a parked spare (the kernel's 64-bit `sigset_t`):
/// every signal the C library lets a thread block, i.e. its `sigfillset()`
/// — all but the library's internal signals, which it sends to every
/// thread it knows and waits for (glibc's SIGSETXID for `setuid()` and
/// friends, SIGCANCEL).  Those interrupt `async_thread()` with `EINTR`,
/// their handlers run on the home stack with the spare's TLS, and the
/// spare parks again.  Set by [`start_spares`]; the initial value is
/// glibc's (all but 32 and 33).
static SPARE_MASK: AtomicU64 = AtomicU64::new(!((1 << 31) | (1 << 32)));

/// Size of a spare's own stack, its home stack (plus glibc's guard page).
const SPARE_STACK: usize = 128 << 10;

// The numbers the assembly below spells out.
const _: () = {
    assert!(nr::ASYNC_THREAD == 503);
    assert!(nr::THREADLET_ON == 504);
    assert!(nr::THREADLET_OFF == 505);
    assert!(libc::SYS_rt_sigprocmask == 14);
    assert!(libc::SYS_exit == 60);
    assert!(libc::SYS_futex == 202);
    assert!(libc::SYS_set_tid_address == 218);
    assert!(libc::SIG_SETMASK == 2);
    assert!(libc::EINTR == 4);
    assert!(libc::EINVAL == 22);
    assert!(libc::FUTEX_WAKE == 1);
    assert!(STACK_WORD_OFFSET == 8);
};

// Per-thread state (one 16-byte TLS block, initial-exec model so that the
// code also works in a shared object):
//
//   +0  home: the stack pointer a spare parks at (0: not a spare of ours)
//   +8  off:  threadlet_off()'s result + 1, left by threadlet_complete()
//             for threadlet_exec (0: threadlet_complete() was not called)
//
// threadlet_exec register use after its prologue:
//   r12 fn, r13 data, r14 stack_top, r15 the restore frame (the caller's
//   stack), rbx the caller's thread pointer (fs:0).  All callee-saved, so
//   they survive fn and, for the thread that went on, the handoff too.
//
// Restore frame, at r15 (= restore_stack), 16-byte aligned:
//   +0 MXCSR (4 bytes), +4 x87 control word (2 bytes), +8 r15, +16 r14,
//   +24 r13, +32 r12, +40 rbx, +48 rbp, +56 the return address.
global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".type __syslet_0_1_threadlet_tls,@object",
    ".size __syslet_0_1_threadlet_tls,16",
    "__syslet_0_1_threadlet_tls:",
    ".zero 16",
    ".popsection",
    //
    // long threadlet_exec(long (*fn)(void *), void *data, void *stack_top,
    //                     struct async_head_user *ahu)
    ".pushsection .text.__syslet_0_1_threadlet,\"ax\",@progbits",
    ".globl threadlet_exec",
    ".type threadlet_exec,@function",
    ".p2align 4",
    "threadlet_exec:",
    ".cfi_startproc",
    "mov rax, -22",
    "test rdi, rdi",
    "jz 98f",
    "test rdx, rdx",
    "jz 98f",
    "test dl, 15",
    "jnz 98f",
    "push rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset rbp, 0",
    "push rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset rbx, 0",
    "push r12",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r12, 0",
    "push r13",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r13, 0",
    "push r14",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r14, 0",
    "push r15",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r15, 0",
    "sub rsp, 8",
    ".cfi_adjust_cfa_offset 8",
    "stmxcsr dword ptr [rsp]",
    "fnstcw word ptr [rsp + 4]",
    "mov r12, rdi",
    "mov r13, rsi",
    "mov r14, rdx",
    "mov r15, rsp",
    "mov rbx, qword ptr fs:[0]",
    // The stack is in use (this also faults its top page in while the
    // thread is not armed yet).
    "mov dword ptr [r14 - 8], 1",
    "mov rsp, r14",
    // Nothing to unwind to from here: the caller's stack may belong to
    // another thread by the time anybody looks.
    ".cfi_undefined rip",
    "sub rsp, 16",
    "mov rdi, r15",
    "lea rsi, [rip + 3f]",
    "mov rdx, rcx",
    "mov eax, 504",
    "syscall",
    "test rax, rax",
    "jnz 2f",
    "mov rdi, r13",
    "call r12",
    // fn returned.  Did threadlet_complete() disarm the threadlet?
    "mov rax, qword ptr [rip + __syslet_0_1_threadlet_tls@GOTTPOFF]",
    "mov rcx, qword ptr fs:[rax + 8]",
    "mov qword ptr fs:[rax + 8], 0",
    "test rcx, rcx",
    "jnz 5f",
    "mov eax, 505",
    "syscall",
    "lea rcx, [rax + 1]",
    "cmp rax, 1",
    "jbe 5f",
    // fn disarmed it with a bare threadlet_off(): after a handoff this
    // thread has another thread's TLS.
    "mov ecx, 1",
    "cmp rbx, qword ptr fs:[0]",
    "je 5f",
    "mov ecx, 2",
    "5:",
    "cmp rcx, 1",
    "je 1f",
    // fn went on in its own thread, with a spare's TLS: go to that spare's
    // home stack, free the threadlet stack and park as the spare.
    "mov rax, qword ptr [rip + __syslet_0_1_threadlet_tls@GOTTPOFF]",
    "mov rcx, qword ptr fs:[rax]",
    "test rcx, rcx",
    "jz 6f",
    "mov rsp, rcx",
    "lea rdi, [r14 - 8]",
    "mov dword ptr [rdi], 0",
    "mov esi, 1",
    "mov edx, 0x7fffffff",
    "mov eax, 202",
    "syscall",
    "lock inc qword ptr [rip + {idle}]",
    "jmp __syslet_0_1_threadlet_park_here",
    "6:",
    // No home stack: exit; the kernel clears and wakes the stack word.
    "lea rdi, [r14 - 8]",
    "mov eax, 218",
    "syscall",
    "xor edi, edi",
    "mov eax, 60",
    "syscall",
    "ud2",
    ".cfi_offset rip, -8",
    "2:",
    // threadlet_on() failed: fn did not run; rax = -errno.
    "mov rsp, r15",
    "mov dword ptr [r14 - 8], 0",
    "jmp 4f",
    "1:",
    // fn returned in the caller.
    "mov rsp, r15",
    "mov dword ptr [r14 - 8], 0",
    "xor eax, eax",
    "jmp 4f",
    "3:",
    // The restore label: a spare took over the caller and arrives here
    // with the caller's TLS and identity, rsp = the restore frame and the
    // other registers zero.
    "lock dec qword ptr [rip + {idle}]",
    "ldmxcsr dword ptr [rsp]",
    "fldcw word ptr [rsp + 4]",
    "mov eax, 1",
    "4:",
    "add rsp, 8",
    ".cfi_adjust_cfa_offset -8",
    "pop r15",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r15",
    "pop r14",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r14",
    "pop r13",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r13",
    "pop r12",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r12",
    "pop rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbx",
    "pop rbp",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbp",
    "98:",
    "ret",
    ".cfi_endproc",
    ".size threadlet_exec, . - threadlet_exec",
    //
    // long threadlet_complete(void)
    ".globl threadlet_complete",
    ".type threadlet_complete,@function",
    ".p2align 4",
    "threadlet_complete:",
    ".cfi_startproc",
    "mov eax, 505",
    "syscall",
    "cmp rax, 1",
    "ja 1f",
    "mov rcx, qword ptr [rip + __syslet_0_1_threadlet_tls@GOTTPOFF]",
    "lea rdx, [rax + 1]",
    "mov qword ptr fs:[rcx + 8], rdx",
    "1:",
    "ret",
    ".cfi_endproc",
    ".size threadlet_complete, . - threadlet_complete",
    //
    // long __syslet_0_1_threadlet_park(void): the spare loop.  Records the
    // home stack, blocks the signals of SPARE_MASK and parks in
    // async_thread() (again after a handler ran: -EINTR) until
    // the kernel picks the thread (it then never comes back here) or the
    // call fails (returns -errno).  Threads that finished a threadlet jump
    // to _park_here on the home stack of the spare whose TLS they have:
    // the frame there is this function's, so they can return through it.
    ".globl __syslet_0_1_threadlet_park",
    ".hidden __syslet_0_1_threadlet_park",
    ".type __syslet_0_1_threadlet_park,@function",
    ".p2align 4",
    "__syslet_0_1_threadlet_park:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset rbp, 0",
    "push rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset rbx, 0",
    "push r12",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r12, 0",
    "push r13",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r13, 0",
    "push r14",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r14, 0",
    "push r15",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset r15, 0",
    "sub rsp, 8",
    ".cfi_adjust_cfa_offset 8",
    "mov rax, qword ptr [rip + __syslet_0_1_threadlet_tls@GOTTPOFF]",
    "mov qword ptr fs:[rax], rsp",
    ".globl __syslet_0_1_threadlet_park_here",
    ".hidden __syslet_0_1_threadlet_park_here",
    "__syslet_0_1_threadlet_park_here:",
    "mov eax, 14",
    "mov edi, 2",
    "lea rsi, [rip + {mask}]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "2:",
    "mov eax, 503",
    "syscall",
    "cmp rax, -4",
    "je 2b",
    // async_thread() failed: no longer a spare.
    "lock dec qword ptr [rip + {idle}]",
    "mov rcx, qword ptr [rip + __syslet_0_1_threadlet_tls@GOTTPOFF]",
    "mov qword ptr fs:[rcx], 0",
    "add rsp, 8",
    ".cfi_adjust_cfa_offset -8",
    "pop r15",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r15",
    "pop r14",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r14",
    "pop r13",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r13",
    "pop r12",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore r12",
    "pop rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbx",
    "pop rbp",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbp",
    "ret",
    ".cfi_endproc",
    ".size __syslet_0_1_threadlet_park, . - __syslet_0_1_threadlet_park",
    ".popsection",
    idle = sym IDLE,
    mask = sym SPARE_MASK,
);

extern "C" {
    /// `long threadlet_exec(long (*fn)(void *), void *data, void
    /// *stack_top, struct async_head_user *ahu)` — run `fn(data)` on the
    /// stack below `stack_top` as a threadlet.
    ///
    /// Returns [`THREADLET_DONE`] (0) if `fn` returned without having
    /// blocked: a plain function call, in the caller's thread.  Returns
    /// [`THREADLET_ASYNC`] (1) as soon as `fn` blocked and a spare thread
    /// (see [`start_spares`]) took over the caller: `fn` goes on in a
    /// thread of its own, with that spare's former thread ID and TLS, and
    /// the caller — same thread ID, TLS, signal mask, callee-saved
    /// registers, MXCSR and x87 control word as at the call — goes on here.
    /// With no idle spare, a block just blocks.  Exported under this name
    /// for C (`threadlet.h` of the `syslet-c` library).
    ///
    /// `fn` ends with `return threadlet_complete();` (or just returns:
    /// `threadlet_exec` then disarms the threadlet itself).  Its result
    /// goes back through `data`; its return value is not kept.  A thread
    /// that ran `fn` asynchronously parks as a spare afterwards, on the
    /// stack of the spare whose TLS it has, after clearing the stack word
    /// (see [`STACK_WORD_OFFSET`]).
    ///
    /// # Errors
    ///
    /// Negative errno values, and `fn` did not run: `-EINVAL` for a NULL
    /// `fn`, a NULL or not 16-byte aligned `stack_top`, or from
    /// `threadlet_on()`; `-EBUSY` inside a threadlet (no nesting);
    /// `-EFAULT` for an unreadable `ahu` (pass NULL: threadlets do not use
    /// a ring); `-ENOSYS` without threadlets in the kernel.
    ///
    /// # Safety
    ///
    ///  - `stack_top` is the 16-byte aligned end of a writable stack that
    ///    nothing else uses until the stack word at `stack_top - 8` is 0
    ///    again; big enough for `fn`.
    ///  - `fn` must be sound to call with `data`, must not unwind, and must
    ///    not call `threadlet_off()` itself.
    ///  - `fn` may go on in another thread, with another thread ID and TLS,
    ///    at any point where it can block (any system call, page fault or
    ///    lock), concurrently with the caller: what it uses must allow that
    ///    (`data` and whatever it reaches must be `Send` to that thread and
    ///    outlive `fn`; nothing on the caller's stack), and it must not
    ///    rely on thread-local state or thread-identity-keyed locks across
    ///    such a point (see [`Threadlets::run`](crate::Threadlets::run)).
    ///  - The calling thread must have a TLS (any thread made by the C
    ///    library or `std` has).
    ///
    /// # References
    ///  - the project's ABI contract, `v3-abi.md`, A "Threadlets" and B.2
    pub fn threadlet_exec(
        f: unsafe extern "C" fn(*mut c_void) -> c_long,
        data: *mut c_void,
        stack_top: *mut c_void,
        ahu: *mut AsyncHead,
    ) -> c_long;

    /// `long threadlet_complete(void)` — end a threadlet: the last act of
    /// the function [`threadlet_exec`] runs, `return threadlet_complete();`.
    ///
    /// Disarms the threadlet (`threadlet_off()`) and returns 0 if the
    /// function never blocked (it is still in the caller) or 1 if it runs
    /// in a thread of its own; `threadlet_exec` then sends that thread
    /// back to being a spare when the function returns.  Code between this
    /// call and the return can no longer go asynchronous.  `-EINVAL`
    /// outside a threadlet (or called twice).
    ///
    /// # Safety
    ///
    /// Only inside a function run by `threadlet_exec`, at most once.
    pub fn threadlet_complete() -> c_long;

    fn __syslet_0_1_threadlet_park() -> c_long;
}

/// Start `n` spare threads: threads of this process, with a TLS and a
/// stack of their own, that record their stack as their home, block every
/// signal but the C library's internal ones (`sigfillset()`: glibc's
/// `setuid()` signals every thread and waits for it) and park in
/// `async_thread()` to take over threadlets that block.
///
/// Each threadlet that goes asynchronous at the same time needs one idle
/// spare: a threadlet that blocks while none is idle blocks in place (it
/// is a function call then).  The spare that took over a threadlet's
/// caller *is* the caller from then on (thread ID, TLS, stack); the
/// thread that ran the threadlet becomes that spare when it ends, so the
/// number of spares only drops while threadlets are pending.  Spares also
/// serve blocked syslets (`async_exec`), which do not give them back.
///
/// Spares live as long as the process; they are not reaped for idleness.
/// The thread's name is `threadlet-spare`.
///
/// # Errors
///
/// The error of `std::thread::Builder::spawn` (e.g. `EAGAIN` at a thread
/// limit); the spares started before it stay.
pub fn start_spares(n: usize) -> io::Result<()> {
    SPARE_MASK.store(libc_fill_mask(), Ordering::Relaxed);
    let pid = std::process::id();
    if OWNER.swap(pid, Ordering::Relaxed) != pid {
        // A child after fork: its parent's spares are not here.
        IDLE.store(0, Ordering::Relaxed);
        STARTED.store(0, Ordering::Relaxed);
    }
    for _ in 0..n {
        // Counted before it runs, so that a caller that looks again at
        // once does not start another one for it.
        IDLE.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("threadlet-spare".to_owned())
            .stack_size(SPARE_STACK)
            .spawn(spare_main);
        if let Err(e) = spawned {
            IDLE.fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
        STARTED.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// An estimate of the idle spares: spares started or parked again, minus
/// those that took over a threadlet's caller.  Not exact: a spare that
/// took over a blocked *syslet*'s caller (`async_exec`) is still counted,
/// and threads that park in `async_thread()` by themselves are not (a
/// threadlet they take over lowers the estimate all the same).  0 in a
/// child after `fork` that started none.
pub fn idle_spares() -> usize {
    if OWNER.load(Ordering::Relaxed) != std::process::id() {
        return 0;
    }
    IDLE.load(Ordering::Relaxed).max(0) as usize
}

/// The number of spares [`start_spares`] started in this process.
pub fn spares_started() -> usize {
    if OWNER.load(Ordering::Relaxed) != std::process::id() {
        return 0;
    }
    STARTED.load(Ordering::Relaxed).max(0) as usize
}

/// The stack word of the threadlet stack that ends at `stack_top`: nonzero
/// while a thread may still use the stack (see [`STACK_WORD_OFFSET`]).
///
/// # Safety
///
/// `stack_top - 8` must be valid for reads of 4 bytes for `'a`.
pub(crate) unsafe fn stack_word<'a>(stack_top: usize) -> &'a AtomicU32 {
    // SAFETY: the caller's contract; the word is 4-byte aligned as
    // `stack_top` is 16-byte aligned.
    unsafe { &*((stack_top - STACK_WORD_OFFSET) as *const AtomicU32) }
}

/// The first 64 signals of the C library's `sigfillset()`.
fn libc_fill_mask() -> u64 {
    // SAFETY: `sigset_t` is plain data; sigfillset initialises it.
    let set = unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    };
    // SAFETY: `sigset_t` is at least 8 bytes; its first 64 bits are
    // signals 1 to 64, as in the kernel's mask.
    unsafe { core::ptr::read_unaligned((&set as *const libc::sigset_t).cast::<u64>()) }
}

fn spare_main() {
    // SAFETY: this frame and std's thread start below it hold nothing
    // anybody waits for (the JoinHandle was dropped) and no borrow or lock:
    // when the kernel picks this thread for a threadlet's caller, the stack
    // is abandoned, later reused as a home stack by the thread that has
    // this thread's TLS, and returned through only by a thread that has
    // this frame's registers back (the park function's own frame).
    let err = unsafe { __syslet_0_1_threadlet_park() };
    STARTED.fetch_sub(1, Ordering::Relaxed);
    let _ = err;
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn never(_: *mut c_void) -> c_long {
        unreachable!("threadlet_exec must not run fn on bad input");
    }

    #[test]
    fn bad_stacks_are_einval() {
        let mut stack = vec![0u128; 64];
        let top = stack.as_mut_ptr_range().end.cast::<c_void>();
        // SAFETY: each call fails before it touches the stack or runs `never`.
        unsafe {
            assert_eq!(
                threadlet_exec(
                    never,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    core::ptr::null_mut()
                ),
                -c_long::from(libc::EINVAL)
            );
            let odd = top.cast::<u8>().wrapping_sub(8).cast::<c_void>();
            assert_eq!(
                threadlet_exec(never, core::ptr::null_mut(), odd, core::ptr::null_mut()),
                -c_long::from(libc::EINVAL)
            );
        }
        assert!(stack.iter().all(|&w| w == 0));
    }

    #[test]
    fn complete_outside_a_threadlet() {
        // SAFETY: outside a threadlet threadlet_off() changes nothing.
        let r = unsafe { threadlet_complete() };
        assert!(
            r == -c_long::from(libc::EINVAL) || r == -c_long::from(libc::ENOSYS),
            "threadlet_complete() = {r}"
        );
    }
}
