//! Waiting for threadlet spares to be parked.
//!
//! A threadlet goes asynchronous only if a spare is idle in
//! `async_thread()` when it blocks; otherwise it blocks in place, like a
//! function call.  A spare that `Threadlets` just started, or the thread of
//! a threadlet that just ended and parks again, may not be in the kernel
//! yet.  The benchmarks wait (untimed) until enough threads of the process
//! sleep in `async_thread()`, as `/proc/self/task/*/syscall` shows.

use std::io;
use std::time::{Duration, Instant};

/// Threads of this process in `async_thread()` now.
fn parked() -> usize {
    let want = format!("{} ", syslet::nr::ASYNC_THREAD);
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| s.starts_with(&want))
        })
        .count()
}

/// Wait until at least `n` threads are parked in `async_thread()`.
///
/// # Errors
///
/// `TimedOut` after 30 s.
pub fn wait_parked(n: usize) -> io::Result<()> {
    let t0 = Instant::now();
    while parked() < n {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("fewer than {n} threadlet spares parked after 30 s"),
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}
