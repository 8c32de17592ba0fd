//! Cachemiss: asynchronous syslets through the crate's `AsyncRing`.
//!
//! A read from an empty pipe blocks, so its syslet goes asynchronous: the
//! submission returns a ticket at once (in the same thread: same TID, same
//! TLS), the chain finishes in a kernel thread once data arrives, and its
//! completion is reaped from the ring, with and without waiting, carrying
//! the chain's buffers and results back.  Many syslets in flight on a ring
//! smaller than their number each complete exactly once; `SYSLET_ASYNC`
//! queues a chain without trying the caller; and the two fallback modes
//! are checked: threads that finished a syslet park in the kernel (zero
//! configuration) or go to the crate's user-space entry and park in
//! `async_thread()`, from where they serve the next handoff.
//!
//! Every test arms a watchdog (SIGALRM): a submission that blocks instead
//! of going asynchronous gets `-EINTR` in its atom, a `reap` that sleeps
//! forever returns `Interrupted`; either fails the test with a reason.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use syslet::{AsyncRing, AtomFlags, AtomId, Chain, Completion, Submitted, Ticket};

use crate::harness::*;
use crate::{diag, ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "cachemiss_pipe_read_goes_async_try_reap",
        run: pipe_read_try_reap,
    },
    Test {
        name: "cachemiss_pipe_read_reap_waits",
        run: pipe_read_reap_waits,
    },
    Test {
        name: "cachemiss_cached_read_is_done",
        run: cached_read_done,
    },
    Test {
        name: "cachemiss_chain_goes_on_after_the_block",
        run: chain_goes_on,
    },
    Test {
        name: "cachemiss_sync_atom_blocks_the_caller",
        run: sync_atom_blocks,
    },
    Test {
        name: "cachemiss_held_fd_lives_with_the_chain",
        run: held_fd_lives,
    },
    Test {
        name: "cachemiss_1000_in_flight_on_64_slots",
        run: many_in_flight,
    },
    Test {
        name: "cachemiss_queue_sets_syslet_async",
        run: queue_async,
    },
    Test {
        name: "cachemiss_tid_and_tls_kept_across_handoff",
        run: tid_and_tls_kept,
    },
    Test {
        name: "cachemiss_zero_config_parks_in_kernel",
        run: zero_config_parks,
    },
    Test {
        name: "cachemiss_user_threads_head_parks_and_serves",
        run: user_threads_head,
    },
    Test {
        name: "cachemiss_user_threads_new_thread_entry",
        run: user_threads_new_thread,
    },
    Test {
        name: "cachemiss_reap_interrupted_by_signal",
        run: reap_interrupted,
    },
    Test {
        name: "cachemiss_drop_waits_for_in_flight",
        run: drop_waits,
    },
];

// ---- helpers ---------------------------------------------------------------

pub(crate) static ALARMS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_alarm(_sig: libc::c_int) {
    // No TLS, no allocation: fine on any thread, even one without TLS.
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

/// SIGALRM after `ms` milliseconds, with a handler and no SA_RESTART, so
/// that a blocking submission or `reap` comes back instead of hanging.
/// Disarmed on drop.
pub(crate) struct Watchdog;

impl Watchdog {
    pub(crate) fn arm(ms: i64) -> Result<Watchdog, String> {
        ALARMS.store(0, Ordering::SeqCst);
        // SAFETY: `sigaction` is plain data; all-zero is a valid start.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as usize;
        // SAFETY: a valid sigaction whose handler only touches an atomic.
        let r = unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut())
        };
        ensure!(r == 0, "sigaction: {}", std::io::Error::last_os_error());
        set_timer(ms)?;
        Ok(Watchdog)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = set_timer(0);
    }
}

fn set_timer(ms: i64) -> TestResult {
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
    // SAFETY: a valid itimerval.
    let r = unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
    ensure!(r == 0, "setitimer: {}", std::io::Error::last_os_error());
    Ok(())
}

/// The kernel's thread ID of the caller (never cached).
pub(crate) fn gettid() -> i64 {
    // SAFETY: no arguments, no memory.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// A pipe whose read end is shared (for `Chain::hold_fd`).
fn shared_pipe() -> Result<(Arc<OwnedFd>, OwnedFd), String> {
    let (r, w) = pipe()?;
    Ok((Arc::new(r), w))
}

/// A chain reading `len` bytes from `fd`, which it holds.
fn read_chain(fd: &Arc<OwnedFd>, len: usize) -> (Chain<'static>, AtomId) {
    let mut c = Chain::new();
    let fd = c.hold_fd(fd.clone());
    let read = c.read(fd, vec![0u8; len]).id();
    (c, read)
}

/// Expect a submission to have gone asynchronous.
fn expect_pending(s: std::io::Result<Submitted>, what: &str) -> Result<Ticket, String> {
    match s {
        Ok(Submitted::Pending(t)) => Ok(t),
        Ok(Submitted::Done(c)) => Err(format!(
            "{what}: completed in the caller (final atom {}, result {:?}), expected to go async",
            c.final_atom().index(),
            c.chain().raw_result(c.final_atom()).map(show)
        )),
        Err(e) => Err(format!("{what}: submit failed: {e}")),
    }
}

/// Poll `try_reap` until a completion comes or `timeout` passes.
fn poll_reap(ring: &mut AsyncRing, timeout: Duration) -> Result<Completion, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(c) = ring.try_reap().ctx("try_reap")? {
            return Ok(c);
        }
        ensure!(
            Instant::now() < deadline,
            "no completion within {timeout:?} ({} in flight)",
            ring.in_flight()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Each task of this process: its TID and the number of the system call
/// it is blocked in (`None`: running, or not in a system call).
pub(crate) fn task_syscalls() -> Result<Vec<(u32, Option<i64>)>, String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc/self/task").ctx("read /proc/self/task")? {
        let e = e.ctx("/proc/self/task entry")?;
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A task may exit meanwhile: skip it.
        let Ok(s) = fs::read_to_string(e.path().join("syscall")) else {
            continue;
        };
        let nr = s.split_whitespace().next().and_then(|t| t.parse().ok());
        out.push((tid, nr.filter(|&n: &i64| n >= 0)));
    }
    Ok(out)
}

/// The blocked-signal mask of task `tid` (`SigBlk` in its status).
pub(crate) fn sigblk(tid: u32) -> Result<u64, String> {
    let s = fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .ctx(&format!("status of task {tid}"))?;
    let line = s
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .ok_or("no SigBlk line")?;
    u64::from_str_radix(line.trim(), 16).map_err(|e| format!("SigBlk {line:?}: {e}"))
}

/// Every signal but SIGKILL and SIGSTOP, which cannot be blocked.
const ALL_BLOCKABLE: u64 = !((1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1)));

/// Wait until some tasks are blocked in system call `nr`; return them.
fn wait_for_tasks_in(nr: i64, timeout: Duration) -> Result<Vec<u32>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let tasks = task_syscalls()?;
        let found: Vec<u32> = tasks
            .iter()
            .filter(|(_, n)| *n == Some(nr))
            .map(|(t, _)| *t)
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        ensure!(
            Instant::now() < deadline,
            "no task blocked in system call {nr} after {timeout:?}: {tasks:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(crate) fn tasks_in(nr: i64) -> Result<Vec<u32>, String> {
    Ok(task_syscalls()?
        .into_iter()
        .filter(|(_, n)| *n == Some(nr))
        .map(|(t, _)| t)
        .collect())
}

const ASYNC_EXEC: i64 = 500;
const ASYNC_THREAD: i64 = 503;

/// Submit a read of an empty pipe, check it is pending, then write `data`
/// and reap it by polling.  Returns the completion.
fn one_async_read(ring: &mut AsyncRing, data: &[u8]) -> Result<Completion, String> {
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 64);
    let t = expect_pending(ring.submit(c), "read of an empty pipe")?;
    write_raw(w.as_raw_fd(), data);
    let done = poll_reap(ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.final_atom(), read);
    ensure_eq!(
        done.result(read).map(|r| r.ok()),
        Some(Some(data.len() as i64))
    );
    Ok(done)
}

// ---- tests -----------------------------------------------------------------

fn pipe_read_try_reap() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(8).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 16);
    let tid = gettid();
    let t = expect_pending(ring.submit(c), "read of an empty pipe")?;
    ensure_eq!(gettid(), tid, "TID after the handoff");
    ensure_eq!(ring.in_flight(), 1);
    // Nothing to reap yet, and the ring is empty.
    std::thread::sleep(Duration::from_millis(20));
    ensure!(
        ring.try_reap().ctx("try_reap")?.is_none(),
        "completed before the write"
    );
    ensure_eq!(ring.ready(), 0);
    ensure_eq!(ring.head().kernel_ring_idx, 0);

    write_raw(w.as_raw_fd(), b"hello");
    let mut done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure!(done.went_async(), "completion not marked asynchronous");
    ensure_eq!(done.final_atom(), read);
    ensure_eq!(done.result(read).map(|r| r.ok()), Some(Some(5)));
    ensure_eq!(ring.in_flight(), 0);
    ensure_eq!(ring.head().kernel_ring_idx, 1, "kernel_ring_idx advanced");
    ensure_eq!(ring.head().user_ring_idx, 1, "user_ring_idx advanced");
    ensure!(
        ring.try_reap().ctx("try_reap")?.is_none(),
        "a second completion"
    );
    // The buffer comes back, all 16 bytes of it.
    let buf = done.take_buffer(read).ok_or("no buffer")?;
    ensure_eq!(buf.len(), 16);
    ensure_eq!(&buf[..5], b"hello");
    ensure!(buf[5..].iter().all(|&b| b == 0), "bytes past the read");
    ensure_eq!(ALARMS.load(Ordering::SeqCst), 0, "watchdog fired");
    Ok(())
}

fn pipe_read_reap_waits() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 32);
    let t = expect_pending(ring.submit(c), "read of an empty pipe")?;
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        write_raw(w.as_raw_fd(), b"from another thread");
        w
    });
    let start = Instant::now();
    // async_wait(1): sleeps until the completion is posted.
    let n = ring.wait(1).ctx("wait(1)")?;
    let waited = start.elapsed();
    ensure_eq!(n, 1, "completions after wait(1)");
    ensure!(
        waited >= Duration::from_millis(50),
        "wait(1) returned after {waited:?}, before the write"
    );
    let done = ring.reap().ctx("reap")?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.result(read).map(|r| r.ok()), Some(Some(19)));
    ensure_eq!(
        done.chain().read_bytes(read),
        Some(&b"from another thread"[..])
    );
    let w = writer.join().map_err(|_| "writer panicked")?;

    // And reap() sleeping by itself.
    let (c, read) = read_chain(&r, 8);
    let t = expect_pending(ring.submit(c), "second read")?;
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        write_raw(w.as_raw_fd(), b"again");
    });
    let done = ring.reap().ctx("reap")?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.chain().read_bytes(read), Some(&b"again"[..]));
    writer.join().map_err(|_| "writer panicked")?;
    ensure_eq!(ALARMS.load(Ordering::SeqCst), 0, "watchdog fired");
    Ok(())
}

fn cached_read_done() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(2).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    write_raw(w.as_raw_fd(), b"ready");
    let (c, read) = read_chain(&r, 16);
    let mut c2 = match ring.submit(c).ctx("submit")? {
        Submitted::Done(done) => {
            ensure!(!done.went_async(), "Done but marked asynchronous");
            ensure_eq!(done.final_atom(), read);
            ensure_eq!(done.chain().read_bytes(read), Some(&b"ready"[..]));
            done.into_chain()
        }
        Submitted::Pending(t) => return Err(format!("data was there, yet pending ({t})")),
    };
    ensure_eq!(ring.in_flight(), 0);
    ensure_eq!(ring.head().kernel_ring_idx, 0, "a cached syslet was posted");
    // The same chain again, after refilling its buffer: now it blocks.
    c2.buffer_mut(read).ok_or("no buffer")?.fill(0xaa);
    let t = expect_pending(ring.submit(c2), "the chain resubmitted")?;
    write_raw(w.as_raw_fd(), b"xy");
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.chain().read_bytes(read), Some(&b"xy"[..]));
    ensure_eq!(done.chain().buffer(read).map(|b| b[2]), Some(0xaa));
    Ok(())
}

fn chain_goes_on() -> TestResult {
    // read(pipe1) -> write(pipe2, "xyz") -> getpid: goes async at the read;
    // the rest runs in the cachemiss thread.
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    let (r1, w1) = shared_pipe()?;
    let (r2, w2) = pipe()?;
    let w2 = Arc::new(w2);
    let mut c = Chain::new();
    let fd1 = c.hold_fd(r1.clone());
    let fd2 = c.hold_fd(w2.clone());
    let read = c
        .read(fd1, vec![0u8; 4])
        .flags(AtomFlags::STOP_ON_NON_POSITIVE)
        .id();
    let write = c.write(fd2, b"xyz".to_vec()).id();
    let pid_atom = c.getpid().id();
    drop(w2);
    let t = expect_pending(ring.submit(c), "read of an empty pipe")?;
    write_raw(w1.as_raw_fd(), b"go");
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.final_atom(), pid_atom);
    ensure_eq!(done.result(read).map(|r| r.ok()), Some(Some(2)));
    ensure_eq!(done.result(write).map(|r| r.ok()), Some(Some(3)));
    ensure_eq!(
        done.result(pid_atom).map(|r| r.ok()),
        Some(Some(i64::from(pid()))),
        "getpid in the cachemiss thread"
    );
    drop(done); // closes the chain's write end of pipe 2
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut fs::File::from(r2), &mut got).ctx("read pipe 2")?;
    ensure_eq!(got, b"xyz");

    // A stop in the asynchronous part: EOF ends the chain at the read.
    let mut c = Chain::new();
    let fd1 = c.hold_fd(r1.clone());
    let read = c
        .read(fd1, vec![0u8; 4])
        .flags(AtomFlags::STOP_ON_NON_POSITIVE)
        .id();
    c.getpid();
    expect_pending(ring.submit(c), "second read")?;
    drop(w1);
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.final_atom(), read, "EOF stops at the read");
    ensure_eq!(done.result(read).map(|r| r.ok()), Some(Some(0)));
    Ok(())
}

fn sync_atom_blocks() -> TestResult {
    // SYSLET_SYNC on the blocking atom: the caller blocks; Done.
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let mut c = Chain::new();
    let fd = c.hold_fd(r.clone());
    let read = c.read(fd, vec![0u8; 8]).flags(AtomFlags::SYNC).id();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        write_raw(w.as_raw_fd(), b"late");
    });
    let start = Instant::now();
    let s = ring.submit(c).ctx("submit")?;
    let took = start.elapsed();
    writer.join().map_err(|_| "writer panicked")?;
    match s {
        Submitted::Done(done) => {
            ensure_eq!(done.chain().read_bytes(read), Some(&b"late"[..]));
        }
        Submitted::Pending(t) => return Err(format!("a SYSLET_SYNC atom went async ({t})")),
    }
    ensure!(
        took >= Duration::from_millis(50),
        "submit returned after {took:?}: did not block"
    );
    ensure_eq!(ring.in_flight(), 0);
    Ok(())
}

fn held_fd_lives() -> TestResult {
    // The chain holds the pipe's read end: the test drops its own, and the
    // pending read still completes; the descriptor closes with the chain.
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let raw = r.as_raw_fd();
    let (c, read) = read_chain(&r, 8);
    drop(r);
    expect_pending(ring.submit(c), "read of an empty pipe")?;
    // SAFETY: F_GETFD only queries.
    ensure!(
        unsafe { libc::fcntl(raw, libc::F_GETFD) } != -1,
        "the held descriptor was closed while in flight"
    );
    write_raw(w.as_raw_fd(), b"ok");
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.chain().read_bytes(read), Some(&b"ok"[..]));
    let chain = done.into_chain();
    // SAFETY: F_GETFD only queries.
    ensure!(
        unsafe { libc::fcntl(raw, libc::F_GETFD) } != -1,
        "closed before the chain was dropped"
    );
    drop(chain);
    // SAFETY: F_GETFD only queries.
    ensure!(
        unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1,
        "the descriptor outlived the chain"
    );
    Ok(())
}

fn many_in_flight() -> TestResult {
    const N: usize = 1000;
    const SLOTS: usize = 64;
    // The runner's limit is 60 s; this takes 1 to 5 s under TCG.
    let _dog = Watchdog::arm(55_000)?;
    let mut ring = AsyncRing::new(SLOTS).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let start = Instant::now();
    let mut tickets = HashSet::new();
    let mut read_id = None;
    for i in 0..N {
        let (c, read) = read_chain(&r, 1);
        read_id = Some(read);
        let t = expect_pending(ring.submit(c), &format!("read {i}"))?;
        ensure!(tickets.insert(t), "ticket {t} handed out twice");
    }
    let read = read_id.ok_or("no read")?;
    let submitted = start.elapsed();
    ensure_eq!(ring.in_flight(), N);
    ensure_eq!(ring.ready(), 0, "completions before any write");

    // One byte for each reader.
    let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
    let mut want = [0usize; 256];
    for &b in &data {
        want[b as usize] += 1;
    }
    write_raw(w.as_raw_fd(), &data);

    let mut got = [0usize; 256];
    let mut seen = HashSet::new();
    let mut waited = 0usize;
    let mut max_ready = 0usize;
    let deadline = Instant::now() + Duration::from_secs(45);
    while seen.len() < N {
        ensure!(
            Instant::now() < deadline,
            "{} of {N} completions after 45 s",
            seen.len()
        );
        max_ready = max_ready.max(ring.ready());
        // Alternate: poll without waiting, and sleep in async_wait.
        let c = match ring.try_reap().ctx("try_reap")? {
            Some(c) => c,
            None => {
                waited += 1;
                ring.wait(1).ctx("wait(1)")?;
                continue;
            }
        };
        ensure!(
            tickets.contains(&c.ticket()),
            "completion for unknown ticket {}",
            c.ticket()
        );
        ensure!(
            seen.insert(c.ticket()),
            "ticket {} completed twice",
            c.ticket()
        );
        ensure_eq!(c.final_atom(), read);
        let n = c.result(read).ok_or("no result")?.ctx("read")?;
        ensure_eq!(n, 1, "ticket {}", c.ticket());
        let b = c.chain().read_bytes(read).ok_or("no bytes")?[0];
        got[b as usize] += 1;
    }
    ensure_eq!(got, want, "the bytes the readers got");
    ensure!(max_ready <= SLOTS, "{max_ready} ready in {SLOTS} slots");
    ensure_eq!(ring.in_flight(), 0);
    // Nothing more arrives.
    std::thread::sleep(Duration::from_millis(50));
    ensure!(
        ring.try_reap().ctx("try_reap")?.is_none(),
        "an extra completion"
    );
    diag!(
        "{N} reads: submitted in {submitted:?}, all reaped after {:?} ({waited} waits, at most {max_ready} ready at once)",
        start.elapsed()
    );
    Ok(())
}

fn queue_async() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    // getpid never blocks, yet SYSLET_ASYNC sends it to a kernel thread.
    let tid = gettid();
    let mut c = Chain::new();
    let g = c.getpid().id();
    let t = expect_pending(ring.queue(c), "queued getpid")?;
    ensure_eq!(gettid(), tid);
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.result(g).map(|r| r.ok()), Some(Some(i64::from(pid()))));
    // A queued read of an empty pipe: the caller never blocks.
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 8);
    let t = expect_pending(ring.queue(c), "queued read")?;
    write_raw(w.as_raw_fd(), b"queued");
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.chain().read_bytes(read), Some(&b"queued"[..]));
    // The same chain through submit: getpid completes in the caller.
    let mut c = Chain::new();
    c.getpid();
    ensure!(
        !ring.submit(c).ctx("submit")?.is_pending(),
        "getpid went async without SYSLET_ASYNC"
    );
    Ok(())
}

thread_local! {
    static MARK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn tid_and_tls_kept() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    let tid = gettid();
    // SAFETY: no preconditions.
    let me = unsafe { libc::pthread_self() };
    MARK.with(|m| m.set(0x5157_1e75));
    let tasks_before = task_syscalls()?.len();
    for round in 0..3 {
        let (r, w) = shared_pipe()?;
        let (c, read) = read_chain(&r, 8);
        let t = expect_pending(ring.submit(c), &format!("round {round}"))?;
        ensure_eq!(gettid(), tid, "round {round}: gettid after the handoff");
        // SAFETY: no preconditions.
        ensure!(
            unsafe { libc::pthread_equal(libc::pthread_self(), me) } != 0,
            "round {round}: pthread_self changed"
        );
        ensure_eq!(MARK.with(|m| m.get()), 0x5157_1e75, "round {round}: TLS");
        ensure_eq!(std::process::id(), pid() as u32);
        // The syslet is running in another task of the process.
        let tasks = task_syscalls()?;
        ensure!(
            tasks.len() > tasks_before,
            "round {round}: no cachemiss task ({tasks:?})"
        );
        write_raw(w.as_raw_fd(), b"tid");
        let done = poll_reap(&mut ring, Duration::from_secs(10))?;
        ensure_eq!(done.ticket(), t);
        ensure_eq!(done.chain().read_bytes(read), Some(&b"tid"[..]));
        ensure_eq!(gettid(), tid, "round {round}: gettid after the completion");
    }
    Ok(())
}

fn zero_config_parks() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    ensure!(!ring.user_threads(), "user threads on a plain ring");
    let h = ring.head();
    ensure_eq!((h.head_eip, h.new_thread_eip), (0, 0));
    one_async_read(&mut ring, b"zero")?;
    // The original submitter posted and parks in the kernel, still inside
    // its async_exec: a task blocked in system call 500, none in 503.
    // Parked, it sleeps with the pool's idle timeout (wchan
    // process_timeout, schedule_timeout or syslet_park, depending on the
    // kernel's configuration and inlining).
    let deadline = Instant::now() + Duration::from_secs(5);
    let parked = loop {
        let parked: Vec<u32> = tasks_in(ASYNC_EXEC)?
            .into_iter()
            .filter(|t| {
                fs::read_to_string(format!("/proc/self/task/{t}/wchan"))
                    .is_ok_and(|w| w.contains("timeout") || w.starts_with("syslet"))
            })
            .collect();
        if !parked.is_empty() {
            break parked;
        }
        ensure!(
            Instant::now() < deadline,
            "no task parked in system call {ASYNC_EXEC}: {:?}, wchan {:?}",
            task_syscalls()?,
            task_syscalls()?
                .iter()
                .map(
                    |(t, _)| fs::read_to_string(format!("/proc/self/task/{t}/wchan"))
                        .unwrap_or_default()
                )
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    ensure!(
        !parked.contains(&(gettid() as u32)),
        "this thread is the parked one"
    );
    ensure_eq!(tasks_in(ASYNC_THREAD)?, Vec::<u32>::new(), "user spares");
    // And it serves the next handoff: no new task is created for it.
    let before = task_syscalls()?.len();
    let (r, w) = shared_pipe()?;
    let (c, _) = read_chain(&r, 8);
    expect_pending(ring.submit(c), "second read")?;
    ensure_eq!(
        task_syscalls()?.len(),
        before,
        "tasks during the second read"
    );
    write_raw(w.as_raw_fd(), b"again");
    poll_reap(&mut ring, Duration::from_secs(10))?;
    Ok(())
}

fn user_threads_head() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::with_user_threads(4).ctx("with_user_threads")?;
    let h = ring.head();
    ensure!(
        h.head_eip != 0 && h.head_stack != 0,
        "no head fallback: {h:?}"
    );
    ensure!(
        h.new_thread_eip != 0 && h.new_thread_stack != 0,
        "no new-thread fallback: {h:?}"
    );
    let tid = gettid();
    one_async_read(&mut ring, b"first")?;
    ensure_eq!(gettid(), tid);
    // The original submitter went to head_eip: the crate's entry blocked
    // every signal and parked it in async_thread().
    let spares = wait_for_tasks_in(ASYNC_THREAD, Duration::from_secs(5))?;
    ensure_eq!(spares.len(), 1, "user spares {spares:?}");
    let spare = spares[0];
    ensure!(spare != tid as u32, "this thread is the parked one");
    let mask = sigblk(spare)?;
    ensure_eq!(
        mask & ALL_BLOCKABLE,
        ALL_BLOCKABLE,
        "signal mask of the user spare {mask:#x}"
    );

    // The next handoff: the user spare is the only idle spare, so no task
    // is created and the spare takes over this thread's context.
    let before = task_syscalls()?;
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 8);
    let t = expect_pending(ring.submit(c), "second read")?;
    ensure_eq!(gettid(), tid, "gettid after the handoff to the user spare");
    let during = task_syscalls()?;
    ensure_eq!(
        during.len(),
        before.len(),
        "tasks before {before:?} and during {during:?} the second read"
    );
    ensure_eq!(
        tasks_in(ASYNC_THREAD)?,
        Vec::<u32>::new(),
        "the user spare is still parked"
    );
    // This thread's signal mask is its own again, not the spare's.
    let mine = sigblk(tid as u32)?;
    ensure!(
        mine & ALL_BLOCKABLE != ALL_BLOCKABLE,
        "the head runs with every signal blocked ({mine:#x})"
    );
    write_raw(w.as_raw_fd(), b"second");
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.chain().read_bytes(read), Some(&b"second"[..]));
    // The second submitter (the task that was the first spare) parks too.
    let spares = wait_for_tasks_in(ASYNC_THREAD, Duration::from_secs(5))?;
    ensure_eq!(
        spares.len(),
        1,
        "user spares after the second read {spares:?}"
    );
    ensure_eq!(ALARMS.load(Ordering::SeqCst), 0, "watchdog fired");
    Ok(())
}

fn user_threads_new_thread() -> TestResult {
    // A queued chain runs in a kernel spare, created by async_exec with the
    // ring's new_thread_stack; when done, that spare goes to
    // new_thread_eip and parks in async_thread().
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::with_user_threads(4).ctx("with_user_threads")?;
    let stack = ring.head().new_thread_stack;
    let tid = gettid();
    ensure_eq!(tasks_in(ASYNC_THREAD)?, Vec::<u32>::new());
    let mut c = Chain::new();
    let g = c.getpid().id();
    let t = expect_pending(ring.queue(c), "queued getpid")?;
    ensure_eq!(gettid(), tid);
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.ticket(), t);
    ensure_eq!(done.result(g).map(|r| r.ok()), Some(Some(i64::from(pid()))));
    let spares = wait_for_tasks_in(ASYNC_THREAD, Duration::from_secs(5))?;
    ensure_eq!(spares.len(), 1, "user spares {spares:?}");
    ensure!(spares[0] != tid as u32, "this thread is the parked one");
    let mask = sigblk(spares[0])?;
    ensure_eq!(
        mask & ALL_BLOCKABLE,
        ALL_BLOCKABLE,
        "its signal mask {mask:#x}"
    );
    // The ring's new_thread_stack was consumed and is offered again.
    ensure_eq!(ring.head().new_thread_stack, stack);
    // The parked spare serves a handoff of a blocking read.
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 8);
    expect_pending(ring.submit(c), "read of an empty pipe")?;
    ensure_eq!(gettid(), tid);
    write_raw(w.as_raw_fd(), b"new");
    let done = poll_reap(&mut ring, Duration::from_secs(10))?;
    ensure_eq!(done.chain().read_bytes(read), Some(&b"new"[..]));
    Ok(())
}

fn reap_interrupted() -> TestResult {
    let mut ring = AsyncRing::new(4).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let (c, read) = read_chain(&r, 8);
    {
        let _dog = Watchdog::arm(20_000)?;
        expect_pending(ring.submit(c), "read of an empty pipe")?;
    }
    let dog = Watchdog::arm(100)?;
    let start = Instant::now();
    let e = match ring.reap() {
        Ok(c) => return Err(format!("reaped {} with nothing written", c.ticket())),
        Err(e) => e,
    };
    ensure_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
    ensure_eq!(ALARMS.load(Ordering::SeqCst), 1, "handler runs");
    ensure!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    drop(dog);
    ensure_eq!(ring.in_flight(), 1, "the syslet is still in flight");
    // EOF ends it.
    let _dog = Watchdog::arm(20_000)?;
    drop(w);
    let done = ring.reap().ctx("reap after EOF")?;
    ensure_eq!(done.result(read).map(|r| r.ok()), Some(Some(0)));
    Ok(())
}

fn drop_waits() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let mut ring = AsyncRing::new(2).ctx("AsyncRing::new")?;
    let (r, w) = shared_pipe()?;
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (c, _) = read_chain(&r, 1);
        expect_pending(ring.submit(c), "read of an empty pipe")?;
    }
    // The last of four bytes comes after 150 ms; the drop must wait for it
    // (and the ring has 2 slots for 4 completions).
    let w = Arc::new(w);
    for k in 0..4u64 {
        let w = w.clone();
        writers.push(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50 * k));
            write_raw(w.as_raw_fd(), b"d");
        }));
    }
    let start = Instant::now();
    drop(ring);
    let took = start.elapsed();
    for t in writers {
        t.join().map_err(|_| "writer panicked")?;
    }
    ensure!(
        took >= Duration::from_millis(100),
        "drop returned after {took:?}, before the last write"
    );
    // Nothing left to read: every reader took its byte.
    let fd = r.as_raw_fd();
    let mut buf = [0u8; 4];
    // SAFETY: plain calls on our own pipe; `buf` is valid for 4 bytes.
    let (f, n) = unsafe {
        (
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK),
            libc::read(fd, buf.as_mut_ptr().cast(), buf.len()),
        )
    };
    ensure_eq!(f, 0, "fcntl: {}", std::io::Error::last_os_error());
    ensure_eq!(n, -1, "bytes left in the pipe");
    Ok(())
}
