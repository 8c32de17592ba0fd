//! State shared by the supervisor and its worker processes: one anonymous
//! `MAP_SHARED` mapping made before the first fork.  Counters, per-thread
//! progress (for the watchdog) and per-thread logs of the last operations
//! (for the hang and crash reports).

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Most worker processes at once.
pub const MAX_WORKERS: usize = 16;
/// Most logged threads per worker.
pub const MAX_THREADS: usize = 24;
/// Entries in each thread's operation log.
pub const LOG_LEN: usize = 32;

/// The counters, by index into [`Slot::counters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum C {
    /// Syslets submitted with async_exec.
    Syslets,
    /// Atoms in them.
    Atoms,
    /// Atoms that ran (their result cell changed), where it could be seen.
    AtomsRun,
    /// Syslets that completed in the caller.
    Cached,
    /// Syslets that went asynchronous (handoffs or SYSLET_ASYNC queueing).
    Async,
    /// Completions reaped from the strict rings.
    Completions,
    /// Async syslets of the strict rings never completed: a bug.
    Lost,
    /// Completions nobody was owed, or twice: a bug.
    Unexpected,
    /// async_exec errors (-EFAULT, -EINVAL, ...).
    ExecErrors,
    /// Loose syslets (NO_COMPLETE, raced rings) that went asynchronous.
    LooseAsync,
    /// Completions on loose rings.
    LooseCompletions,
    /// A refused system call ran in an atom, or another checked result
    /// was wrong: a bug.
    Wrong,
    /// Threadlets started.
    Threadlets,
    /// Threadlets that went asynchronous.
    ThreadletsAsync,
    /// Asynchronous threadlets that finished.
    ThreadletsDone,
    /// Race operations tried (all kinds).
    Races,
    /// Signals sent.
    Signals,
    /// Child processes (fork, clone3) started by racers.
    Children,
    /// execve of the fuzzer in a child.
    Execs,
    /// Worker processes SIGKILLed by the supervisor.
    Kills,
    /// SIGSTOP/SIGCONT pairs.
    Stops,
    /// Strict syslets in flight in a process that was killed.
    KilledInflight,
    /// Rings munmapped or mprotected with syslets in flight.
    RingsRaced,
    /// Slabs of atoms munmapped or mprotected while in flight.
    AtomsRaced,
    /// async_wait calls.
    Waits,
    /// Syslets submitted with a deliberately bad ring.
    BadRings,
    /// Threads that exited with a syslet in flight.
    ThreadExits,
    /// Children started with vfork (posix_spawn) beside syslets.
    Vforks,
    /// unshare() and setns() calls that changed a namespace.
    Setns,
    /// ptrace stops of traced fuzzing threads handled by a racer.
    TraceStops,
    /// Children in a cgroup with a pids limit.
    Cgroups,
    /// Memory-hog children the OOM killer took.
    OomKills,
    /// Children still alive 20 s after their SIGKILL (a seed with one fails).
    SlowDeaths,
    /// Traced children still alive 20 s after their SIGKILL: a thread in
    /// ptrace_stop inside async_exec (open, see fuzz/README.md; counted,
    /// printed with what the tracer knew, not failed).
    TracedSlowDeaths,
    /// Number of counters.
    N,
}

/// Names printed in the summary, in [`C`] order.
pub const NAMES: [&str; C::N as usize] = [
    "syslets",
    "atoms",
    "atoms_run",
    "cached",
    "async",
    "completions",
    "lost",
    "unexpected",
    "exec_errors",
    "loose_async",
    "loose_completions",
    "wrong",
    "threadlets",
    "threadlets_async",
    "threadlets_done",
    "races",
    "signals",
    "children",
    "execs",
    "kills",
    "stops",
    "killed_inflight",
    "rings_raced",
    "atoms_raced",
    "waits",
    "bad_rings",
    "thread_exits",
    "vforks",
    "setns",
    "trace_stops",
    "cgroups",
    "oom_kills",
    "slow_deaths",
    "traced_slow_deaths",
];

/// One thread's log and progress.
#[repr(C)]
pub struct ThreadLog {
    /// Its TID (0: unused).
    pub tid: AtomicI32,
    /// Operations done (the watchdog looks at this).
    pub progress: AtomicU64,
    /// Index of the next log entry.
    pub next: AtomicU64,
    /// Log entries: `[what, a, b, c]`.
    pub ops: [[AtomicU64; 4]; LOG_LEN],
}

/// One worker process's slot.
#[repr(C)]
pub struct Slot {
    /// Its pid (0: none).
    pub pid: AtomicI32,
    /// Its generation (how many workers ran in this slot before).
    pub generation: AtomicU32,
    /// Set by the supervisor: stop submitting and drain.
    pub stop: AtomicU32,
    /// Strict async syslets in flight now.
    pub inflight: AtomicU64,
    /// Set by the worker once its drain is done (1 ok, 2 lost).
    pub done: AtomicU32,
    /// Counters, by [`C`].
    pub counters: [AtomicU64; C::N as usize],
    /// Thread logs.
    pub threads: [ThreadLog; MAX_THREADS],
}

/// The whole shared area.
#[repr(C)]
pub struct Shared {
    /// Totals of workers that are gone (the supervisor adds a slot's
    /// counters here before it reuses the slot).
    pub totals: [AtomicU64; C::N as usize],
    /// The worker slots.
    pub slots: [Slot; MAX_WORKERS],
}

impl Shared {
    /// Map a zeroed shared area (all atomics start at 0).
    pub fn map() -> &'static Shared {
        let len = std::mem::size_of::<Shared>();
        // SAFETY: a fresh anonymous shared mapping; all-zero bytes are a
        // valid `Shared` (atomics only).  It is never unmapped.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "mmap of the shared area failed");
            &*p.cast::<Shared>()
        }
    }

    /// The sum of counter `c` over the totals and all slots.
    pub fn total(&self, c: C) -> u64 {
        let i = c as usize;
        self.totals[i].load(Ordering::Relaxed)
            + self
                .slots
                .iter()
                .map(|s| s.counters[i].load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

impl Slot {
    /// Add `n` to counter `c`.
    pub fn add(&self, c: C, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Move this slot's counters into `totals` and clear the slot for the
    /// next generation.
    pub fn retire(&self, totals: &[AtomicU64; C::N as usize]) {
        for (t, c) in totals.iter().zip(&self.counters) {
            t.fetch_add(c.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        for t in &self.threads {
            t.tid.store(0, Ordering::Relaxed);
            t.next.store(0, Ordering::Relaxed);
        }
        self.inflight.store(0, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.stop.store(0, Ordering::Relaxed);
    }
}

/// Operation codes of the thread logs.
pub mod op {
    /// async_exec: a = first nr | atoms << 16 | ring << 24, b = serial, c = result.
    pub const EXEC: u64 = 1;
    /// a completion: a = slab, b = serial.
    pub const COMPLETE: u64 = 2;
    /// a threadlet: a = kind, b = result.
    pub const THREADLET: u64 = 3;
    /// a race: a = kind, b = detail, c = result.
    pub const RACE: u64 = 4;
    /// async_wait: a = ring, b = min, c = result.
    pub const WAIT: u64 = 5;
    /// a loose-ring operation: a = kind.
    pub const LOOSE: u64 = 6;
    /// drain at the end: a = outstanding.
    pub const DRAIN: u64 = 7;

    /// The name of an operation code.
    pub fn name(what: u64) -> &'static str {
        match what {
            EXEC => "exec",
            COMPLETE => "complete",
            THREADLET => "threadlet",
            RACE => "race",
            WAIT => "wait",
            LOOSE => "loose",
            DRAIN => "drain",
            _ => "?",
        }
    }
}

impl ThreadLog {
    /// Append an entry and count progress.
    pub fn log(&self, what: u64, a: u64, b: u64, c: u64) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % LOG_LEN;
        let e = &self.ops[i];
        e[0].store(what, Ordering::Relaxed);
        e[1].store(a, Ordering::Relaxed);
        e[2].store(b, Ordering::Relaxed);
        e[3].store(c, Ordering::Relaxed);
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// The last `n` entries, oldest first, as printable lines.
    pub fn last(&self, n: usize) -> Vec<String> {
        let next = self.next.load(Ordering::Relaxed) as usize;
        let n = n.min(next).min(LOG_LEN);
        (next - n..next)
            .map(|k| {
                let e = &self.ops[k % LOG_LEN];
                let what = e[0].load(Ordering::Relaxed);
                format!(
                    "#{k} {} a={:#x} b={:#x} c={}",
                    op::name(what),
                    e[1].load(Ordering::Relaxed),
                    e[2].load(Ordering::Relaxed),
                    e[3].load(Ordering::Relaxed) as i64
                )
            })
            .collect()
    }
}
