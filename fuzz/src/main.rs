//! `syslet-fuzz`: random syslets and threadlets raced against what a
//! process can do (issue 13).  See `fuzz/README.md`.
//!
//! The supervisor (this process) forks `--procs` worker processes, each
//! with `--threads` fuzzing threads and its helpers, and races them from
//! outside (SIGSTOP/SIGCONT, SIGKILL and respawn, signals to the process
//! and its threads, affinity, limits).  A watchdog reports a thread that
//! makes no progress; the workers account for every asynchronous syslet
//! of their strict rings.  Everything derives from `--seed`.

mod fixtures;
mod fuzzer;
mod races;
mod rng;
mod shared;
mod sys;
mod table;
mod threadlets;
mod worker;

use std::sync::atomic::Ordering;

use rng::{derive, Rng};
use shared::{Shared, C, NAMES};

struct Cli {
    seeds: Vec<u64>,
    duration: u64,
    threads: usize,
    procs: usize,
    ops: u64,
    hang: u64,
    races: bool,
    tap: bool,
    kcsan_known: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: syslet-fuzz [--seed S[,S...]] [--duration SECS] [--threads N] [--procs N] [--ops N]\n\
         \x20                  [--hang SECS] [--no-races] [--tap] [--list] [--kcsan-known FILE]\n\
         A seed of 0 or none: one from the clock (printed).  --tap: KTAP output, one result per seed."
    );
    std::process::exit(2)
}

fn parse() -> Cli {
    let mut c = Cli {
        seeds: Vec::new(),
        duration: 60,
        threads: 3,
        procs: 2,
        ops: 0,
        hang: 90,
        races: true,
        tap: false,
        kcsan_known: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        let num = |s: String| -> u64 {
            let s = s.trim();
            s.strip_prefix("0x")
                .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--seed" => c.seeds = val().split(',').map(|s| num(s.to_owned())).collect(),
            "--duration" => c.duration = num(val()),
            "--threads" => c.threads = num(val()).clamp(1, 16) as usize,
            "--procs" => c.procs = num(val()).clamp(1, shared::MAX_WORKERS as u64) as usize,
            "--ops" => c.ops = num(val()),
            "--hang" => c.hang = num(val()).max(5),
            "--no-races" => c.races = false,
            "--tap" => c.tap = true,
            "--kcsan-known" => c.kcsan_known = Some(val()),
            "--list" => {
                list();
                std::process::exit(0)
            }
            "--exec-child" => std::process::exit(worker::exec_child(num(val()))),
            _ => usage(),
        }
    }
    if c.seeds.is_empty() || c.seeds == [0] {
        c.seeds = vec![sys::now_ns() ^ u64::from(std::process::id()) << 32];
    }
    c
}

/// `--kcsan-known FILE`: the KCSAN reports the unpatched kernel gives
/// too (fuzz/kcsan-known.txt says where), one title per line after
/// "BUG: KCSAN: " (`#` comments): a report with one of these titles (see
/// [`known_title`]) is counted apart, not as a splat.  The harness's judge.sh reads the same
/// file (JUDGE_KNOWN).
fn kcsan_known(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        println!("fuzz: FAIL cannot read {path}: {e}");
        std::process::exit(1)
    });
    let known: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    for t in &known {
        println!("fuzz: kcsan: known, not a splat: BUG: KCSAN: {t}");
    }
    known
}

fn list() {
    println!("# {} entries in the table:", table::TABLE.len());
    for s in table::TABLE {
        println!(
            "{:<24} {:>10} args={} weight={}{}",
            s.name,
            s.nr,
            s.args.len(),
            s.weight,
            if s.refused { " refused" } else { "" }
        );
    }
    println!("# excluded:");
    for (what, why) in table::EXCLUDED {
        println!("{what}: {why}");
    }
}

/// Worker state in the supervisor.
struct W {
    pid: i32,
    started: u64,
    kill_at: u64,
    stopped_until: u64,
    last_progress: Vec<(u64, u64)>,
    generation: u32,
}

enum Verdict {
    Pass,
    Lost,
    Hang(String),
    Crash(String),
}

fn spawn(sh: &'static Shared, k: usize, seed: u64, gen: u32, cli: &Cli, rng: &mut Rng) -> W {
    let slot = &sh.slots[k];
    slot.generation.store(gen, Ordering::Relaxed);
    let wseed = derive(seed, &[k as u64, u64::from(gen)]);
    let opts = worker::Opts {
        threads: cli.threads,
        races: cli.races,
        ops: cli.ops,
        drain_secs: cli.hang / 2,
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: the supervisor is single-threaded; the child runs the worker
    // and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = worker::worker_main(slot, wseed, opts);
        // SAFETY: leave without atexit handlers.
        unsafe { libc::_exit(code) };
    }
    slot.pid.store(pid, Ordering::Relaxed);
    let now = sys::now_ns();
    // Some generations are killed at a random time (if races are on).
    let kill_at = if cli.races && rng.chance(500) {
        now + rng.range(500, 8000) * 1_000_000
    } else {
        u64::MAX
    };
    W {
        pid,
        started: now,
        kill_at,
        stopped_until: 0,
        last_progress: vec![(0, now); shared::MAX_THREADS],
        generation: gen,
    }
}

fn report_threads(sh: &Shared, k: usize) {
    let slot = &sh.slots[k];
    for (t, log) in slot.threads.iter().enumerate() {
        let tid = log.tid.load(Ordering::Relaxed);
        if tid == 0 {
            continue;
        }
        println!("fuzz:   worker {k} thread {t} (tid {tid}), last operations:");
        for l in log.last(20) {
            println!("fuzz:     {l}");
        }
    }
}

/// The kernel log, read as the fuzzer runs (a splat printed early is not
/// lost under the stack dumps of a later OOM kill).
struct Kmsg {
    fd: i32,
    /// Inside the stack dump of an allocation failure.
    alloc_dump: bool,
    /// Splats seen since the last [`Kmsg::take`].
    splats: u64,
    /// KCSAN titles the unpatched kernel gives too (`--kcsan-known`).
    known: Vec<String>,
    /// Known KCSAN reports seen.
    known_seen: u64,
}

/// Kernel messages that are a splat (the harness's judge.sh has the full
/// list; these are the ones a fuzzer run can cause).
const SPLATS: [&str; 11] = [
    "BUG:",
    "WARNING:",
    "Oops",
    "KASAN",
    "UBSAN",
    "blocked for more than",
    "possible circular",
    "possible recursive",
    "inconsistent lock state",
    "refcount_t",
    "detected stall",
];

/// Whether KCSAN report title `t` is the known title `k` (one ending in
/// `+`, a race at unknown origin, names a function at any offset).
fn known_title(t: &str, k: &str) -> bool {
    if k.ends_with('+') {
        t.starts_with(k)
    } else {
        t == k
    }
}

impl Kmsg {
    /// Open the log at its end (what came before is not this run's).
    fn open(known: Vec<String>) -> Kmsg {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c"/dev/kmsg".as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
        if fd >= 0 {
            // SAFETY: our descriptor; /dev/kmsg seeks to its end.
            unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
        }
        Kmsg {
            fd,
            alloc_dump: false,
            splats: 0,
            known,
            known_seen: 0,
        }
    }

    /// Read what the kernel logged since the last call.
    fn drain(&mut self) {
        if self.fd < 0 {
            return;
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is valid for its length.
            let r = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EPIPE) {
                    // Overwritten before we read it: the console has it.
                    println!("fuzz: kernel: log records lost (see the console)");
                    continue;
                }
                break;
            }
            if r == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf[..r as usize]);
            let msg = line.split_once(';').map_or(&*line, |(_, m)| m);
            // A spare made for a process the OOM killer chose fails its
            // allocation: patch 0076 makes none.  Other allocation
            // failures under the hogs are the kernel's own business.
            if msg.contains("page allocation failure") || msg.contains("vmalloc error") {
                self.alloc_dump = true;
            } else if self.alloc_dump && msg.contains("</TASK>") {
                self.alloc_dump = false;
            } else if self.alloc_dump && msg.contains("syslet_create_spare") {
                self.alloc_dump = false;
                self.splats += 1;
                println!("fuzz: kernel: allocation failure in {}", msg.trim());
            }
            let title = msg.trim().strip_prefix("BUG: KCSAN: ");
            if title.is_some_and(|t| self.known.iter().any(|k| known_title(t, k))) {
                self.known_seen += 1;
                println!("fuzz: kernel: known race (unpatched too): {}", msg.trim());
            } else if SPLATS.iter().any(|p| msg.contains(p)) {
                self.splats += 1;
                println!("fuzz: kernel: {}", msg.trim_end());
            }
        }
    }

    /// The splats counted since the last call.
    fn take(&mut self) -> u64 {
        self.drain();
        std::mem::take(&mut self.splats)
    }
}

fn run_seed(seed: u64, cli: &Cli, sh: &'static Shared, kmsg: &mut Kmsg) -> Verdict {
    let mut rng = Rng::new(derive(seed, &[0x5eed]));
    let mut ws: Vec<Option<W>> = (0..cli.procs)
        .map(|k| Some(spawn(sh, k, seed, 0, cli, &mut rng)))
        .collect();
    let t0 = sys::now_ns();
    let end = t0 + cli.duration * 1_000_000_000;
    let hang_ns = cli.hang * 1_000_000_000;
    let mut stopping = false;
    let mut verdict = Verdict::Pass;
    let mut last_line = t0;
    loop {
        sys::sleep_us(20_000);
        kmsg.drain();
        let now = sys::now_ns();
        if !stopping && now >= end {
            stopping = true;
            for (k, w) in ws.iter().enumerate() {
                if let Some(w) = w {
                    sh.slots[k].stop.store(1, Ordering::Relaxed);
                    // SAFETY: continue our own child in case it is stopped.
                    unsafe { libc::kill(w.pid, libc::SIGCONT) };
                }
            }
        }
        // Reap.
        loop {
            let mut st = 0;
            // SAFETY: reaping our children (and orphans of CLONE_PARENT).
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL) };
            if pid <= 0 {
                break;
            }
            let Some(k) = ws
                .iter()
                .position(|w| w.as_ref().is_some_and(|w| w.pid == pid))
            else {
                continue;
            };
            let w = ws[k].take().expect("found above");
            let slot = &sh.slots[k];
            let killed_by_us =
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL && w.kill_at <= now;
            if killed_by_us {
                sh.totals[C::KilledInflight as usize]
                    .fetch_add(slot.inflight.load(Ordering::Relaxed), Ordering::Relaxed);
                sh.totals[C::Kills as usize].fetch_add(1, Ordering::Relaxed);
            } else if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 {
                // A clean end (after stop or --ops).
            } else if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 1 {
                println!("fuzz: worker {k} (pid {pid}, generation {}) lost completions or saw wrong results", w.generation);
                report_threads(sh, k);
                if matches!(verdict, Verdict::Pass) {
                    verdict = Verdict::Lost;
                }
            } else {
                let why = if libc::WIFSIGNALED(st) {
                    format!("killed by signal {}", libc::WTERMSIG(st))
                } else {
                    format!("exit status {}", libc::WEXITSTATUS(st))
                };
                println!(
                    "fuzz: CRASH: worker {k} (pid {pid}, generation {}) {why}",
                    w.generation
                );
                report_threads(sh, k);
                verdict = Verdict::Crash(why);
            }
            slot.retire(&sh.totals);
            slot.pid.store(0, Ordering::Relaxed);
            if !stopping && cli.ops == 0 {
                ws[k] = Some(spawn(sh, k, seed, w.generation + 1, cli, &mut rng));
            }
        }
        if ws.iter().all(Option::is_none) && (stopping || cli.ops > 0) {
            break;
        }
        if !matches!(verdict, Verdict::Pass | Verdict::Lost) {
            break;
        }
        // Races from outside and the watchdog.
        for (k, w) in ws.iter_mut().enumerate() {
            let Some(w) = w.as_mut() else { continue };
            let slot = &sh.slots[k];
            if !stopping && now >= w.kill_at {
                // SAFETY: our own child.
                unsafe { libc::kill(w.pid, libc::SIGKILL) };
                w.kill_at = 0;
                continue;
            }
            if w.stopped_until != 0 {
                if now >= w.stopped_until {
                    // SAFETY: our own child.
                    unsafe { libc::kill(w.pid, libc::SIGCONT) };
                    w.stopped_until = 0;
                    for p in &mut w.last_progress {
                        p.1 = now;
                    }
                }
                continue;
            }
            if cli.races && !stopping {
                outside_race(&mut rng, w, slot, now);
            }
            for (t, log) in slot.threads.iter().enumerate() {
                if log.tid.load(Ordering::Relaxed) == 0 {
                    w.last_progress[t].1 = now;
                    continue;
                }
                let p = log.progress.load(Ordering::Relaxed);
                if p != w.last_progress[t].0 {
                    w.last_progress[t] = (p, now);
                } else if now - w.last_progress[t].1 > hang_ns && now - w.started > hang_ns {
                    println!(
                        "fuzz: HANG: seed={seed} worker {k} (pid {}, generation {}) thread {t} made no progress for {} s",
                        w.pid, w.generation, cli.hang
                    );
                    report_threads(sh, k);
                    verdict = Verdict::Hang(format!("worker {k} thread {t}"));
                }
            }
        }
        if matches!(verdict, Verdict::Hang(_)) {
            break;
        }
        if now - last_line > 10_000_000_000 {
            last_line = now;
            println!(
                "fuzz: {} s: {}",
                (now - t0) / 1_000_000_000,
                counts(
                    sh,
                    &[
                        C::Syslets,
                        C::Async,
                        C::Completions,
                        C::Threadlets,
                        C::Races,
                        C::Lost
                    ]
                )
            );
        }
    }
    for (k, w) in ws.iter().enumerate() {
        if let Some(w) = w {
            // SAFETY: our own children.
            unsafe {
                libc::kill(w.pid, libc::SIGKILL);
                libc::waitpid(w.pid, std::ptr::null_mut(), libc::__WALL);
            }
            sh.slots[k].retire(&sh.totals);
        }
    }
    verdict
}

/// Signals, stops, kills, affinity and limits from the supervisor.
fn outside_race(rng: &mut Rng, w: &mut W, slot: &shared::Slot, now: u64) {
    if !rng.chance(100) {
        return;
    }
    slot.add(C::Races, 1);
    let tids: Vec<i32> = slot
        .threads
        .iter()
        .map(|l| l.tid.load(Ordering::Relaxed))
        .filter(|&t| t > 0)
        .collect();
    // SAFETY: signals and scheduling calls on our own child and its threads.
    unsafe {
        match rng.below(6) {
            0 => {
                libc::kill(w.pid, libc::SIGSTOP);
                w.stopped_until = now + rng.range(5, 200) * 1_000_000;
                slot.add(C::Stops, 1);
            }
            1 | 2 => {
                libc::kill(w.pid, rng.pick(&[10, 12, 14, 17, 28, 34, 40]));
                slot.add(C::Signals, 1);
            }
            3 => {
                if !tids.is_empty() {
                    let tid = rng.pick(&tids);
                    sys::tgkill(w.pid, tid, rng.pick(&[10, 12, 14, 35]));
                    slot.add(C::Signals, 1);
                }
            }
            4 => {
                if !tids.is_empty() {
                    let tid = rng.pick(&tids);
                    let mask: u64 = rng.pick(&[1, 2, 3]);
                    sys::call(
                        libc::SYS_sched_setaffinity,
                        &[tid as u64, 8, &mask as *const u64 as u64],
                    );
                }
            }
            _ => {
                let lim = libc::rlimit {
                    rlim_cur: rng.pick(&[64, 256, 4096]),
                    rlim_max: 4096,
                };
                libc::prlimit(w.pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut());
            }
        }
    }
}

fn counts(sh: &Shared, which: &[C]) -> String {
    which
        .iter()
        .map(|&c| format!("{}={}", NAMES[c as usize], sh.total(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let cli = parse();
    // Descriptors up to 4096 (fixtures live at 100..260).
    // SAFETY: a valid rlimit.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: 4096,
            rlim_max: 4096,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // Signals an atom can aim at the supervisor by accident: F_SETOWN
        // with a small pid and FIOASYNC send SIGIO (or the F_SETSIG
        // signal) to whatever process has that pid.  The workers install
        // their own handlers for these.
        for sig in [
            10, 12, 14, 23, 26, 27, 28, 29, 34, 35, 36, 37, 38, 39, 40, 64,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    if cli.tap {
        println!("KTAP version 1");
        println!("1..{}", cli.seeds.len());
    }
    let real = table::TABLE
        .iter()
        .filter(|s| !s.refused && s.nr < 500)
        .count();
    let mut failed = 0;
    let known = cli.kcsan_known.as_deref().map(kcsan_known);
    let mut kmsg = Kmsg::open(known.unwrap_or_default());
    if cli.races && !races::cgroup_setup() {
        println!("fuzz: no cgroup2 pids controller: pids children only fuzz");
    }
    for (i, &seed) in cli.seeds.iter().enumerate() {
        println!(
            "fuzz: seed={seed} duration={} threads={} procs={} ops={} races={} table={} ({} real system calls)",
            cli.duration,
            cli.threads,
            cli.procs,
            cli.ops,
            cli.races,
            table::TABLE.len(),
            real
        );
        let sh = Shared::map();
        let t0 = sys::now_ns();
        let verdict = run_seed(seed, &cli, sh, &mut kmsg);
        let sp = kmsg.take();
        let lost = sh.total(C::Lost);
        let bad = sh.total(C::Unexpected) + sh.total(C::Wrong);
        let slow = sh.total(C::SlowDeaths);
        let secs = (sys::now_ns() - t0) / 1_000_000_000;
        println!(
            "fuzz: seed={seed} secs={secs} syslets={} atoms={} threadlets={} async={} races={} lost={lost} {} splats={sp}",
            sh.total(C::Syslets),
            sh.total(C::Atoms),
            sh.total(C::Threadlets),
            sh.total(C::Async) + sh.total(C::LooseAsync) + sh.total(C::ThreadletsAsync),
            sh.total(C::Races),
            counts(sh, &[
                C::Cached, C::Async, C::Completions, C::AtomsRun, C::ExecErrors, C::LooseAsync,
                C::LooseCompletions, C::ThreadletsAsync, C::ThreadletsDone, C::Signals, C::Children,
                C::Execs, C::Kills, C::Stops, C::KilledInflight, C::RingsRaced, C::AtomsRaced,
                C::Waits, C::BadRings, C::ThreadExits, C::Vforks, C::Setns, C::TraceStops,
                C::Cgroups, C::OomKills, C::SlowDeaths, C::TracedSlowDeaths, C::Unexpected, C::Wrong,
            ])
        );
        if cli.kcsan_known.is_some() {
            println!(
                "fuzz: seed={seed} known_races={}",
                std::mem::take(&mut kmsg.known_seen)
            );
        }
        let why = match &verdict {
            Verdict::Pass if lost == 0 && bad == 0 && sp == 0 && slow == 0 => None,
            Verdict::Pass | Verdict::Lost => Some(format!(
                "lost={lost} unexpected/wrong={bad} splats={sp} slow_deaths={slow}"
            )),
            Verdict::Hang(w) => Some(format!("hang in {w}")),
            Verdict::Crash(w) => Some(format!("crash: {w}")),
        };
        match why {
            None => {
                println!("fuzz: PASS seed={seed}");
                if cli.tap {
                    println!("ok {} seed_{seed}", i + 1);
                }
            }
            Some(w) => {
                failed += 1;
                println!("fuzz: FAIL seed={seed}: {w} (replay: syslet-fuzz --seed {seed} --threads {} --procs {} --duration {})", cli.threads, cli.procs, cli.duration);
                if cli.tap {
                    println!("not ok {} seed_{seed} # {w}", i + 1);
                }
                if matches!(verdict, Verdict::Hang(_)) {
                    break;
                }
            }
        }
    }
    std::process::exit(i32::from(failed > 0));
}
