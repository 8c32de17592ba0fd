//! `syslet-init`: PID 1 of the syslet test initramfs.
//!
//! Checklist: console on stdio -> mount proc, sysfs, devtmpfs, tmpfs ->
//! read `/proc/cmdline` (`syslet.mode=test|demo|run`, optional
//! `syslet.timeout=SECONDS` per program, 0 = none, default 600, and
//! `syslet.off=reboot|poweroff`, default reboot) -> run -> report ->
//! leave the machine.
//!
//! Modes and their files (in the initramfs):
//!
//! * `test`: `/etc/syslet/tests`, one program a line: `name /path args...`
//!   (`#` comments and blank lines ignored). Prints a top-level KTAP
//!   document; each program's output is re-printed indented by four
//!   spaces (nested KTAP), then `ok K name` or `not ok K name # why`.
//! * `demo`: `/etc/syslet/demo`, one command line, run in `/work`.
//! * `run`: `/etc/syslet/cmd`, one command line, run in `/work` (where
//!   `make guest-run FILES=...` put the files); prints
//!   `syslet-init: exit status N` or `syslet-init: killed by signal N`.
//!
//! Without `syslet.mode=`, the mode is the first of `run`, `test`, `demo`
//! whose file exists. Command lines are split on whitespace with simple
//! `'...'` / `"..."` quoting; there is no shell. Every mode ends with the
//! line `syslet-init: result pass` or `syslet-init: result fail`.
//!
//! Exit-code map (QEMU's exit code; see [`sys`] for the mechanism):
//! 0 = pass (reboot, which `-no-reboot` turns into exit 0; so does a
//! kernel panic, hence the result line), 3 = a test failed / the command
//! exited non-zero, 5 = init error (bad command line, missing file, failed mount, panic
//! caught in init), 7 = a program was killed by its timeout.
//!
//! init never exits and never panics out of `main`: a dead PID 1 is a
//! kernel panic. Run as any PID other than 1 it is a host dry run: no
//! mounts, files under `$SYSLET_ROOT` (default `/`), the command line
//! from `$SYSLET_CMDLINE` (default `/proc/cmdline`), and it exits with the
//! code QEMU would have.

mod cmdline;
mod ktap;
mod runner;
mod sys;

use std::fs;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cmdline::{Mode, Params};
use ktap::Tally;
use runner::{Outcome, Status};
use sys::{ExitValue, MountSpec, Off};

/// Per-program timeout when the command line sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Environment given to every program (added to what the kernel gave
/// init, which includes undotted unknown boot parameters like `FOO=1`).
const CHILD_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/work",
    ),
    ("HOME", "/"),
    ("TERM", "linux"),
    ("RUST_BACKTRACE", "1"),
];

/// What init mounts, in order. `/work` is not mounted over: it is a
/// directory of the (writable) initramfs root holding the `run` files.
const MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "",
        required: true,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "",
        required: true,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID,
        data: "mode=0755",
        required: true,
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777",
        required: true,
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: "mode=0620,ptmxmode=0666",
        required: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777",
        required: false,
    },
    MountSpec {
        source: "debugfs",
        target: "/sys/kernel/debug",
        fstype: "debugfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "",
        required: false,
    },
];

fn main() {
    let pid1 = sys::is_pid1();
    let mut off = Off::default();
    let verdict =
        panic::catch_unwind(AssertUnwindSafe(|| init(pid1, &mut off))).unwrap_or_else(|_| {
            say("# syslet-init: error: internal error (panic), see above");
            Some(ExitValue::InitError)
        });
    finish(verdict, off, pid1)
}

/// The checklist. Returns `None` for pass, else the worst problem; sets
/// `off` from `syslet.off=`.
fn init(pid1: bool, off: &mut Off) -> Option<ExitValue> {
    let mut v = Verdict::default();
    if pid1 {
        sys::ensure_console_stdio();
    }
    say("syslet-init: starting");
    let root = if pid1 {
        mount_filesystems(&mut v);
        sys::ensure_console_stdio();
        PathBuf::from("/")
    } else {
        say("# syslet-init: not PID 1: host dry run, no mounts, no power off");
        PathBuf::from(std::env::var_os("SYSLET_ROOT").unwrap_or_else(|| "/".into()))
    };
    let params = read_params(&mut v);
    *off = params.off;
    let timeout = match params.timeout.unwrap_or(DEFAULT_TIMEOUT) {
        t if t.is_zero() => None,
        t => Some(t),
    };
    let Some(mode) = params.mode.or_else(|| guess_mode(&root)) else {
        v.error("no syslet.mode= on the command line and no /etc/syslet/{cmd,tests,demo}");
        return v.worst;
    };
    say(format!(
        "# syslet-init: mode {mode}, timeout {}",
        timeout.map_or("none".into(), |t| format!("{}s", t.as_secs()))
    ));
    match mode {
        Mode::Test => run_tests(&root, timeout, &mut v),
        Mode::Demo => run_command(&root, "etc/syslet/demo", timeout, &mut v),
        Mode::Run => run_command(&root, "etc/syslet/cmd", timeout, &mut v),
    }
    v.worst
}

/// Collects the worst problem seen so far.
#[derive(Default)]
struct Verdict {
    worst: Option<ExitValue>,
}

impl Verdict {
    fn add(&mut self, e: ExitValue) {
        if self.worst.map_or(true, |w| e.rank() > w.rank()) {
            self.worst = Some(e);
        }
    }

    /// Reports an init error as a KTAP diagnostic and records it.
    fn error(&mut self, msg: impl std::fmt::Display) {
        say(format!("# syslet-init: error: {msg}"));
        self.add(ExitValue::InitError);
    }
}

fn mount_filesystems(v: &mut Verdict) {
    let mut known = None;
    for m in MOUNTS {
        if !m.required {
            // Optional ones only where the kernel has the filesystem.
            let fs = known
                .get_or_insert_with(|| fs::read_to_string("/proc/filesystems").unwrap_or_default());
            if !fs
                .lines()
                .any(|l| l.split_whitespace().last() == Some(m.fstype))
            {
                continue;
            }
        }
        if let Err(e) = sys::mount(m) {
            if m.required {
                v.error(e);
            } else {
                say(format!("# syslet-init: note: {e}"));
            }
        }
    }
}

fn read_params(v: &mut Verdict) -> Params {
    let text = match std::env::var("SYSLET_CMDLINE") {
        Ok(s) if !sys::is_pid1() => s,
        _ => fs::read_to_string("/proc/cmdline").unwrap_or_else(|e| {
            v.error(format!("/proc/cmdline: {e}"));
            String::new()
        }),
    };
    let params = cmdline::parse_params(&text);
    for e in &params.errors {
        v.error(e);
    }
    params
}

fn guess_mode(root: &Path) -> Option<Mode> {
    [
        ("etc/syslet/cmd", Mode::Run),
        ("etc/syslet/tests", Mode::Test),
        ("etc/syslet/demo", Mode::Demo),
    ]
    .into_iter()
    .find(|(f, _)| root.join(f).exists())
    .map(|(_, m)| m)
}

/// One line of `/etc/syslet/tests`.
struct TestEntry {
    name: String,
    argv: Result<Vec<String>, String>,
}

fn parse_tests(text: &str) -> Vec<TestEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match cmdline::split_words(l) {
            Ok(mut w) if w.len() >= 2 => TestEntry {
                name: w.remove(0),
                argv: Ok(w),
            },
            Ok(_) => TestEntry {
                name: l.to_owned(),
                argv: Err("expected `name /path/to/prog [args...]`".into()),
            },
            Err(e) => TestEntry {
                name: l.split_whitespace().next().unwrap_or(l).to_owned(),
                argv: Err(e),
            },
        })
        .collect()
}

/// Counts over all programs, for the `# totals` line.
#[derive(Default)]
struct Totals {
    programs_passed: u64,
    programs_failed: u64,
    results: Tally,
    missing: u64,
}

fn run_tests(root: &Path, timeout: Option<Duration>, v: &mut Verdict) {
    let path = root.join("etc/syslet/tests");
    let tests = match fs::read_to_string(&path) {
        Ok(t) => parse_tests(&t),
        Err(e) => {
            say("KTAP version 1\n1..0");
            v.error(format!("{}: {e}", path.display()));
            return;
        }
    };
    say(format!("KTAP version 1\n1..{}", tests.len()));
    if tests.is_empty() {
        v.error(format!("{}: no tests listed", path.display()));
    }
    let mut tot = Totals::default();
    for (k, t) in tests.iter().enumerate() {
        let k = k + 1;
        let argv = match &t.argv {
            Ok(a) => a,
            Err(e) => {
                say(format!("not ok {k} {} # bad test line: {e}", t.name));
                tot.programs_failed += 1;
                v.add(ExitValue::Failed);
                continue;
            }
        };
        say(format!(
            "# syslet-init: [{k}/{}] {}: {}",
            tests.len(),
            t.name,
            cmdline::join_words(argv)
        ));
        let start = Instant::now();
        let mut tally = Tally::default();
        let outcome = runner::run(argv, root, CHILD_ENV, timeout, &mut |line| {
            let mut out = Vec::with_capacity(line.len() + 5);
            if !line.is_empty() {
                out.extend_from_slice(b"    ");
            }
            out.extend_from_slice(line);
            say(out);
            tally.feed(&String::from_utf8_lossy(line));
        });
        let secs = start.elapsed().as_secs_f64();
        match ktap::verdict(&outcome, &tally, timeout) {
            None => {
                say(format!("ok {k} {}", t.name));
                tot.programs_passed += 1;
            }
            Some(why) => {
                say(format!("not ok {k} {} # {why}", t.name));
                tot.programs_failed += 1;
                v.add(if outcome.timed_out {
                    ExitValue::TimedOut
                } else {
                    ExitValue::Failed
                });
            }
        }
        say(format!("# syslet-init: {} took {secs:.2}s", t.name));
        tot.results.passed += tally.passed;
        tot.results.failed += tally.failed;
        tot.results.skipped += tally.skipped;
        tot.missing += tally.missing();
    }
    say(format!(
        "# totals: programs pass:{} fail:{}; results pass:{} fail:{} skip:{} missing:{}",
        tot.programs_passed,
        tot.programs_failed,
        tot.results.passed,
        tot.results.failed,
        tot.results.skipped,
        tot.missing
    ));
}

/// `demo` and `run`: one command from `file`, output streamed as is.
fn run_command(root: &Path, file: &str, timeout: Option<Duration>, v: &mut Verdict) {
    let path = root.join(file);
    let line = match fs::read_to_string(&path) {
        Ok(t) => t
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned),
        Err(e) => {
            v.error(format!("{}: {e}", path.display()));
            return;
        }
    };
    let argv = match line.as_deref().map(cmdline::split_words) {
        Some(Ok(a)) if !a.is_empty() => a,
        Some(Err(e)) => return v.error(format!("{}: {e}", path.display())),
        _ => return v.error(format!("{}: no command", path.display())),
    };
    let cwd = root.join("work");
    if let Err(e) = fs::create_dir_all(&cwd) {
        return v.error(format!("{}: {e}", cwd.display()));
    }
    say(format!(
        "# syslet-init: running in {}: {}",
        cwd.display(),
        cmdline::join_words(&argv)
    ));
    let start = Instant::now();
    let outcome = runner::run(&argv, &cwd, CHILD_ENV, timeout, &mut |l| say(l));
    let secs = start.elapsed().as_secs_f64();
    report_status(&outcome, timeout, secs);
    if outcome.timed_out {
        v.add(ExitValue::TimedOut);
    } else if !outcome.success() {
        v.add(ExitValue::Failed);
    }
}

fn report_status(o: &Outcome, timeout: Option<Duration>, secs: f64) {
    let status = match &o.status {
        Status::Exited(c) => format!("exit status {c}"),
        Status::Signaled(s) => format!("killed by signal {s}"),
        Status::SpawnFailed(e) => format!("failed to start: {e}"),
    };
    let why = match (o.timed_out, timeout) {
        (true, Some(t)) => format!(" (timeout after {}s)", t.as_secs()),
        _ => String::new(),
    };
    say(format!("syslet-init: {status}{why} after {secs:.2}s"));
}

/// Prints the result line and leaves: reboot (or power off) on pass,
/// isa-debug-exit on failure (exit-code map at the top of this file).
/// Never returns.
fn finish(worst: Option<ExitValue>, off: Off, pid1: bool) -> ! {
    let code = worst.map_or(0, |w| ((w as i32) << 1) | 1);
    say(format!(
        "syslet-init: result {}",
        if worst.is_none() { "pass" } else { "fail" }
    ));
    match worst {
        None => say(match off {
            Off::Reboot => "# syslet-init: rebooting (QEMU -no-reboot exits 0)",
            Off::PowerOff => "# syslet-init: powering off",
        }),
        Some(w) => say(format!(
            "# syslet-init: isa-debug-exit value {} (QEMU exit code {code})",
            w as u8
        )),
    }
    if !pid1 {
        std::process::exit(code);
    }
    match worst {
        None => sys::leave(off),
        Some(w) => sys::debug_exit(w, off),
    }
}

/// Writes one line (a newline is appended) to stdout, ignoring errors:
/// init must not die because the console went away.
fn say(line: impl AsRef<[u8]>) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(line.as_ref());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_list() {
        let t = parse_tests(
            "# comment\n\nsyslet /bin/syslet-test -v\nrust '/bin/guest tests'\nlonely\nbad 'x\n",
        );
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].name, "syslet");
        assert_eq!(t[0].argv.as_ref().unwrap(), &["/bin/syslet-test", "-v"]);
        assert_eq!(t[1].argv.as_ref().unwrap(), &["/bin/guest tests"]);
        assert!(t[2].argv.is_err());
        assert_eq!(t[3].name, "bad");
        assert!(t[3].argv.is_err());
    }

    #[test]
    fn verdict_keeps_the_worst() {
        let mut v = Verdict::default();
        v.add(ExitValue::Failed);
        v.add(ExitValue::TimedOut);
        v.add(ExitValue::Failed);
        assert_eq!(v.worst, Some(ExitValue::TimedOut));
        v.add(ExitValue::InitError);
        assert_eq!(v.worst, Some(ExitValue::InitError));
    }
}
