//! The module with most of the crate's `unsafe` code: the system calls
//! themselves, the futex calls and the thread entry for the fallbacks.
//!
//! Everything the kernel is handed goes through [`raw_syscall`] (the
//! futex waits through their own four-argument `asm!`); every return value
//! is converted to `io::Result` by [`cvt`].  The other `unsafe` code is the
//! asynchronous submission in `async_ring.rs`, the threadlet assembly and
//! spares in `threadlet_sys.rs`, and the result cell, stacks and the
//! `threadlet_exec` call of `threadlet.rs`.

use core::arch::{asm, global_asm};
use core::ffi::{c_long, c_ulong};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::io;
use std::sync::OnceLock;

use crate::abi::{nr, AsyncHead, Atom};
use crate::chain::{Arg, AtomMut, Chain, Wiring};

/// The kernel's convention: `-4095..=-1` is `-errno`, anything else a value.
/// The one place where system call results become `io::Result`.
pub(crate) fn cvt(ret: i64) -> io::Result<i64> {
    if (-4095..=-1).contains(&ret) {
        Err(io::Error::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret)
    }
}

/// `syscall(nr, a0, a1, a2)` on x86-64, returning the kernel's raw value.
///
/// # Safety
///
/// Whatever system call `nr` does with its arguments must be sound: every
/// pointer among them must be valid for the accesses that call makes, for
/// as long as it makes them.
unsafe fn raw_syscall(nr: c_ulong, a0: usize, a1: usize, a2: usize) -> c_long {
    let ret: c_long;
    // SAFETY: the x86-64 `syscall` convention: number in rax, arguments in
    // rdi, rsi and rdx, result in rax; rcx and r11 are clobbered, the stack
    // is not touched.  Memory effects are the caller's contract (no
    // `nomem`).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as c_long => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `async_exec(atom, ahu)` — run the syslet starting at `atom`.
///
/// Returns `Ok(Some(final_atom))` if the whole syslet completed in the
/// caller ("cached"): the atom that ended it.  `Ok(None)` means it went
/// asynchronous: an atom blocked (or one had `SYSLET_ASYNC`), another
/// thread took over the caller's user context and identity and returned
/// here at once, and the chain goes on in a kernel thread; its final atom
/// will appear in `ahu`'s completion ring unless it has
/// `SYSLET_NO_COMPLETE`.  [`AsyncRing`](crate::AsyncRing) is the safe way
/// to do this.
///
/// # Errors
///
///  - `ENOSYS`: the kernel has no syslets.
///  - `EFAULT`: `ahu`, the ring, an atom or an argument pointer is
///    unreadable, or a `ret_ptr` unwritable (the syslet ends there).
///  - `EINVAL`: a bad ring (size 0, not a multiple of 8, over 16 MiB, ring
///    NULL or misaligned) or an atom with unknown flag bits.
///
/// Errors of the atoms' own system calls are not errors of `async_exec`:
/// they are the atoms' results, stored through their `ret_ptr`.
///
/// # Safety
///
/// For the whole call — and, if it returns `Ok(None)`, until the final atom
/// has been taken from the ring (forever if the syslet can end without a
/// completion: `SYSLET_NO_COMPLETE`) — the kernel may read every atom reachable
/// from `atom` (through `next`, and `atom + 1` where
/// `SYSLET_SKIP_TO_NEXT_ON_STOP` is set) and every argument cell they point
/// at, and may write every `ret_ptr` and whatever memory the atoms' system
/// calls write (buffers, `struct stat`, counters of `umem_add`, ...).  All of
/// that memory must stay allocated, and must not be accessed by Rust code in
/// a way that conflicts with those reads and writes, until then.  `ahu` must
/// describe a ring that stays valid just as long, with valid fallbacks:
/// until the syslet's completion is in its slot (the kernel advances
/// `kernel_ring_idx` and reads `head_eip`/`head_stack` before it stores the
/// slot, and touches the ring no more after it).
/// The fallbacks in `ahu` must be 0 or a user entry point that is sound to
/// start with no TLS and all registers zero on that stack (the crate's:
/// [`Ring::set_user_threads`](crate::Ring::set_user_threads)).  The
/// atoms' system calls must themselves be sound to make from this thread
/// or, once the syslet went asynchronous, from another thread of the
/// process (e.g. no `munmap` of memory Rust still uses, no `close` of a
/// descriptor someone else owns).
/// Pointers the kernel rejects (NULL, unmapped, kernel addresses) are not
/// unsound: they give `EFAULT`.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "sys_async_exec")]
pub unsafe fn async_exec(
    atom: *const Atom,
    ahu: *mut AsyncHead,
) -> io::Result<Option<NonNull<Atom>>> {
    // SAFETY: the caller's contract above is exactly what the kernel needs.
    let ret = unsafe { raw_syscall(nr::ASYNC_EXEC, atom as usize, ahu as usize, 0) };
    cvt(ret).map(|p| NonNull::new(p as usize as *mut Atom))
}

/// `umem_add(uptr, inc)` — add `inc` to the word at `uptr`, returning the
/// new value.
///
/// A plain read-modify-write (not atomic against other threads), wrapping.
/// It exists to drive loop counters inside syslets; this direct form is
/// mostly for tests.
///
/// # Errors
///
///  - `EFAULT`: `uptr` is not a writable user address.
///  - `ENOSYS`: the kernel has no syslets.
///
/// The kernel returns the new value as a `long`, so a new value in
/// `u64::MAX - 4094 ..= u64::MAX` is indistinguishable from `-errno` and
/// comes back as an error; the word itself holds the right value.
///
/// # Safety
///
/// `uptr` must be NULL, not a user address, or valid for a read and a write
/// of a `c_ulong` that does not race with Rust accesses of the same word.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "sys_umem_add")]
pub unsafe fn umem_add(uptr: *mut c_ulong, inc: c_ulong) -> io::Result<c_ulong> {
    // SAFETY: the caller guarantees `uptr` may be written.
    let ret = unsafe { raw_syscall(nr::UMEM_ADD, uptr as usize, inc as usize, 0) };
    cvt(ret).map(|v| v as c_ulong)
}

/// `async_wait(min_wait_events, user_ring_idx, ahu)` — wait until at least
/// `min_wait_events` completions are in the ring, counting from slot
/// `user_ring_idx`.
///
/// Returns the number of consecutive completions (non-NULL slots) from
/// `user_ring_idx` on, at least `min_wait_events`; 0 for
/// `min_wait_events` 0 on an empty ring, which returns at once.  The call
/// also wakes kernel threads that wait for a free slot of a full ring, so
/// call it (with 0) after freeing slots to let them post at once (they look
/// again every 20 ms anyway).
///
/// This is safe: the kernel only reads the head and the slot array, and
/// rejects pointers that are not user memory.  It does not take the
/// completions: that is [`Ring::pop`](crate::Ring::pop).
///
/// # Errors
///
///  - `EINTR`: a signal came in (its handler has run).
///  - `EINVAL`: a bad ring, `user_ring_idx` outside it, or
///    `min_wait_events` larger than the ring.
///  - `EFAULT`: the head or the ring is unreadable.
///  - `ENOSYS`: the kernel has no syslets.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "sys_async_wait")]
pub fn async_wait(
    min_wait_events: usize,
    user_ring_idx: usize,
    ahu: *const AsyncHead,
) -> io::Result<usize> {
    // SAFETY: async_wait only reads user memory (the head and the slots)
    // through the kernel's checked accessors: whatever `ahu` is, it cannot
    // break a Rust invariant.
    let ret = unsafe { raw_syscall(nr::ASYNC_WAIT, min_wait_events, user_ring_idx, ahu as usize) };
    cvt(ret).map(|n| n as usize)
}

/// `async_thread()` — offer the calling thread to the kernel as a spare
/// cachemiss thread of its process.
///
/// The thread parks in the kernel.  When an `async_exec` caller blocks in
/// an atom, the kernel may pick this thread to take over the caller's user
/// context and identity: then this thread's own user context is discarded
/// and it returns, with 0, *as that caller* (from its `async_exec`).  So
/// this call returns to its own caller only with an error.  The crate's
/// fallback entry
/// ([`Ring::set_user_threads`](crate::Ring::set_user_threads)) calls it
/// in a loop; there is little reason to call it from Rust code.
///
/// # Errors
///
///  - `EINTR`: a signal handler had to run (call again to park again).
///  - `ENOMEM`: no memory for the kernel's bookkeeping.
///  - `ENOSYS`: the kernel has no syslets.
///
/// # Safety
///
/// If the thread is picked, its stack is abandoned without unwinding, and
/// the thread itself ends: it goes on as another thread, and its own
/// thread ID goes to the kernel thread that finishes the blocked syslet.
/// Nothing may depend on the frames below this call ever running again or
/// being dropped: no pinned or borrowed stack data others use, no locks or
/// `RefCell` borrows held, no scoped-thread guard; and whoever joins this
/// thread must not expect its closure to return.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "sys_async_thread")]
pub unsafe fn async_thread() -> io::Result<()> {
    // SAFETY: no arguments; the caller accepts that this context may be
    // discarded (the `# Safety` above).
    let ret = unsafe { raw_syscall(nr::ASYNC_THREAD, 0, 0, 0) };
    cvt(ret).map(drop)
}

/// `threadlet_on(restore_stack, restore_ip, ahu)` — arm the calling thread
/// as a threadlet.
///
/// From this call until [`threadlet_off`], whenever the thread blocks — in
/// a system call, a page fault, on a lock — and a thread parked in
/// [`async_thread`] is idle, that thread takes over the caller's identity
/// (thread ID, signal mask and pending signals, FPU state, TLS, rseq, robust
/// list) and returns to user space at `restore_ip` with `rsp` =
/// `restore_stack`, `rflags` = IF and every other general register zero.
/// The blocked thread goes on with what it was doing, in a thread of its
/// own: with the spare's former thread ID, TLS, rseq area, robust list and
/// `clear_child_tid`, and its own signal mask.  If no spare is idle, a
/// block just blocks.
///
/// [`threadlet_exec`](crate::threadlet_exec) is the user-space helper built
/// on this call; there is little reason to call it directly.
///
/// # Errors
///
///  - `EINVAL`: `restore_ip` or `restore_stack` is 0 or not a user address.
///  - `EFAULT`: `ahu` is not NULL and not readable (it is otherwise unused:
///    pass NULL).
///  - `EBUSY`: the thread is a threadlet already (armed, or went
///    asynchronous and has not called `threadlet_off()` yet).
///  - `ENOMEM`: no memory for the kernel's bookkeeping.
///  - `ENOSYS`: the kernel has no threadlets.
///
/// # Safety
///
/// Until `threadlet_off()`, any instruction of this thread that blocks may
/// turn into a jump of *another* thread to `restore_ip` on
/// `restore_stack`, while this thread goes on where it was.  So:
/// `restore_ip` must be code that is sound to enter that way (all general
/// registers zero, the caller's FS base and FPU state), `restore_stack`
/// must be a stack that code may use, and from this call on the caller's
/// own code must not touch that stack (nor anything the code at
/// `restore_ip` goes on to use) again, since both threads would.  The code
/// that runs armed must also accept to go on in another thread with
/// another TLS at any point where it can block.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
///  - the project's ABI contract, `v3-abi.md`, B.2
#[doc(alias = "sys_threadlet_on")]
pub unsafe fn threadlet_on(
    restore_stack: usize,
    restore_ip: usize,
    ahu: *const AsyncHead,
) -> io::Result<()> {
    // SAFETY: the caller's contract above is what the kernel needs.
    let ret = unsafe { raw_syscall(nr::THREADLET_ON, restore_stack, restore_ip, ahu as usize) };
    cvt(ret).map(drop)
}

/// `threadlet_off()` — disarm the calling threadlet.
///
/// Returns `Ok(false)` if the thread never blocked while armed (it is still
/// the caller of `threadlet_on`, "the head"), `Ok(true)` if it blocked and
/// a spare took over its head: it now runs as a thread of its own, with
/// that spare's former thread ID and TLS.
///
/// # Errors
///
///  - `EINVAL`: the thread is not a threadlet.
///  - `ENOSYS`: the kernel has no threadlets.
///
/// # Safety
///
/// [`threadlet_exec`](crate::threadlet_exec) disarms its threadlets itself
/// (through [`threadlet_complete`](crate::threadlet_complete) or after the
/// function returned): calling this inside such a function ends the
/// threadlet early, so the rest of the function may no longer go
/// asynchronous, and only the TLS tells `threadlet_exec` then which
/// thread it is.  Outside of it, the caller of [`threadlet_on`] must know
/// what to do with a thread that reports `true`: it has a TLS that is not
/// its own and must never return to frames of the head's stack.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
///  - the project's ABI contract, `v3-abi.md`, B.2
#[doc(alias = "sys_threadlet_off")]
pub unsafe fn threadlet_off() -> io::Result<bool> {
    // SAFETY: no arguments; the caller's contract covers what disarming
    // means for the code that runs next.
    let ret = unsafe { raw_syscall(nr::THREADLET_OFF, 0, 0, 0) };
    cvt(ret).map(|r| r == 1)
}

/// `futex(word, FUTEX_WAIT[_PRIVATE], expected, NULL)`: sleep while `word`
/// holds `expected`.  Returns at once if it does not; may return early
/// (signals, spurious wakeups): callers loop.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, private: bool) {
    let op = libc::FUTEX_WAIT | if private { libc::FUTEX_PRIVATE_FLAG } else { 0 };
    let ret: c_long;
    // SAFETY: FUTEX_WAIT only reads the word, which `&AtomicU32` keeps
    // valid during the call; timeout (r10) NULL means no timeout.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") libc::SYS_futex => ret,
            in("rdi") word.as_ptr(),
            in("rsi") op,
            in("rdx") expected,
            in("r10") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    let _ = ret;
}

/// `futex(word, FUTEX_WAKE[_PRIVATE], INT_MAX)`: wake every waiter.  The
/// word may be freed by a woken waiter before this runs: it is only an
/// address here.
pub(crate) fn futex_wake(word: *const AtomicU32, private: bool) {
    let op = libc::FUTEX_WAKE | if private { libc::FUTEX_PRIVATE_FLAG } else { 0 };
    // SAFETY: FUTEX_WAKE does not access the word's memory, it only hashes
    // its address (a stale one wakes nobody, or someone who rechecks).
    unsafe {
        raw_syscall(
            libc::SYS_futex as c_ulong,
            word as usize,
            op as usize,
            i32::MAX as usize,
        )
    };
}

// ---- the fallback entry ----------------------------------------------------

/// The signal mask the fallback entry installs: every signal (the kernel
/// keeps SIGKILL and SIGSTOP deliverable).
static ALL_SIGNALS: u64 = !0;

// The numbers the entry's assembly spells out.
const _: () = {
    assert!(nr::ASYNC_THREAD == 503);
    assert!(libc::SYS_rt_sigprocmask == 14);
    assert!(libc::SYS_exit == 60);
    assert!(libc::SIG_SETMASK == 2);
    assert!(libc::EINTR == 4);
};

// The entry point for threads the kernel sends to `head_eip` or
// `new_thread_eip`.  They arrive with every general register zero, FS and
// GS base 0 (no TLS), the FPU reset, the signal mask of the head (head_eip)
// or an empty one (new_thread_eip), and rsp = the stack value given.  The
// code touches neither the stack nor TLS, so any number of threads may
// share one stack value:
//
//   rt_sigprocmask(SIG_SETMASK, &ALL_SIGNALS, NULL, 8);   // nothing can
//                                                         // interrupt us
//   while (async_thread() == -EINTR)                      // park as a
//           ;                                             // spare
//   exit(0);                                              // only on errors
//
// A thread parked in async_thread() that the kernel picks to take over a
// blocked head returns to user space as that head, with the head's
// registers, TLS and signal mask: this code never sees it again.
global_asm!(
    ".pushsection .text.__syslet_0_1_user_thread_entry,\"ax\",@progbits",
    ".globl __syslet_0_1_user_thread_entry",
    ".hidden __syslet_0_1_user_thread_entry",
    ".type __syslet_0_1_user_thread_entry,@function",
    ".p2align 4",
    "__syslet_0_1_user_thread_entry:",
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
    "mov eax, 60",
    "xor edi, edi",
    "syscall",
    "ud2",
    ".size __syslet_0_1_user_thread_entry, . - __syslet_0_1_user_thread_entry",
    ".popsection",
    mask = sym ALL_SIGNALS,
);

extern "C" {
    /// Defined by the `global_asm!` above; never called from Rust.
    fn __syslet_0_1_user_thread_entry();
}

/// Size of the fallback stack (plus one guard page below it).
const FALLBACK_STACK: usize = 64 << 10;

/// The crate's fallback entry and stack value: `(eip, stack)` for the
/// head's and the new threads' fallbacks.
///
/// The entry uses no stack, but the kernel would build a signal frame there
/// if a signal were delivered before the entry's first instruction blocks
/// them all, so the stack is real: one process-wide mapping of 64 KiB above
/// a guard page, mapped at the first call and never unmapped (threads the
/// kernel created may go there at any later time).  The value is its top
/// minus 8, as if a call had pushed a return address (SysV ABI at a
/// function's entry).
pub(crate) fn user_thread_entry() -> io::Result<(usize, usize)> {
    static STACK: OnceLock<usize> = OnceLock::new();
    let eip = __syslet_0_1_user_thread_entry as *const () as usize;
    if let Some(&sp) = STACK.get() {
        return Ok((eip, sp));
    }
    let page = 4096;
    let len = FALLBACK_STACK + page;
    // SAFETY: a fresh private anonymous mapping at an address of the
    // kernel's choosing overlaps no memory Rust uses.
    let base = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the lowest page of the mapping just made, used by nothing.
    if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let top = base as usize + len;
    // Two racing first calls: one mapping wins, the other stays unused.
    Ok((eip, *STACK.get_or_init(|| top - 8)))
}

/// Probe the kernel: `async_exec(NULL, NULL)` must fail with `EFAULT`.
///
/// Returns `Ok(())` on a kernel with syslets, otherwise the error the probe
/// got (`ENOSYS` on a kernel without them, `EPERM` or `ENOSYS` if a seccomp
/// filter forbids the call).  Not cached; see [`is_supported`].
///
/// # Errors
///
/// The probe's error, or `Other` if `async_exec(NULL, NULL)` succeeded
/// (system call 500 is something else on this kernel).
pub fn check_supported() -> io::Result<()> {
    // SAFETY: NULL atom and NULL ring: a syslet kernel reads neither (it
    // fails with EFAULT on the ring first) and writes nothing; a kernel
    // without syslets returns ENOSYS.
    match unsafe { async_exec(ptr::null(), ptr::null_mut()) } {
        Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(io::Error::other(
            "async_exec(NULL, NULL) succeeded: not a syslet kernel",
        )),
    }
}

/// Whether the running kernel has syslets ([`check_supported`], cached).
///
/// Host tests skip when this is false; the guest tests require it.
pub fn is_supported() -> bool {
    // 0: not probed yet, 1: supported, 2: not supported.
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let ok = check_supported().is_ok();
            STATE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

/// A zero `struct stat` (for the slots `Chain::fstat` fills).
pub(crate) fn zeroed_stat() -> libc::stat {
    // SAFETY: `struct stat` is plain integers and padding: all-zero is a
    // valid value.
    unsafe { core::mem::zeroed() }
}

impl<'a> Chain<'a> {
    /// `syscall(nr, args...)` — an atom for any system call.
    ///
    /// Each argument is a number the kernel reads when the atom runs; a
    /// pointer argument is passed as `Arg::Value(ptr as u64)`.  Fewer than six
    /// arguments leave the rest NULL (0 for the kernel).
    ///
    /// # Safety
    ///
    /// Running the chain makes this system call with these arguments, at
    /// every `run` and as often as the chain passes this atom: that must be
    /// sound.  In particular every pointer passed must stay valid for what
    /// the call does with it for as long as the chain can run, and the call
    /// must not unmap, free or overwrite memory Rust uses (including the
    /// chain's own), nor close descriptors owned elsewhere.  A chain
    /// submitted to an [`AsyncRing`](crate::AsyncRing) can run for as long
    /// as it is in flight, in another thread of the process, while the
    /// submitter goes on: the pointers must stay valid, and the call sound,
    /// for that long too.  Calls refused in atoms (`fork`, `execve`, `exit`,
    /// `async_exec`, ...) just fail with `EINVAL`.
    ///
    /// # Panics
    ///
    /// With more than six arguments, or ids/counters of another chain.
    pub unsafe fn syscall(&mut self, nr: u64, args: &[Arg]) -> AtomMut<'_, 'a> {
        let id = self.push_args(nr, args);
        self.builder(id)
    }

    /// Wire the chain and call `async_exec` on it.
    pub(crate) fn submit(&mut self) -> io::Result<Option<NonNull<Atom>>> {
        self.wire(Wiring::Sync)?;
        let atoms = self.atoms_ptr();
        let ring = self.ring_mut().as_mut_ptr();
        // SAFETY: `wire` just pointed every atom at memory the chain owns
        // (boxed arrays, owned buffers) or borrows for 'a (buffers, paths,
        // descriptors), and `&mut self` keeps all of it in place and
        // untouched until the call returns.  Every atom has SYSLET_SYNC and
        // SKIP_TO_NEXT_ON_STOP is refused on the last atom, so the kernel
        // reaches no atom outside the array and no memory after the call
        // (an `Ok(None)` return makes `run` leak the chain's memory).
        // Lengths are the buffers' own; only counters and result cells, not
        // pointer cells, can be changed by atoms (`umem_add` targets a
        // counter).  The typed atoms are sound system calls on such memory;
        // `Chain::syscall`'s caller vouched for the rest.
        unsafe { async_exec(atoms, ring) }
    }
}
