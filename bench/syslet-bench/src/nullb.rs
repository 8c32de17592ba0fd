//! null_blk devices made through configfs.
//!
//! `/sys/kernel/config/nullb/NAME` with `size` (MiB), `memory_backed`,
//! `irqmode=2` (every request completes from a timer), `completion_nsec`,
//! `hw_queue_depth`, then `power=1`; the disk appears as `/dev/NAME`.  The
//! C original is `nullb_open()` in the kernel selftest
//! `tools/testing/selftests/syslet/threadlet_test.c`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONFIGFS: &str = "/sys/kernel/config";
const NULLB_DIR: &str = "/sys/kernel/config/nullb";

/// How to make a device.
#[derive(Clone, Debug)]
pub struct Config {
    /// Capacity in MiB.
    pub size_mib: u64,
    /// Keep written data (reads of unwritten sectors return zeros).
    pub memory_backed: bool,
    /// Timer completion latency of every request (irqmode 2).
    pub completion_nsec: u64,
    /// Tags per hardware queue: how many requests the device holds at once.
    pub hw_queue_depth: u32,
    /// Logical block size in bytes.
    pub blocksize: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            size_mib: 64,
            memory_backed: true,
            completion_nsec: 100_000,
            hw_queue_depth: 64,
            blocksize: 512,
        }
    }
}

/// A configured, powered-on null_blk device; dropping it powers it off and
/// removes it.
#[derive(Debug)]
pub struct NullBlk {
    dir: PathBuf,
    dev: PathBuf,
}

/// Mount configfs on /sys/kernel/config unless null_blk's directory is
/// already there.
fn ensure_configfs() -> io::Result<()> {
    if Path::new(NULLB_DIR).exists() {
        return Ok(());
    }
    let src = CString::new("configfs").expect("no NUL");
    let dst = CString::new(CONFIGFS).expect("no NUL");
    // SAFETY: valid NUL-terminated strings; mount(2) only reads them.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(io::Error::new(e.kind(), format!("mount configfs: {e}")));
        }
    }
    if Path::new(NULLB_DIR).exists() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{NULLB_DIR} missing: no null_blk (CONFIG_BLK_DEV_NULL_BLK) in this kernel?"),
        ))
    }
}

fn write_attr(dir: &Path, name: &str, val: &str) -> io::Result<()> {
    fs::write(dir.join(name), val)
        .map_err(|e| io::Error::new(e.kind(), format!("{}/{name} = {val}: {e}", dir.display())))
}

impl NullBlk {
    /// Make and power on device `name` (`/dev/name`).  A leftover
    /// configfs directory of the same name is removed first.
    ///
    /// # Errors
    ///
    /// Mounting configfs, creating the directory, writing an attribute, or
    /// the device node not appearing within 5 s.
    pub fn create(name: &str, cfg: &Config) -> io::Result<NullBlk> {
        ensure_configfs()?;
        let dir = Path::new(NULLB_DIR).join(name);
        if dir.exists() {
            let _ = write_attr(&dir, "power", "0");
            fs::remove_dir(&dir)?;
        }
        fs::create_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display())))?;
        let dev = Path::new("/dev").join(name);
        // From here on, Drop cleans up.
        let nb = NullBlk { dir, dev };
        let d = &nb.dir;
        write_attr(d, "size", &cfg.size_mib.to_string())?;
        write_attr(d, "blocksize", &cfg.blocksize.to_string())?;
        write_attr(
            d,
            "memory_backed",
            if cfg.memory_backed { "1" } else { "0" },
        )?;
        write_attr(d, "irqmode", "2")?;
        write_attr(d, "completion_nsec", &cfg.completion_nsec.to_string())?;
        write_attr(d, "hw_queue_depth", &cfg.hw_queue_depth.to_string())?;
        write_attr(d, "power", "1")?;
        let start = Instant::now();
        while !nb.dev.exists() {
            if start.elapsed() > Duration::from_secs(5) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} did not appear", nb.dev.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(nb)
    }

    /// The device node, `/dev/NAME`.
    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for NullBlk {
    fn drop(&mut self) {
        let _ = write_attr(&self.dir, "power", "0");
        let _ = fs::remove_dir(&self.dir);
    }
}
