//! The PID-1 chores: console, mounts, and leaving the machine.
//!
//! # How init leaves QEMU (the exit-code map)
//!
//! | init's verdict           | what init does                   | QEMU exit |
//! |--------------------------|----------------------------------|-----------|
//! | pass                     | [`leave`]: reboot (default)      | 0         |
//! | [`ExitValue::Failed`]    | writes 1 to isa-debug-exit 0xf4  | 3         |
//! | [`ExitValue::InitError`] | writes 2 to isa-debug-exit 0xf4  | 5         |
//! | [`ExitValue::TimedOut`]  | writes 3 to isa-debug-exit 0xf4  | 7         |
//!
//! QEMU's isa-debug-exit device exits with `(value << 1) | 1`. Reaching
//! the port needs `CONFIG_X86_IOPL_IOPERM` (or `/dev/port`); without it
//! init falls back to [`leave`], QEMU exits 0, and only the console's
//! missing `syslet-init: result pass` line tells the failure apart
//! (`qemu/run-qemu.sh` checks it and exits 2).
//!
//! On pass init reboots rather than powers off by default: QEMU runs with
//! `-no-reboot`, which turns a reboot into exit 0, and x86 reboot works on
//! every kernel, whereas power off needs a working ACPI interpreter (a
//! kernel without one *halts*, and QEMU would sit until its wall-clock
//! limit). `syslet.off=poweroff` selects `reboot(RB_POWER_OFF)` instead,
//! for a VMM without `-no-reboot`. A kernel panic (`panic=-1`) also
//! reboots, hence QEMU's exit 0 alone never means pass.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// The byte init writes to the isa-debug-exit port on failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ExitValue {
    /// A test failed or the command exited non-zero (QEMU exits 3).
    Failed = 1,
    /// A program hit its timeout (QEMU exits 7).
    TimedOut = 3,
    /// init itself could not do its job: bad command line, missing
    /// config file, failed mount, internal error (QEMU exits 5).
    InitError = 2,
}

impl ExitValue {
    /// Severity for combining several problems: init errors first, then
    /// timeouts, then plain failures.
    pub fn rank(self) -> u8 {
        match self {
            ExitValue::Failed => 1,
            ExitValue::TimedOut => 2,
            ExitValue::InitError => 3,
        }
    }
}

/// The isa-debug-exit I/O port (`-device isa-debug-exit,iobase=0xf4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// True if this process is PID 1 (in the guest), false for a host dry run.
pub fn is_pid1() -> bool {
    // SAFETY: getpid(2) cannot fail and touches no memory.
    unsafe { libc::getpid() == 1 }
}

/// Makes sure fds 0, 1 and 2 are open, on `/dev/console` if they are not.
///
/// The kernel opens `/dev/console` for init if the initramfs has that
/// node; this covers the case where it did not (call it again once
/// devtmpfs is mounted).
pub fn ensure_console_stdio() {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table.
    let closed = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
    if !(0..3).any(closed) {
        return;
    }
    const CONSOLE: &[u8] = b"/dev/console\0";
    // SAFETY: CONSOLE is a NUL-terminated path that lives forever.
    let fd = unsafe { libc::open(CONSOLE.as_ptr().cast(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd < 0 {
        return;
    }
    for target in 0..3 {
        if closed(target) {
            // SAFETY: dup2 on an fd we just opened onto a closed slot.
            unsafe { libc::dup2(fd, target) };
        }
    }
    if fd > 2 {
        // SAFETY: `fd` is ours and no longer needed.
        unsafe { libc::close(fd) };
    }
}

/// One filesystem for init to mount.
pub struct MountSpec {
    /// Source (device or pseudo name).
    pub source: &'static str,
    /// Mount point, created if missing.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// `MS_*` flags.
    pub flags: libc::c_ulong,
    /// Filesystem options.
    pub data: &'static str,
    /// If false, failure is only a warning (e.g. not built in).
    pub required: bool,
}

/// Mounts `m`; an already-mounted target (EBUSY) counts as success.
///
/// # Errors
///
/// The mkdir or mount(2) error, with the target named.
pub fn mount(m: &MountSpec) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("mount {}: {e}", m.target));
    fs::create_dir_all(m.target).map_err(named)?;
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in mount strings");
    let (src, tgt, ty, data) = (c(m.source), c(m.target), c(m.fstype), c(m.data));
    // SAFETY: all four pointers are NUL-terminated strings alive across
    // the call; mount(2) only reads them.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            ty.as_ptr(),
            m.flags,
            data.as_ptr().cast(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        Ok(())
    } else {
        Err(named(e))
    }
}

/// How to stop the machine once init is done (`syslet.off=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Off {
    /// `reboot(RB_AUTOBOOT)`: QEMU's `-no-reboot` makes it exit 0.
    #[default]
    Reboot,
    /// `reboot(RB_POWER_OFF)`: needs ACPI power off in the kernel.
    PowerOff,
}

/// Waits until the console has sent everything written to stdout and
/// stderr: a tty write only queues, and isa-debug-exit ends QEMU at once.
pub fn drain_console() {
    for fd in [1, 2] {
        // SAFETY: tcdrain(3) only waits on the descriptor; on a non-tty
        // it fails with ENOTTY, which is fine.
        unsafe { libc::tcdrain(fd) };
    }
}

/// Stops the machine as `how` says; never returns (parks if the kernel
/// only halts).
pub fn leave(how: Off) -> ! {
    drain_console();
    let cmd = match how {
        Off::Reboot => libc::RB_AUTOBOOT,
        Off::PowerOff => libc::RB_POWER_OFF,
    };
    // SAFETY: sync(2) and reboot(2) take no pointers; as PID 1 with
    // CAP_SYS_BOOT, reboot does not return on success.
    unsafe {
        libc::sync();
        libc::reboot(cmd);
    }
    park()
}

/// Leaves QEMU with a non-zero code via isa-debug-exit, else [`leave`]s.
pub fn debug_exit(value: ExitValue, how: Off) -> ! {
    drain_console();
    // SAFETY: sync(2) takes no arguments.
    unsafe { libc::sync() };
    let v = value as u8;
    // SAFETY: ioperm(2) only changes this task's I/O bitmap. Only after it
    // granted access is `out` executed, so the instruction cannot fault;
    // an absent device ignores the write and we fall through.
    let ioperm = unsafe {
        if libc::ioperm(DEBUG_EXIT_PORT.into(), 4, 1) == 0 {
            outb(DEBUG_EXIT_PORT, v);
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // Second way: /dev/port (CONFIG_DEVPORT).
    let devport = OpenOptions::new()
        .write(true)
        .open("/dev/port")
        .and_then(|f| f.write_at(&[v], DEBUG_EXIT_PORT.into()));
    std::thread::sleep(Duration::from_millis(100));
    // Still here: no isa-debug-exit device, or no way to reach it.
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "# syslet-init: isa-debug-exit unreachable (ioperm: {}; /dev/port: {}): \
         need CONFIG_X86_IOPL_IOPERM=y and -device isa-debug-exit; leaving with exit 0",
        ioperm.err().map_or("ok".into(), |e| e.to_string()),
        devport.err().map_or("ok".into(), |e| e.to_string()),
    );
    drop(err);
    leave(how)
}

/// Writes one byte to an I/O port.
///
/// # Safety
///
/// The task must have I/O permission for `port` (ioperm/iopl), or the
/// instruction raises #GP and SIGSEGV kills init.
#[cfg(target_arch = "x86_64")]
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees port access; `out` touches no memory.
    unsafe {
        std::arch::asm!("out dx, al", in("dx") port, in("al") value,
            options(nomem, nostack, preserves_flags));
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn outb(_port: u16, _value: u8) {}

/// Sleeps forever: PID 1 must never exit.
fn park() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
