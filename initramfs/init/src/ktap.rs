//! Reading a test program's (K)TAP output and deciding its verdict.
//!
//! Only the program's own top level counts: unindented `ok`/`not ok`
//! lines and the first unindented plan `1..N`. Nested subtests are
//! summarised by their parent line. The rules match `qemu/judge.sh`:
//! `ok ... # SKIP` is a skip, and in this project a skip is a failure
//! (a guest test that did not run proves nothing).

use std::fmt::Write as _;
use std::time::Duration;

use crate::runner::{Outcome, Status};

/// Counts of one program's top-level results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The first top-level plan `1..N`, if any.
    pub plan: Option<u64>,
    /// `ok` lines that are not skips.
    pub passed: u64,
    /// `not ok` lines.
    pub failed: u64,
    /// `ok ... # SKIP` lines.
    pub skipped: u64,
    /// A `Bail out!` line was seen.
    pub bailed: bool,
}

/// True if the text after a result's first `#` is a SKIP directive: the
/// word `SKIP` (any case) followed by a non-alphanumeric or the end.
fn is_skip(line: &str) -> bool {
    line.split_once('#').is_some_and(|(_, d)| {
        let d = d.trim_start();
        d.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("skip"))
            && !d[4..].starts_with(|c: char| c.is_ascii_alphanumeric())
    })
}

/// True if `rest` starts a result line after `ok`: end, space or tab.
fn starts_result(rest: &str) -> bool {
    rest.is_empty() || rest.starts_with([' ', '\t'])
}

impl Tally {
    /// Feeds one output line (without its newline) of the program.
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("not ok") {
            if starts_result(rest) {
                self.failed += 1;
            }
        } else if let Some(rest) = line.strip_prefix("ok") {
            if starts_result(rest) {
                if is_skip(rest) {
                    self.skipped += 1;
                } else {
                    self.passed += 1;
                }
            }
        } else if let Some(n) = line.strip_prefix("1..") {
            if self.plan.is_none() {
                let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
                self.plan = digits.parse().ok();
            }
        } else if line.starts_with("Bail out!") {
            self.bailed = true;
        }
    }

    /// Results the plan announced that never came.
    pub fn missing(&self) -> u64 {
        let seen = self.passed + self.failed + self.skipped;
        self.plan.map_or(0, |p| p.saturating_sub(seen))
    }
}

/// Decides a program's verdict: `None` for pass, else the reason.
///
/// A program passes only if it exited 0 within its timeout, printed at
/// least one passing result, and printed no failure, skip, bail-out, nor
/// fewer results than its plan announced.
pub fn verdict(outcome: &Outcome, tally: &Tally, timeout: Option<Duration>) -> Option<String> {
    let mut why = String::new();
    let mut add = |s: String| {
        if !why.is_empty() {
            why.push_str("; ");
        }
        why.push_str(&s);
    };
    if outcome.timed_out {
        add(match timeout {
            Some(t) => format!("timeout after {}s", t.as_secs()),
            None => "timeout".into(),
        });
    }
    match &outcome.status {
        Status::Exited(0) => {}
        Status::Exited(c) => add(format!("exit status {c}")),
        Status::Signaled(s) => add(format!("killed by signal {s}")),
        Status::SpawnFailed(e) => add(format!("failed to start: {e}")),
    }
    if tally.failed > 0 {
        add(format!("{} failed", tally.failed));
    }
    if tally.skipped > 0 {
        add(format!("{} skipped", tally.skipped));
    }
    if tally.bailed {
        add("bail out".into());
    }
    let missing = tally.missing();
    if missing > 0 {
        let mut s = String::new();
        let _ = write!(
            s,
            "{missing} of {} planned results missing",
            tally.plan.unwrap_or(0)
        );
        add(s);
    }
    if tally.passed == 0 && tally.failed == 0 && tally.skipped == 0 {
        add("no results".into());
    }
    if why.is_empty() {
        None
    } else {
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(text: &str) -> Tally {
        let mut t = Tally::default();
        text.lines().for_each(|l| t.feed(l));
        t
    }

    fn exited(c: i32) -> Outcome {
        Outcome {
            status: Status::Exited(c),
            timed_out: false,
        }
    }

    #[test]
    fn counts_kselftest_output() {
        let t = tally(
            "TAP version 13\n1..4\n# Starting 4 tests\n#  RUN  a.b ...\n\
             ok 1 a.b\nnot ok 2 a.c\nok 3 a.d # SKIP no syslets\n\
             ok 4 a.e # XFAIL fine\n    ok 1 nested\n1..9\n# Totals: pass:2\n",
        );
        assert_eq!(
            t,
            Tally {
                plan: Some(4),
                passed: 2,
                failed: 1,
                skipped: 1,
                bailed: false
            }
        );
        assert_eq!(t.missing(), 0);
        assert!(!is_skip(" 1 a # skipping-is-not-a-word"));
        assert!(is_skip(" 1 a #skip"));
        assert_eq!(tally("okay\nnot okay\nok\n").passed, 1);
    }

    #[test]
    fn verdicts() {
        let pass = tally("1..2\nok 1 a\nok 2 b\n");
        assert_eq!(verdict(&exited(0), &pass, None), None);
        assert_eq!(
            verdict(&exited(1), &pass, None).as_deref(),
            Some("exit status 1")
        );
        let short = tally("1..3\nok 1 a\n");
        assert_eq!(
            verdict(&exited(0), &short, None).as_deref(),
            Some("2 of 3 planned results missing")
        );
        assert_eq!(
            verdict(&exited(0), &Tally::default(), None).as_deref(),
            Some("no results")
        );
        let hung = Outcome {
            status: Status::Signaled(9),
            timed_out: true,
        };
        assert_eq!(
            verdict(&hung, &pass, Some(Duration::from_secs(5))).as_deref(),
            Some("timeout after 5s; killed by signal 9")
        );
        let skip = tally("1..1\nok 1 a # SKIP not here\n");
        assert_eq!(
            verdict(&exited(0), &skip, None).as_deref(),
            Some("1 skipped")
        );
    }
}
