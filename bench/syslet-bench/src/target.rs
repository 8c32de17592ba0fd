//! What the benchmarks read: a file in the page cache, or a null_blk disk
//! opened with `O_DIRECT`.  Every 4 KiB block starts with a marker derived
//! from its offset, so each read is checked to have read the right block.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::nullb::{self, NullBlk};

/// The size of every read.
pub const BLOCK: usize = 4096;

/// XORed into a block's offset to make its marker (so zeros never match).
const MAGIC: u64 = 0x5359_534c_4554_0003;

/// One 4 KiB block, aligned for `O_DIRECT`.
#[repr(C, align(4096))]
pub struct Block(pub [u8; BLOCK]);

impl Block {
    /// A zeroed block on the heap.
    pub fn boxed() -> Box<Block> {
        Box::new(Block([0; BLOCK]))
    }
}

/// The marker block `off` starts with.
fn marker(off: u64) -> [u8; 8] {
    (off ^ MAGIC).to_le_bytes()
}

/// Check one read: it returned a whole block and the block at `off`.
pub fn check(ret: i64, buf: &[u8], off: u64) -> io::Result<()> {
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    if ret as usize != BLOCK {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("short read at {off}: {ret} bytes"),
        ));
    }
    if buf.get(..8) != Some(&marker(off)[..]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wrong data at offset {off}"),
        ));
    }
    Ok(())
}

/// `pread(fd, buf, BLOCK, off)`, as a raw return value (`-errno` on
/// failure).
pub fn pread(fd: RawFd, buf: &mut Block, off: u64) -> i64 {
    // SAFETY: `buf` is BLOCK writable bytes we borrow mutably.
    let r = unsafe { libc::pread(fd, buf.0.as_mut_ptr().cast(), BLOCK, off as libc::off_t) };
    if r < 0 {
        -(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO) as i64)
    } else {
        r as i64
    }
}

/// How a null_blk device is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `O_DIRECT`: every read goes to the device.
    Direct,
    /// Through the page cache, filled once at the start.
    Cached,
    /// Through the page cache, which the caller empties before each run
    /// (`Target::drop_caches`).
    Buffered,
}

/// A file or device to read 4 KiB blocks from.
#[derive(Debug)]
pub struct Target {
    /// Open for reading (with `O_DIRECT` for the direct workload).
    pub fd: Arc<OwnedFd>,
    /// Number of 4 KiB blocks.
    pub blocks: u64,
    /// The file to remove at the end, if any.
    file: Option<PathBuf>,
    /// The device to remove at the end, if any (after `fd` is closed).
    _dev: Option<NullBlk>,
}

impl Target {
    /// The raw descriptor.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A file of `size_mib` MiB in `dir` (a tmpfs in the guest), written
    /// with markers: reads of it hit the page cache.
    pub fn cached(dir: &Path, size_mib: u64) -> io::Result<Target> {
        let path = dir.join(format!("syslet-bench-{}.dat", std::process::id()));
        let blocks = size_mib * (1 << 20) / BLOCK as u64;
        {
            let mut f = io::BufWriter::new(File::create(&path)?);
            let mut b = [0u8; BLOCK];
            for i in 0..blocks {
                b[..8].copy_from_slice(&marker(i * BLOCK as u64));
                f.write_all(&b)?;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        let file = File::open(&path)?;
        // Touch every block once, in case the file system dropped any.
        let mut buf = Block::boxed();
        for i in 0..blocks {
            let off = i * BLOCK as u64;
            check(pread(file.as_raw_fd(), &mut buf, off), &buf.0, off)?;
        }
        Ok(Target {
            fd: Arc::new(file.into()),
            blocks,
            file: Some(path),
            _dev: None,
        })
    }

    /// A memory-backed null_blk device `name` of `cfg.size_mib` MiB, written
    /// with markers.  `Access::Direct`: opened `O_RDONLY | O_DIRECT`, every read
    /// goes to the device and completes after `cfg.completion_nsec`.
    /// `Access::Cached`: opened `O_RDONLY` and read once from end to end:
    /// its page cache holds every block (a block device's page cache, which
    /// io_uring reads without punting to a worker, unlike tmpfs in 6.12).
    /// `Access::Buffered`: opened `O_RDONLY` with readahead off
    /// (`POSIX_FADV_RANDOM`), nothing read.
    pub fn nullb(name: &str, cfg: &nullb::Config, mode: Access) -> io::Result<Target> {
        let direct = mode == Access::Direct;
        let dev = NullBlk::create(name, cfg)?;
        let blocks = cfg.size_mib * (1 << 20) / BLOCK as u64;
        {
            let f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(dev.path())?;
            // 1 MiB per write.
            const PER: usize = 256;
            let mut chunk: Vec<Block> = (0..PER).map(|_| Block([0; BLOCK])).collect();
            let mut i = 0;
            while i < blocks {
                let n = PER.min((blocks - i) as usize);
                for (k, b) in chunk.iter_mut().enumerate().take(n) {
                    b.0[..8].copy_from_slice(&marker((i + k as u64) * BLOCK as u64));
                }
                let bytes = n * BLOCK;
                let off = (i * BLOCK as u64) as libc::off_t;
                // SAFETY: `chunk` is `PER` contiguous aligned blocks; we
                // write the first `n` of them.
                let r = unsafe { libc::pwrite(f.as_raw_fd(), chunk.as_ptr().cast(), bytes, off) };
                if r != bytes as isize {
                    return Err(if r < 0 {
                        io::Error::last_os_error()
                    } else {
                        io::Error::new(io::ErrorKind::WriteZero, "short write to null_blk")
                    });
                }
                i += n as u64;
            }
            f.sync_all()?;
        }
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(if direct { libc::O_DIRECT } else { 0 })
            .open(dev.path())?;
        if mode == Access::Cached {
            let mut buf = Block::boxed();
            for i in 0..blocks {
                let off = i * BLOCK as u64;
                check(pread(f.as_raw_fd(), &mut buf, off), &buf.0, off)?;
            }
        }
        if mode == Access::Buffered {
            // SAFETY: plain integer arguments on our descriptor.
            let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
        }
        Ok(Target {
            fd: Arc::new(f.into()),
            blocks,
            file: None,
            _dev: Some(dev),
        })
    }

    /// `n` random block offsets (bytes), reproducible from `seed`.  When
    /// `n` is at most the number of blocks, they are distinct (a partial
    /// Fisher-Yates shuffle): no read of a run hits a block another read
    /// of the same run brought into the page cache, and every completion
    /// can be matched to exactly one request.
    pub fn offsets(&self, n: usize, seed: u64) -> Vec<u64> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move || {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let b = BLOCK as u64;
        if n as u64 > self.blocks {
            return (0..n).map(|_| (rnd() % self.blocks) * b).collect();
        }
        let mut all: Vec<u64> = (0..self.blocks).collect();
        for i in 0..n {
            let j = i + (rnd() % (self.blocks - i as u64)) as usize;
            all.swap(i, j);
        }
        all.truncate(n);
        all.into_iter().map(|k| k * b).collect()
    }

    /// Drop this target's blocks from the page cache (a block device's
    /// buffers and the whole page cache), so that the next buffered read
    /// of each block goes to the device.
    pub fn drop_caches(&self) -> io::Result<()> {
        // _IO(0x12, 97) in <linux/fs.h>; the libc crate lacks it.
        const BLKFLSBUF: libc::c_ulong = 0x1261;
        // SAFETY: BLKFLSBUF takes no argument memory; the fd is ours.
        let r = unsafe { libc::ioctl(self.raw(), BLKFLSBUF, 0) };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("BLKFLSBUF: {e}")));
        }
        std::fs::write("/proc/sys/vm/drop_caches", "3")
            .map_err(|e| io::Error::new(e.kind(), format!("drop_caches: {e}")))
    }
}

/// Exactly-once bookkeeping of one run whose offsets are distinct: every
/// completion marks its block, a block marked twice is an error, and at
/// the end every requested block must have been marked.
#[derive(Debug)]
pub struct Tally {
    seen: Vec<std::sync::atomic::AtomicBool>,
    marked: std::sync::atomic::AtomicU64,
}

impl Tally {
    /// For the distinct offsets `offs` (`None` when they repeat: the
    /// check is then only that each read returned its block).
    pub fn new(t: &Target, offs: &[u64]) -> Option<Tally> {
        if offs.len() as u64 > t.blocks {
            return None;
        }
        Some(Tally {
            seen: (0..t.blocks)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            marked: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A completion for the block at `off`: an error if one came before.
    pub fn mark(&self, off: u64) -> io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let i = (off / BLOCK as u64) as usize;
        match self.seen.get(i) {
            Some(b) if !b.swap(true, Relaxed) => {
                self.marked.fetch_add(1, Relaxed);
                Ok(())
            }
            _ => Err(io::Error::other(format!(
                "a second completion for the read at offset {off}"
            ))),
        }
    }

    /// Every one of `offs` completed once.
    pub fn all(&self, offs: &[u64]) -> io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let m = self.marked.load(Relaxed);
        let missing = offs
            .iter()
            .filter(|&&o| !self.seen[(o / BLOCK as u64) as usize].load(Relaxed))
            .count();
        if m != offs.len() as u64 || missing != 0 {
            return Err(io::Error::other(format!(
                "{m} completions for {} reads, {missing} never completed",
                offs.len()
            )));
        }
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(p) = &self.file {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_file_and_offsets() {
        let t = Target::cached(&std::env::temp_dir(), 1).unwrap();
        assert_eq!(t.blocks, 256);
        let offs = t.offsets(1000, 7);
        assert_eq!(offs, t.offsets(1000, 7));
        assert!(offs
            .iter()
            .all(|&o| o % BLOCK as u64 == 0 && o < 256 * 4096));
        let mut b = Block::boxed();
        for &o in &offs[..20] {
            check(pread(t.raw(), &mut b, o), &b.0, o).unwrap();
        }
        // At most as many as there are blocks: distinct.
        let mut d = t.offsets(256, 3);
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 256);
        let tally = Tally::new(&t, &d).unwrap();
        assert!(tally.all(&d).is_err());
        for &o in &d {
            tally.mark(o).unwrap();
        }
        assert!(tally.mark(d[7]).is_err());
        tally.all(&d).unwrap();
        assert!(Tally::new(&t, &offs).is_none());
        // Another block's data is refused.
        let r = pread(t.raw(), &mut b, 4096);
        assert!(check(r, &b.0, 8192).is_err());
        assert!(check(100, &b.0, 4096).is_err());
        assert!(check(-libc::EIO as i64, &b.0, 4096).is_err());
    }
}
