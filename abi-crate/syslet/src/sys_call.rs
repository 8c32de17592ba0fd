//! The only module with `unsafe` code: the system calls themselves.
//!
//! Everything the kernel is handed goes through [`raw_syscall`]; every
//! return value is converted to `io::Result` by [`cvt`].

use core::arch::asm;
use core::ffi::{c_long, c_ulong};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering};
use std::io;

use crate::abi::{nr, AsyncHead, Atom};
use crate::chain::{Arg, AtomMut, Chain};

/// The kernel's convention: `-4095..=-1` is `-errno`, anything else a value.
/// The one place where system call results become `io::Result`.
pub(crate) fn cvt(ret: i64) -> io::Result<i64> {
    if (-4095..=-1).contains(&ret) {
        Err(io::Error::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret)
    }
}

/// `syscall(nr, a0, a1)` on x86-64, returning the kernel's raw value.
///
/// # Safety
///
/// Whatever system call `nr` does with `a0` and `a1` must be sound: every
/// pointer among them must be valid for the accesses that call makes, for
/// as long as it makes them.
unsafe fn raw_syscall(nr: c_ulong, a0: usize, a1: usize) -> c_long {
    let ret: c_long;
    // SAFETY: the x86-64 `syscall` convention: number in rax, arguments in
    // rdi and rsi, result in rax; rcx and r11 are clobbered, the stack is not
    // touched.  Memory effects are the caller's contract (no `nomem`).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as c_long => ret,
            in("rdi") a0,
            in("rsi") a1,
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
/// asynchronous; its final atom will appear in `ahu`'s completion ring (the
/// current kernel never does this: every syslet completes synchronously).
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
/// has been taken from the ring — the kernel may read every atom reachable
/// from `atom` (through `next`, and `atom + 1` where
/// `SYSLET_SKIP_TO_NEXT_ON_STOP` is set) and every argument cell they point
/// at, and may write every `ret_ptr` and whatever memory the atoms' system
/// calls write (buffers, `struct stat`, counters of `umem_add`, ...).  All of
/// that memory must stay allocated, and must not be accessed by Rust code in
/// a way that conflicts with those reads and writes, until then.  `ahu` must
/// describe a ring that stays valid just as long.  The atoms' system calls
/// must themselves be sound to make from this thread (e.g. no `munmap` of
/// memory Rust still uses, no `close` of a descriptor someone else owns).
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
    let ret = unsafe { raw_syscall(nr::ASYNC_EXEC, atom as usize, ahu as usize) };
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
    let ret = unsafe { raw_syscall(nr::UMEM_ADD, uptr as usize, inc as usize) };
    cvt(ret).map(|v| v as c_ulong)
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
    /// chain's own), nor close descriptors owned elsewhere.  Calls refused in
    /// atoms (`fork`, `execve`, `exit`, `async_exec`, ...) just fail with
    /// `EINVAL`.
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
        self.wire()?;
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
