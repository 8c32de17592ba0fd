//! `syslet-guest-tests` — integration tests of the syslet kernel ABI, run
//! inside the QEMU guest on the patched kernel.
//!
//! Prints KTAP version 1 on stdout and exits 0 only if every selected test
//! passed.  A kernel without syslets fails (it is never a skip).
//!
//! ```text
//! syslet-guest-tests [--list] [--no-fork] [--timeout SECS] [--repeat N] [FILTER...]
//! ```
//!
//! FILTERs select tests whose name contains any of them (e.g. `cachemiss`,
//! `threadlet`).  Each test runs in a forked child with a timeout (default
//! 60 s; more for the few tests in `LONG_TESTS`), so a crash or a hang is
//! that test's failure, not the run's (the tasks of a test process that
//! timed out are listed as diagnostics); `--no-fork` runs them in-process
//! (for debugging); `--repeat N` runs each selected test N times (for
//! flaky ones).
//!
//! To add tests: add a function `fn() -> TestResult` to the module of its
//! area (or a new module) and list it in that module's `TESTS` table; the
//! tables are concatenated in `all_tests()`.

mod harness;

mod bad_input;
mod basic;
mod cachemiss;
mod control;
mod loops;
mod seccomp;
mod signals;
mod threadlets;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use harness::{Test, TestResult};

fn all_tests() -> Vec<&'static Test> {
    [
        basic::TESTS,
        control::TESTS,
        loops::TESTS,
        bad_input::TESTS,
        signals::TESTS,
        seccomp::TESTS,
        cachemiss::TESTS,
        threadlets::TESTS,
    ]
    .iter()
    .flat_map(|t| t.iter())
    .collect()
}

/// Tests that may need more than the default time limit: on the debug
/// kernel (KASAN, lockdep) under TCG, starting 1,000 spare threads alone
/// takes about 30 s.
const LONG_TESTS: &[(&str, u64)] = &[("threadlet_1000_outstanding", 240)];

fn long_timeout(name: &str) -> Duration {
    LONG_TESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Duration::ZERO, |&(_, s)| Duration::from_secs(s))
}

struct Options {
    list: bool,
    fork: bool,
    timeout: Duration,
    repeat: usize,
    filters: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        list: false,
        fork: true,
        timeout: Duration::from_secs(60),
        repeat: 1,
        filters: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => o.list = true,
            "--no-fork" => o.fork = false,
            "--timeout" => {
                let v = args.next().ok_or("--timeout needs a value")?;
                let s: u64 = v.parse().map_err(|_| format!("bad --timeout {v}"))?;
                o.timeout = Duration::from_secs(s);
            }
            "--repeat" => {
                let v = args.next().ok_or("--repeat needs a value")?;
                o.repeat = v.parse().map_err(|_| format!("bad --repeat {v}"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: syslet-guest-tests [--list] [--no-fork] [--timeout SECS] [--repeat N] [FILTER...]"
                        .to_owned(),
                )
            }
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            f => o.filters.push(f.to_owned()),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let tests: Vec<&Test> = all_tests()
        .into_iter()
        .filter(|t| opts.filters.is_empty() || opts.filters.iter().any(|f| t.name.contains(f)))
        .flat_map(|t| std::iter::repeat(t).take(opts.repeat))
        .collect();
    if opts.list {
        for t in &tests {
            println!("{}", t.name);
        }
        return ExitCode::SUCCESS;
    }

    // One scratch directory for the run, removed at the end.
    let scratch = harness::scratch_dir().ok();
    if let Some(d) = &scratch {
        std::env::set_var(harness::SCRATCH_ENV, d);
    }

    println!("KTAP version 1");
    println!("1..{}", tests.len());
    match syslet::check_supported() {
        Ok(()) => println!("# syslets: supported"),
        Err(e) => println!("# syslets: NOT supported ({e}); every test will fail"),
    }
    let (mut passed, mut failed) = (0, 0);
    for (i, t) in tests.iter().enumerate() {
        let start = Instant::now();
        let verdict = if opts.fork {
            run_forked(t, opts.timeout.max(long_timeout(t.name)))
        } else {
            run_inline(t)
        };
        let ms = start.elapsed().as_millis();
        match verdict {
            Ok(()) => {
                passed += 1;
                println!("# {}: {} ms", t.name, ms);
                println!("ok {} {}", i + 1, t.name);
            }
            Err(reason) => {
                failed += 1;
                let reason = reason.replace('\n', " ");
                println!("not ok {} {} # {}", i + 1, t.name, reason);
            }
        }
        let _ = io::stdout().flush();
    }
    if let Some(d) = scratch {
        let _ = std::fs::remove_dir_all(d);
    }
    println!("# Totals: pass:{passed} fail:{failed} xfail:0 xpass:0 skip:0 error:0");
    // Exit 0 only if every test passed and there was at least one.
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn panic_reason(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".to_owned());
    format!("panicked: {msg}")
}

fn run_inline(t: &Test) -> TestResult {
    std::panic::catch_unwind(t.run).unwrap_or_else(|p| Err(panic_reason(p)))
}

/// Run `t` in a child; it reports "OK" or the reason through a pipe.
fn run_forked(t: &Test, timeout: Duration) -> TestResult {
    let (r, w) = harness::pipe()?;
    let wfd = w.as_raw_fd();
    let run = t.run;
    let child = harness::fork_fn(move || {
        let msg = match run_inline_fn(run) {
            Ok(()) => "OK".to_owned(),
            Err(e) => e,
        };
        harness::write_raw(wfd, msg.as_bytes());
        0
    })?;
    drop(w);

    // Read the verdict until EOF or the deadline.
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(r);
    let mut msg = Vec::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(1000) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => msg.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if timed_out {
        show_tasks(child);
        harness::kill_and_reap(child);
        return Err(format!("timed out after {} s", timeout.as_secs()));
    }
    let status = match harness::wait_timeout(child, Duration::from_secs(10))? {
        Some(s) => s,
        None => {
            harness::kill_and_reap(child);
            return Err("test process did not exit after its verdict".to_owned());
        }
    };
    let msg = String::from_utf8_lossy(&msg).into_owned();
    match msg.as_str() {
        "OK" if status == 0 => Ok(()),
        "OK" => Err(format!("test process {}", harness::show_status(status))),
        "" => Err(format!(
            "no verdict: test process {}",
            harness::show_status(status)
        )),
        m => Err(m.to_owned()),
    }
}

/// KTAP diagnostics: what each task of a hung test process is doing.
fn show_tasks(pid: libc::pid_t) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for e in dir.flatten() {
        let p = e.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let status = read("status");
        let state = status
            .lines()
            .filter(|l| {
                ["State:", "SigPnd:", "ShdPnd:", "SigBlk:"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| l.replace('\t', " "))
            .collect::<Vec<_>>()
            .join(", ");
        let syscall = read("syscall");
        let nr = syscall.split_whitespace().next().unwrap_or("?");
        println!(
            "# task {}: {state}, syscall {nr}, wchan {}",
            e.file_name().to_string_lossy(),
            read("wchan").trim()
        );
    }
}

fn run_inline_fn(run: fn() -> TestResult) -> TestResult {
    std::panic::catch_unwind(run).unwrap_or_else(|p| Err(panic_reason(p)))
}
