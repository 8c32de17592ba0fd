//! What every test module uses: the test table type, check macros, child
//! processes with timeouts, scratch files and raw-atom helpers.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use syslet::{AsyncHead, Atom, Ring};

/// What a test returns: `Err` carries the reason printed after `# `.
pub type TestResult = Result<(), String>;

/// One entry of a module's test table.
pub struct Test {
    /// KTAP test name (no spaces).
    pub name: &'static str,
    /// The test.
    pub run: fn() -> TestResult,
}

/// `return Err(..)` with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {})", format!($($fmt)+), line!()));
        }
    };
}

/// `return Err(..)` unless `a == b`, naming both expressions.
#[macro_export]
macro_rules! ensure_eq {
    ($a:expr, $b:expr) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!(
                "{} = {:?}, expected {:?} (line {})",
                stringify!($a),
                a,
                b,
                line!()
            ));
        }
    }};
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!(
                "{}: {} = {:?}, expected {:?} (line {})",
                format!($($fmt)+),
                stringify!($a),
                a,
                b,
                line!()
            ));
        }
    }};
}

/// A KTAP diagnostic line (`# ...`) on stdout.
#[macro_export]
macro_rules! diag {
    ($($fmt:tt)+) => {
        println!("# {}", format!($($fmt)+))
    };
}

/// `io::Result` -> `Result<_, String>` with context.
pub trait Ctx<T> {
    /// Prefix the error with `what`.
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for io::Result<T> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// `-errno` as an atom result.
pub fn neg(errno: i32) -> i64 {
    -i64::from(errno)
}

/// Name an atom result: "-EINVAL (22)" style, for messages.
pub fn show(ret: i64) -> String {
    if (-4095..0).contains(&ret) {
        format!("-{} ({})", errno_name(-ret as i32), ret)
    } else {
        ret.to_string()
    }
}

fn errno_name(e: i32) -> String {
    let names = [
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EINTR, "EINTR"),
        (libc::EBADF, "EBADF"),
        (libc::ECHILD, "ECHILD"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENOSYS, "ENOSYS"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == e)
        .map_or_else(|| format!("errno {e}"), |(_, s)| (*s).to_owned())
}

// ---- processes -------------------------------------------------------------

/// `getpid()`.
pub fn pid() -> libc::pid_t {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

/// A pipe `(read end, write end)`, close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is valid for two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    ensure!(r == 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 just returned these two descriptors; we own them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Fork; the child runs `f` and exits with its return value (never
/// returns).  Returns the child's pid.
pub fn fork_fn(f: impl FnOnce() -> i32) -> Result<libc::pid_t, String> {
    use std::io::Write;
    let _ = io::stdout().flush();
    // SAFETY: the runner is single-threaded, so the child may run anything.
    let child = unsafe { libc::fork() };
    match child {
        -1 => Err(format!("fork: {}", io::Error::last_os_error())),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            let _ = io::stdout().flush();
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// Write all of `bytes` to descriptor `fd` (in a forked child, which
/// shares the parent's descriptors but not its ownership of them).
pub fn write_raw(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for its length; a bad fd just fails.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Wait for `pid` at most `timeout`; `None` if it is still running.
pub fn wait_timeout(pid: libc::pid_t, timeout: Duration) -> Result<Option<i32>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(Some(status));
        }
        ensure!(r == 0, "waitpid({pid}): {}", io::Error::last_os_error());
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL `pid` and reap it.
pub fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: plain system calls on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, ptr::null_mut(), 0);
    }
}

/// Describe a wait status.
pub fn show_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Run `f` in a forked child (for tests that change the process: seccomp,
/// signal dispositions, rlimits) and return its verdict.
pub fn in_child(timeout: Duration, f: impl FnOnce() -> TestResult) -> TestResult {
    let (r, w) = pipe()?;
    let wfd = w.as_raw_fd();
    let child = fork_fn(|| {
        let msg = match f() {
            Ok(()) => "OK".to_owned(),
            Err(e) => e,
        };
        write_raw(wfd, msg.as_bytes());
        0
    })?;
    drop(w);
    let status = match wait_timeout(child, timeout)? {
        Some(s) => s,
        None => {
            kill_and_reap(child);
            return Err(format!("child timed out after {timeout:?}"));
        }
    };
    let mut msg = String::new();
    let _ = fs::File::from(r).read_to_string(&mut msg);
    match msg.as_str() {
        "OK" if status == 0 => Ok(()),
        "OK" => Err(format!("child {}", show_status(status))),
        "" => Err(format!("child gave no verdict: {}", show_status(status))),
        m => Err(format!("in child: {m}")),
    }
}

/// Whether this process has any child (waitpid says ECHILD if not).
pub fn has_children() -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid int.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
    !(r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// The number of open file descriptors.
pub fn fd_count() -> Result<usize, String> {
    if let Ok(dir) = fs::read_dir("/proc/self/fd") {
        // read_dir's own descriptor is counted; it is the same each time.
        return Ok(dir.count());
    }
    let mut n = 0;
    for fd in 0..4096 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            n += 1;
        }
    }
    Ok(n)
}

// ---- files -----------------------------------------------------------------

/// The environment variable naming the run's scratch directory (set by the
/// runner, removed at the end of the run).
pub const SCRATCH_ENV: &str = "SYSLET_TEST_SCRATCH";

/// A writable scratch directory (tmpfs or the initramfs in the guest): the
/// run's, if the runner made one, else a fresh one.
pub fn scratch_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os(SCRATCH_ENV) {
        let d = PathBuf::from(d);
        if fs::create_dir_all(&d).is_ok() {
            return Ok(d);
        }
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(t) = std::env::var_os("TMPDIR") {
        candidates.push(t.into());
    }
    candidates.extend(["/tmp", "/dev/shm", "/run", "."].map(PathBuf::from));
    for dir in candidates {
        let d = dir.join(format!("syslet-guest-tests.{}", pid()));
        if fs::create_dir_all(&d).is_ok() {
            return Ok(d);
        }
    }
    Err("no writable scratch directory".to_owned())
}

/// A scratch file with `content`; returns its path.
pub fn scratch_file(name: &str, content: &[u8]) -> Result<PathBuf, String> {
    let p = scratch_dir()?.join(name);
    fs::write(&p, content).ctx(&format!("write {}", p.display()))?;
    Ok(p)
}

/// A path as a C string.
pub fn cpath(p: &std::path::Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in scratch paths")
}

/// `len` bytes of a recognisable pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

// ---- memory ----------------------------------------------------------------

/// An anonymous mapping, unmapped on drop.
pub struct Mapping {
    /// Start address.
    pub addr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl Mapping {
    /// `mmap(len, prot)` of anonymous private memory.
    pub fn new(len: usize, prot: i32) -> Result<Mapping, String> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing touches no existing memory.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        ensure!(
            addr != libc::MAP_FAILED,
            "mmap: {}",
            io::Error::last_os_error()
        );
        Ok(Mapping {
            addr: addr.cast(),
            len,
        })
    }

    /// Change the protection of the whole mapping.
    pub fn protect(&self, prot: i32) -> TestResult {
        // SAFETY: our own mapping.
        let r = unsafe { libc::mprotect(self.addr.cast(), self.len, prot) };
        ensure!(r == 0, "mprotect: {}", io::Error::last_os_error());
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no references into it outlive it.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// An address that was mapped and no longer is (a page we unmapped).
pub fn unmapped_addr() -> Result<usize, String> {
    let m = Mapping::new(page_size(), libc::PROT_READ | libc::PROT_WRITE)?;
    let a = m.addr as usize;
    drop(m);
    Ok(a)
}

/// A canonical kernel-half address (the direct map on x86-64).
pub const KERNEL_ADDR: usize = 0xffff_8880_0000_0000;
/// The kernel text address on x86-64 (without KASLR).
pub const KERNEL_TEXT: usize = 0xffff_ffff_8100_0000;
/// A non-canonical address.
pub const NON_CANONICAL: usize = 0x8000_0000_0000_0000;

// ---- raw atoms -------------------------------------------------------------

/// An atom for `nr` with `ret_ptr` = `ret` and the given argument pointers.
pub fn atom(nr: i64, ret: *mut i64, args: &[*const u64]) -> Atom {
    let mut a = Atom::new(nr as u64);
    a.ret_ptr = ret;
    for (slot, p) in a.arg_ptr.iter_mut().zip(args) {
        *slot = *p;
    }
    a
}

/// `async_exec(atom, valid ring)`.
///
/// # Safety
///
/// As `syslet::async_exec`: everything the chain points at must be valid
/// for what its system calls do.
pub unsafe fn exec(atom: *const Atom) -> io::Result<Option<NonNull<Atom>>> {
    let mut ring = Ring::new(4).expect("valid ring");
    // SAFETY: forwarded to the caller; the ring lives across the call.
    unsafe { syslet::async_exec(atom, ring.as_mut_ptr()) }
}

/// `async_exec(atom, ahu)` for a caller-made head.
///
/// # Safety
///
/// As `syslet::async_exec`.
pub unsafe fn exec_with(
    atom: *const Atom,
    ahu: *mut AsyncHead,
) -> io::Result<Option<NonNull<Atom>>> {
    // SAFETY: forwarded to the caller.
    unsafe { syslet::async_exec(atom, ahu) }
}

/// Expect `async_exec` to have returned `want` as the final atom.
pub fn expect_final(got: io::Result<Option<NonNull<Atom>>>, want: *const Atom) -> TestResult {
    match got {
        Ok(Some(p)) if ptr::eq(p.as_ptr(), want) => Ok(()),
        Ok(Some(p)) => Err(format!(
            "async_exec returned atom {:p}, expected {:p}",
            p.as_ptr(),
            want
        )),
        Ok(None) => {
            Err("async_exec returned NULL (went async): not expected of this syslet".to_owned())
        }
        Err(e) => Err(format!("async_exec failed: {e}, expected atom {want:p}")),
    }
}

/// Expect `async_exec` to have failed with `errno`.
pub fn expect_errno(got: io::Result<Option<NonNull<Atom>>>, errno: i32, what: &str) -> TestResult {
    match got {
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        Err(e) => Err(format!(
            "{what}: async_exec failed with {e}, expected {}",
            errno_name(errno)
        )),
        Ok(p) => Err(format!(
            "{what}: async_exec returned {:?}, expected {}",
            p.map(NonNull::as_ptr),
            errno_name(errno)
        )),
    }
}

/// A value no system call returns, to see whether a result was stored.
pub const UNTOUCHED: i64 = 0x5a5a_5a5a_5a5a_5a5a;

/// Pointer to a local as an argument pointer.
pub fn arg(v: &u64) -> *const u64 {
    v
}

/// Pointer to a result cell used as an argument pointer (results are
/// `long`, arguments `unsigned long`: same size).
pub fn arg_from_ret(r: &i64) -> *const u64 {
    (r as *const i64).cast()
}

/// The raw descriptor of `f`, as an argument value.
pub fn fd_arg(f: &impl AsRawFd) -> u64 {
    f.as_raw_fd() as u64
}
