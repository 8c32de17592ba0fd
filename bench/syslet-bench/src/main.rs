//! syslet-bench: syslets and threadlets side by side with sync I/O,
//! io_uring and a thread pool, in one boot of the patched kernel.
//!
//! Workloads (issue 5; 1 and 2 so far):
//!
//!  - `cached`: random 4 KiB `pread`s of a file in the page cache (tmpfs,
//!    which in 6.12 has no `FMODE_NOWAIT`: io_uring hands every read to an
//!    io-wq worker);
//!  - `cached-bdev`: the same from a null_blk device's page cache (read
//!    once before), which io_uring reads inline;
//!  - `direct`: random 4 KiB `O_DIRECT` reads of a memory-backed null_blk
//!    device that completes every request from a timer after
//!    `completion_nsec` (100 µs).
//!
//! For each workload, depth and repetition every approach reads the same
//! random offsets, keeping up to `depth` reads in flight (`sync` is always
//! depth 1, `pool` is `depth` threads); every read is checked (length and
//! a per-block marker).  Raw figures go to stdout as CSV lines starting
//! with `BENCH,` between `BENCH-CSV-BEGIN` and `BENCH-CSV-END` (the console
//! may interleave kernel messages); then a table of medians with their
//! spread, and the ratios the issue sets targets for.
//!
//! Usage: `syslet-bench [--smoke] [--reps N] [--warmup N] [--depths 1,4,..]
//! [--workloads cached,cached-bdev,direct] [--approaches sync,syslet,..]
//! [--cached-ops N] [--direct-ops N] [--dir DIR] [--completion-nsec N]`

mod diag;
mod engines;
mod nullb;
mod target;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use engines::{Approach, Ctx, Sample, MAX_DEPTH};
use target::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Workload {
    Cached,
    CachedBdev,
    Direct,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Cached, Workload::CachedBdev, Workload::Direct];

    fn name(self) -> &'static str {
        match self {
            Workload::Cached => "cached",
            Workload::CachedBdev => "cached-bdev",
            Workload::Direct => "direct",
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
            diag: 0,
        }
    }
}

const USAGE: &str = "usage: syslet-bench [--smoke] [--reps N] [--warmup N] [--depths 1,4,16,32,64]
       [--workloads cached,cached-bdev,direct] [--approaches sync,syslet,chain16,threadlet,io_uring,pool]
       [--cached-ops N] [--direct-ops N] [--dir DIR] [--completion-nsec N]
       [--diag N]";

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
            }
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

type Key = (Workload, Approach, usize);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median, min and max reads per second.
fn summary(s: &[Sample]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = s.iter().map(Sample::ops_per_sec).collect();
    let m = median(&mut v);
    (m, v[0], v[v.len() - 1])
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{:.1}k", r / 1e3)
    }
}

fn run_workload(w: Workload, o: &Opts, results: &mut BTreeMap<Key, Vec<Sample>>) -> io::Result<()> {
    let (t, ops) = match w {
        Workload::Cached => (Target::cached(&o.dir, 16)?, o.cached_ops),
        Workload::CachedBdev | Workload::Direct => {
            let cfg = nullb::Config {
                completion_nsec: o.completion_nsec,
                ..nullb::Config::default()
            };
            let name = format!("sbench{}", std::process::id());
            let direct = w == Workload::Direct;
            let ops = if direct { o.direct_ops } else { o.cached_ops };
            (Target::nullb(&name, &cfg, direct)?, ops)
        }
    };
    let mut ctx = Ctx {
        single: None,
        chain16: None,
    };
    for rep in 0..o.warmup + o.reps {
        let warm = rep < o.warmup;
        let offs = t.offsets(ops, 1 + rep as u64 + 1000 * w as u64);
        for (di, &depth) in o.depths.iter().enumerate() {
            for &a in &o.approaches {
                let depth = match a {
                    Approach::Sync if di > 0 => continue,
                    Approach::Sync => 1,
                    _ => depth,
                };
                let s = engines::run(a, &t, &mut ctx, depth, &offs).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{} {} depth {depth}: {e}", w.name(), a.name()),
                    )
                })?;
                let r = if warm {
                    "warmup".to_string()
                } else {
                    (rep - o.warmup).to_string()
                };
                println!(
                    "BENCH,{},{},{},{},{},{},{:.0},{}",
                    w.name(),
                    a.name(),
                    depth,
                    r,
                    s.ops,
                    s.ns,
                    s.ops_per_sec(),
                    s.went_async
                );
                if !warm {
                    results.entry((w, a, depth)).or_default().push(s);
                }
            }
        }
    }
    // Chains hold the descriptor: drop them before the device goes.
    drop(ctx);
    drop(t);
    Ok(())
}

fn print_table(w: Workload, o: &Opts, results: &BTreeMap<Key, Vec<Sample>>) {
    let ops = match w {
        Workload::Cached | Workload::CachedBdev => o.cached_ops,
        Workload::Direct => o.direct_ops,
    };
    println!();
    println!(
        "{}: {} reads of 4 KiB per run, {} runs; median reads/s (spread = (max-min)/median)",
        w.name(),
        ops,
        o.reps
    );
    print!("{:<10}", "depth");
    for d in &o.depths {
        print!("{:>17}", d);
    }
    println!();
    for &a in &o.approaches {
        print!("{:<10}", a.name());
        for (i, &d) in o.depths.iter().enumerate() {
            // sync is depth 1 whatever the column: shown once, first.
            let d = if a == Approach::Sync { 1 } else { d };
            match results.get(&(w, a, d)) {
                Some(s) if a != Approach::Sync || i == 0 => {
                    let (m, lo, hi) = summary(s);
                    let cell = format!("{} ±{:.0}%", fmt_rate(m), (hi - lo) / m * 50.0);
                    print!("{:>17}", cell);
                }
                _ => print!("{:>17}", "-"),
            }
        }
        println!();
    }
}

fn med(results: &BTreeMap<Key, Vec<Sample>>, w: Workload, a: Approach, d: usize) -> Option<f64> {
    results.get(&(w, a, d)).map(|s| summary(s).0)
}

fn print_ratios(results: &BTreeMap<Key, Vec<Sample>>) {
    use Approach::*;
    use Workload::*;
    let checks: [(&str, Workload, Approach, usize, Approach, usize, f64); 10] = [
        (
            "cached chains of 16 vs sync",
            Cached,
            Chain16,
            1,
            Sync,
            1,
            1.25,
        ),
        (
            "cached single atom vs sync",
            Cached,
            Syslet,
            1,
            Sync,
            1,
            0.9,
        ),
        (
            "direct d=32 syslets vs sync",
            Direct,
            Syslet,
            32,
            Sync,
            1,
            20.0,
        ),
        (
            "direct d=32 syslets vs io_uring",
            Direct,
            Syslet,
            32,
            Uring,
            32,
            0.8,
        ),
        (
            "direct d=32 threadlets vs sync",
            Direct,
            Threadlet,
            32,
            Sync,
            1,
            15.0,
        ),
        (
            "direct d=32 syslets vs 32 threads",
            Direct,
            Syslet,
            32,
            Pool,
            32,
            1.0,
        ),
        (
            "cached threadlet vs sync",
            Cached,
            Threadlet,
            1,
            Sync,
            1,
            0.0,
        ),
        (
            "cached-bdev chains of 16 vs sync",
            CachedBdev,
            Chain16,
            1,
            Sync,
            1,
            1.25,
        ),
        (
            "cached-bdev single atom vs sync",
            CachedBdev,
            Syslet,
            1,
            Sync,
            1,
            0.9,
        ),
        (
            "cached-bdev io_uring d=1 vs sync",
            CachedBdev,
            Uring,
            1,
            Sync,
            1,
            0.0,
        ),
    ];
    println!();
    println!("ratios of medians (issue 5 targets; a benchmark, not a test):");
    for (what, w, a, da, b, db, target) in checks {
        let (Some(x), Some(y)) = (med(results, w, a, da), med(results, w, b, db)) else {
            continue;
        };
        let r = x / y;
        let verdict = if target == 0.0 {
            String::new()
        } else if r >= target {
            format!("target >= {target}: met")
        } else {
            format!("target >= {target}: MISSED")
        };
        println!("  {what:<36} {r:>7.2}x   {verdict}");
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
    if let Err(e) = syslet::check_supported() {
        eprintln!("syslet-bench: no syslets in this kernel: {e}");
        return ExitCode::from(1);
    }
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "syslet-bench: kernel {}, {cpus} cpus, depths {:?}, {} runs (+{} warm-up)",
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
        let r = Target::nullb(&format!("sdiag{}", std::process::id()), &cfg, true)
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
    println!("BENCH,workload,approach,depth,rep,ops,ns,ops_per_sec,went_async");
    let mut results = BTreeMap::new();
    let mut failed = None;
    for &w in &o.workloads {
        if let Err(e) = run_workload(w, &o, &mut results) {
            failed = Some(e);
            break;
        }
    }
    println!("BENCH-CSV-END");
    for &w in &o.workloads {
        print_table(w, &o, &results);
    }
    print_ratios(&results);
    match failed {
        Some(e) => {
            eprintln!("syslet-bench: {e}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}
