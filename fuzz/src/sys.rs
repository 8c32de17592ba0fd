//! Raw system calls and small memory helpers.

use core::arch::asm;

/// `syscall(nr, a...)` with six arguments; the kernel's raw return value
/// (`-errno` on failure).
///
/// # Safety
///
/// Whatever system call `nr` does with the arguments must be sound.
pub unsafe fn sys(nr: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the x86-64 system call convention; rcx and r11 are
    // clobbered; memory effects are the caller's contract.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `sys` with up to six arguments, the rest 0.
///
/// # Safety
///
/// As [`sys`].
pub unsafe fn call(nr: i64, args: &[u64]) -> i64 {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    // SAFETY: forwarded to the caller.
    unsafe { sys(nr as u64, a) }
}

/// `gettid()`.
pub fn gettid() -> i32 {
    // SAFETY: no arguments, no memory.
    unsafe { call(libc::SYS_gettid, &[]) as i32 }
}

/// `getpid()`.
pub fn getpid() -> i32 {
    // SAFETY: no arguments, no memory.
    unsafe { call(libc::SYS_getpid, &[]) as i32 }
}

/// `tgkill(getpid(), tid, sig)`.
pub fn tgkill(pid: i32, tid: i32, sig: i32) -> i64 {
    // SAFETY: sends a signal; no memory.
    unsafe { call(libc::SYS_tgkill, &[pid as u64, tid as u64, sig as u64]) }
}

/// An anonymous mapping at `addr` (MAP_FIXED_NOREPLACE if nonzero);
/// `None` if the kernel refused.
pub fn map(addr: usize, len: usize, prot: i32) -> Option<usize> {
    let flags = libc::MAP_PRIVATE
        | libc::MAP_ANONYMOUS
        | libc::MAP_NORESERVE
        | if addr != 0 {
            libc::MAP_FIXED_NOREPLACE
        } else {
            0
        };
    // SAFETY: a new anonymous mapping; with MAP_FIXED_NOREPLACE it cannot
    // replace anything.
    let p = unsafe { libc::mmap(addr as *mut libc::c_void, len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED || (addr != 0 && p as usize != addr) {
        return None;
    }
    Some(p as usize)
}

/// Replace `[addr, addr + len)` (a range this program owns and nobody
/// else uses) with fresh zeroed read-write memory.
///
/// # Safety
///
/// Nothing may hold references into the range.
pub unsafe fn remap_fixed(addr: usize, len: usize) -> bool {
    // SAFETY: the caller owns the range.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    p as usize == addr
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleep `us` microseconds (interrupted sleeps are not resumed).
pub fn sleep_us(us: u64) {
    let ts = libc::timespec {
        tv_sec: (us / 1_000_000) as i64,
        tv_nsec: ((us % 1_000_000) * 1000) as i64,
    };
    // SAFETY: `ts` is valid; the remainder pointer may be NULL.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// Where [`say`] writes: stdout, or in a worker a copy of it out of the
/// atoms' reach (the worker's 0, 1 and 2 are /dev/null: an earlier atom's
/// result of 1 used as a descriptor must not reach the console).
pub static OUT_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Give this process /dev/null as 0, 1 and 2 and keep stdout at `fd`.
pub fn hide_stdio(fd: i32) {
    // SAFETY: descriptor calls on our own table.
    unsafe {
        let out = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, fd);
        if out < 0 {
            return;
        }
        OUT_FD.store(out, std::sync::atomic::Ordering::Relaxed);
        let null = libc::open(b"/dev/null\0".as_ptr().cast(), libc::O_RDWR);
        if null >= 0 {
            for f in 0..3 {
                libc::dup2(null, f);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
}

/// Write a line to stdout with one write(2) (safe in forked children).
pub fn say(s: &str) {
    let mut b = Vec::with_capacity(s.len() + 1);
    b.extend_from_slice(s.as_bytes());
    b.push(b'\n');
    let mut off = 0;
    while off < b.len() {
        // SAFETY: the buffer is valid for its length.
        let n = unsafe {
            libc::write(
                OUT_FD.load(std::sync::atomic::Ordering::Relaxed),
                b[off..].as_ptr().cast(),
                b.len() - off,
            )
        };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        off += n as usize;
    }
}
