//! syslet-bench: syslets and threadlets side by side with sync I/O,
//! io_uring and a thread pool, in one boot of the patched kernel.
//!
//! Workloads (issue 5):
//!
//!  - `cached`: random 4 KiB `pread`s of a file in the page cache (tmpfs,
//!    which in 6.12 has no `FMODE_NOWAIT`: io_uring hands every read to an
//!    io-wq worker);
//!  - `cached-bdev`: the same from a null_blk device's page cache (read
//!    once before), which io_uring reads inline;
//!  - `direct`: random 4 KiB `O_DIRECT` reads of a memory-backed null_blk
//!    device that completes every request from a timer after
//!    `completion_nsec` (100 µs);
//!  - `buffered`: the same device read through the page cache, emptied
//!    before every run (`BLKFLSBUF` and `drop_caches`, readahead off): each
//!    read waits for the device, and io_uring has to punt it to a worker;
//!  - `scale`: 100, 1,000 and 10,000 reads in flight on a device with 1 ms
//!    latency (syslets, threadlets, io_uring): wall and CPU time per read,
//!    every read completed exactly once;
//!  - `handoff`: going asynchronous by itself (a read of an empty pipe
//!    until `Pending`) beside `pthread_create` + `pthread_join`.
//!
//! For each workload, depth and repetition every approach reads the same
//! random offsets, keeping up to `depth` reads in flight (`sync` is always
//! depth 1, `pool` is `depth` threads); every read is checked (length and
//! a per-block marker) and, where a run's offsets are distinct (all but
//! `cached`), counted exactly once.  Raw figures go to stdout as CSV lines starting
//! with `BENCH,` between `BENCH-CSV-BEGIN` and `BENCH-CSV-END` (the console
//! may interleave kernel messages); then a table of medians with their
//! spread, and the ratios the issue sets targets for.
//!
//! `--smoke` runs every workload briefly and prints KTAP (one result per
//! workload), so the test suite runs it; see `USAGE` for the options.

mod diag;
mod engines;
mod handoff;
mod nullb;
mod spares;
mod target;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use engines::{Approach, Ctx, Sample, MAX_DEPTH, MAX_OUTSTANDING};
use target::{Access, Tally, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Workload {
    CachedBdev,
    Cached,
    Direct,
    Buffered,
    Scale,
    Handoff,
}

impl Workload {
    const ALL: [Workload; 6] = [
        Workload::CachedBdev,
        Workload::Cached,
        Workload::Direct,
        Workload::Buffered,
        Workload::Scale,
        Workload::Handoff,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Cached => "cached",
            Workload::CachedBdev => "cached-bdev",
            Workload::Direct => "direct",
            Workload::Buffered => "buffered",
            Workload::Scale => "scale",
            Workload::Handoff => "handoff",
        }
    }

    fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }
}

#[derive(Debug)]
struct Opts {
    reps: usize,
    warmup: usize,
    depths: Vec<usize>,
    workloads: Vec<Workload>,
    approaches: Vec<Approach>,
    cached_ops: usize,
    direct_ops: usize,
    dir: PathBuf,
    completion_nsec: u64,
    scale: Vec<usize>,
    scale_ops: usize,
    scale_nsec: u64,
    handoffs: usize,
    /// Size of the null_blk devices in MiB (the tmpfs file is a quarter).
    size_mib: u64,
    ktap: bool,
    /// Run each approach of a workload in a process of its own.
    isolate: bool,
    /// This is such a process: print the CSV rows only.
    child: bool,
    diag: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            reps: 5,
            warmup: 1,
            depths: vec![1, 4, 16, 32, 64],
            workloads: Workload::ALL.to_vec(),
            approaches: Approach::ALL.to_vec(),
            cached_ops: 16_000,
            direct_ops: 2_048,
            dir: PathBuf::from("/tmp"),
            completion_nsec: 100_000,
            scale: vec![100, 1_000, 10_000],
            scale_ops: 10_000,
            scale_nsec: 1_000_000,
            handoffs: 200,
            size_mib: 64,
            ktap: false,
            isolate: true,
            child: false,
            diag: 0,
        }
    }
}

const USAGE: &str = "usage: syslet-bench [--smoke] [--ktap] [--reps N] [--warmup N]
       [--depths 1,4,16,32,64]
       [--workloads cached-bdev,cached,direct,buffered,scale,handoff]
       [--approaches sync,syslet,chain16,threadlet,io_uring,pool]
       [--cached-ops N] [--direct-ops N] [--dir DIR] [--completion-nsec N]
       [--scale 100,1000,10000] [--scale-ops N] [--scale-nsec N]
       [--handoffs N] [--size-mib N] [--no-isolate] [--diag N]";

fn list<T>(s: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|x| f(x.trim()).ok_or_else(|| format!("bad list item '{x}'")))
        .collect()
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} wants a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--smoke" => {
                o.reps = 1;
                o.warmup = 0;
                o.depths = vec![1, 16];
                o.cached_ops = 1_600;
                o.direct_ops = 320;
                o.scale = vec![10, 100];
                o.scale_ops = 400;
                o.handoffs = 20;
                o.size_mib = 8;
                o.ktap = true;
                // A smoke run: 100 threads for syslet-t10k (the children
                // of --no-isolate runs read it too)
                std::env::set_var(crate::handoff::MANY_THREADS_ENV, "100");
            }
            "--ktap" => o.ktap = true,
            "--no-isolate" => o.isolate = false,
            "--child" => o.child = true,
            "--scale" => {
                o.scale = list(&val()?, |x| {
                    x.parse().ok().filter(|d| (1..=MAX_OUTSTANDING).contains(d))
                })?
            }
            "--scale-ops" => o.scale_ops = num(val()?)?.max(1),
            "--scale-nsec" => o.scale_nsec = num(val()?)? as u64,
            "--handoffs" => o.handoffs = num(val()?)?.max(1),
            "--size-mib" => o.size_mib = (num(val()?)? as u64).max(4),
            "--reps" => o.reps = num(val()?)?.max(1),
            "--warmup" => o.warmup = num(val()?)?,
            "--depths" => {
                o.depths = list(&val()?, |x| {
                    x.parse().ok().filter(|d| (1..=MAX_DEPTH).contains(d))
                })?
            }
            "--workloads" => o.workloads = list(&val()?, Workload::parse)?,
            "--approaches" => o.approaches = list(&val()?, Approach::parse)?,
            "--cached-ops" => o.cached_ops = num(val()?)?,
            "--direct-ops" => o.direct_ops = num(val()?)?,
            "--diag" => o.diag = num(val()?)?,
            "--dir" => o.dir = PathBuf::from(val()?),
            "--completion-nsec" => o.completion_nsec = num(val()?)? as u64,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    // Chains of 16: whole chains only.
    o.cached_ops = (o.cached_ops / 16).max(1) * 16;
    o.direct_ops = (o.direct_ops / 16).max(1) * 16;
    Ok(o)
}

type Key = (Workload, &'static str, usize);
type Results = BTreeMap<Key, Vec<Sample>>;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median, min and max of `f` over the samples.
fn summary(s: &[Sample], f: impl Fn(&Sample) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = s.iter().map(f).collect();
    let m = median(&mut v);
    (m, v[0], v[v.len() - 1])
}

fn ns_per_op(s: &Sample) -> f64 {
    s.ns as f64 / s.ops.max(1) as f64
}

fn cpu_per_op(s: &Sample) -> f64 {
    s.cpu_ns as f64 / s.ops.max(1) as f64
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{:.1}k", r / 1e3)
    }
}

/// One CSV row (and the sample kept unless it is a warm-up).
fn record(
    results: &mut Results,
    w: Workload,
    a: &'static str,
    depth: usize,
    rep: usize,
    o: &Opts,
    s: Sample,
) {
    let warm = rep < o.warmup;
    let r = if warm {
        "warmup".to_string()
    } else {
        (rep - o.warmup).to_string()
    };
    println!(
        "BENCH,{},{a},{depth},{r},{},{},{:.0},{},{}",
        w.name(),
        s.ops,
        s.ns,
        s.ops_per_sec(),
        s.went_async,
        s.cpu_ns
    );
    if !warm {
        results.entry((w, a, depth)).or_default().push(s);
    }
}

fn context(w: Workload, a: &str, depth: usize, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{} {a} depth {depth}: {e}", w.name()))
}

/// Raise threads-max for `n` operations in flight, each of which may be a
/// blocked thread and a spare (the default of a 1 GiB guest is 8192).
pub(crate) fn allow_threads(n: usize) {
    let want = 3 * n as u64 + 2_000;
    let cur: u64 = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if cur < want {
        let _ = std::fs::write("/proc/sys/kernel/threads-max", want.to_string());
    }
}

fn list_arg<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// The arguments of a child process running `approaches` of `w` (at the
/// scale sizes `scale`).
fn child_args(o: &Opts, w: Workload, approaches: &[&str], scale: &[usize]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--child".into(),
        "--workloads".into(),
        w.name().into(),
        "--reps".into(),
        o.reps.to_string(),
        "--warmup".into(),
        o.warmup.to_string(),
        "--depths".into(),
        list_arg(&o.depths),
        "--cached-ops".into(),
        o.cached_ops.to_string(),
        "--direct-ops".into(),
        o.direct_ops.to_string(),
        "--dir".into(),
        o.dir.display().to_string(),
        "--completion-nsec".into(),
        o.completion_nsec.to_string(),
        "--scale".into(),
        list_arg(scale),
        "--scale-ops".into(),
        o.scale_ops.to_string(),
        "--scale-nsec".into(),
        o.scale_nsec.to_string(),
        "--handoffs".into(),
        o.handoffs.to_string(),
        "--size-mib".into(),
        o.size_mib.to_string(),
    ];
    if !approaches.is_empty() {
        a.push("--approaches".into());
        a.push(approaches.join(","));
    }
    a
}

/// A CSV row of a child: recorded as if measured here.
fn take_row(line: &str, results: &mut Results, o: &Opts) -> Option<()> {
    let f: Vec<&str> = line.split(',').collect();
    let [w, a, depth, rep, ops, ns, _, went_async, cpu_ns] = f[..] else {
        return None;
    };
    let w = Workload::parse(w)?;
    let a: &'static str = Approach::parse(a)
        .map(Approach::name)
        .or_else(|| handoff::APPROACHES.into_iter().find(|&h| h == a))?;
    let rep = if rep == "warmup" {
        0
    } else {
        o.warmup + rep.parse::<usize>().ok()?
    };
    let s = Sample {
        ops: ops.parse().ok()?,
        ns: ns.parse().ok()?,
        went_async: went_async.parse().ok()?,
        cpu_ns: cpu_ns.parse().ok()?,
    };
    record(results, w, a, depth.parse().ok()?, rep, o, s);
    Some(())
}

/// Run every approach of `w` in a process of its own (this program,
/// `--child`): what one approach leaves behind (idle spares, threads, a
/// kernel pool) cannot change the figures of the next.
fn run_isolated(w: Workload, o: &Opts, results: &mut Results) -> io::Result<()> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let groups: Vec<(Vec<&str>, Vec<usize>)> = match w {
        // Three light approaches, one process.
        Workload::Handoff => vec![(Vec::new(), o.scale.clone())],
        // Threadlet spares live as long as their process: 10,000 of them
        // would slow down every later handoff from the main thread.
        Workload::Scale => approaches(w, o)
            .into_iter()
            .flat_map(|a| o.scale.iter().map(move |&n| (vec![a], vec![n])))
            .collect(),
        _ => approaches(w, o)
            .into_iter()
            .map(|a| (vec![a], o.scale.clone()))
            .collect(),
    };
    for (g, scale) in groups {
        let mut child = Command::new("/proc/self/exe")
            .args(child_args(o, w, &g, &scale))
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().expect("piped");
        for line in io::BufReader::new(out).lines() {
            let line = line?;
            match line.strip_prefix("BENCH,") {
                Some(row) if take_row(row, results, o).is_some() => {}
                _ => println!("{line}"),
            }
        }
        let st = child.wait()?;
        if !st.success() {
            return Err(io::Error::other(format!(
                "{} {}: the child process failed ({st})",
                w.name(),
                g.join(",")
            )));
        }
    }
    Ok(())
}

fn run_workload(w: Workload, o: &Opts, results: &mut Results) -> io::Result<()> {
    if w == Workload::Handoff {
        for rep in 0..o.warmup + o.reps {
            for a in handoff::APPROACHES {
                let s = handoff::run(a, o.handoffs).map_err(|e| context(w, a, 1, e))?;
                record(results, w, a, 1, rep, o, s);
            }
        }
        return Ok(());
    }
    let pid = std::process::id();
    let (t, ops) = match w {
        Workload::Cached => (Target::cached(&o.dir, o.size_mib / 4)?, o.cached_ops),
        Workload::Scale => {
            let most = o.scale.iter().copied().max().unwrap_or(1);
            allow_threads(most);
            let cfg = nullb::Config {
                completion_nsec: o.scale_nsec,
                // Every read in flight holds a tag (blk-mq's limit).
                hw_queue_depth: (most as u32).clamp(64, 10_240),
                size_mib: o.size_mib,
                ..nullb::Config::default()
            };
            (
                Target::nullb(&format!("sscale{pid}"), &cfg, Access::Direct)?,
                o.scale_ops,
            )
        }
        _ => {
            let cfg = nullb::Config {
                completion_nsec: o.completion_nsec,
                size_mib: o.size_mib,
                ..nullb::Config::default()
            };
            let (mode, ops) = match w {
                Workload::Direct => (Access::Direct, o.direct_ops),
                Workload::Buffered => (Access::Buffered, o.direct_ops),
                _ => (Access::Cached, o.cached_ops),
            };
            (Target::nullb(&format!("sbench{pid}"), &cfg, mode)?, ops)
        }
    };
    let mut ctx = Ctx {
        single: None,
        chain16: None,
    };
    let depths = if w == Workload::Scale {
        &o.scale
    } else {
        &o.depths
    };
    for rep in 0..o.warmup + o.reps {
        let offs = t.offsets(ops, 1 + rep as u64 + 1000 * w as u64);
        for (di, &depth) in depths.iter().enumerate() {
            for &a in &o.approaches {
                let depth = match a {
                    Approach::Sync if w == Workload::Scale || di > 0 => continue,
                    Approach::Chain16 | Approach::Pool if w == Workload::Scale => continue,
                    Approach::Sync => 1,
                    _ => depth,
                };
                if w == Workload::Buffered {
                    t.drop_caches()?;
                }
                let tally = Tally::new(&t, &offs);
                let s = engines::run(a, &t, &mut ctx, depth, &offs, tally.as_ref())
                    .map_err(|e| context(w, a.name(), depth, e))?;
                record(results, w, a.name(), depth, rep, o, s);
            }
        }
    }
    // Chains hold the descriptor: drop them before the device goes.
    drop(ctx);
    drop(t);
    Ok(())
}

/// The approaches of `w` in table order.
fn approaches(w: Workload, o: &Opts) -> Vec<&'static str> {
    match w {
        Workload::Handoff => handoff::APPROACHES.to_vec(),
        Workload::Scale => o
            .approaches
            .iter()
            .filter(|a| !matches!(a, Approach::Sync | Approach::Chain16 | Approach::Pool))
            .map(|a| a.name())
            .collect(),
        _ => o.approaches.iter().map(|a| a.name()).collect(),
    }
}

/// A table's header line: `label`, then each column right-aligned.
fn print_columns(label: &str, cols: &[usize], width: usize) {
    print!("{label:<10}");
    for c in cols {
        print!("{c:>width$}");
    }
    println!();
}

fn print_table(w: Workload, o: &Opts, results: &Results) {
    println!();
    match w {
        Workload::Handoff => {
            println!(
                "handoff: {} per run, {} runs; median time per handoff (spread = (max-min)/median)",
                o.handoffs, o.reps
            );
            for a in approaches(w, o) {
                if let Some(s) = results.get(&(w, a, 1)) {
                    let (m, lo, hi) = summary(s, ns_per_op);
                    println!("{a:<10}{:>10.1} us ±{:.0}%", m / 1e3, (hi - lo) / m * 50.0);
                }
            }
            return;
        }
        Workload::Scale => {
            println!(
                "scale: {} reads of 4 KiB per run, {} ns device latency, {} runs; \
                 median wall / CPU time per read in us",
                o.scale_ops, o.scale_nsec, o.reps
            );
            print_columns("in flight", &o.scale, 20);
            for a in approaches(w, o) {
                print!("{a:<10}");
                for &d in &o.scale {
                    match results.get(&(w, a, d)) {
                        Some(s) => {
                            let cell = format!(
                                "{:.1} / {:.1}",
                                summary(s, ns_per_op).0 / 1e3,
                                summary(s, cpu_per_op).0 / 1e3
                            );
                            print!("{cell:>20}");
                        }
                        None => print!("{:>20}", "-"),
                    }
                }
                println!();
            }
            return;
        }
        _ => {}
    }
    let ops = match w {
        Workload::Cached | Workload::CachedBdev => o.cached_ops,
        _ => o.direct_ops,
    };
    println!(
        "{}: {} reads of 4 KiB per run, {} runs; median reads/s (spread = (max-min)/median)",
        w.name(),
        ops,
        o.reps
    );
    print_columns("depth", &o.depths, 17);
    for a in approaches(w, o) {
        print!("{a:<10}");
        for (i, &d) in o.depths.iter().enumerate() {
            // sync is depth 1 whatever the column: shown once, first.
            let d = if a == "sync" { 1 } else { d };
            match results.get(&(w, a, d)) {
                Some(s) if a != "sync" || i == 0 => {
                    let (m, lo, hi) = summary(s, Sample::ops_per_sec);
                    let cell = format!("{} ±{:.0}%", fmt_rate(m), (hi - lo) / m * 50.0);
                    print!("{:>17}", cell);
                }
                _ => print!("{:>17}", "-"),
            }
        }
        println!();
    }
}

/// The median of `f` over the runs of approach `a` of `w` at depth `d`.
fn median_of(results: &Results, (w, a, d): Key, f: impl Fn(&Sample) -> f64) -> Option<f64> {
    results.get(&(w, a, d)).map(|s| summary(s, f).0)
}

/// A ratio the issue sets a target for: what, numerator, denominator,
/// target (0: none), whether higher is better.
type Check = (String, Option<f64>, Option<f64>, f64, bool);

fn print_ratios(results: &Results, o: &Opts) {
    use Workload::*;
    let mut checks: Vec<Check> = Vec::new();
    let mut thr = |what: &str, w, a, da, b, db, target| {
        checks.push((
            what.to_string(),
            median_of(results, (w, a, da), Sample::ops_per_sec),
            median_of(results, (w, b, db), Sample::ops_per_sec),
            target,
            true,
        ))
    };
    thr(
        "cached-bdev chains of 16 vs sync",
        CachedBdev,
        "chain16",
        1,
        "sync",
        1,
        1.25,
    );
    thr(
        "cached-bdev single atom vs sync",
        CachedBdev,
        "syslet",
        1,
        "sync",
        1,
        0.9,
    );
    thr(
        "cached-bdev io_uring d=1 vs sync",
        CachedBdev,
        "io_uring",
        1,
        "sync",
        1,
        0.0,
    );
    thr(
        "cached (tmpfs) chains of 16 vs sync",
        Cached,
        "chain16",
        1,
        "sync",
        1,
        1.25,
    );
    thr(
        "cached (tmpfs) single atom vs sync",
        Cached,
        "syslet",
        1,
        "sync",
        1,
        0.9,
    );
    thr(
        "direct d=32 syslets vs sync",
        Direct,
        "syslet",
        32,
        "sync",
        1,
        20.0,
    );
    thr(
        "direct d=32 syslets vs io_uring",
        Direct,
        "syslet",
        32,
        "io_uring",
        32,
        0.8,
    );
    thr(
        "direct d=32 threadlets vs sync",
        Direct,
        "threadlet",
        32,
        "sync",
        1,
        15.0,
    );
    thr(
        "direct d=32 syslets vs 32 threads",
        Direct,
        "syslet",
        32,
        "pool",
        32,
        1.0,
    );
    thr(
        "direct d=32 io_uring vs sync",
        Direct,
        "io_uring",
        32,
        "sync",
        1,
        0.0,
    );
    thr(
        "buffered d=32 syslets vs io_uring",
        Buffered,
        "syslet",
        32,
        "io_uring",
        32,
        1.0,
    );
    thr(
        "buffered d=32 syslets vs sync",
        Buffered,
        "syslet",
        32,
        "sync",
        1,
        0.0,
    );
    checks.push((
        "handoff with 10,000 threads vs 10 (time per handoff)".to_string(),
        median_of(results, (Handoff, "syslet-t10k", 1), ns_per_op),
        median_of(results, (Handoff, "syslet-t10", 1), ns_per_op),
        1.2,
        false,
    ));
    if let (Some(&lo), Some(&hi)) = (o.scale.iter().min(), o.scale.iter().max()) {
        for a in ["syslet", "threadlet", "io_uring"] {
            checks.push((
                format!("scale CPU/read {hi} vs {lo} in flight, {a}"),
                median_of(results, (Scale, a, hi), cpu_per_op),
                median_of(results, (Scale, a, lo), cpu_per_op),
                if a == "io_uring" { 0.0 } else { 1.5 },
                false,
            ));
        }
    }
    println!();
    println!("ratios of medians (issue 5 targets; a benchmark, not a test):");
    for (what, x, y, target, higher) in checks {
        let (Some(x), Some(y)) = (x, y) else {
            continue;
        };
        let r = x / y;
        let verdict = match (target == 0.0, higher) {
            (true, _) => String::new(),
            (false, true) if r >= target => format!("target >= {target}: met"),
            (false, true) => format!("target >= {target}: MISSED"),
            (false, false) if r <= target => format!("target <= {target}: met"),
            (false, false) => format!("target <= {target}: MISSED"),
        };
        println!("  {what:<44} {r:>7.2}x   {verdict}");
    }
}

fn main() -> ExitCode {
    let o = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("syslet-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if o.child {
        let mut results = BTreeMap::new();
        for &w in &o.workloads {
            if let Err(e) = run_workload(w, &o, &mut results) {
                eprintln!("syslet-bench: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    if o.ktap {
        println!("TAP version 13");
        println!("1..{}", o.workloads.len());
    }
    if let Err(e) = syslet::check_supported() {
        eprintln!("syslet-bench: no syslets in this kernel: {e}");
        if o.ktap {
            for (k, w) in o.workloads.iter().enumerate() {
                println!("not ok {} {} # no syslets: {e}", k + 1, w.name());
            }
        }
        return ExitCode::from(1);
    }
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# syslet-bench: kernel {}, {cpus} cpus, depths {:?}, {} runs (+{} warm-up)",
        uname.trim(),
        o.depths,
        o.reps,
        o.warmup
    );
    if o.diag > 0 {
        let cfg = nullb::Config {
            completion_nsec: o.completion_nsec,
            ..nullb::Config::default()
        };
        let r = Target::nullb(
            &format!("sdiag{}", std::process::id()),
            &cfg,
            Access::Direct,
        )
        .and_then(|t| diag::run(&t, o.diag));
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("syslet-bench: diag: {e}");
                ExitCode::from(1)
            }
        };
    }
    println!("BENCH-CSV-BEGIN");
    println!("BENCH,workload,approach,depth,rep,ops,ns,ops_per_sec,went_async,cpu_ns");
    let mut results = BTreeMap::new();
    let mut failed = 0;
    let mut verdicts = Vec::new();
    for &w in &o.workloads {
        let r = if o.isolate {
            run_isolated(w, &o, &mut results)
        } else {
            run_workload(w, &o, &mut results)
        };
        if let Err(e) = &r {
            eprintln!("syslet-bench: {e}");
            failed += 1;
        }
        verdicts.push((w, r));
    }
    println!("BENCH-CSV-END");
    for &w in &o.workloads {
        print_table(w, &o, &results);
    }
    print_ratios(&results, &o);
    if o.ktap {
        for (k, (w, r)) in verdicts.iter().enumerate() {
            match r {
                Ok(()) => println!("ok {} {}", k + 1, w.name()),
                Err(e) => println!("not ok {} {} # {e}", k + 1, w.name()),
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
