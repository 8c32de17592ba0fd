//! Signals: a cyclic syslet (one that never stops by itself) is interrupted
//! by a handled signal (-EINTR in the current atom, the handler runs), a
//! blocking atom likewise, a blocked signal does not interrupt, and fatal
//! signals kill a looping process promptly.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use syslet::{AtomFlags, Chain};

use crate::harness::*;
use crate::{diag, ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "cyclic_chain_interrupted_by_sigalrm",
        run: cyclic_sigalrm,
    },
    Test {
        name: "cyclic_chain_interrupted_by_sigalrm_sa_restart",
        run: cyclic_sigalrm_restart,
    },
    Test {
        name: "two_atom_cycle_interrupted_by_sigalrm",
        run: two_atom_cycle,
    },
    Test {
        name: "blocking_atom_interrupted_by_sigalrm",
        run: blocking_atom,
    },
    Test {
        name: "blocked_signal_does_not_interrupt",
        run: blocked_signal,
    },
    Test {
        name: "cyclic_chain_child_dies_on_sigkill",
        run: sigkill_child,
    },
    Test {
        name: "cyclic_chain_child_dies_on_sigterm",
        run: sigterm_child,
    },
];

static HANDLED: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_sig: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Install `on_signal` for `sig` with `flags` (no SA_RESTART unless given).
fn install(sig: libc::c_int, flags: libc::c_int) -> TestResult {
    HANDLED.store(0, Ordering::SeqCst);
    // SAFETY: `sigaction` is plain data; all-zero is a valid start.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    sa.sa_flags = flags;
    // SAFETY: valid sigaction; the handler only touches an atomic.
    let r = unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut())
    };
    ensure!(r == 0, "sigaction: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Arm ITIMER_REAL to fire once after `ms` milliseconds.
fn alarm_in(ms: i64) -> TestResult {
    let it = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: ms / 1000,
            tv_usec: (ms % 1000) * 1000,
        },
    };
    // SAFETY: valid itimerval.
    let r = unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
    ensure!(r == 0, "setitimer: {}", std::io::Error::last_os_error());
    Ok(())
}

fn cyclic(flags: libc::c_int) -> TestResult {
    // umem_add(&iters, 1) -> itself, forever.
    let mut c = Chain::new();
    let iters = c.counter(0);
    let a = c.umem_add(iters, 1).id();
    c.atom(a).then(a);
    install(libc::SIGALRM, flags)?;
    alarm_in(100)?;
    let start = Instant::now();
    let last = c.run().ctx("run")?;
    let took = start.elapsed();
    ensure_eq!(last, a, "final atom");
    let r = c.raw_result(a).ok_or("no result")?;
    ensure_eq!(r, neg(libc::EINTR), "result {}", show(r));
    ensure_eq!(HANDLED.load(Ordering::SeqCst), 1, "handler runs");
    let n = c.counter_value(iters);
    ensure!(n > 0, "the loop never ran");
    ensure!(took < Duration::from_secs(10), "took {took:?}");
    diag!("{n} iterations in {took:?} before SIGALRM");
    Ok(())
}

fn cyclic_sigalrm() -> TestResult {
    cyclic(0)
}

fn cyclic_sigalrm_restart() -> TestResult {
    // Syslets are never restarted: SA_RESTART changes nothing.
    cyclic(libc::SA_RESTART)
}

fn two_atom_cycle() -> TestResult {
    // getpid -> umem_add(&n, 1) -> getpid ...
    let mut c = Chain::new();
    let n = c.counter(0);
    let g = c.getpid().id();
    let u = c.umem_add(n, 1).then(g).id();
    install(libc::SIGALRM, 0)?;
    alarm_in(100)?;
    let last = c.run().ctx("run")?;
    ensure!(last == g || last == u, "final atom {last:?}");
    let r = c.raw_result(last).ok_or("no result")?;
    ensure_eq!(r, neg(libc::EINTR), "final atom's result {}", show(r));
    let other = if last == g { u } else { g };
    let o = c.raw_result(other).ok_or("the other atom never ran")?;
    ensure!(o > 0, "the other atom's result {}", show(o));
    ensure_eq!(HANDLED.load(Ordering::SeqCst), 1, "handler runs");
    Ok(())
}

fn blocking_atom() -> TestResult {
    for flags in [0, libc::SA_RESTART] {
        let (r, w) = pipe()?;
        let mut c = Chain::new();
        let read = c.read(r.as_fd(), vec![0u8; 16]).id();
        let after = c.getpid().id();
        install(libc::SIGALRM, flags)?;
        alarm_in(100)?;
        let last = c.run().ctx("run")?;
        ensure_eq!(last, read, "flags {flags:#x}: final atom");
        let res = c.raw_result(read).ok_or("no result")?;
        ensure_eq!(
            res,
            neg(libc::EINTR),
            "flags {flags:#x}: read result {}",
            show(res)
        );
        ensure!(
            c.raw_result(after).is_none(),
            "ran past the interrupted atom"
        );
        ensure_eq!(
            HANDLED.load(Ordering::SeqCst),
            1,
            "flags {flags:#x}: handler runs"
        );
        drop(w);
    }
    Ok(())
}

fn blocked_signal() -> TestResult {
    install(libc::SIGALRM, 0)?;
    // SAFETY: plain signal-mask manipulation on this thread.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGALRM);
    }
    // A pending but blocked signal: a 100,000-step loop runs to its end.
    let mut c = Chain::new();
    let left = c.counter(100_000);
    let dec = c.umem_add(left, -1).flags(AtomFlags::STOP_ON_ZERO).id();
    c.atom(dec).then(dec);
    let last = c.run().ctx("run")?;
    ensure_eq!(last, dec);
    ensure_eq!(
        c.counter_value(left),
        0,
        "loop interrupted by a blocked signal"
    );
    ensure_eq!(
        HANDLED.load(Ordering::SeqCst),
        0,
        "handler ran while blocked"
    );
    // SAFETY: as above.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    ensure_eq!(
        HANDLED.load(Ordering::SeqCst),
        1,
        "handler after unblocking"
    );
    Ok(())
}

fn dies_on(sig: libc::c_int) -> TestResult {
    let (r, w) = pipe()?;
    let wfd = std::os::fd::AsRawFd::as_raw_fd(&w);
    let child = fork_fn(move || {
        let mut c = Chain::new();
        let g = c.getpid().id();
        c.atom(g).then(g);
        write_raw(wfd, b"R");
        match c.run() {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => 3,
            Err(_) => 4,
            Ok(_) => 5,
        }
    })?;
    drop(w);
    let mut ready = [0u8; 1];
    let n = std::fs::File::from(r).read(&mut ready).ctx("read ready")?;
    ensure_eq!(n, 1, "child signalled readiness");
    std::thread::sleep(Duration::from_millis(200));
    if let Some(status) = wait_timeout(child, Duration::ZERO)? {
        return Err(format!(
            "the looping child returned early: {} (3: ENOSYS, 4: other error, 5: returned)",
            show_status(status)
        ));
    }
    let start = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child, sig) };
    let status = match wait_timeout(child, Duration::from_secs(10))? {
        Some(s) => s,
        None => {
            kill_and_reap(child);
            return Err(format!("child still looping 10 s after signal {sig}"));
        }
    };
    ensure!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == sig,
        "child {}, expected death by signal {sig}",
        show_status(status)
    );
    diag!("signal {sig}: child died after {:?}", start.elapsed());
    Ok(())
}

fn sigkill_child() -> TestResult {
    dies_on(libc::SIGKILL)
}

fn sigterm_child() -> TestResult {
    dies_on(libc::SIGTERM)
}
