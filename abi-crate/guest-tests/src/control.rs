//! Control flow: the four STOP_ON_* flags (each both stopping and not
//! stopping), errno results and stops, and SKIP_TO_NEXT_ON_STOP branching.

use syslet::{AtomFlags, Chain};

use crate::harness::*;
use crate::{ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "no_stop_flag_never_stops",
        run: no_stop_flag,
    },
    Test {
        name: "stop_on_nonzero",
        run: stop_on_nonzero,
    },
    Test {
        name: "stop_on_zero",
        run: stop_on_zero,
    },
    Test {
        name: "stop_on_negative",
        run: stop_on_negative,
    },
    Test {
        name: "stop_on_non_positive",
        run: stop_on_non_positive,
    },
    Test {
        name: "stop_on_errno_result",
        run: stop_on_errno_result,
    },
    Test {
        name: "skip_to_next_on_stop_if_else",
        run: skip_if_else,
    },
    Test {
        name: "skip_to_next_on_stop_chained_branches",
        run: skip_chained,
    },
];

/// Results to test against, produced exactly by `umem_add` (its result is
/// the new value): a negative value that looks like an errno, a large
/// negative one, zero, one and a large positive one.
const VALUES: [i64; 5] = [-5, -(1 << 40), 0, 1, i64::MAX];

/// Run `umem_add(&c, value)` with `flags`, then `getpid`; return whether the
/// chain stopped after the first atom.
fn stopped(flags: AtomFlags, value: i64) -> Result<bool, String> {
    let mut c = Chain::new();
    let k = c.counter(0);
    let a = c.umem_add(k, value).flags(flags).id();
    let b = c.getpid().id();
    let last = c.run().ctx("run")?;
    ensure_eq!(c.raw_result(a), Some(value), "{flags:?} value {value}");
    if last == a {
        ensure!(c.raw_result(b).is_none(), "stopped, but the next atom ran");
        Ok(true)
    } else {
        ensure_eq!(last, b, "{flags:?} value {value}: final atom");
        ensure_eq!(c.raw_result(b), Some(i64::from(pid())));
        Ok(false)
    }
}

fn check_flag(flags: AtomFlags, stops: fn(i64) -> bool) -> TestResult {
    let (mut s, mut n) = (0, 0);
    for v in VALUES {
        let want = stops(v);
        let got = stopped(flags, v)?;
        ensure_eq!(got, want, "{flags:?} with result {v}: stopped");
        if got {
            s += 1;
        } else {
            n += 1;
        }
    }
    // Every flag both stops and does not stop on this value set.
    ensure!(s > 0 && n > 0, "value set does not exercise both outcomes");
    Ok(())
}

fn no_stop_flag() -> TestResult {
    for v in VALUES {
        ensure!(
            !stopped(AtomFlags::empty(), v)?,
            "stopped without a stop flag on {v}"
        );
    }
    // SKIP_TO_NEXT_ON_STOP alone never stops either.
    for v in VALUES {
        ensure!(
            !stopped(AtomFlags::SKIP_TO_NEXT_ON_STOP, v)?,
            "SKIP_TO_NEXT_ON_STOP alone stopped on {v}"
        );
    }
    Ok(())
}

fn stop_on_nonzero() -> TestResult {
    check_flag(AtomFlags::STOP_ON_NONZERO, |v| v != 0)
}

fn stop_on_zero() -> TestResult {
    check_flag(AtomFlags::STOP_ON_ZERO, |v| v == 0)
}

fn stop_on_negative() -> TestResult {
    check_flag(AtomFlags::STOP_ON_NEGATIVE, |v| v < 0)
}

fn stop_on_non_positive() -> TestResult {
    check_flag(AtomFlags::STOP_ON_NON_POSITIVE, |v| v <= 0)
}

fn stop_on_errno_result() -> TestResult {
    // A failing system call's -errno is an ordinary negative result.
    let missing = scratch_dir()?.join("does-not-exist");
    for (flags, stops) in [
        (AtomFlags::STOP_ON_NEGATIVE, true),
        (AtomFlags::STOP_ON_NON_POSITIVE, true),
        (AtomFlags::STOP_ON_NONZERO, true),
        (AtomFlags::STOP_ON_ZERO, false),
        (AtomFlags::empty(), false),
    ] {
        let mut c = Chain::new();
        let open = c.open(cpath(&missing), libc::O_RDONLY, 0).flags(flags).id();
        let after = c.getpid().id();
        let last = c.run().ctx("run")?;
        let r = c.raw_result(open).ok_or("open did not run")?;
        ensure_eq!(r, neg(libc::ENOENT), "{flags:?}: open result {}", show(r));
        ensure_eq!(last == open, stops, "{flags:?}: stopped on -ENOENT");
        ensure_eq!(
            c.raw_result(after).is_some(),
            !stops,
            "{flags:?}: next atom ran"
        );
    }
    Ok(())
}

fn skip_if_else() -> TestResult {
    //  0 cond: umem_add(&x, inc)   STOP_ON_ZERO | SKIP_TO_NEXT_ON_STOP, next -> 2
    //  1 zero branch:     umem_add(&zero, 1)      -> 3
    //  2 nonzero branch:  umem_add(&nonzero, 1)   -> 3 (auto)
    //  3 join:            umem_add(&join, 1)      end
    for (inc, want_zero) in [(0i64, true), (1, false), (-1, false)] {
        let mut c = Chain::new();
        let x = c.counter(0);
        let (zero, nonzero, join) = (c.counter(0), c.counter(0), c.counter(0));
        let cond = c
            .umem_add(x, inc)
            .flags(AtomFlags::STOP_ON_ZERO | AtomFlags::SKIP_TO_NEXT_ON_STOP)
            .id();
        let z = c.umem_add(zero, 1).id();
        let nz = c.umem_add(nonzero, 1).id();
        let j = c.umem_add(join, 1).id();
        c.set_next(cond, Some(nz)).set_next(z, Some(j));
        let last = c.run().ctx("run")?;
        ensure_eq!(last, j, "inc {inc}: final atom");
        let w = u64::from(want_zero);
        ensure_eq!(
            (
                c.counter_value(zero),
                c.counter_value(nonzero),
                c.counter_value(join)
            ),
            (w, 1 - w, 1),
            "inc {inc}: (zero, nonzero, join) branch counts"
        );
    }

    // A stop without SKIP ends the syslet even though next is set.
    let mut c = Chain::new();
    let x = c.counter(0);
    let cond = c.umem_add(x, 0).flags(AtomFlags::STOP_ON_ZERO).id();
    let other = c.getpid().id();
    ensure_eq!(c.run().ctx("run")?, cond);
    ensure!(c.raw_result(other).is_none(), "ran past a stop");
    Ok(())
}

fn skip_chained() -> TestResult {
    // Two stops in a row with SKIP: 0 stops -> 1 stops -> 2 (end).
    // Neither `next` (both -> 3) is taken.
    let mut c = Chain::new();
    let k = c.counter(0);
    let hit = c.counter(0);
    let miss = c.counter(0);
    let s = AtomFlags::STOP_ON_NON_POSITIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP;
    let a0 = c.umem_add(k, 0).flags(s).id();
    let a1 = c.umem_add(k, 0).flags(s).id();
    let a2 = c.umem_add(hit, 1).end().id();
    let a3 = c.umem_add(miss, 1).id();
    c.set_next(a0, Some(a3)).set_next(a1, Some(a3));
    ensure_eq!(c.run().ctx("run")?, a2);
    ensure_eq!((c.counter_value(hit), c.counter_value(miss)), (1, 0));
    ensure!(c.raw_result(a1).is_some(), "second condition did not run");
    Ok(())
}
