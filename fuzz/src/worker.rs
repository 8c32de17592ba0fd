//! A worker process: fuzzing threads, the waker, a ticker that interrupts
//! waits, spare threads in async_thread(), a waiter that calls
//! async_wait() on other threads' rings, and a racer that signals,
//! forks, clones, execs, drops privileges, installs seccomp filters,
//! changes limits and unmaps memory under the syslets in flight.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::fixtures::{self, Fixtures};
use crate::fuzzer::{self, Fuzzer, Mode, REG};
use crate::races;
use crate::rng::{derive, Rng};
use crate::shared::{op, Slot, C, MAX_THREADS};
use crate::sys;
use crate::threadlets::{self, Threadlets};

/// Options of a worker.
#[derive(Clone, Copy)]
pub struct Opts {
    /// Fuzzing threads.
    pub threads: usize,
    /// Run racers (signals, children, memory) inside the worker.
    pub races: bool,
    /// Operations per fuzzing thread (0: until stopped).
    pub ops: u64,
    /// Seconds a drain may take before in-flight syslets count as lost.
    pub drain_secs: u64,
}

/// Signals sent after each other to every fuzzing thread.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// The TIDs of this worker's waiter threads.
static WAITERS: [AtomicI32; 2] = [const { AtomicI32::new(0) }; 2];
/// The TIDs of this worker's fuzzing threads.
static TIDS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

extern "C" fn on_signal(_sig: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn hex(out: &mut [u8], mut at: usize, v: u64) -> usize {
    for i in (0..16).rev() {
        out[at] = b"0123456789abcdef"[((v >> (i * 4)) & 15) as usize];
        at += 1;
    }
    at
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let mut b = [0u8; 224];
    let msg = b"fuzz: FAULT sig ";
    b[..msg.len()].copy_from_slice(msg);
    let mut at = msg.len();
    b[at] = b'0' + (sig / 10) as u8;
    b[at + 1] = b'0' + (sig % 10) as u8;
    at += 2;
    for (label, v) in [
        (
            &b" addr="[..],
            // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
            unsafe { (*info).si_addr() as u64 },
        ),
        (
            &b" rip="[..],
            // SAFETY: and a valid ucontext.
            unsafe {
                (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RIP as usize] as u64
            },
        ),
        (
            &b" rsp="[..],
            // SAFETY: as above.
            unsafe {
                (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RSP as usize] as u64
            },
        ),
        (&b" tid="[..], sys::gettid() as u64),
        // SAFETY: as above.
        (&b" code="[..], unsafe { (*info).si_code as u64 }),
        // SAFETY: si_pkey of a SEGV_PKUERR fault (offset 32 of siginfo).
        (&b" pkey="[..], unsafe {
            u64::from(*info.cast::<u8>().add(32).cast::<u32>())
        }),
        (&b" pkru="[..], frame_pkru(uc)),
    ] {
        b[at..at + label.len()].copy_from_slice(label);
        at += label.len();
        at = hex(&mut b, at, v);
    }
    b[at] = b'\n';
    // SAFETY: write of a local buffer, then leave the process the way the
    // fault would have (the supervisor reports it).
    unsafe {
        libc::write(
            sys::OUT_FD.load(Ordering::Relaxed),
            b.as_ptr().cast(),
            at + 1,
        );
        if std::env::var_os("FUZZ_MAPS").is_some() {
            // smaps: every mapping with its protection key.
            let fd = libc::open(b"/proc/self/smaps\0".as_ptr().cast(), libc::O_RDONLY);
            smaps_keys(fd);
            libc::close(fd);
            let fd = libc::open(b"/proc/self/maps\0".as_ptr().cast(), libc::O_RDONLY);
            let mut m = [0u8; 4096];
            loop {
                let n = libc::read(fd, m.as_mut_ptr().cast(), m.len());
                if n <= 0 {
                    break;
                }
                libc::write(
                    sys::OUT_FD.load(Ordering::Relaxed),
                    m.as_ptr().cast(),
                    n as usize,
                );
            }
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
        libc::_exit(128 + sig);
    }
}

/// Offset of PKRU in a standard-format XSAVE area (0: none).
static PKRU_OFFSET: AtomicU64 = AtomicU64::new(0);

/// PKRU at the fault, from the XSAVE area of the signal frame (or
/// 0xffffffffffffffff when the frame has none).
fn frame_pkru(uc: *mut libc::c_void) -> u64 {
    let off = PKRU_OFFSET.load(Ordering::Relaxed) as usize;
    // SAFETY: the kernel's ucontext; fpregs points at the frame's XSAVE
    // area, whose header (at 512) says whether PKRU was saved.
    unsafe {
        let fp = (*uc.cast::<libc::ucontext_t>()).uc_mcontext.fpregs as *const u8;
        if off == 0 || fp.is_null() {
            return u64::MAX;
        }
        // sw_reserved.magic1 (offset 464) says an XSAVE header follows.
        if *fp.add(464).cast::<u32>() != 0x4650_5853 {
            return u64::MAX - 1;
        }
        let bv = *fp.add(512).cast::<u64>();
        if bv & (1 << 9) == 0 {
            return 0x1_0000_0000; // PKRU in its init state (0)
        }
        u64::from(*fp.add(off).cast::<u32>())
    }
}

/// Copy the header lines of /proc/self/smaps with a protection key other
/// than 0 (and the key lines) to the output.
///
/// # Safety
/// `fd` is /proc/self/smaps, read once.
unsafe fn smaps_keys(fd: libc::c_int) {
    let out = sys::OUT_FD.load(Ordering::Relaxed);
    let mut m = [0u8; 8192];
    let mut line = [0u8; 256];
    let mut hdr = [0u8; 256];
    let (mut ll, mut hl) = (0usize, 0usize);
    loop {
        let n = libc::read(fd, m.as_mut_ptr().cast(), m.len());
        if n <= 0 {
            break;
        }
        for &c in &m[..n as usize] {
            if c != b'\n' {
                if ll < line.len() {
                    line[ll] = c;
                    ll += 1;
                }
                continue;
            }
            let l = &line[..ll];
            if l.first().is_some_and(u8::is_ascii_hexdigit) && l.contains(&b'-') {
                hdr[..ll].copy_from_slice(l);
                hl = ll;
            } else if l.starts_with(b"ProtectionKey:") && !l.ends_with(b" 0") {
                libc::write(out, b"fuzz: key ".as_ptr().cast(), 10);
                libc::write(out, l.as_ptr().cast(), l.len());
                libc::write(out, b" ".as_ptr().cast(), 1);
                libc::write(out, hdr.as_ptr().cast(), hl);
                libc::write(out, b"\n".as_ptr().cast(), 1);
            }
            ll = 0;
        }
    }
}

/// Report faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE) with the address and
/// instruction pointer before the process dies of them.
pub fn install_fault_handlers() {
    // Leaf 0xd, sub-leaf 9: PKRU's place in the standard XSAVE format.
    let off = core::arch::x86_64::__cpuid_count(0xd, 9).ebx;
    PKRU_OFFSET.store(u64::from(off), Ordering::Relaxed);
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
        // SAFETY: an SA_SIGINFO handler that only writes and exits.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Handle every signal the atoms and racers send (never SIGKILL, SIGSTOP
/// or the faults).  `restart` picks SA_RESTART per signal.
pub fn install_handlers(rng: &mut Rng) {
    for sig in [
        10, 12, 13, 14, 17, 18, 23, 25, 26, 27, 28, 29, 31, 34, 35, 36, 37, 38, 39, 40, 64,
    ] {
        // SAFETY: a plain handler that touches one atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = if rng.chance(300) { libc::SA_RESTART } else { 0 };
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn unblock_all() {
    // SAFETY: an empty mask; only this thread's mask changes.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// The worker's main: returns its exit code (0 ok, 1 lost or wrong).
pub fn worker_main(slot: &'static Slot, seed: u64, opts: Opts) -> i32 {
    // Own process group: kill(0, ..) from atoms stays inside.
    // SAFETY: plain process calls.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    sys::hide_stdio(169);
    let mut rng = Rng::new(derive(seed, &[0xaaaa]));
    install_handlers(&mut rng);
    install_fault_handlers();
    let fx = Fixtures::new(sys::getpid());
    let _ = syslet::start_spares(2);
    let stop = Arc::new(AtomicBool::new(false));
    let mut helpers = Vec::new();
    {
        let stop = stop.clone();
        helpers.push(std::thread::spawn(move || fixtures::waker_loop(fx, &stop)));
    }
    {
        let stop = stop.clone();
        helpers.push(std::thread::spawn(move || ticker(&stop)));
    }
    for k in 0..2u64 {
        let stop = stop.clone();
        let s = derive(seed, &[0xbbbb, k]);
        helpers.push(std::thread::spawn(move || {
            WAITERS[k as usize].store(sys::gettid(), Ordering::Relaxed);
            waiter(s, &stop)
        }));
    }
    for _ in 0..2 {
        // Spares of our own: park in async_thread() until taken or EINTR.
        std::thread::spawn(|| loop {
            // SAFETY: async_thread takes no arguments; if the kernel picks
            // this thread, its context is discarded.
            let r = unsafe { sys::call(503, &[]) };
            if r != -4 {
                return;
            }
        });
    }
    if opts.races {
        let stop = stop.clone();
        let s = derive(seed, &[0xcccc]);
        helpers.push(std::thread::spawn(move || racer(s, slot, fx, &stop)));
    }
    let mut fuzzers = Vec::new();
    let threads = opts.threads.min(MAX_THREADS).min(16);
    for t in 0..threads {
        let s = derive(seed, &[t as u64]);
        fuzzers.push(std::thread::spawn(move || {
            fuzz_thread(t, s, slot, fx, opts)
        }));
    }
    let mut bad = 0;
    for f in fuzzers {
        match f.join() {
            Ok(n) => bad += n,
            Err(_) => bad += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in helpers {
        // A waiter may sleep in async_wait for completions that never
        // come (min_wait_events beyond the ring, or a ring nobody posts
        // to any more): interrupt it until it sees `stop`.
        while !h.is_finished() {
            for w in &WAITERS {
                let tid = w.load(Ordering::Relaxed);
                if tid > 0 {
                    sys::tgkill(sys::getpid(), tid, libc::SIGUSR1);
                }
            }
            sys::sleep_us(5000);
        }
        let _ = h.join();
    }
    let _ = std::fs::remove_dir_all(&fx.dir);
    slot.done
        .store(if bad > 0 { 2 } else { 1 }, Ordering::Relaxed);
    i32::from(bad > 0)
}

fn fuzz_thread(
    t: usize,
    seed: u64,
    slot: &'static Slot,
    fx: &'static Fixtures,
    opts: Opts,
) -> usize {
    let log = &slot.threads[t];
    TIDS[t].store(sys::gettid(), Ordering::Relaxed);
    log.tid.store(sys::gettid(), Ordering::Relaxed);
    let Some(mut f) = Fuzzer::new(
        seed,
        fx,
        slot,
        Some(log),
        Some(&REG[t]),
        Mode { wild: false },
        &TIDS,
    ) else {
        sys::say("fuzz: cannot map a fuzzing thread's memory");
        return 1;
    };
    let pipe = fx.fds[5];
    let mut tl = Threadlets::new(pipe);
    let scratch_page = sys::map(0, 4096, libc::PROT_READ | libc::PROT_WRITE).unwrap_or(0);
    let mut n = 0u64;
    while slot.stop.load(Ordering::Relaxed) == 0 && (opts.ops == 0 || n < opts.ops) {
        unblock_all();
        n += 1;
        if f.rng.chance(30) && scratch_page != 0 {
            let x = f.rng.next();
            let ahu = if f.rng.chance(100) {
                0xffff_8880_0000_0000
            } else {
                0
            };
            let (kind, r) = tl.run(x, scratch_page, slot, ahu);
            f.log(threadlets::OP, kind, 0, r as u64);
        } else {
            f.step();
        }
        if n % 64 == 0 {
            tl.poll(slot);
        }
    }
    let deadline = sys::now_ns() + opts.drain_secs * 1_000_000_000;
    let lost = f.drain(deadline);
    while tl.pending() > 0 && sys::now_ns() < deadline {
        tl.poll(slot);
        f.log(op::DRAIN, 0, tl.pending() as u64, 0);
        sys::sleep_us(5000);
    }
    let tl_lost = tl.pending();
    if tl_lost > 0 {
        sys::say(&format!(
            "fuzz: LOST: {tl_lost} asynchronous threadlets never finished (tid {})",
            sys::gettid()
        ));
        slot.add(C::Lost, tl_lost as u64);
    }
    lost + tl_lost
}

/// Interrupt every fuzzing thread now and then (waits, cached syslets).
fn ticker(stop: &AtomicBool) {
    let pid = sys::getpid();
    while !stop.load(Ordering::Relaxed) {
        sys::sleep_us(100_000);
        for t in &TIDS {
            let tid = t.load(Ordering::Relaxed);
            if tid > 0 {
                sys::tgkill(pid, tid, libc::SIGUSR2);
            }
        }
    }
}

/// async_wait() on other threads' rings, with odd arguments too.
fn waiter(seed: u64, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let reg = &REG[rng.below(16) as usize];
        let k = rng.below(3) as usize;
        let ahu = reg.rings[k].0.load(Ordering::Relaxed);
        let slots = reg.rings[k].1.load(Ordering::Relaxed) as u64;
        if ahu == 0 {
            sys::sleep_us(10_000);
            continue;
        }
        let min = rng.pick(&[0, 1, 1, slots, slots + 1]);
        let idx = if rng.chance(100) {
            slots
        } else {
            rng.below(slots)
        };
        // SAFETY: async_wait reads the ring; it never writes user memory.
        unsafe { sys::call(502, &[min, idx, ahu as u64]) };
        sys::sleep_us(rng.below(2000));
    }
}

/// The in-process racer.
fn racer(seed: u64, slot: &'static Slot, fx: &'static Fixtures, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    let pid = sys::getpid();
    let mut exits = 0;
    while !stop.load(Ordering::Relaxed) {
        sys::sleep_us(rng.range(500, 10_000));
        let x = rng.below(100);
        slot.add(C::Races, 1);
        if x < 30 {
            let tid = TIDS[rng.below(16) as usize].load(Ordering::Relaxed);
            let sig = rng.pick(&[10, 12, 14, 34, 35, 40, 17, 23, 28]);
            if tid > 0 {
                sys::tgkill(pid, tid, sig);
                slot.add(C::Signals, 1);
            }
        } else if x < 40 {
            // SAFETY: a handled signal to our own process.
            unsafe { libc::kill(pid, rng.pick(&[10, 12, 14, 29, 34])) };
            slot.add(C::Signals, 1);
        } else if x < 60 {
            let reg = &REG[rng.below(opts_threads(slot)) as usize];
            if fuzzer::race_slab(reg, &mut rng) {
                slot.add(C::AtomsRaced, 1);
            }
        } else if x < 64 {
            let tid = TIDS[rng.below(16) as usize].load(Ordering::Relaxed);
            let mask: u64 = rng.pick(&[1, 2, 3]);
            // SAFETY: a valid 8-byte mask.
            unsafe {
                sys::call(
                    libc::SYS_sched_setaffinity,
                    &[tid.max(0) as u64, 8, &mask as *const u64 as u64],
                )
            };
        } else if x < 68 {
            prlimit_race(&mut rng);
        } else if x < 80 {
            child_race(&mut rng, slot, fx);
        } else if x < 84 {
            races::traced_race(&mut rng, slot, fx);
        } else if x < 92 {
            clone3_race(&mut rng, slot);
        } else if exits < 64 {
            exits += 1;
            exiting_thread(rng.next(), slot, fx);
        }
    }
}

fn opts_threads(slot: &Slot) -> u64 {
    slot.threads
        .iter()
        .filter(|t| t.tid.load(Ordering::Relaxed) != 0)
        .count()
        .max(1) as u64
}

fn prlimit_race(rng: &mut Rng) {
    let res = rng.pick(&[
        libc::RLIMIT_NOFILE,
        libc::RLIMIT_SIGPENDING,
        libc::RLIMIT_FSIZE,
        libc::RLIMIT_MEMLOCK,
    ]);
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit structures; the old limit is restored.
    unsafe {
        if libc::getrlimit(res, &mut old) != 0 {
            return;
        }
        let low = libc::rlimit {
            rlim_cur: rng.pick(&[0, 16, 300, 1 << 20]).min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        libc::setrlimit(res, &low);
        sys::sleep_us(rng.below(20_000));
        libc::setrlimit(res, &old);
    }
}

/// A thread that submits a loose syslet and leaves with exit() while it
/// may still be in flight.
fn exiting_thread(seed: u64, slot: &'static Slot, fx: &'static Fixtures) {
    let b = std::thread::Builder::new().stack_size(256 << 10);
    let _ = b.spawn(move || {
        let Some(mut f) = Fuzzer::new(seed, fx, slot, None, None, Mode { wild: false }, &TIDS)
        else {
            return;
        };
        for _ in 0..4 {
            f.step();
        }
        slot.add(C::ThreadExits, 1);
        // SAFETY: leave this thread only (its memory is leaked on purpose;
        // the kernel clears its TID word, so nothing waits for it).
        unsafe { sys::call(libc::SYS_exit, &[0]) };
    });
}

/// Which child a racer forks.
#[derive(Clone, Copy, Debug)]
enum Child {
    Plain,
    Drop,
    Seccomp,
    Unshare,
    Exec,
    ExitGroup,
    Wild,
    Vfork,
    Namespaces,
    Pids,
    Hog,
}

const ALL_CHILDREN: [Child; 11] = [
    Child::Plain,
    Child::Drop,
    Child::Seccomp,
    Child::Unshare,
    Child::Exec,
    Child::ExitGroup,
    Child::Wild,
    Child::Vfork,
    Child::Namespaces,
    Child::Pids,
    Child::Hog,
];

fn child_race(rng: &mut Rng, slot: &'static Slot, fx: &'static Fixtures) {
    let mut kind = rng.pick(&ALL_CHILDREN);
    // An OOM kill costs the whole guest seconds of page clearing: one
    // child in about 60, not 11.
    if matches!(kind, Child::Hog) && !rng.chance(180) {
        kind = Child::Plain;
    }
    // FUZZ_CHILD=Name (guest environment): every child is of that kind.
    static FORCED: std::sync::OnceLock<Option<Child>> = std::sync::OnceLock::new();
    if let Some(k) = *FORCED.get_or_init(|| {
        let want = std::env::var("FUZZ_CHILD").ok()?;
        ALL_CHILDREN
            .iter()
            .copied()
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(&want))
    }) {
        kind = k;
    }
    let seed = rng.next();
    // SAFETY: fork of a multi-threaded process: the child runs only this
    // thread; glibc resets malloc's locks in the child, and the child ends
    // with _exit (or is killed).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return;
    }
    if child == 0 {
        let code = child_main(kind, seed, slot, fx);
        // SAFETY: leave the child without the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    slot.add(C::Children, 1);
    let hog = matches!(kind, Child::Hog);
    let deadline = sys::now_ns() + if hog { 20_000_000_000 } else { 3_000_000_000 };
    let kill_at = sys::now_ns() + rng.below(600) * 1_000_000;
    let mut stopped = false;
    let mut killed = false;
    let (mut killed_at, mut slow) = (0, false);
    loop {
        let mut st = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(child, &mut st, libc::WNOHANG | libc::__WALL) };
        if r == child
            && hog
            && !killed
            && libc::WIFSIGNALED(st)
            && libc::WTERMSIG(st) == libc::SIGKILL
        {
            slot.add(C::OomKills, 1);
        }
        if r == child || r < 0 {
            break;
        }
        let now = sys::now_ns();
        // SAFETY: signals to our own child.
        unsafe {
            if killed_at != 0 {
                // Killed: wait for the end; a process that outlives its
                // SIGKILL by 20 s is reported (once) with its tasks.
                // A hog killed at its deadline frees its memory in its
                // own exit (the OOM reaper does it for a victim): its
                // thread was seen running 20 s after the kill on the
                // KCSAN kernel.  Three times the time for it.
                let limit = if hog {
                    3 * races::SLOW_DEATH_NS
                } else {
                    races::SLOW_DEATH_NS
                };
                if !slow && now > killed_at + limit {
                    slow = true;
                    slot.add(C::SlowDeaths, 1);
                    races::print_tasks(
                        child,
                        &format!(
                            "SLOW DEATH ({kind:?} child, {} s after SIGKILL)",
                            limit / 1_000_000_000
                        ),
                    );
                }
            } else if now > deadline || (!hog && kill_at < now && rng.chance(200)) {
                libc::kill(child, libc::SIGKILL);
                killed = true;
                killed_at = now;
                slot.add(C::Kills, 1);
            } else if rng.chance(100) {
                libc::kill(
                    child,
                    if stopped {
                        libc::SIGCONT
                    } else {
                        libc::SIGSTOP
                    },
                );
                stopped = !stopped;
                slot.add(C::Stops, 1);
            } else if rng.chance(100) {
                libc::kill(child, libc::SIGUSR1);
                slot.add(C::Signals, 1);
            }
        }
        sys::sleep_us(2000);
    }
    if matches!(kind, Child::Pids) {
        // Empty now that the child is reaped.
        let _ = std::fs::remove_dir(races::pids_cgroup(child));
    }
}

/// Fuzz `ops` operations on this thread, then reap what it submitted.
pub fn child_fuzz(seed: u64, slot: &'static Slot, fx: &'static Fixtures, wild: bool, ops: u64) {
    if let Some(mut f) = Fuzzer::new(seed, fx, slot, None, None, Mode { wild }, &TIDS) {
        for _ in 0..ops {
            f.step();
        }
        f.reap_all();
    }
}

/// In a forked child: forget the parent's thread IDs (signals aimed at
/// them would hit the worker, or whatever task reuses the ID) and list
/// this thread's own.
pub fn forget_parent_tids() {
    for t in &TIDS {
        t.store(0, Ordering::Relaxed);
    }
    TIDS[0].store(sys::gettid(), Ordering::Relaxed);
}

fn child_main(kind: Child, seed: u64, slot: &'static Slot, fx: &'static Fixtures) -> i32 {
    let mut rng = Rng::new(seed);
    forget_parent_tids();
    match kind {
        Child::Plain => child_fuzz(seed, slot, fx, false, 200),
        Child::Wild => child_fuzz(seed, slot, fx, true, 400),
        Child::Drop => {
            let n = rng.pick(&[1u64, 2, 4, 8]);
            // SAFETY: plain credential and limit calls on this process.
            unsafe {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                libc::setrlimit(libc::RLIMIT_NPROC, &lim);
                sys::call(libc::SYS_setresgid, &[1000, 1000, 1000]);
                sys::call(libc::SYS_setresuid, &[1000, 1000, 1000]);
            }
            child_fuzz(seed, slot, fx, false, 200);
        }
        Child::Seccomp => {
            let t = std::thread::spawn(move || child_fuzz(seed ^ 1, slot, fx, false, 300));
            sys::sleep_us(rng.below(20_000));
            let r = seccomp_tsync();
            if r == 0 {
                check_seccomp_atom(slot);
            }
            child_fuzz(seed, slot, fx, false, 100);
            let _ = t.join();
        }
        Child::Unshare => {
            let t = std::thread::spawn(move || child_fuzz(seed ^ 2, slot, fx, false, 300));
            // SAFETY: unshare of this thread's tables.
            unsafe { libc::unshare(libc::CLONE_FILES | libc::CLONE_FS) };
            child_fuzz(seed, slot, fx, false, 200);
            let _ = t.join();
        }
        Child::Exec => {
            let _t = std::thread::spawn(move || child_fuzz(seed ^ 3, slot, fx, false, 1000));
            sys::sleep_us(rng.below(30_000));
            slot.add(C::Execs, 1);
            let exe = CString::new("/proc/self/exe").expect("no NUL");
            let a0 = CString::new("syslet-fuzz").expect("no NUL");
            let a1 = CString::new("--exec-child").expect("no NUL");
            let a2 = CString::new(seed.to_string()).expect("no NUL");
            let argv = [a0.as_ptr(), a1.as_ptr(), a2.as_ptr(), std::ptr::null()];
            let envp: [*const libc::c_char; 1] = [std::ptr::null()];
            // SAFETY: NUL-terminated strings and arrays.
            unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            return 3;
        }
        Child::Vfork => races::vfork_child(seed, slot, fx),
        Child::Namespaces => races::ns_child(seed, slot, fx),
        Child::Pids => races::pids_child(seed, slot, fx),
        Child::Hog => races::hog_child(seed, slot, fx),
        Child::ExitGroup => {
            let _t = std::thread::spawn(move || child_fuzz(seed ^ 4, slot, fx, false, 1000));
            child_fuzz(seed, slot, fx, false, rng.below(100));
            // SAFETY: ends this child process.
            unsafe { sys::call(libc::SYS_exit_group, &[0]) };
        }
    }
    0
}

/// Install a filter that fails getppid with EPERM, on all threads (TSYNC).
fn seccomp_tsync() -> i64 {
    // BPF: load nr; if nr == getppid return ERRNO(EPERM); return ALLOW.
    let prog = [
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: libc::SYS_getppid as u32,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x0005_0000 | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut _,
    };
    // SAFETY: a valid filter program; it only affects this process.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        sys::call(libc::SYS_seccomp, &[1, 1, &fprog as *const _ as u64])
    }
}

/// After the filter: getppid in an atom must give -EPERM (v3-abi B.9).
fn check_seccomp_atom(slot: &Slot) {
    // SAFETY: a local atom, ring and result cell that outlive the call
    // (SYSLET_SYNC; if it went async anyway we wait for the completion).
    unsafe {
        let mut ring = [0usize; 4];
        let mut head: syslet_sys::async_head_user = std::mem::zeroed();
        head.completion_ring = ring.as_mut_ptr().cast();
        head.ring_size_bytes = 32;
        let mut ret: i64 = 0x5a5a;
        let mut a: syslet_sys::syslet_uatom = std::mem::zeroed();
        a.nr = libc::SYS_getppid as u64;
        a.flags = 0x02;
        a.ret_ptr = &mut ret;
        let r = sys::call(500, &[&a as *const _ as u64, &mut head as *mut _ as u64]);
        if r == 0 {
            while std::ptr::read_volatile(&ring[0]) == 0 {
                sys::call(502, &[1, 0, &head as *const _ as u64]);
            }
        }
        let ret = std::ptr::read_volatile(&ret);
        if ret != -i64::from(libc::EPERM) && ret != -4 {
            slot.add(C::Wrong, 1);
            sys::say(&format!(
                "fuzz: WRONG: getppid atom under a seccomp filter gave {ret}, not -EPERM"
            ));
        }
    }
}

/// clone3 with odd flags; a child that is made runs one syslet and leaves.
fn clone3_race(rng: &mut Rng, slot: &Slot) {
    let flags_pool: [u64; 13] = [
        libc::CLONE_PIDFD as u64,
        0x1_0000_0000, // CLONE_CLEAR_SIGHAND
        libc::CLONE_PARENT as u64,
        libc::CLONE_NEWNS as u64,
        libc::CLONE_NEWUTS as u64,
        libc::CLONE_NEWIPC as u64,
        libc::CLONE_NEWPID as u64,
        libc::CLONE_FILES as u64,
        libc::CLONE_FS as u64,
        libc::CLONE_SYSVSEM as u64,
        libc::CLONE_IO as u64,
        libc::CLONE_SIGHAND as u64,
        libc::CLONE_THREAD as u64,
    ];
    let mut flags = 0;
    for f in flags_pool {
        if rng.chance(150) {
            flags |= f;
        }
    }
    if rng.chance(30) {
        flags |= 0x2_0000_0000; // CLONE_INTO_CGROUP with a bad fd
    }
    let mut pidfd: i32 = -1;
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal,
    // stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let args: [u64; 11] = [
        flags,
        &mut pidfd as *mut i32 as u64,
        0,
        0,
        rng.pick(&[0, libc::SIGCHLD as u64, 10, 65]),
        0,
        0,
        0,
        0,
        0,
        rng.pick(&[u32::MAX as u64, 999]),
    ];
    // SAFETY: without CLONE_VM the child has its own copy of memory; it
    // only makes raw system calls and leaves with _exit.
    let r = unsafe { sys::call(libc::SYS_clone3, &[args.as_ptr() as u64, 88]) };
    if r == 0 {
        // The child.
        // SAFETY: raw calls only, then exit_group.
        unsafe {
            let mut ret: i64 = 0;
            let mut ring = [0usize; 2];
            let mut head: syslet_sys::async_head_user = std::mem::zeroed();
            head.completion_ring = ring.as_mut_ptr().cast();
            head.ring_size_bytes = 16;
            let mut a: syslet_sys::syslet_uatom = std::mem::zeroed();
            a.nr = libc::SYS_getpid as u64;
            a.ret_ptr = &mut ret;
            sys::call(500, &[&a as *const _ as u64, &mut head as *mut _ as u64]);
            sys::call(libc::SYS_exit_group, &[0]);
        }
    }
    slot.add(C::Races, 1);
    if r > 0 {
        slot.add(C::Children, 1);
        if flags & libc::CLONE_PARENT as u64 == 0 {
            let deadline = sys::now_ns() + 2_000_000_000;
            loop {
                let mut st = 0;
                // SAFETY: our own child.
                let w = unsafe { libc::waitpid(r as i32, &mut st, libc::WNOHANG | libc::__WALL) };
                if w != 0 || sys::now_ns() > deadline {
                    break;
                }
                sys::sleep_us(1000);
            }
        }
        if pidfd >= 0 && flags & libc::CLONE_PIDFD as u64 != 0 {
            // SAFETY: the pidfd clone3 gave us.
            unsafe { libc::close(pidfd) };
        }
    }
}

/// `--exec-child SEED`: what a racer's execve runs: a short single-threaded
/// fuzz in the new program image, then exit.
pub fn exec_child(seed: u64) -> i32 {
    sys::hide_stdio(169);
    let mut rng = Rng::new(seed);
    install_handlers(&mut rng);
    // A private counter area: the supervisor's mapping did not survive exec.
    let shared = crate::shared::Shared::map();
    let fx = Fixtures::new(sys::getpid());
    let stop = Arc::new(AtomicBool::new(false));
    let waker = {
        let stop = stop.clone();
        std::thread::spawn(move || fixtures::waker_loop(fx, &stop))
    };
    child_fuzz(seed, &shared.slots[0], fx, false, 100);
    stop.store(true, Ordering::Relaxed);
    let _ = waker.join();
    let _ = std::fs::remove_dir_all(&fx.dir);
    0
}
