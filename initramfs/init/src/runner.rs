//! Running one program with its output captured, a timeout, and reaping.
//!
//! The child gets stdin from `/dev/null` and stdout + stderr on one pipe,
//! and leads its own process group so a timeout (or its exit) can kill
//! whatever it left behind. Spawning is a plain fork + execve rather than
//! `std::process::Command`, whose fork path needs an AF_UNIX socketpair
//! (a minimal kernel without CONFIG_NET fails that with ENOSYS). As PID 1, init also reaps orphans here: every
//! `waitpid(-1)` result that is not our child is simply discarded.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to keep reading the pipe after the child is gone, in case a
/// grandchild that escaped its process group still holds the write end.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Longest line kept before it is passed on without its newline.
const MAX_LINE: usize = 4096;

/// How a program ended.
#[derive(Debug)]
pub enum Status {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// It could not be started (not found, not executable, ...).
    SpawnFailed(io::Error),
}

/// The result of [`run`].
#[derive(Debug)]
pub struct Outcome {
    /// How the program ended.
    pub status: Status,
    /// True if init killed it because its timeout expired.
    pub timed_out: bool,
}

impl Outcome {
    /// True for exit status 0 without a timeout.
    pub fn success(&self) -> bool {
        !self.timed_out && matches!(self.status, Status::Exited(0))
    }
}

/// Runs `argv` in `cwd` with `env` added, passing each output line
/// (without newline) to `on_line`, killing it after `timeout` if given.
pub fn run(
    argv: &[String],
    cwd: &Path,
    env: &[(&str, &str)],
    timeout: Option<Duration>,
    on_line: &mut dyn FnMut(&[u8]),
) -> Outcome {
    let (rd, wr) = match pipe() {
        Ok(p) => p,
        Err(e) => return spawn_failed(e),
    };
    let pid = match spawn(argv, cwd, env, &wr) {
        Ok(pid) => pid,
        Err(e) => return spawn_failed(e),
    };
    // Only the child may hold the write end now, so the pipe reports EOF
    // once it (and anything it left running) is gone.
    drop(wr);
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut lines = LineBuf::default();
    let mut status = None;
    let mut timed_out = false;
    let mut eof = false;
    let mut gone_at: Option<Instant> = None;
    let mut buf = [0u8; 4096];

    while !(eof && status.is_some()) {
        let now = Instant::now();
        if status.is_none() && !timed_out && deadline.is_some_and(|d| now >= d) {
            timed_out = true;
            kill_group(pid);
        }
        if gone_at.is_some_and(|t| now.duration_since(t) > DRAIN_GRACE) {
            break;
        }
        if !eof {
            match wait_readable(&rd, Duration::from_millis(100)) {
                Ok(true) => match read(&rd, &mut buf) {
                    Ok(0) => eof = true,
                    Ok(n) => lines.push(&buf[..n], on_line),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => eof = true,
                },
                Ok(false) => {}
                Err(_) => eof = true,
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        if status.is_none() {
            if let Some(s) = reap(pid) {
                status = Some(s);
                gone_at = Some(Instant::now());
                // Whatever the program left running dies with it.
                kill_group(pid);
            }
        }
    }
    lines.finish(on_line);
    let status = match status {
        Some(s) => s,
        // Only reached if the drain loop was left early; wait for real.
        None => wait_blocking(pid),
    };
    Outcome { status, timed_out }
}

/// Everything the child needs, prepared before fork: after fork the
/// child only makes async-signal-safe system calls, it never allocates.
struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
}

/// Finds `prog` like execvp: a name with a slash is used as is (relative
/// names resolve after the child's chdir), others are looked up in PATH.
fn resolve(prog: &str, path_var: &OsStr) -> io::Result<PathBuf> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(prog))
        .find(|p| {
            let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                return false;
            };
            // SAFETY: `c` is a valid NUL-terminated path.
            unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{prog}: not found in PATH"),
            )
        })
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

fn prepare(argv: &[String], cwd: &Path, env: &[(&str, &str)]) -> io::Result<Prepared> {
    let prog = argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !env.iter().any(|(n, _)| k == OsStr::new(n)))
        .collect();
    vars.extend(env.iter().map(|&(k, v)| (k.into(), v.into())));
    let path_var = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or_else(OsString::new, |(_, v)| v.clone());
    let path = resolve(prog, &path_var)?;
    let envp = vars
        .into_iter()
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            cstring(k.into_vec())
        })
        .collect::<io::Result<_>>()?;
    Ok(Prepared {
        path: cstring(path.into_os_string().into_vec())?,
        argv: argv
            .iter()
            .map(|a| cstring(a.clone().into_bytes()))
            .collect::<io::Result<_>>()?,
        envp,
        cwd: cstring(cwd.as_os_str().as_bytes().to_vec())?,
    })
}

/// Forks and execs `argv` in its own process group with stdin on
/// /dev/null and stdout + stderr on `out`. Returns the child's pid once
/// execve succeeded; a failed chdir or execve comes back as the error.
fn spawn(
    argv: &[String],
    cwd: &Path,
    env: &[(&str, &str)],
    out: &OwnedFd,
) -> io::Result<libc::pid_t> {
    let p = prepare(argv, cwd, env)?;
    let mut argv_ptrs: Vec<*const libc::c_char> = p.argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = p.envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    const DEV_NULL: &[u8] = b"/dev/null\0";
    // SAFETY: a NUL-terminated literal path; the fd is closed on exec.
    let null_fd = unsafe { libc::open(DEV_NULL.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // Reports the child's errno back; closed by a successful execve.
    let (err_rd, err_wr) = pipe()?;
    let out_fd = out.as_raw_fd();

    // SAFETY: init is single-threaded when it spawns (the host dry run's
    // tests are not, which is why the child below sticks to
    // async-signal-safe calls on memory prepared before the fork).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        if null_fd >= 0 {
            // SAFETY: `null_fd` is ours.
            unsafe { libc::close(null_fd) };
        }
        return Err(e);
    }
    if pid == 0 {
        // Child. SAFETY: only async-signal-safe calls, on pointers into
        // `p`, `argv_ptrs` and `envp_ptrs`, which the fork copied intact.
        unsafe {
            libc::setpgid(0, 0);
            // Rust ignores SIGPIPE and exec keeps ignored signals: undo.
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if null_fd >= 0 {
                libc::dup2(null_fd, 0);
            } else {
                libc::close(0);
            }
            libc::dup2(out_fd, 1);
            libc::dup2(out_fd, 2);
            if libc::chdir(p.cwd.as_ptr()) == 0 {
                libc::execve(p.path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
            }
            let errno = *libc::__errno_location();
            libc::write(err_wr.as_raw_fd(), std::ptr::addr_of!(errno).cast(), 4);
            libc::_exit(127);
        }
    }
    // Parent. SAFETY: setpgid on our own child; also done by the child, so
    // the group exists before either of us relies on it.
    unsafe { libc::setpgid(pid, pid) };
    if null_fd >= 0 {
        // SAFETY: `null_fd` is ours; the child has its own copy.
        unsafe { libc::close(null_fd) };
    }
    drop(err_wr);
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match read(&err_rd, &mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got == 4 {
        wait_blocking(pid);
        let e = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
        return Err(io::Error::new(
            e.kind(),
            format!("{}: {e}", p.path.to_string_lossy()),
        ));
    }
    Ok(pid)
}

fn spawn_failed(e: io::Error) -> Outcome {
    Outcome {
        status: Status::SpawnFailed(e),
        timed_out: false,
    }
}

/// Splits a byte stream into lines.
#[derive(Default)]
struct LineBuf(Vec<u8>);

impl LineBuf {
    fn push(&mut self, mut data: &[u8], on_line: &mut dyn FnMut(&[u8])) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            self.0.extend_from_slice(&data[..i]);
            on_line(&self.0);
            self.0.clear();
            data = &data[i + 1..];
        }
        self.0.extend_from_slice(data);
        if self.0.len() >= MAX_LINE {
            on_line(&self.0);
            self.0.clear();
        }
    }

    fn finish(&mut self, on_line: &mut dyn FnMut(&[u8])) {
        if !self.0.is_empty() {
            on_line(&self.0);
            self.0.clear();
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two c_ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn wait_readable(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfd` is one valid pollfd, and we pass a count of 1.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    // POLLHUP without POLLIN still means a read returns EOF.
    Ok(n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn decode(ws: libc::c_int) -> Status {
    if libc::WIFEXITED(ws) {
        Status::Exited(libc::WEXITSTATUS(ws))
    } else {
        Status::Signaled(libc::WTERMSIG(ws))
    }
}

/// Reaps exited children without blocking; returns `pid`'s status if it
/// was among them. As PID 1 this reaps every child (the others are
/// orphans init adopted); otherwise (a dry run on the host, where other
/// threads may own children) only `pid`.
fn reap(pid: libc::pid_t) -> Option<Status> {
    // SAFETY: getpid(2) cannot fail and touches no memory.
    let which = if unsafe { libc::getpid() } == 1 {
        -1
    } else {
        pid
    };
    let mut ours = None;
    loop {
        let mut ws = 0;
        // SAFETY: `ws` is a valid c_int for waitpid to fill.
        let r = unsafe { libc::waitpid(which, &mut ws, libc::WNOHANG) };
        if r <= 0 {
            return ours;
        }
        if r == pid {
            ours = Some(decode(ws));
        }
    }
}

fn wait_blocking(pid: libc::pid_t) -> Status {
    loop {
        let mut ws = 0;
        // SAFETY: `ws` is a valid c_int for waitpid to fill.
        let r = unsafe { libc::waitpid(pid, &mut ws, 0) };
        if r == pid {
            return decode(ws);
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Status::SpawnFailed(io::Error::last_os_error());
        }
    }
}

/// SIGKILLs the process group led by `pid`, and `pid` itself in case it
/// left the group.
fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill(2) has no memory-safety preconditions; pid > 0 here,
    // so -pid names exactly the child's process group, never "all".
    unsafe {
        if pid > 1 {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(script: &str, timeout: Option<Duration>) -> (Outcome, Vec<String>) {
        let mut out = Vec::new();
        let argv = ["/bin/sh".to_string(), "-c".into(), script.into()];
        let o = run(&argv, Path::new("/"), &[("X", "y")], timeout, &mut |l| {
            out.push(String::from_utf8_lossy(l).into_owned())
        });
        (o, out)
    }

    #[test]
    fn captures_lines_and_status() {
        let (o, out) = run_sh("echo a; echo b >&2; printf 'c'; echo $X; exit 3", None);
        assert!(matches!(o.status, Status::Exited(3)));
        assert!(!o.timed_out && !o.success());
        assert_eq!(out, ["a", "b", "cy"]);
    }

    #[test]
    fn kills_on_timeout_and_leftovers() {
        let t0 = Instant::now();
        let (o, out) = run_sh(
            "echo start; sleep 30 & sleep 30",
            Some(Duration::from_millis(300)),
        );
        assert!(o.timed_out);
        assert!(matches!(o.status, Status::Signaled(9)));
        assert_eq!(out, ["start"]);
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn background_child_does_not_hang_us() {
        let t0 = Instant::now();
        let (o, _) = run_sh("sleep 30 & echo done", None);
        assert!(o.success());
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn looks_up_path_and_sets_cwd() {
        let mut out = Vec::new();
        let argv = ["sh".to_string(), "-c".into(), "pwd; echo $HOME".into()];
        let env = [("PATH", "/nonexistent:/usr/bin:/bin"), ("HOME", "/h")];
        let o = run(&argv, Path::new("/tmp"), &env, None, &mut |l| {
            out.push(String::from_utf8_lossy(l).into_owned())
        });
        assert!(o.success());
        assert_eq!(out, ["/tmp", "/h"]);

        let o = run(&argv, Path::new("/nonexistent"), &env, None, &mut |_| {});
        assert!(matches!(o.status, Status::SpawnFailed(_)));
    }

    #[test]
    fn reports_spawn_failure() {
        let mut n = 0;
        let o = run(
            &["/nonexistent/prog".into()],
            Path::new("/"),
            &[],
            None,
            &mut |_| n += 1,
        );
        assert!(matches!(o.status, Status::SpawnFailed(_)));
        assert_eq!(n, 0);
    }
}
