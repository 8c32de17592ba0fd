//! Threadlets: `syslet::Threadlets` and the raw calls under it.
//!
//! A closure that never blocks is a function call (`Done`, no other thread
//! involved); one that blocks — an empty pipe, a futex, a read or a page
//! fault that waits for a device — goes on in its own thread while the
//! caller returns at once (`Pending`) with its identity intact.  Blocking
//! on a device uses a null_blk disk in timer mode (1 ms per I/O) made
//! through configfs, so that reads and page faults really wait.
//!
//! Every test runs in its own process (the runner forks), so the spare
//! threads and the kernel's spare pool start empty in each.  A threadlet
//! that blocks while no spare is idle blocks in place; the tests wait for
//! their spares to be parked in `async_thread()` (system call 503 in
//! `/proc`) before they count on a handoff, and arm a SIGALRM watchdog so
//! that a read that blocks in place comes back with `EINTR` instead of
//! hanging.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use syslet::{AsyncRing, Chain, Handle, Outcome, Ring, Submitted, Threadlets};

use crate::cachemiss::{gettid, sigblk, task_syscalls, tasks_in, Watchdog, ALARMS};
use crate::harness::*;
use crate::{diag, ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "threadlet_raw_calls_errors",
        run: raw_errors,
    },
    Test {
        name: "threadlet_nonblocking_is_done_without_a_thread",
        run: done_without_thread,
    },
    Test {
        name: "threadlet_pipe_read_goes_async",
        run: pipe_read_async,
    },
    Test {
        name: "threadlet_head_identity_kept",
        run: head_identity,
    },
    Test {
        name: "threadlet_tls_after_a_block_is_the_spares",
        run: tls_after_block,
    },
    Test {
        name: "threadlet_panic_comes_back_as_err",
        run: panic_comes_back,
    },
    Test {
        name: "threadlet_v3_open_fstat_read",
        run: v3_open_fstat_read,
    },
    Test {
        name: "threadlet_page_fault_goes_async",
        run: page_fault_async,
    },
    Test {
        name: "threadlet_signal_handler_blocks_in_the_closure",
        run: handler_blocks,
    },
    Test {
        name: "threadlet_caller_mask_after_a_handoff_in_a_handler",
        run: handler_mask,
    },
    Test {
        name: "threadlet_backtrace_ends_at_threadlet_exec",
        run: backtrace_ends,
    },
    Test {
        name: "threadlet_nesting_and_spares_refused_inside",
        run: nesting_refused,
    },
    Test {
        name: "threadlet_async_exec_inside_runs_synchronously",
        run: async_exec_inside,
    },
    Test {
        name: "threadlet_foreign_spare_exits_and_frees_the_stack",
        run: foreign_spare,
    },
    Test {
        name: "threadlet_setuid_with_spares",
        run: setuid_with_spares,
    },
    Test {
        name: "threadlet_spares_replenished",
        run: spares_replenished,
    },
    Test {
        name: "threadlet_1000_outstanding",
        run: many_outstanding,
    },
];

// ---- helpers ---------------------------------------------------------------

const ASYNC_THREAD: i64 = 503;

/// Wait until at least `n` tasks are parked in `async_thread()`.
fn wait_parked(n: usize, timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let parked = tasks_in(ASYNC_THREAD)?.len();
        if parked >= n {
            return Ok(parked);
        }
        ensure!(
            Instant::now() < deadline,
            "{parked} of {n} spares parked in async_thread() after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Threadlets keeping `spares` idle spares, all of them parked.
fn runtime(spares: usize) -> Result<Threadlets, String> {
    let rt = Threadlets::builder()
        .spares(spares)
        .build()
        .ctx("Threadlets::build")?;
    wait_parked(spares, Duration::from_secs(20))?;
    Ok(rt)
}

/// `run`, for closures that keep no thread-local borrow or thread-keyed
/// lock (stdio) across a block and do not panic through a blocking hook
/// (every closure of these tests).
fn run<F, T>(rt: &Threadlets, f: F) -> Result<Outcome<T>, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: see above; each caller's closure is written that way.
    unsafe { rt.run(f) }.ctx("Threadlets::run")
}

fn expect_pending<T>(o: Outcome<T>, what: &str) -> Result<Handle<T>, String> {
    match o {
        Outcome::Pending(h) => Ok(h),
        Outcome::Done(_) => Err(format!(
            "{what}: finished in the caller, expected to go asynchronous"
        )),
    }
}

fn expect_done<T>(o: Outcome<T>, what: &str) -> Result<T, String> {
    match o {
        Outcome::Done(Ok(v)) => Ok(v),
        Outcome::Done(Err(p)) => Err(format!("{what}: panicked: {}", panic_text(&p))),
        Outcome::Pending(_) => Err(format!(
            "{what}: went asynchronous, expected a plain function call"
        )),
    }
}

fn joined<T>(r: std::thread::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|p| format!("{what}: panicked: {}", panic_text(&p)))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".to_owned())
}

/// `read(fd, 64 bytes)`, blocking.
fn read_fd(fd: i32) -> io::Result<Vec<u8>> {
    read_n(fd, 64)
}

/// `read(fd, len bytes)`, blocking.
fn read_n(fd: i32, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the word, valid for the call; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// The live tasks of the process: a zombie is left out.  The group
/// leader, when it ran a threadlet for the main thread and then exited,
/// stays a zombie until the process exits (a handoff moves the main
/// thread's TID, not the leadership), as after `pthread_exit()` in the
/// main thread.
fn task_count() -> Result<usize, String> {
    let dir = fs::read_dir("/proc/self/task").map_err(|e| format!("/proc/self/task: {e}"))?;
    let mut n = 0;
    for e in dir {
        let e = e.map_err(|e| format!("/proc/self/task: {e}"))?;
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        if matches!(state, Some(s) if s != "Z" && s != "X") {
            n += 1;
        }
    }
    Ok(n)
}

/// Wait until the process has `n` tasks again (threads that ended a
/// threadlet are back in the spare loop, nothing more).
fn wait_tasks(n: usize, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = task_count()?;
        if now == n {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{now} tasks after {timeout:?}, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `sched_getcpu()` (glibc reads it from the thread's rseq area)
/// agrees with the CPU `/proc/thread-self/stat` shows; a few tries, as the
/// thread may migrate between the reads.
fn getcpu_consistent() -> bool {
    (0..50).any(|_| {
        // SAFETY: no preconditions.
        let a = unsafe { libc::sched_getcpu() };
        let stat = fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let cpu = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(36))
            .and_then(|c| c.parse::<i32>().ok());
        // SAFETY: no preconditions.
        let b = unsafe { libc::sched_getcpu() };
        a >= 0 && a == b && cpu == Some(a)
    })
}

/// `syslet.inflight=N` from the kernel command line, if given.
fn inflight_param() -> Option<usize> {
    let c = fs::read_to_string("/proc/cmdline").ok()?;
    c.split_whitespace()
        .find_map(|w| w.strip_prefix("syslet.inflight="))
        .and_then(|v| v.parse().ok())
}

// ---- a null_blk disk: reads and page faults that wait for I/O ---------------

const NULLB_DIR: &str = "/sys/kernel/config/nullb";

/// How long each I/O of the disk takes.  Long enough that the spare has
/// claimed the caller before the I/O completes (a block shorter than the
/// claim is, by design, no handoff: the caller's wakeup cancels the offer),
/// also under TCG.
const COMPLETION_NSEC: &str = "20000000";

/// A memory-backed null_blk disk that completes every I/O from a 1 ms
/// timer, its first 64 KiB filled with [`pattern`] and dropped from the
/// page cache.  Removed on drop.
struct NullBlk {
    dir: String,
    dev: String,
    fd: OwnedFd,
}

impl NullBlk {
    fn new() -> Result<NullBlk, String> {
        if fs::metadata(NULLB_DIR).is_err() {
            let src = CString::new("configfs").expect("no NUL");
            let dst = CString::new("/sys/kernel/config").expect("no NUL");
            // SAFETY: valid C strings; no data argument.
            let r = unsafe {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    src.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            ensure!(
                r == 0 || fs::metadata(NULLB_DIR).is_ok(),
                "mount configfs: {} (null_blk needs CONFIG_CONFIGFS_FS and CONFIG_BLK_DEV_NULL_BLK)",
                io::Error::last_os_error()
            );
        }
        let name = format!("sltg{}", pid());
        let dir = format!("{NULLB_DIR}/{name}");
        fs::create_dir(&dir).ctx(&format!("mkdir {dir}"))?;
        let mut nb = NullBlk {
            dir: dir.clone(),
            dev: format!("/dev/{name}"),
            // Replaced below; /dev/null keeps the struct whole meanwhile.
            fd: fs::File::open("/dev/null").ctx("open /dev/null")?.into(),
        };
        for (attr, val) in [
            ("size", "16"),
            ("memory_backed", "1"),
            ("irqmode", "2"),
            ("completion_nsec", COMPLETION_NSEC),
            ("power", "1"),
        ] {
            fs::write(format!("{dir}/{attr}"), val).ctx(&format!("{dir}/{attr} = {val}"))?;
        }
        let data = pattern(64 << 10);
        let deadline = Instant::now() + Duration::from_secs(5);
        let rw = loop {
            match fs::OpenOptions::new().read(true).write(true).open(&nb.dev) {
                Ok(f) => break f,
                Err(e) => {
                    ensure!(Instant::now() < deadline, "open {}: {e}", nb.dev);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        use std::os::unix::fs::FileExt;
        rw.write_all_at(&data, 0).ctx("write the pattern")?;
        rw.sync_all().ctx("fsync")?;
        drop(rw);
        let f = fs::File::open(&nb.dev).ctx(&format!("open {}", nb.dev))?;
        nb.fd = f.into();
        nb.drop_cache()?;
        Ok(nb)
    }

    /// Out of the page cache: the next read waits for the device.
    fn drop_cache(&self) -> TestResult {
        // BLKFLSBUF = _IO(0x12, 97)
        // SAFETY: an ioctl without an argument on our own descriptor.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), 0x1261, 0) };
        ensure!(r == 0, "BLKFLSBUF: {}", io::Error::last_os_error());
        Ok(())
    }
}

impl Drop for NullBlk {
    fn drop(&mut self) {
        let _ = fs::write(format!("{}/power", self.dir), "0");
        let _ = fs::remove_dir(&self.dir);
    }
}

// ---- tests -----------------------------------------------------------------

/// The raw system calls' errors, in a process with no spare (so that an
/// armed thread that blocks just blocks).
fn raw_errors() -> TestResult {
    ensure!(
        tasks_in(ASYNC_THREAD)?.is_empty(),
        "a spare in a fresh test process"
    );
    let stack = Mapping::new(64 << 10, libc::PROT_READ | libc::PROT_WRITE)?;
    let sp = stack.addr as usize + stack.len - 64;
    // Should a spare ever take over, it would abort: loudly wrong.
    let ip = libc::abort as *const () as usize;
    let bad = unmapped_addr()?;
    let einval = |r: io::Result<()>, what: &str| -> TestResult {
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => Err(format!("{what}: {other:?}, expected EINVAL")),
        }
    };
    // SAFETY (each threadlet_on below): every call either fails, or arms
    // this thread with a restore frame no spare can use (there is none);
    // the thread is disarmed before the test returns.
    unsafe {
        // threadlet_off without threadlet_on.
        match syslet::threadlet_off() {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return Err(format!("threadlet_off unarmed: {other:?}, expected EINVAL")),
        }
        einval(
            syslet::threadlet_on(sp, 0, std::ptr::null()),
            "restore ip 0",
        )?;
        einval(
            syslet::threadlet_on(0, ip, std::ptr::null()),
            "restore stack 0",
        )?;
        einval(
            syslet::threadlet_on(sp, KERNEL_TEXT, std::ptr::null()),
            "kernel restore ip",
        )?;
        einval(
            syslet::threadlet_on(sp, NON_CANONICAL, std::ptr::null()),
            "non-canonical restore ip",
        )?;
        einval(
            syslet::threadlet_on(KERNEL_ADDR, ip, std::ptr::null()),
            "kernel restore stack",
        )?;
        einval(
            syslet::threadlet_on(NON_CANONICAL, ip, std::ptr::null()),
            "non-canonical restore stack",
        )?;
        // EINVAL wins over a bad ring.
        einval(
            syslet::threadlet_on(sp, 0, bad as *const syslet::AsyncHead),
            "restore ip 0 and a bad ahu",
        )?;
        for (ahu, what) in [(bad, "unmapped ahu"), (KERNEL_ADDR, "kernel ahu")] {
            match syslet::threadlet_on(sp, ip, ahu as *const syslet::AsyncHead) {
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {}
                other => return Err(format!("{what}: {other:?}, expected EFAULT")),
            }
        }
        // None of those armed the thread.
        match syslet::threadlet_off() {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return Err(format!("threadlet_off after errors: {other:?}")),
        }

        // Armed: no nesting, no async_thread; then off says "still the
        // head", once.
        syslet::threadlet_on(sp, ip, std::ptr::null()).ctx("threadlet_on")?;
        let nested = syslet::threadlet_on(sp, ip, std::ptr::null());
        let parked = syslet::async_thread();
        let off = syslet::threadlet_off();
        let off2 = syslet::threadlet_off();
        match nested {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            other => return Err(format!("nested threadlet_on: {other:?}, expected EBUSY")),
        }
        match parked {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            other => return Err(format!("async_thread armed: {other:?}, expected EBUSY")),
        }
        ensure_eq!(off.ctx("threadlet_off")?, false, "threadlet_off armed");
        match off2 {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return Err(format!("second threadlet_off: {other:?}, expected EINVAL")),
        }

        // A readable ring is accepted (and unused).
        let mut ring = Ring::new(4).ctx("Ring::new")?;
        syslet::threadlet_on(sp, ip, ring.as_mut_ptr()).ctx("threadlet_on with a ring")?;
        ensure_eq!(syslet::threadlet_off().ctx("threadlet_off")?, false);
    }
    Ok(())
}

/// A closure that never blocks is a function call: `Done`, in the
/// caller's thread, and no thread is created or woken.
fn done_without_thread() -> TestResult {
    const RUNS: usize = 1000;
    let rt = runtime(2)?;
    let tid = gettid();
    // Warm: the first run maps the stack.
    let v = expect_done(run(&rt, || 7u32)?, "warm-up")?;
    ensure_eq!(v, 7);
    let tasks = task_count()?;
    let parked = tasks_in(ASYNC_THREAD)?;
    let idle = syslet::idle_spares();
    let start = Instant::now();
    for i in 0..RUNS {
        let (v, t, p) = expect_done(
            run(&rt, move || {
                // SAFETY: no preconditions.
                let p = unsafe { libc::getpid() };
                (i * 3, gettid(), p)
            })?,
            &format!("run {i}"),
        )?;
        ensure_eq!(v, i * 3);
        ensure_eq!(t, tid, "run {i}: gettid in the closure");
        ensure_eq!(p, pid(), "run {i}: getpid in the closure");
    }
    let took = start.elapsed();
    ensure_eq!(task_count()?, tasks, "tasks after {RUNS} runs");
    ensure_eq!(tasks_in(ASYNC_THREAD)?, parked, "parked spares");
    ensure_eq!(syslet::idle_spares(), idle, "idle estimate");
    ensure_eq!(rt.stacks_in_use(), 0);
    ensure_eq!(rt.stacks_free(), 1, "one stack, reused");
    ensure_eq!(gettid(), tid);
    diag!("{RUNS} non-blocking threadlets in {took:?}");
    Ok(())
}

/// A read of an empty pipe: the caller gets `Pending` at once; the write
/// completes the closure, whose thread then parks as a spare again.
fn pipe_read_async() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let rt = runtime(2)?;
    let tasks = task_count()?;
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let tid = gettid();
    let start = Instant::now();
    let h = expect_pending(
        run(&rt, move || {
            (read_fd(rfd).map_err(|e| e.to_string()), gettid())
        })?,
        "read of an empty pipe",
    )?;
    let returned = start.elapsed();
    ensure_eq!(gettid(), tid, "gettid after Pending");
    std::thread::sleep(Duration::from_millis(20));
    ensure!(!h.is_finished(), "finished before the write");
    let h = match h.try_join() {
        Ok(_) => return Err("try_join gave a result before the write".to_owned()),
        Err(h) => h,
    };
    ensure_eq!(rt.stacks_in_use(), 1, "the pending closure's stack");
    write_raw(w.as_raw_fd(), b"hello");
    let (data, t) = joined(h.join(), "join")?;
    ensure_eq!(data?, b"hello".to_vec());
    ensure!(t != tid, "the closure went on under the caller's TID {tid}");
    // Its thread leaves the stack and parks again: one more spare than
    // before (the runtime started one to keep 2 idle while it ran),
    // nothing else.
    rt.wait_stacks();
    ensure_eq!(rt.stacks_in_use(), 0);
    wait_tasks(tasks + 1, Duration::from_secs(5))?;
    wait_parked(3, Duration::from_secs(5))?;
    ensure_eq!(ALARMS.load(Ordering::SeqCst), 0, "watchdog fired");
    diag!("Pending after {returned:?}");
    // And once more: the thread that ran it serves the next handoff.
    let h = expect_pending(
        run(&rt, move || read_fd(rfd).map_err(|e| e.to_string()))?,
        "second read",
    )?;
    write_raw(w.as_raw_fd(), b"again");
    ensure_eq!(joined(h.join(), "join")??, b"again".to_vec());
    drop(r);
    Ok(())
}

thread_local! {
    static MARK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Caller identity across a handoff, for the main thread and another
/// thread: gettid, getpid, pthread_self, std's thread, TLS, signal mask.
fn head_identity() -> TestResult {
    let _dog = Watchdog::arm(30_000)?;
    let rt = Arc::new(runtime(2)?);
    identity_rounds(&rt, "main thread")?;
    let rt2 = Arc::clone(&rt);
    std::thread::spawn(move || identity_rounds(&rt2, "second thread"))
        .join()
        .map_err(|_| "second thread panicked".to_owned())??;
    Ok(())
}

fn identity_rounds(rt: &Threadlets, who: &str) -> TestResult {
    let tid = gettid();
    // SAFETY: no preconditions.
    let me = unsafe { libc::pthread_self() };
    let thread = std::thread::current().id();
    MARK.with(|m| m.set(0x7e4d_1e75));
    // Something in the mask, to see that it is kept.
    // SAFETY: valid sigsets.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mask = sigblk(tid as u32)?;
    for round in 0..3 {
        wait_parked(1, Duration::from_secs(10))?;
        let spares: HashSet<u32> = tasks_in(ASYNC_THREAD)?.into_iter().collect();
        let (r, w) = pipe()?;
        let rfd = r.as_raw_fd();
        let h = expect_pending(
            run(rt, move || {
                let before = (gettid(), std::thread::current().id());
                let data = read_fd(rfd);
                let after = (
                    gettid(),
                    std::thread::current().id(),
                    std::thread::current().name().map(str::to_owned),
                    getcpu_consistent(),
                );
                (before, data.map_err(|e| e.to_string()), after)
            })?,
            &format!("{who} round {round}"),
        )?;
        ensure_eq!(gettid(), tid, "{who} round {round}: gettid");
        ensure_eq!(std::process::id(), pid() as u32);
        // SAFETY: no preconditions.
        ensure!(
            unsafe { libc::pthread_equal(libc::pthread_self(), me) } != 0,
            "{who} round {round}: pthread_self changed"
        );
        ensure!(
            std::thread::current().id() == thread,
            "{who} round {round}: std's current thread changed"
        );
        ensure_eq!(
            MARK.with(|m| m.get()),
            0x7e4d_1e75,
            "{who} round {round}: TLS"
        );
        ensure_eq!(
            sigblk(tid as u32)?,
            mask,
            "{who} round {round}: signal mask"
        );
        ensure!(
            getcpu_consistent(),
            "{who} round {round}: sched_getcpu() disagrees with /proc after the handoff"
        );
        write_raw(w.as_raw_fd(), b"id");
        let (before, data, after) = joined(h.join(), "join")?;
        ensure_eq!(data?, b"id".to_vec());
        ensure_eq!(
            before.0,
            tid,
            "{who} round {round}: gettid before the block"
        );
        ensure!(
            before.1 == thread,
            "{who} round {round}: not the caller's thread before the block"
        );
        ensure!(
            spares.contains(&(after.0 as u32)),
            "{who} round {round}: TID {} after the block is not a former spare's {spares:?}",
            after.0
        );
        ensure!(
            after.1 != thread,
            "{who} round {round}: still the caller's std thread after the block"
        );
        ensure_eq!(after.2.as_deref(), Some("threadlet-spare"));
        ensure!(
            after.3,
            "{who} round {round}: sched_getcpu() in the closure after the block disagrees with /proc"
        );
        ensure_eq!(gettid(), tid, "{who} round {round}: gettid after join");
    }
    Ok(())
}

/// Before its first block the closure sees the caller's thread-locals;
/// after it, those of the spare that took over the caller (a fresh spare:
/// the initial values).  What the closure wrote before the block stays
/// with the caller, what it wrote after stays with the spare's TLS.
fn tls_after_block() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let rt = runtime(1)?;
    MARK.with(|m| m.set(11));
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let h = expect_pending(
        run(&rt, move || {
            let before = MARK.with(|m| m.replace(22));
            let data = read_fd(rfd);
            let after = MARK.with(|m| m.replace(33));
            (before, data.is_ok(), after)
        })?,
        "read of an empty pipe",
    )?;
    ensure_eq!(MARK.with(|m| m.get()), 22, "the caller's TLS after Pending");
    write_raw(w.as_raw_fd(), b"x");
    let (before, ok, after) = joined(h.join(), "join")?;
    ensure!(ok, "the read failed");
    ensure_eq!(before, 11, "the closure's TLS before the block");
    ensure_eq!(after, 0, "the closure's TLS after the block (the spare's)");
    ensure_eq!(MARK.with(|m| m.get()), 22, "the caller's TLS after join");
    Ok(())
}

/// A panic is caught on the threadlet stack and comes back as `Err`,
/// before and after a block; the caller and the runtime keep working.
fn panic_comes_back() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    // The default hook writes to stderr, which may block (run's contract).
    static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|_| {
        HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    }));
    let rt = runtime(2)?;
    let tid = gettid();
    match run(&rt, || -> u32 { panic!("before any block") })? {
        Outcome::Done(Err(p)) => ensure_eq!(panic_text(&*p), "before any block"),
        Outcome::Done(Ok(v)) => return Err(format!("a panicking closure returned {v}")),
        Outcome::Pending(_) => return Err("a panic before any block went async".to_owned()),
    }
    ensure!(
        !std::thread::panicking(),
        "the caller thinks it is panicking"
    );
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let h = expect_pending(
        run(&rt, move || -> u32 {
            let _ = read_fd(rfd);
            panic!("after the block")
        })?,
        "panic after a block",
    )?;
    write_raw(w.as_raw_fd(), b"p");
    match h.join() {
        Err(p) => ensure_eq!(panic_text(&*p), "after the block"),
        Ok(v) => return Err(format!("a panicking closure returned {v}")),
    }
    ensure_eq!(HOOK_CALLS.load(Ordering::SeqCst), 2);
    // The caller goes on: threadlets, its own panics, and handoffs.
    ensure_eq!(gettid(), tid);
    ensure!(
        !std::thread::panicking(),
        "the caller thinks it is panicking"
    );
    ensure_eq!(expect_done(run(&rt, || 5u8)?, "after the panics")?, 5);
    ensure!(
        std::panic::catch_unwind(|| panic!("in the caller")).is_err(),
        "the caller's own panic"
    );
    let h = expect_pending(run(&rt, move || read_fd(rfd).is_ok())?, "again")?;
    write_raw(w.as_raw_fd(), b"q");
    ensure!(joined(h.join(), "join")?, "the read failed");
    rt.wait_stacks();
    ensure_eq!(rt.stacks_in_use(), 0);
    let _ = std::panic::take_hook();
    Ok(())
}

/// The v3 example's shape: open, fstat and read a file in a threadlet.
/// From a null_blk disk out of the page cache it waits for the device and
/// goes asynchronous; once cached it is a function call; and a scratch
/// file (tmpfs) is a function call too.
fn v3_open_fstat_read() -> TestResult {
    let _dog = Watchdog::arm(30_000)?;
    let nb = NullBlk::new()?;
    let rt = runtime(1)?;
    let tid = gettid();
    let read_file = |path: String| {
        move || -> Result<(bool, i64, Vec<u8>, i64), String> {
            let f = fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
            let md = f.metadata().map_err(|e| format!("fstat: {e}"))?;
            use std::os::unix::fs::{FileExt, FileTypeExt};
            let mut buf = vec![0u8; 4096];
            let n = f
                .read_at(&mut buf, 4096)
                .map_err(|e| format!("pread: {e}"))?;
            buf.truncate(n);
            Ok((
                md.file_type().is_block_device(),
                md.len() as i64,
                buf,
                gettid(),
            ))
        }
    };
    let want = pattern(8192)[4096..].to_vec();
    let h = expect_pending(run(&rt, read_file(nb.dev.clone()))?, "uncached read")?;
    ensure_eq!(gettid(), tid);
    let (blk, _, data, t) = joined(h.join(), "join")??;
    ensure!(blk, "{} is not a block device", nb.dev);
    ensure!(data == want, "wrong data from the device");
    ensure!(t != tid, "went on under the caller's TID");
    wait_parked(1, Duration::from_secs(10))?;
    let (_, _, data, t) = expect_done(run(&rt, read_file(nb.dev.clone()))?, "cached read")??;
    ensure!(data == want, "wrong cached data");
    ensure_eq!(t, tid);
    let content = pattern(3 * 4096);
    let path = scratch_file("threadlet-v3", &content)?;
    let (blk, len, data, t) = expect_done(
        run(&rt, read_file(path.to_string_lossy().into_owned()))?,
        "scratch file",
    )??;
    ensure!(!blk, "the scratch file is a block device");
    ensure_eq!(len, content.len() as i64, "st_size");
    ensure!(
        data == content[4096..8192],
        "wrong data from the scratch file"
    );
    ensure_eq!(t, tid);
    Ok(())
}

/// A page fault on an untouched mapping of the device waits for I/O: the
/// closure goes on in its own thread.
fn page_fault_async() -> TestResult {
    let _dog = Watchdog::arm(30_000)?;
    let nb = NullBlk::new()?;
    let len = 64 << 10;
    // SAFETY: a fresh shared read-only mapping of the device.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            nb.fd.as_raw_fd(),
            0,
        )
    };
    ensure!(
        map != libc::MAP_FAILED,
        "mmap {}: {}",
        nb.dev,
        io::Error::last_os_error()
    );
    let addr = map as usize;
    let rt = runtime(1)?;
    let tid = gettid();
    let want = pattern(3 * 4096);
    let h = expect_pending(
        run(&rt, move || {
            // SAFETY: the mapping stays until the join below; reads only.
            let seen = unsafe { [*((addr + 8192) as *const u8), *((addr + 8193) as *const u8)] };
            (seen, gettid())
        })?,
        "page fault on the device mapping",
    )?;
    ensure_eq!(gettid(), tid);
    let (seen, t) = joined(h.join(), "join")?;
    ensure_eq!(
        seen,
        [want[8192], want[8193]],
        "bytes read through the fault"
    );
    ensure!(t != tid, "went on under the caller's TID");
    // The page is in now: a function call.
    wait_parked(1, Duration::from_secs(10))?;
    let (seen, t) = expect_done(
        run(&rt, move || {
            // SAFETY: as above.
            let seen = unsafe { [*((addr + 8192) as *const u8), *((addr + 8193) as *const u8)] };
            (seen, gettid())
        })?,
        "second touch",
    )?;
    ensure_eq!(seen, [want[8192], want[8193]]);
    ensure_eq!(t, tid);
    // SAFETY: our mapping; the closures that used it have ended.
    unsafe { libc::munmap(map, len) };
    Ok(())
}

static HANDLER_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static HANDLED: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_usr1(_sig: libc::c_int) {
    let mut b = [0u8; 1];
    // SAFETY: read() is async-signal-safe; the buffer is valid.
    let n = unsafe { libc::read(HANDLER_FD.load(Ordering::SeqCst), b.as_mut_ptr().cast(), 1) };
    if n == 1 {
        HANDLED.fetch_add(1, Ordering::SeqCst);
    }
}

/// SIGUSR1 runs `on_usr1`, which reads one byte of `fd`.
fn handle_usr1(fd: i32) -> TestResult {
    HANDLER_FD.store(fd, Ordering::SeqCst);
    HANDLED.store(0, Ordering::SeqCst);
    // SAFETY: `sigaction` is plain data; the handler only calls read().
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        ensure!(
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) == 0,
            "sigaction: {}",
            io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Run a closure that sends itself SIGUSR1, whose handler reads an empty
/// pipe: the handoff happens inside the handler.  Returns the caller's
/// TID and the closure's TIDs before and after.
fn block_in_handler(rt: &Threadlets, w: &OwnedFd) -> Result<(i64, i64, i64, u32), String> {
    let tid = gettid();
    let h = expect_pending(
        run(rt, move || {
            let me = gettid();
            // SAFETY: a signal to this very thread.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), me, libc::SIGUSR1) };
            (me, gettid(), HANDLED.load(Ordering::SeqCst))
        })?,
        "a handler that reads an empty pipe",
    )?;
    ensure_eq!(gettid(), tid);
    ensure_eq!(
        HANDLED.load(Ordering::SeqCst),
        0,
        "handled before the write"
    );
    write_raw(w.as_raw_fd(), b"1");
    let (before, after, handled) = joined(h.join(), "join")?;
    Ok((tid, before, after, handled))
}

/// A signal handler that runs in the armed closure (on the threadlet
/// stack) and blocks there: the caller goes on, the handler and then the
/// closure finish in the closure's own thread.
fn handler_blocks() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let (r, w) = pipe()?;
    handle_usr1(r.as_raw_fd())?;
    let rt = runtime(1)?;
    let (tid, before, after, handled) = block_in_handler(&rt, &w)?;
    ensure_eq!(before, tid, "the closure before the signal");
    ensure!(after != tid, "the closure went on under the caller's TID");
    ensure_eq!(handled, 1, "the handler ran to its end in the closure");
    ensure_eq!(gettid(), tid);
    Ok(())
}

/// After a handoff inside a signal handler, the caller goes on with the
/// signal mask it had, not with the handler's (which blocks the signal
/// being handled, and is only undone by the handler's sigreturn in the
/// closure's thread): a signal sent to the caller afterwards is handled.
fn handler_mask() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let (r, w) = pipe()?;
    handle_usr1(r.as_raw_fd())?;
    let rt = runtime(1)?;
    let tid = gettid() as u32;
    let mask = sigblk(tid)?;
    block_in_handler(&rt, &w)?;
    let now = sigblk(tid)?;
    write_raw(w.as_raw_fd(), b"2");
    // SAFETY: a signal to this thread.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
    ensure_eq!(
        now,
        mask,
        "the caller's signal mask (SigBlk) after the handoff in the handler"
    );
    ensure_eq!(HANDLED.load(Ordering::SeqCst), 2, "the caller's handler");
    Ok(())
}

/// The unwind information of `threadlet_exec` ends a backtrace taken in
/// the closure there, before and after a block (the caller's stack may
/// belong to another thread by then): no walk into foreign frames.
fn backtrace_ends() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let rt = runtime(1)?;
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let h = expect_pending(
        run(&rt, move || {
            let before = std::backtrace::Backtrace::force_capture().to_string();
            let read = read_fd(rfd).is_ok();
            let after = std::backtrace::Backtrace::force_capture().to_string();
            (before, read, after)
        })?,
        "read of an empty pipe",
    )?;
    write_raw(w.as_raw_fd(), b"b");
    let (before, read, after) = joined(h.join(), "join")?;
    ensure!(read, "the read failed");
    for (when, bt) in [("before the block", before), ("after the block", after)] {
        // "  N: symbol" lines, then "at file:line" lines with debug info.
        let frames: Vec<&str> = bt
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.split_once(": ")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
            })
            .collect();
        ensure!(
            frames
                .last()
                .is_some_and(|l| l.ends_with(": threadlet_exec")),
            "backtrace {when} does not end at threadlet_exec: {frames:?}"
        );
        ensure!(frames.len() < 16, "backtrace {when}: {frames:?}");
    }
    Ok(())
}

/// Threadlets do not nest, and a threadlet cannot park as a spare.
fn nesting_refused() -> TestResult {
    let rt = Arc::new(runtime(1)?);
    let inner = Arc::clone(&rt);
    let (nested, parked, ran) = expect_done(
        run(&rt, move || {
            let ran = Arc::new(AtomicU32::new(0));
            let r2 = Arc::clone(&ran);
            // SAFETY: the inner closure does not even run (EBUSY).
            let nested = unsafe { inner.run(move || r2.store(1, Ordering::SeqCst)) }
                .err()
                .and_then(|e| e.raw_os_error());
            // SAFETY: refused with EBUSY inside a threadlet, so it returns.
            let parked = unsafe { syslet::async_thread() }
                .err()
                .and_then(|e| e.raw_os_error());
            (nested, parked, ran.load(Ordering::SeqCst))
        })?,
        "nesting",
    )?;
    ensure_eq!(nested, Some(libc::EBUSY), "run inside a threadlet");
    ensure_eq!(parked, Some(libc::EBUSY), "async_thread inside a threadlet");
    ensure_eq!(ran, 0, "the nested closure ran");
    Ok(())
}

/// Inside a threadlet `async_exec` runs its atoms synchronously: a syslet
/// whose read blocks is the threadlet blocking, and it completes in the
/// threadlet (`Done`), not through the ring.
fn async_exec_inside() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let rt = runtime(1)?;
    let (r, w) = pipe()?;
    let r = Arc::new(r);
    let r2 = Arc::clone(&r);
    let h = expect_pending(
        run(&rt, move || -> Result<(bool, Vec<u8>), String> {
            let mut ring = AsyncRing::new(4).map_err(|e| e.to_string())?;
            let mut c = Chain::new();
            let fd = c.hold_fd(r2);
            let read = c.read(fd, vec![0u8; 16]).id();
            match ring.submit(c).map_err(|e| e.to_string())? {
                Submitted::Done(done) => Ok((
                    done.went_async(),
                    done.chain().read_bytes(read).unwrap_or_default().to_vec(),
                )),
                Submitted::Pending(t) => {
                    ring.abandon();
                    Err(format!("the syslet went async ({t}) inside a threadlet"))
                }
            }
        })?,
        "a blocking syslet in a threadlet",
    )?;
    write_raw(w.as_raw_fd(), b"syslet");
    let (went_async, data) = joined(h.join(), "join")??;
    ensure!(!went_async, "completion marked asynchronous");
    ensure_eq!(data, b"syslet".to_vec());
    drop(r);
    Ok(())
}

/// A spare that is not the crate's (a thread that calls `async_thread()`
/// itself) records no home stack: the thread that ran the closure on its
/// TLS exits at the end, and the kernel clears the stack word (its
/// `clear_child_tid`) and wakes it.
fn foreign_spare() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let rt = Threadlets::builder().spares(0).build().ctx("build")?;
    std::thread::spawn(|| loop {
        // SAFETY: nothing in this thread's frames is waited for: its
        // handle is dropped, it holds no lock and no borrow.
        if let Err(e) = unsafe { syslet::async_thread() } {
            if e.raw_os_error() != Some(libc::EINTR) {
                return;
            }
        }
    });
    wait_parked(1, Duration::from_secs(10))?;
    let tasks = task_count()?;
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let h = expect_pending(
        run(&rt, move || read_fd(rfd).map_err(|e| e.to_string()))?,
        "read of an empty pipe",
    )?;
    ensure_eq!(rt.stacks_in_use(), 1);
    write_raw(w.as_raw_fd(), b"foreign");
    ensure_eq!(joined(h.join(), "join")??, b"foreign".to_vec());
    rt.wait_stacks();
    ensure_eq!(rt.stacks_in_use(), 0);
    // The thread that ran it is gone; nobody parks in its place.
    wait_tasks(tasks - 1, Duration::from_secs(10))?;
    ensure!(tasks_in(ASYNC_THREAD)?.is_empty(), "a thread parked again");
    Ok(())
}

/// glibc's setuid() makes every thread it knows change its credentials,
/// with a signal (SIGSETXID) it waits for each thread to handle: spares,
/// and threads that became spares after a threadlet, must handle it.
fn setuid_with_spares() -> TestResult {
    let _dog = Watchdog::arm(20_000)?;
    let rt = runtime(2)?;
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let h = expect_pending(run(&rt, move || read_fd(rfd).is_ok())?, "read")?;
    write_raw(w.as_raw_fd(), b"s");
    ensure!(joined(h.join(), "join")?, "the read failed");
    rt.wait_stacks();
    wait_parked(3, Duration::from_secs(10))?;
    let done = Arc::new(AtomicU32::new(0));
    let d2 = Arc::clone(&done);
    std::thread::spawn(move || {
        // SAFETY: no preconditions; the same uid.
        let r = unsafe { libc::setuid(libc::getuid()) };
        d2.store(if r == 0 { 1 } else { 2 }, Ordering::SeqCst);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) == 0 {
        ensure!(
            Instant::now() < deadline,
            "setuid() still waiting after 10 s: a thread does not handle SIGSETXID ({:?})",
            task_syscalls()?
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    ensure_eq!(done.load(Ordering::SeqCst), 1, "setuid failed");
    // The spares are back in the loop.
    wait_parked(3, Duration::from_secs(10))?;
    let h = expect_pending(run(&rt, move || read_fd(rfd).is_ok())?, "read after")?;
    write_raw(w.as_raw_fd(), b"t");
    ensure!(joined(h.join(), "join")?, "the read failed");
    Ok(())
}

/// Each `Pending` takes a spare; the runtime starts new ones to keep its
/// reserve, and the threads that ran the closures become spares again.
fn spares_replenished() -> TestResult {
    const N: usize = 6;
    let _dog = Watchdog::arm(40_000)?;
    let rt = runtime(2)?;
    let started = syslet::spares_started();
    ensure_eq!(started, 2);
    let tid = gettid();
    let (r, w) = pipe()?;
    let rfd = r.as_raw_fd();
    let mut handles = Vec::new();
    for i in 0..N {
        wait_parked(2, Duration::from_secs(10))?;
        handles.push(expect_pending(
            run(&rt, move || read_n(rfd, 1).map(|d| d.len()).unwrap_or(0))?,
            &format!("read {i}"),
        )?);
        ensure_eq!(gettid(), tid);
    }
    ensure_eq!(syslet::spares_started(), N + 2, "spares after {N} handoffs");
    write_raw(w.as_raw_fd(), &[1u8; N]);
    let mut total = 0;
    for h in handles {
        total += joined(h.join(), "join")?;
    }
    ensure_eq!(total, N, "bytes read");
    rt.wait_stacks();
    // Every spare identity parks again.
    wait_parked(N + 2, Duration::from_secs(10))?;
    ensure_eq!(syslet::idle_spares(), N + 2, "idle estimate");
    Ok(())
}

/// Many threadlets outstanding at once (futex completion), each completed
/// exactly once, every stack back in the pool.
fn many_outstanding() -> TestResult {
    let n = inflight_param().unwrap_or(1000).min(1000);
    // The runner allows this test 240 s (main.rs, LONG_TESTS): the debug
    // kernel under TCG needs about 30 s to start the spares, 15 s for the
    // handoffs and 15 s for the joins; the normal kernel 5 s in all.
    let _dog = Watchdog::arm(220_000)?;
    let start = Instant::now();
    // The spares are started by hand: a reserve would start one more per
    // handoff.
    let rt = Threadlets::builder()
        .spares(0)
        .stack_size(64 << 10)
        .build()
        .ctx("build")?;
    syslet::start_spares(n).ctx("start_spares")?;
    wait_parked(n, Duration::from_secs(120))?;
    let tasks = task_count()?;
    let ready = start.elapsed();
    let go = Arc::new(AtomicU32::new(0));
    let done: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let go = Arc::clone(&go);
        let done = Arc::clone(&done);
        let h = expect_pending(
            run(&rt, move || {
                while go.load(Ordering::Acquire) == 0 {
                    futex_wait(&go, 0);
                }
                done[i].fetch_add(1, Ordering::SeqCst);
                i
            })?,
            &format!("threadlet {i}"),
        )?;
        handles.push(h);
    }
    let submitted = start.elapsed();
    ensure!(
        done.iter().all(|d| d.load(Ordering::SeqCst) == 0),
        "a threadlet finished before the go"
    );
    ensure_eq!(rt.stacks_in_use(), n);
    go.store(1, Ordering::Release);
    futex_wake_all(&go);
    let mut seen = HashSet::new();
    for h in handles {
        let i = joined(h.join(), "join")?;
        ensure!(seen.insert(i), "threadlet {i} completed twice");
    }
    ensure_eq!(seen.len(), n);
    for (i, d) in done.iter().enumerate() {
        ensure_eq!(d.load(Ordering::SeqCst), 1, "threadlet {i} ran its end");
    }
    rt.wait_stacks();
    ensure_eq!(rt.stacks_in_use(), 0);
    ensure_eq!(rt.stacks_free(), n);
    wait_parked(n, Duration::from_secs(60))?;
    ensure_eq!(task_count()?, tasks, "tasks once all parked again");
    ensure_eq!(ALARMS.load(Ordering::SeqCst), 0, "watchdog fired");
    diag!(
        "{n} threadlets: spares parked after {ready:?}, all pending after {submitted:?}, all joined and parked again after {:?}",
        start.elapsed()
    );
    Ok(())
}
