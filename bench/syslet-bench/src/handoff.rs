//! The `handoff` workload: what going asynchronous costs by itself.
//!
//! - `syslet`: a one-atom syslet reading an empty pipe; the time from
//!   `AsyncRing::submit` until it returns `Pending` (the atom blocked, a
//!   spare took the caller's user context and returned to user space).
//! - `threadlet`: `Threadlets::run` of a closure reading an empty pipe;
//!   the time until `run` returns `Pending`.
//! - `pthread`: `pthread_create` of a thread that returns at once, and
//!   `pthread_join` of it: the cheapest way to get the same parallelism
//!   from a plain thread.
//! - `syslet-t10`, `syslet-t10k`: `syslet` in a process with 10 and with
//!   10,000 more threads, asleep in `read()`.  A handoff of the main
//!   thread must not cost more with more threads (it once rewrote every
//!   thread's group leader).
//!
//! After each timed handoff one byte is written to the pipe and the
//! operation is reaped, untimed.  A rep is `n` handoffs; `ns` is the sum of
//! their times, so `ns / ops` is the mean per handoff.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use syslet::{AsyncRing, Chain, Outcome, Submitted, Threadlets};

use crate::engines::{cpu_now, Sample};

/// The approaches of this workload, by name.
pub const APPROACHES: [&str; 5] = [
    "syslet",
    "threadlet",
    "pthread",
    "syslet-t10",
    "syslet-t10k",
];

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0; 2];
    // SAFETY: `p` is two writable ints.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

fn poke(w: &OwnedFd) -> io::Result<()> {
    // SAFETY: one byte from a valid buffer.
    let r = unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    if r == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A read that stayed synchronous: the pipe was not empty, the benchmark
/// is broken.
fn not_async(what: &str) -> io::Error {
    io::Error::other(format!("{what}: a read of an empty pipe did not block"))
}

fn syslet(n: usize) -> io::Result<Sample> {
    let (r, w) = pipe()?;
    let mut ring = AsyncRing::new(1)?;
    let mut c: Chain<'static> = Chain::new();
    let fd = c.hold_fd(r);
    let id = c.read(fd, vec![0u8; 1]).id();
    let mut chain = Some(c);
    let (mut ns, cpu0) = (0u64, cpu_now());
    for _ in 0..n {
        let c = chain.take().expect("one chain");
        let t0 = Instant::now();
        let s = ring.submit(c)?;
        ns += t0.elapsed().as_nanos() as u64;
        if !matches!(s, Submitted::Pending(_)) {
            return Err(not_async("syslet"));
        }
        poke(&w)?;
        let comp = ring.reap()?;
        if comp.result(id).and_then(Result::ok) != Some(1) {
            return Err(io::Error::other(
                "syslet: the pipe read did not read 1 byte",
            ));
        }
        chain = Some(comp.into_chain());
    }
    Ok(Sample {
        ops: n as u64,
        ns,
        went_async: n as u64,
        cpu_ns: cpu_now() - cpu0,
    })
}

fn threadlet(n: usize) -> io::Result<Sample> {
    let (r, w) = pipe()?;
    let rt = Threadlets::builder().spares(1).build()?;
    let fd = r.as_raw_fd();
    let (mut ns, mut cpu) = (0u64, 0u64);
    for _ in 0..n {
        // Blocked in place, the read would wait for a write that comes
        // after it: wait for the spare (the thread of the last threadlet
        // parks again as one).
        crate::spares::wait_parked(1)?;
        let cpu0 = cpu_now();
        let t0 = Instant::now();
        // SAFETY: the closure reads a pipe into its own byte (one
        // writable byte): no TLS, no lock.
        let out = unsafe {
            rt.run(move || {
                let mut b = 0u8;
                libc::read(fd, (&mut b as *mut u8).cast(), 1)
            })?
        };
        ns += t0.elapsed().as_nanos() as u64;
        let Outcome::Pending(h) = out else {
            return Err(not_async("threadlet"));
        };
        poke(&w)?;
        if h.join()
            .map_err(|_| io::Error::other("threadlet panicked"))?
            != 1
        {
            return Err(io::Error::other(
                "threadlet: the pipe read did not read 1 byte",
            ));
        }
        cpu += cpu_now() - cpu0;
    }
    rt.wait_stacks();
    drop(r);
    Ok(Sample {
        ops: n as u64,
        ns,
        went_async: n as u64,
        cpu_ns: cpu,
    })
}

extern "C" fn nothing(_: *mut libc::c_void) -> *mut libc::c_void {
    std::ptr::null_mut()
}

fn pthread(n: usize) -> io::Result<Sample> {
    let (mut ns, cpu0) = (0u64, cpu_now());
    for _ in 0..n {
        let t0 = Instant::now();
        // SAFETY: a pthread_t to fill, default attributes, a function that
        // touches nothing, then a join of the thread just made.
        unsafe {
            let mut t: libc::pthread_t = std::mem::zeroed();
            let e = libc::pthread_create(&mut t, std::ptr::null(), nothing, std::ptr::null_mut());
            if e != 0 {
                return Err(io::Error::from_raw_os_error(e));
            }
            let e = libc::pthread_join(t, std::ptr::null_mut());
            if e != 0 {
                return Err(io::Error::from_raw_os_error(e));
            }
        }
        ns += t0.elapsed().as_nanos() as u64;
    }
    Ok(Sample {
        ops: n as u64,
        ns,
        went_async: 0,
        cpu_ns: cpu_now() - cpu0,
    })
}

/// The number of threads of `syslet-t10k` (10,000 unless this environment
/// variable says otherwise; `--smoke` sets it to 100).
pub const MANY_THREADS_ENV: &str = "SYSLET_BENCH_HANDOFF_THREADS";

/// Run `f` while `threads` more threads of the process sleep in `read()`.
fn with_threads<T>(threads: usize, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let mut sleepers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let t = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let mut b = [0u8; 1];
                // SAFETY: one byte into a valid buffer; `rfd` outlives
                // the thread (joined below before `r` is dropped).
                unsafe { libc::read(rfd, b.as_mut_ptr().cast(), 1) };
            })?;
        sleepers.push(t);
    }
    let out = f();
    // End of file for every sleeper
    drop(w);
    for t in sleepers {
        let _ = t.join();
    }
    drop(r);
    out
}

/// `n` handoffs of approach `name` (one of [`APPROACHES`]).
pub fn run(name: &str, n: usize) -> io::Result<Sample> {
    match name {
        "syslet" => syslet(n),
        "threadlet" => threadlet(n),
        "pthread" => pthread(n),
        "syslet-t10" => with_threads(10, || syslet(n)),
        "syslet-t10k" => {
            let many = std::env::var(MANY_THREADS_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            crate::allow_threads(many + 100);
            with_threads(many, || syslet(n))
        }
        _ => Err(io::Error::other(format!("no handoff approach {name}"))),
    }
}
