//! Seccomp sees atoms exactly like direct system calls: a filter that
//! denies getppid with EPERM (and umem_add with EACCES when its increment
//! is 42) applies inside syslets too, and SECCOMP_RET_KILL_PROCESS kills a
//! process whose atom makes the forbidden call, with SIGSYS.

use std::io;
use std::time::Duration;

use syslet::Chain;

use crate::harness::*;
use crate::{ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "seccomp_errno_applies_to_atoms",
        run: seccomp_errno,
    },
    Test {
        name: "seccomp_kill_process_via_atom",
        run: seccomp_kill,
    },
];

/// `AUDIT_ARCH_X86_64`: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG1_LO: u32 = 16 + 8; // args[1], low 32 bits (little endian)

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

fn ld(off: u32) -> libc::sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, off)
}

fn ret(k: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, k)
}

/// Install a filter: wrong arch -> kill; getppid -> `getppid_action`;
/// umem_add with increment 42 -> EACCES; everything else allowed.
fn install_filter(getppid_action: u32) -> TestResult {
    let prog = [
        ld(OFF_ARCH),
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        ret(libc::SECCOMP_RET_KILL_PROCESS),
        ld(OFF_NR),
        jeq(libc::SYS_getppid as u32, 0, 1),
        ret(getppid_action),
        jeq(syslet::nr::UMEM_ADD as u32, 0, 3),
        ld(OFF_ARG1_LO),
        jeq(42, 0, 1),
        ret(libc::SECCOMP_RET_ERRNO | libc::EACCES as u32),
        ret(libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    ensure!(
        r == 0,
        "PR_SET_NO_NEW_PRIVS: {}",
        io::Error::last_os_error()
    );
    // SAFETY: `fprog` points at `prog`, both live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    ensure!(
        r == 0,
        "seccomp(SET_MODE_FILTER): {}",
        io::Error::last_os_error()
    );
    Ok(())
}

fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

fn seccomp_errno() -> TestResult {
    in_child(Duration::from_secs(30), || {
        install_filter(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32)?;
        // Direct calls.
        // SAFETY: getppid takes no arguments.
        let r = unsafe { libc::syscall(libc::SYS_getppid) };
        let e = io::Error::last_os_error().raw_os_error();
        ensure!(
            r == -1 && e == Some(libc::EPERM),
            "direct getppid: {r} errno {e:?}"
        );
        let mut w: libc::c_ulong = 0;
        // SAFETY: `w` is a live local.
        let d = unsafe { syslet::umem_add(&mut w, 42) };
        ensure!(
            matches!(&d, Err(e) if e.raw_os_error() == Some(libc::EACCES)),
            "direct umem_add(+42): {d:?}"
        );
        ensure_eq!(w, 0);

        // The same calls as atoms.
        let mut c = Chain::new();
        let k = c.counter(0);
        // SAFETY: getppid takes no arguments and touches no memory.
        let ppid = unsafe { c.syscall(libc::SYS_getppid as u64, &[]) }.id();
        let me = c.getpid().id();
        let add42 = c.umem_add(k, 42).id();
        let add1 = c.umem_add(k, 1).id();
        c.run().ctx("run")?;
        let r = c.raw_result(ppid).ok_or("getppid atom did not run")?;
        ensure_eq!(r, neg(libc::EPERM), "getppid atom: {}", show(r));
        ensure_eq!(c.raw_result(me), Some(i64::from(pid())), "getpid atom");
        let r = c.raw_result(add42).ok_or("umem_add atom did not run")?;
        ensure_eq!(r, neg(libc::EACCES), "umem_add(+42) atom: {}", show(r));
        ensure_eq!(c.raw_result(add1), Some(1), "umem_add(+1) atom");
        ensure_eq!(c.counter_value(k), 1, "counter");
        Ok(())
    })
}

fn seccomp_kill() -> TestResult {
    // Child 1: a direct getppid.  Child 2: getppid as an atom.  Both must
    // die of SIGSYS; neither may get past the call.
    for via_atom in [false, true] {
        let child = fork_fn(move || {
            no_core_dumps();
            if install_filter(libc::SECCOMP_RET_KILL_PROCESS).is_err() {
                return 2;
            }
            if via_atom {
                let mut c = Chain::new();
                c.getpid();
                // SAFETY: getppid takes no arguments and touches no memory.
                let _ = unsafe { c.syscall(libc::SYS_getppid as u64, &[]) };
                c.getpid();
                match c.run() {
                    Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => 3,
                    _ => 4,
                }
            } else {
                // SAFETY: getppid takes no arguments.
                unsafe { libc::syscall(libc::SYS_getppid) };
                5
            }
        })?;
        let status = match wait_timeout(child, Duration::from_secs(20))? {
            Some(s) => s,
            None => {
                kill_and_reap(child);
                return Err("child did not die".to_owned());
            }
        };
        let how = if via_atom { "atom" } else { "direct call" };
        ensure!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "getppid by {how}: child {} (2: filter failed, 3: ENOSYS, 4: syslet returned, 5: call returned), expected SIGSYS",
            show_status(status)
        );
    }
    Ok(())
}
