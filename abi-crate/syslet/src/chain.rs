//! The safe layer: a [`Chain`] owns its atoms and everything they point at.
//!
//! A chain is built with typed atom builders ([`Chain::read`],
//! [`Chain::open`], [`Chain::umem_add`], ...), each returning an [`AtomMut`]
//! to set flags and the successor.  Arguments that the kernel only uses as
//! numbers may be dynamic ([`Arg::Counter`], [`Arg::Result`]); everything
//! the kernel dereferences (buffers, paths, `struct stat`) and every length
//! that bounds such an access is fixed by the builder and owned or borrowed
//! by the chain, so safe code cannot make the kernel write to memory it does
//! not own.
//!
//! Memory layout: atoms, result cells, argument cells and counters each live
//! in one heap array of the chain.  [`Chain::run`] lays the atoms out
//! contiguously in insertion order (so `atom + 1` is the atom added after
//! it), wires every pointer, then calls `async_exec` once.  Nothing is moved
//! or freed between wiring and the end of the call: `run` holds `&mut self`.

use core::ffi::{c_int, c_long, c_ulong};
use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, size_of};
use core::ptr::NonNull;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::abi::{Atom, AtomFlags};
use crate::ring::Ring;
use crate::sys_call;

/// The value a result cell holds before its atom runs in the current
/// [`Chain::run`]: [`Chain::result`] reports such an atom as not run.
///
/// Negative, and its low 32 bits are -1, so an `fd` argument taken from an
/// atom that did not run is an invalid descriptor (`EBADF`) even where the
/// kernel truncates it to an `int`.
pub const NOT_RUN: i64 = i64::MIN + 0xffff_ffff;

const _: () = assert!(NOT_RUN < 0 && NOT_RUN as u64 as u32 == u32::MAX);

/// Index of an atom in its [`Chain`], in insertion order.
///
/// Returned by the atom builders and by [`Chain::run`] (the final atom).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AtomId(usize);

impl AtomId {
    /// The position of the atom in its chain (0 for the first atom).
    pub fn index(self) -> usize {
        self.0
    }
}

/// A counter cell owned by a [`Chain`]: the target of [`Chain::umem_add`]
/// and a dynamic argument ([`Arg::Counter`]) of other atoms.
///
/// This is how syslets loop: `umem_add(&counter, inc)` inside a cyclic
/// chain, with a stop flag on the counter's new value or on another atom's
/// result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Counter(usize);

/// A number argument of an atom: a constant, or a cell the kernel reads when
/// the atom runs.
///
/// Only number arguments (descriptors, offsets, increments) can be dynamic;
/// pointers and lengths are fixed by the typed builders.  Integer
/// conversions treat signed values as a C `long` (sign-extended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A constant.
    Value(u64),
    /// The current value of a counter.
    Counter(Counter),
    /// The result of an atom of the same chain, as stored by the kernel (the
    /// last time it ran).  This is how data flows between atoms, e.g. the
    /// `fd` of an `open` into a `read`.
    Result(AtomId),
}

macro_rules! arg_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                // A C `long`/`unsigned long` argument: sign-extend signed types.
                Arg::Value(v as i64 as u64)
            }
        }
    )*};
}
arg_from_int!(i32, i64, u32, usize);

impl From<u64> for Arg {
    fn from(v: u64) -> Arg {
        Arg::Value(v)
    }
}

impl From<Counter> for Arg {
    fn from(c: Counter) -> Arg {
        Arg::Counter(c)
    }
}

impl From<AtomId> for Arg {
    fn from(id: AtomId) -> Arg {
        Arg::Result(id)
    }
}

/// A file descriptor argument.
#[derive(Clone, Copy, Debug)]
pub enum Fd<'a> {
    /// `AT_FDCWD`, for [`Chain::openat`].
    Cwd,
    /// A descriptor the chain borrows for its lifetime.
    Borrowed(BorrowedFd<'a>),
    /// The descriptor returned by an [`open`](Chain::open) or
    /// [`openat`](Chain::openat) atom of the same chain (its result).
    Opened(AtomId),
    /// A descriptor the chain holds (shared ownership), from
    /// [`Chain::hold_fd`]: it stays open as long as the chain exists, which
    /// is what a chain submitted to an [`AsyncRing`](crate::AsyncRing)
    /// needs.
    Held(HeldFd),
}

/// A descriptor held by a [`Chain`]: see [`Chain::hold_fd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeldFd(usize);

impl<'a> From<BorrowedFd<'a>> for Fd<'a> {
    fn from(fd: BorrowedFd<'a>) -> Fd<'a> {
        Fd::Borrowed(fd)
    }
}

impl<'a, T: AsFd> From<&'a T> for Fd<'a> {
    fn from(f: &'a T) -> Fd<'a> {
        Fd::Borrowed(f.as_fd())
    }
}

impl From<AtomId> for Fd<'_> {
    fn from(id: AtomId) -> Self {
        Fd::Opened(id)
    }
}

/// Where the kernel may write: a buffer for [`Chain::read`] and
/// [`Chain::pread`], owned by the chain or borrowed for its lifetime.
#[derive(Debug)]
pub struct BufMut<'a>(Storage<'a>);

impl<'a> From<&'a mut [u8]> for BufMut<'a> {
    fn from(b: &'a mut [u8]) -> Self {
        BufMut(Storage::BorrowedMut(b))
    }
}

impl<'a, const N: usize> From<&'a mut [u8; N]> for BufMut<'a> {
    fn from(b: &'a mut [u8; N]) -> Self {
        BufMut(Storage::BorrowedMut(b))
    }
}

impl From<Vec<u8>> for BufMut<'_> {
    /// The whole length (`len()`, not the capacity) is the buffer.
    fn from(v: Vec<u8>) -> Self {
        BufMut(Storage::Owned(v))
    }
}

impl From<Box<[u8]>> for BufMut<'_> {
    fn from(b: Box<[u8]>) -> Self {
        BufMut(Storage::Owned(b.into_vec()))
    }
}

/// What the kernel reads: data for [`Chain::write`] and [`Chain::pwrite`],
/// owned by the chain or borrowed for its lifetime.
#[derive(Debug)]
pub struct Buf<'a>(Storage<'a>);

impl<'a> From<&'a [u8]> for Buf<'a> {
    fn from(b: &'a [u8]) -> Self {
        Buf(Storage::Borrowed(b))
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Buf<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Buf(Storage::Borrowed(b))
    }
}

impl<'a> From<&'a str> for Buf<'a> {
    fn from(s: &'a str) -> Self {
        Buf(Storage::Borrowed(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Buf<'_> {
    fn from(v: Vec<u8>) -> Self {
        Buf(Storage::Owned(v))
    }
}

impl From<Box<[u8]>> for Buf<'_> {
    fn from(b: Box<[u8]>) -> Self {
        Buf(Storage::Owned(b.into_vec()))
    }
}

impl From<String> for Buf<'_> {
    fn from(s: String) -> Self {
        Buf(Storage::Owned(s.into_bytes()))
    }
}

/// A path for [`Chain::open`] and [`Chain::openat`]: a C string owned by the
/// chain or borrowed for its lifetime.
#[derive(Debug)]
pub struct CPath<'a>(Storage<'a>);

impl<'a> From<&'a CStr> for CPath<'a> {
    fn from(p: &'a CStr) -> Self {
        CPath(Storage::Borrowed(p.to_bytes_with_nul()))
    }
}

impl From<CString> for CPath<'_> {
    fn from(p: CString) -> Self {
        CPath(Storage::Owned(p.into_bytes_with_nul()))
    }
}

/// Memory an atom's argument points at.
#[derive(Debug)]
enum Storage<'a> {
    Borrowed(&'a [u8]),
    BorrowedMut(&'a mut [u8]),
    Owned(Vec<u8>),
}

impl Storage<'_> {
    fn len(&self) -> usize {
        self.bytes().len()
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Borrowed(b) => b,
            Storage::BorrowedMut(b) => b,
            Storage::Owned(v) => v,
        }
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Storage::Borrowed(_) => None,
            Storage::BorrowedMut(b) => Some(b),
            Storage::Owned(v) => Some(v),
        }
    }

    /// The address handed to the kernel; `as` exposes it, since the kernel
    /// accesses the memory outside the Rust abstract machine.
    fn addr(&mut self) -> usize {
        match self {
            Storage::Borrowed(b) => b.as_ptr() as usize,
            Storage::BorrowedMut(b) => b.as_mut_ptr() as usize,
            Storage::Owned(v) => v.as_mut_ptr() as usize,
        }
    }
}

/// Where an argument pointer of an atom points.
#[derive(Clone, Copy, Debug)]
enum Src {
    /// A constant argument cell.
    Cell(usize),
    /// A counter cell (the argument is the counter's value).
    Counter(usize),
    /// A constant cell holding the address of a counter (the argument is
    /// the counter's address: `umem_add`'s target).
    CounterAddr(usize),
    /// An atom's result cell.
    Result(usize),
    /// A constant cell holding the address of a storage entry.
    Storage(usize),
    /// A constant cell holding the address of a `struct stat` slot.
    Stat(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The atom added after this one, or the end if it is the last.
    Auto,
    End,
    To(usize),
}

/// How [`Chain::wire`] sets the atoms' `SYSLET_SYNC`/`SYSLET_ASYNC` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wiring {
    /// `SYSLET_SYNC` on every atom: [`Chain::run`].
    Sync,
    /// The atoms' own flags: may go asynchronous when an atom blocks.
    Async,
    /// As `Async`, plus `SYSLET_ASYNC` on the first atom.
    Queue,
}

#[derive(Debug)]
struct Spec {
    nr: u64,
    flags: AtomFlags,
    next: Next,
    args: [Option<Src>; 6],
    keep_result: bool,
    opens_fd: bool,
    buf: Option<usize>,
    stat: Option<usize>,
}

/// A syslet: a chain of atoms with all the memory they point at.
///
/// Build it with the typed atom builders, then [`run`](Self::run) it: one
/// `async_exec` call runs the whole chain in the calling thread.  Atoms are
/// linked in insertion order unless [`AtomMut::then`], [`AtomMut::end`] or
/// [`Chain::set_next`] say otherwise; chains may branch
/// ([`AtomFlags::SKIP_TO_NEXT_ON_STOP`]) and loop (a `next` back to an
/// earlier atom).  A chain can be run again; every run starts at the first
/// atom and starts with every result cell reset to [`NOT_RUN`].
///
/// For `run`, every atom gets `SYSLET_SYNC`, so a conforming kernel never
/// takes the chain asynchronous: when `run` returns, the kernel no longer
/// uses any of the chain's memory.  `'a` is the lifetime of borrowed
/// buffers, paths and descriptors.
///
/// To let the chain go asynchronous when an atom blocks (or to queue it to
/// a kernel thread at once), hand a `Chain<'static>` (owned buffers and
/// paths, [held](Self::hold_fd) descriptors) to an
/// [`AsyncRing`](crate::AsyncRing): it keeps the chain until the kernel is
/// done with it and gives it back in a [`Completion`](crate::Completion).
///
/// ```no_run
/// use syslet::{AtomFlags, Chain};
///
/// let mut buf = [0u8; 256];
/// let mut chain = Chain::new();
/// let path = std::ffi::CStr::from_bytes_with_nul(b"/proc/version\0").unwrap();
/// let open = chain.open(path, libc::O_RDONLY, 0).flags(AtomFlags::STOP_ON_NEGATIVE).id();
/// let read = chain.read(open, &mut buf).id();
/// let close = chain.close(open).id();
/// let last = chain.run()?;
/// assert_eq!(last, close);
/// let n = chain.result(read).unwrap()? as usize;
/// drop(chain);
/// println!("{}", String::from_utf8_lossy(&buf[..n]));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "syslet")]
pub struct Chain<'a> {
    specs: Vec<Spec>,
    /// Laid out and wired by `wire`, from `specs`.
    atoms: Vec<Atom>,
    results: Vec<i64>,
    cells: Vec<u64>,
    counters: Vec<u64>,
    storage: Vec<Storage<'a>>,
    stats: Vec<libc::stat>,
    /// Addresses of `storage` entries, then of `stats` slots; by `wire`.
    ptr_cells: Vec<u64>,
    /// Descriptors the chain holds ([`Chain::hold_fd`]).
    held: Vec<Arc<OwnedFd>>,
    ring: Ring,
    /// Why the chain may not run again, if it may not.
    poisoned: Option<&'static str>,
    /// `atoms` and `ptr_cells` are wired for this mode and nothing they
    /// depend on has changed since: the next run in the same mode only
    /// resets the results.  Every change of an atom, and every push onto
    /// an array an atom points into (which may move it), clears it.
    wired: Option<Wiring>,
    _borrows: PhantomData<&'a mut [u8]>,
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("specs", &self.specs)
            .field("results", &self.results)
            .field("counters", &self.counters)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl Default for Chain<'_> {
    fn default() -> Self {
        Chain::new()
    }
}

impl<'a> Chain<'a> {
    /// An empty chain with its own one-slot completion ring.
    pub fn new() -> Chain<'a> {
        Chain {
            specs: Vec::new(),
            atoms: Vec::new(),
            results: Vec::new(),
            cells: Vec::new(),
            counters: Vec::new(),
            storage: Vec::new(),
            stats: Vec::new(),
            ptr_cells: Vec::new(),
            held: Vec::new(),
            ring: Ring::new(1).expect("a one-slot ring is valid"),
            poisoned: None,
            wired: None,
            _borrows: PhantomData,
        }
    }

    /// The number of atoms.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether the chain has no atoms (running it is an error).
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The completion ring the chain is submitted with.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    // ---- building blocks -------------------------------------------------

    fn check_atom(&self, id: AtomId) -> usize {
        assert!(
            id.0 < self.specs.len(),
            "AtomId {} is not an atom of this chain",
            id.0
        );
        id.0
    }

    fn cell(&mut self, v: u64) -> Src {
        self.wired = None;
        self.cells.push(v);
        Src::Cell(self.cells.len() - 1)
    }

    fn arg(&mut self, a: Arg) -> Src {
        match a {
            Arg::Value(v) => self.cell(v),
            Arg::Counter(c) => {
                assert!(c.0 < self.counters.len(), "Counter is not of this chain");
                Src::Counter(c.0)
            }
            Arg::Result(id) => Src::Result(self.check_atom(id)),
        }
    }

    fn fd(&mut self, fd: Fd<'a>) -> Src {
        match fd {
            Fd::Cwd => self.cell(libc::AT_FDCWD as i64 as u64),
            Fd::Borrowed(fd) => self.cell(fd.as_raw_fd() as i64 as u64),
            Fd::Held(HeldFd(k)) => {
                let fd = self
                    .held
                    .get(k)
                    .expect("HeldFd is not a descriptor of this chain")
                    .as_raw_fd();
                self.cell(fd as i64 as u64)
            }
            Fd::Opened(id) => {
                let i = self.check_atom(id);
                assert!(
                    self.specs[i].opens_fd,
                    "Fd::Opened(AtomId {i}) is not an open/openat atom"
                );
                Src::Result(i)
            }
        }
    }

    fn store(&mut self, s: Storage<'a>) -> (usize, Src) {
        self.wired = None;
        self.storage.push(s);
        let k = self.storage.len() - 1;
        (k, Src::Storage(k))
    }

    /// An atom for system call `nr` with number arguments `args`.
    pub(crate) fn push_args(&mut self, nr: u64, args: &[Arg]) -> AtomId {
        assert!(args.len() <= 6, "an atom has at most 6 arguments");
        let srcs: Vec<Src> = args.iter().map(|a| self.arg(*a)).collect();
        self.push(nr, &srcs)
    }

    fn push(&mut self, nr: u64, args: &[Src]) -> AtomId {
        assert!(args.len() <= 6, "an atom has at most 6 arguments");
        let mut a = [None; 6];
        for (slot, src) in a.iter_mut().zip(args) {
            *slot = Some(*src);
        }
        self.wired = None;
        self.specs.push(Spec {
            nr,
            flags: AtomFlags::empty(),
            next: Next::Auto,
            args: a,
            keep_result: true,
            opens_fd: false,
            buf: None,
            stat: None,
        });
        self.results.push(NOT_RUN);
        AtomId(self.specs.len() - 1)
    }

    pub(crate) fn builder(&mut self, id: AtomId) -> AtomMut<'_, 'a> {
        AtomMut { chain: self, id }
    }

    // ---- typed atoms -----------------------------------------------------

    /// `read(fd, buf, buf.len())` — an atom reading into `buf`.
    ///
    /// The length is always the buffer's length.  The bytes read are
    /// available through [`read_bytes`](Self::read_bytes) (or, for a borrowed
    /// buffer, in the buffer once the chain is gone).
    ///
    /// # Panics
    ///
    /// If `fd` is [`Fd::Opened`] of an atom that is not an `open`/`openat`
    /// of this chain.
    pub fn read(&mut self, fd: impl Into<Fd<'a>>, buf: impl Into<BufMut<'a>>) -> AtomMut<'_, 'a> {
        let fd = self.fd(fd.into());
        let BufMut(buf) = buf.into();
        let len = buf.len() as u64;
        let (k, b) = self.store(buf);
        let n = self.cell(len);
        let id = self.push(libc::SYS_read as u64, &[fd, b, n]);
        self.specs[id.0].buf = Some(k);
        self.builder(id)
    }

    /// `pread64(fd, buf, buf.len(), offset)` — an atom reading at `offset`.
    ///
    /// `offset` may be a [`Counter`] or another atom's result, e.g. to walk
    /// a file in a loop.
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    #[doc(alias = "pread64")]
    pub fn pread(
        &mut self,
        fd: impl Into<Fd<'a>>,
        buf: impl Into<BufMut<'a>>,
        offset: impl Into<Arg>,
    ) -> AtomMut<'_, 'a> {
        let fd = self.fd(fd.into());
        let BufMut(buf) = buf.into();
        let len = buf.len() as u64;
        let (k, b) = self.store(buf);
        let n = self.cell(len);
        let off = self.arg(offset.into());
        let id = self.push(libc::SYS_pread64 as u64, &[fd, b, n, off]);
        self.specs[id.0].buf = Some(k);
        self.builder(id)
    }

    /// `write(fd, buf, buf.len())` — an atom writing `buf`.
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    pub fn write(&mut self, fd: impl Into<Fd<'a>>, buf: impl Into<Buf<'a>>) -> AtomMut<'_, 'a> {
        let fd = self.fd(fd.into());
        let Buf(buf) = buf.into();
        let len = buf.len() as u64;
        let (k, b) = self.store(buf);
        let n = self.cell(len);
        let id = self.push(libc::SYS_write as u64, &[fd, b, n]);
        self.specs[id.0].buf = Some(k);
        self.builder(id)
    }

    /// `pwrite64(fd, buf, buf.len(), offset)` — an atom writing at `offset`.
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    #[doc(alias = "pwrite64")]
    pub fn pwrite(
        &mut self,
        fd: impl Into<Fd<'a>>,
        buf: impl Into<Buf<'a>>,
        offset: impl Into<Arg>,
    ) -> AtomMut<'_, 'a> {
        let fd = self.fd(fd.into());
        let Buf(buf) = buf.into();
        let len = buf.len() as u64;
        let (k, b) = self.store(buf);
        let n = self.cell(len);
        let off = self.arg(offset.into());
        let id = self.push(libc::SYS_pwrite64 as u64, &[fd, b, n, off]);
        self.specs[id.0].buf = Some(k);
        self.builder(id)
    }

    /// `open(path, flags, mode)` — an atom opening a file.
    ///
    /// Its result is the new descriptor: pass the returned id as the `fd` of
    /// later atoms ([`Fd::Opened`]) and to [`close`](Self::close).  The
    /// chain does not close it for you.
    pub fn open(
        &mut self,
        path: impl Into<CPath<'a>>,
        flags: c_int,
        mode: libc::mode_t,
    ) -> AtomMut<'_, 'a> {
        let CPath(p) = path.into();
        let (_, p) = self.store(p);
        let f = self.cell(flags as i64 as u64);
        let m = self.cell(u64::from(mode));
        let id = self.push(libc::SYS_open as u64, &[p, f, m]);
        self.specs[id.0].opens_fd = true;
        self.builder(id)
    }

    /// `openat(dirfd, path, flags, mode)` — an atom opening a file relative
    /// to `dirfd` ([`Fd::Cwd`] for `AT_FDCWD`).
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    pub fn openat(
        &mut self,
        dirfd: impl Into<Fd<'a>>,
        path: impl Into<CPath<'a>>,
        flags: c_int,
        mode: libc::mode_t,
    ) -> AtomMut<'_, 'a> {
        let d = self.fd(dirfd.into());
        let CPath(p) = path.into();
        let (_, p) = self.store(p);
        let f = self.cell(flags as i64 as u64);
        let m = self.cell(u64::from(mode));
        let id = self.push(libc::SYS_openat as u64, &[d, p, f, m]);
        self.specs[id.0].opens_fd = true;
        self.builder(id)
    }

    /// `close(fd)` — an atom closing the descriptor an `open`/`openat` atom
    /// of this chain returned.
    ///
    /// Only such descriptors can be closed by a safe chain: closing one the
    /// chain merely borrows would break whoever owns it.
    ///
    /// # Panics
    ///
    /// If `opened` is not an `open`/`openat` atom of this chain.
    pub fn close(&mut self, opened: AtomId) -> AtomMut<'_, 'a> {
        let fd = self.fd(Fd::Opened(opened));
        let id = self.push(libc::SYS_close as u64, &[fd]);
        self.builder(id)
    }

    /// `fstat(fd, &stat)` — an atom filling a `struct stat` owned by the
    /// chain; read it with [`stat`](Self::stat).
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    pub fn fstat(&mut self, fd: impl Into<Fd<'a>>) -> AtomMut<'_, 'a> {
        let fd = self.fd(fd.into());
        self.wired = None;
        self.stats.push(sys_call::zeroed_stat());
        let k = self.stats.len() - 1;
        let id = self.push(libc::SYS_fstat as u64, &[fd, Src::Stat(k)]);
        self.specs[id.0].stat = Some(k);
        self.builder(id)
    }

    /// `fsync(fd)` — an atom flushing a file.
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    pub fn fsync(&mut self, fd: impl Into<Fd<'a>>) -> AtomMut<'_, 'a> {
        let fd = self.fd(fd.into());
        let id = self.push(libc::SYS_fsync as u64, &[fd]);
        self.builder(id)
    }

    /// `getpid()` — an atom with a positive result and no side effects.
    pub fn getpid(&mut self) -> AtomMut<'_, 'a> {
        let id = self.push(libc::SYS_getpid as u64, &[]);
        self.builder(id)
    }

    /// `umem_add(&counter, inc)` — an atom adding `inc` to `counter`
    /// (wrapping); its result is the counter's new value.
    ///
    /// `inc` may itself be dynamic, e.g. `Arg::Result(read)` sums the bytes
    /// a looping `read` returned.  A new value that looks like `-errno`
    /// (`u64::MAX - 4094 ..= u64::MAX`) is reported as an error by
    /// [`result`](Self::result); use [`raw_result`](Self::raw_result) or
    /// [`counter_value`](Self::counter_value) for such values.
    ///
    /// # Panics
    ///
    /// If `counter` or an id in `inc` does not belong to this chain.
    pub fn umem_add(&mut self, counter: Counter, inc: impl Into<Arg>) -> AtomMut<'_, 'a> {
        assert!(
            counter.0 < self.counters.len(),
            "Counter is not of this chain"
        );
        let target = Src::CounterAddr(counter.0);
        let inc = self.arg(inc.into());
        let id = self.push(crate::abi::nr::UMEM_ADD, &[target, inc]);
        self.builder(id)
    }

    /// A new counter cell with value `initial`.
    pub fn counter(&mut self, initial: u64) -> Counter {
        self.wired = None;
        self.counters.push(initial);
        Counter(self.counters.len() - 1)
    }

    /// Hold `fd` (shared ownership) for as long as the chain exists, and
    /// return it as an [`Fd`] argument for the chain's atoms.
    ///
    /// A chain submitted to an [`AsyncRing`](crate::AsyncRing) must be a
    /// `Chain<'static>`, so it cannot borrow a descriptor; holding one keeps
    /// it open until the chain is dropped, which is after the kernel is done
    /// with the chain.  Pass an `OwnedFd` or an `Arc<OwnedFd>` (keep a clone
    /// to use the descriptor meanwhile).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use syslet::Chain;
    /// let file = Arc::new(std::os::fd::OwnedFd::from(std::fs::File::open("/etc/hostname")?));
    /// let mut chain: Chain<'static> = Chain::new();
    /// let fd = chain.hold_fd(file.clone());
    /// chain.read(fd, vec![0u8; 64]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn hold_fd(&mut self, fd: impl Into<Arc<OwnedFd>>) -> Fd<'a> {
        self.held.push(fd.into());
        Fd::Held(HeldFd(self.held.len() - 1))
    }

    /// The current value of `counter`.
    ///
    /// # Panics
    ///
    /// If `counter` does not belong to this chain.
    pub fn counter_value(&self, counter: Counter) -> u64 {
        self.counters[counter.0]
    }

    /// Set `counter` (e.g. before running the chain again).
    ///
    /// # Panics
    ///
    /// If `counter` does not belong to this chain.
    pub fn set_counter(&mut self, counter: Counter, value: u64) {
        self.counters[counter.0] = value;
    }

    // ---- control flow ----------------------------------------------------

    /// Re-open the builder of an existing atom (to set its flags or its
    /// successor after the atoms it refers to exist).
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn atom(&mut self, id: AtomId) -> AtomMut<'_, 'a> {
        self.check_atom(id);
        AtomMut { chain: self, id }
    }

    /// Set the successor (`next`) of atom `from`: `Some(to)`, or `None` to
    /// end the syslet after it.  Use it for forward references and loops.
    ///
    /// # Panics
    ///
    /// If an id is not an atom of this chain.
    pub fn set_next(&mut self, from: AtomId, to: Option<AtomId>) -> &mut Self {
        let f = self.check_atom(from);
        let next = match to {
            Some(t) => Next::To(self.check_atom(t)),
            None => Next::End,
        };
        self.specs[f].next = next;
        self.wired = None;
        self
    }

    // ---- running ---------------------------------------------------------

    /// Lay the atoms out and wire every pointer, as [`run`](Self::run) does
    /// before calling the kernel, and return them for inspection.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), except the kernel's errors.
    pub fn prepare(&mut self) -> io::Result<&[Atom]> {
        self.wire(Wiring::Sync)?;
        Ok(&self.atoms)
    }

    /// `async_exec(chain, ring)` — run the chain in the calling thread.
    ///
    /// Returns the final atom: the one that ended the syslet (a NULL `next`,
    /// or a stop without `SKIP_TO_NEXT_ON_STOP`).  Each atom's result is then
    /// available through [`result`](Self::result).  A cyclic chain without a
    /// stop runs until a signal interrupts it: the atom at which it was
    /// interrupted is returned with `EINTR` as its result.
    ///
    /// # Errors
    ///
    ///  - `InvalidInput`: the chain is empty, or its last atom has
    ///    `SKIP_TO_NEXT_ON_STOP` (`atom + 1` would be outside the chain).
    ///  - `ENOSYS`: the kernel has no syslets (see
    ///    [`is_supported`](crate::is_supported)).
    ///  - `EFAULT`, `EINVAL`: from the kernel (cannot happen with a
    ///    well-formed chain).
    ///  - `Unsupported`: the chain cannot run again (a buffer was
    ///    [taken](Self::take_buffer) out of it), or the syslet went
    ///    asynchronous (`async_exec` returned NULL).  A kernel following the
    ///    v3 contract never does the latter to a chain whose atoms all have
    ///    `SYSLET_SYNC`; if it does anyway, the chain's own memory is leaked
    ///    (the kernel may still write it) and the chain refuses to run
    ///    again.
    ///  - `InvalidData`: the kernel returned an atom outside the chain.
    ///
    /// # References
    ///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
    #[doc(alias = "async_exec")]
    pub fn run(&mut self) -> io::Result<AtomId> {
        match self.submit()? {
            Some(atom) => self.index_of(atom).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "async_exec returned an atom outside this chain",
                )
            }),
            None => {
                self.leak();
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the syslet went asynchronous (async_exec returned NULL) \
                     although every atom has SYSLET_SYNC; its memory is leaked \
                     (submit chains to an AsyncRing to run them asynchronously)",
                ))
            }
        }
    }

    /// The result of atom `id` in the last run: `None` if it did not run (or
    /// its result is not stored, see [`AtomMut::discard_result`]),
    /// `Some(Err(..))` for a `-errno` result.
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn result(&self, id: AtomId) -> Option<io::Result<i64>> {
        self.raw_result(id).map(sys_call::cvt)
    }

    /// The raw value in atom `id`'s result cell (a C `long`), or `None` if it
    /// did not run in the last run.
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn raw_result(&self, id: AtomId) -> Option<i64> {
        let i = self.check_atom(id);
        self.results.get(i).copied().filter(|&r| r != NOT_RUN)
    }

    /// The buffer of a `read`/`pread`/`write`/`pwrite` atom (all of it).
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn buffer(&self, id: AtomId) -> Option<&[u8]> {
        let i = self.check_atom(id);
        self.specs[i]
            .buf
            .and_then(|k| self.storage.get(k))
            .map(Storage::bytes)
    }

    /// The buffer of a `read`/`pread` atom, or of a `write`/`pwrite` atom
    /// with an owned buffer, for refilling before the next run.
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn buffer_mut(&mut self, id: AtomId) -> Option<&mut [u8]> {
        let i = self.check_atom(id);
        let k = self.specs[i].buf?;
        self.storage.get_mut(k).and_then(Storage::bytes_mut)
    }

    /// Take the owned buffer of a `read`/`pread`/`write`/`pwrite` atom out
    /// of the chain (an empty one is left in its place); `None` if the atom
    /// has no buffer or a borrowed one.
    ///
    /// Afterwards the chain refuses to run again (its atom's length is that
    /// of the buffer taken): take the buffers once you are done with the
    /// chain, e.g. from a [`Completion`](crate::Completion).
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn take_buffer(&mut self, id: AtomId) -> Option<Vec<u8>> {
        let i = self.check_atom(id);
        let k = self.specs[i].buf?;
        match self.storage.get_mut(k)? {
            Storage::Owned(v) => {
                self.wired = None;
                self.poisoned = Some("a buffer was taken out of this chain: it cannot run again");
                Some(mem::take(v))
            }
            _ => None,
        }
    }

    /// The bytes a `read`/`pread` atom read in the last run: the first
    /// `result` bytes of its buffer, if it ran and succeeded.
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn read_bytes(&self, id: AtomId) -> Option<&[u8]> {
        let n = usize::try_from(self.raw_result(id)?).ok()?;
        self.buffer(id)?.get(..n)
    }

    /// The `struct stat` an `fstat` atom filled in the last run, if it ran
    /// and succeeded.
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn stat(&self, id: AtomId) -> Option<&libc::stat> {
        let k = self.specs[self.check_atom(id)].stat?;
        match self.raw_result(id) {
            Some(0) => self.stats.get(k),
            _ => None,
        }
    }

    // ---- internals -------------------------------------------------------

    /// Lay out `atoms` from `specs` and wire every pointer to the current
    /// addresses of the chain's arrays.  Also resets the result cells.
    ///
    /// The pointers stay valid until the next `&mut self` method: nothing is
    /// pushed, moved or freed in between.
    pub(crate) fn wire(&mut self, mode: Wiring) -> io::Result<()> {
        if let Some(why) = self.poisoned {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        let n = self.specs.len();
        let last = match self.specs.last() {
            Some(s) => s,
            None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty chain")),
        };
        if last.flags.contains(AtomFlags::SKIP_TO_NEXT_ON_STOP) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the last atom has SKIP_TO_NEXT_ON_STOP: atom + 1 would be outside the chain",
            ));
        }
        if self.wired == Some(mode) {
            // Same layout, same addresses: only the results start afresh.
            self.results.fill(NOT_RUN);
            return Ok(());
        }
        if mode != Wiring::Sync
            && self
                .specs
                .iter()
                .any(|s| s.flags.contains(AtomFlags::NO_COMPLETE))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an asynchronous chain cannot have SYSLET_NO_COMPLETE atoms: \
                 without its completion nobody knows when the kernel is done with it",
            ));
        }

        for r in &mut self.results {
            *r = NOT_RUN;
        }
        self.atoms.clear();
        self.atoms.resize(n, Atom::EMPTY);

        // Pointer-valued arguments (buffers, paths, `struct stat`, counters
        // as umem_add targets) point at a cell holding the address: one per
        // storage entry, then one per stat slot, then one per counter,
        // refreshed on every run.
        let Chain {
            storage,
            stats,
            counters,
            ptr_cells,
            ..
        } = self;
        ptr_cells.clear();
        // `as usize` exposes the addresses: the kernel accesses this memory
        // outside the Rust abstract machine.
        ptr_cells.extend(storage.iter_mut().map(|s| s.addr() as u64));
        let stats_addr = stats.as_mut_ptr() as usize;
        ptr_cells
            .extend((0..stats.len()).map(|k| (stats_addr + k * size_of::<libc::stat>()) as u64));
        let counters_addr = counters.as_mut_ptr() as usize;
        ptr_cells
            .extend((0..counters.len()).map(|k| (counters_addr + k * size_of::<u64>()) as u64));
        let stat_base = storage.len();
        let counter_base = stat_base + stats.len();

        let w = size_of::<u64>();
        let atoms = self.atoms.as_mut_ptr() as usize;
        let results = self.results.as_mut_ptr() as usize;
        let counters = self.counters.as_mut_ptr() as usize;
        let cells = self.cells.as_mut_ptr() as usize;
        let ptr_cells = self.ptr_cells.as_mut_ptr() as usize;

        for (i, spec) in self.specs.iter().enumerate() {
            let mut a = Atom::new(spec.nr as c_ulong);
            a.flags = match mode {
                Wiring::Sync => spec.flags | AtomFlags::SYNC,
                Wiring::Async => spec.flags,
                Wiring::Queue if i == 0 => spec.flags | AtomFlags::ASYNC,
                Wiring::Queue => spec.flags,
            }
            .bits();
            if spec.keep_result {
                a.ret_ptr = (results + i * w) as *mut c_long;
            }
            let next = match spec.next {
                Next::Auto if i + 1 < n => Some(i + 1),
                Next::Auto | Next::End => None,
                Next::To(j) => Some(j),
            };
            if let Some(j) = next {
                a.next = (atoms + j * size_of::<Atom>()) as *const Atom;
            }
            for (slot, src) in a.arg_ptr.iter_mut().zip(spec.args.iter()) {
                let Some(src) = *src else { break };
                let addr = match src {
                    Src::Cell(k) => cells + k * w,
                    Src::Counter(k) => counters + k * w,
                    Src::Result(k) => results + k * w,
                    Src::Storage(k) => ptr_cells + k * w,
                    Src::Stat(k) => ptr_cells + (stat_base + k) * w,
                    Src::CounterAddr(k) => ptr_cells + (counter_base + k) * w,
                };
                *slot = addr as *const c_ulong;
            }
            self.atoms[i] = a;
        }
        self.wired = Some(mode);
        Ok(())
    }

    /// A pointer to the wired atoms, for `submit`.
    pub(crate) fn atoms_ptr(&self) -> *const Atom {
        self.atoms.as_ptr()
    }

    /// The ring, for `submit`.
    pub(crate) fn ring_mut(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// The address range of the wired atoms (base, length in bytes): where
    /// the kernel's final-atom pointers must fall.
    pub(crate) fn atoms_span(&self) -> (usize, usize) {
        (
            self.atoms.as_ptr() as usize,
            self.atoms.len() * size_of::<Atom>(),
        )
    }

    /// Map an atom address the kernel returned back to its id.
    pub(crate) fn index_of(&self, atom: NonNull<Atom>) -> Option<AtomId> {
        let base = self.atoms.as_ptr() as usize;
        let off = (atom.as_ptr() as usize).checked_sub(base)?;
        let i = off / size_of::<Atom>();
        (off % size_of::<Atom>() == 0 && i < self.atoms.len()).then_some(AtomId(i))
    }

    /// The kernel may still use everything the chain owns: never free it.
    fn leak(&mut self) {
        self.poisoned = Some("this chain went asynchronous once and cannot be run again");
        self.wired = None;
        mem::forget(mem::take(&mut self.atoms));
        mem::forget(mem::take(&mut self.results));
        mem::forget(mem::take(&mut self.cells));
        mem::forget(mem::take(&mut self.counters));
        mem::forget(mem::take(&mut self.ptr_cells));
        mem::forget(mem::take(&mut self.storage));
        mem::forget(mem::take(&mut self.stats));
        mem::forget(mem::take(&mut self.held));
        let ring = Ring::new(1).expect("a one-slot ring is valid");
        mem::forget(mem::replace(&mut self.ring, ring));
    }
}

/// The builder of one atom of a [`Chain`]: set its flags and successor, then
/// take its [`id`](Self::id).
///
/// ```no_run
/// # use syslet::{AtomFlags, Chain};
/// let mut chain = Chain::new();
/// let pid = chain.getpid().flags(AtomFlags::STOP_ON_NEGATIVE).id();
/// # let _ = pid;
/// ```
#[derive(Debug)]
pub struct AtomMut<'c, 'a> {
    chain: &'c mut Chain<'a>,
    id: AtomId,
}

impl AtomMut<'_, '_> {
    /// The atom's id.
    pub fn id(&self) -> AtomId {
        self.id
    }

    fn spec(&mut self) -> &mut Spec {
        self.chain.wired = None;
        &mut self.chain.specs[self.id.0]
    }

    /// Add `flags` (`SYSLET_STOP_ON_*`, `SYSLET_SKIP_TO_NEXT_ON_STOP`,
    /// `SYSLET_SYNC`, `SYSLET_NO_COMPLETE`).  [`Chain::run`] sets
    /// `SYSLET_SYNC` on every atom; on an [`AsyncRing`](crate::AsyncRing)
    /// `SYSLET_SYNC` keeps just this atom from going asynchronous, and
    /// `SYSLET_NO_COMPLETE` is refused.
    ///
    /// # Panics
    ///
    /// If `flags` contains [`AtomFlags::ASYNC`]: that is not a property of
    /// an atom here but of a submission:
    /// [`AsyncRing::queue`](crate::AsyncRing::queue) sets it on the first
    /// atom.
    pub fn flags(mut self, flags: AtomFlags) -> Self {
        assert!(
            !flags.contains(AtomFlags::ASYNC),
            "SYSLET_ASYNC is not an atom flag of a Chain: use AsyncRing::queue"
        );
        self.spec().flags |= flags;
        self
    }

    /// Continue with atom `next` after this one (unless a stop ends the
    /// syslet or skips to `atom + 1`).  `next` may be this atom or an earlier
    /// one: that is a loop.
    ///
    /// # Panics
    ///
    /// If `next` is not an atom of this chain.
    pub fn then(mut self, next: AtomId) -> Self {
        let j = self.chain.check_atom(next);
        self.spec().next = Next::To(j);
        self
    }

    /// End the syslet after this atom (`next` = NULL), instead of continuing
    /// with the atom added after it.
    pub fn end(mut self) -> Self {
        self.spec().next = Next::End;
        self
    }

    /// Do not store this atom's result (`ret_ptr` = NULL).  The stop flags
    /// still test it; [`Chain::result`] reports `None`.
    pub fn discard_result(mut self) -> Self {
        self.spec().keep_result = false;
        self
    }
}

impl From<AtomMut<'_, '_>> for AtomId {
    fn from(a: AtomMut<'_, '_>) -> AtomId {
        a.id
    }
}

#[cfg(test)]
impl Chain<'_> {
    /// The atoms as the last `wire` left them.
    pub(crate) fn wired_atoms(&self) -> &[Atom] {
        &self.atoms
    }

    /// What the kernel would read through argument pointer `p`: found by
    /// address among the chain's cells (no raw dereference).
    fn deref_arg(&self, p: *const c_ulong) -> Option<u64> {
        fn find(v: &[u64], addr: usize) -> Option<u64> {
            let off = addr.checked_sub(v.as_ptr() as usize)?;
            (off % 8 == 0).then_some(())?;
            v.get(off / 8).copied()
        }
        let a = p as usize;
        let results: Vec<u64> = self.results.iter().map(|&r| r as u64).collect();
        find(&self.cells, a)
            .or_else(|| find(&self.counters, a))
            .or_else(|| find(&self.ptr_cells, a))
            .or_else(|| {
                let off = a.checked_sub(self.results.as_ptr() as usize)?;
                (off % 8 == 0).then_some(())?;
                results.get(off / 8).copied()
            })
    }

    /// Pretend the kernel stored `v` as atom `id`'s result.
    fn set_result(&mut self, id: AtomId, v: i64) {
        self.results[id.0] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn cpath(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn open_read_close_wiring() {
        let mut c = Chain::new();
        let open = c
            .open(cpath("/etc/hostname"), libc::O_RDONLY, 0)
            .flags(AtomFlags::STOP_ON_NEGATIVE)
            .id();
        let read = c.read(open, vec![0u8; 100]).id();
        let close = c.close(open).id();
        assert_eq!((open.index(), read.index(), close.index()), (0, 1, 2));
        assert_eq!(c.len(), 3);

        let atoms = c.prepare().unwrap().to_vec();
        let base = c.atoms_ptr() as usize;
        let at = |i: usize| (base + i * size_of::<Atom>()) as *const Atom;

        let nrs: Vec<u64> = atoms.iter().map(|a| a.nr).collect();
        assert_eq!(
            nrs,
            [libc::SYS_open, libc::SYS_read, libc::SYS_close].map(|n| n as u64)
        );
        assert_eq!(atoms[0].next, at(1));
        assert_eq!(atoms[1].next, at(2));
        assert!(atoms[2].next.is_null());
        assert_eq!(
            atoms[0].flags,
            (AtomFlags::SYNC | AtomFlags::STOP_ON_NEGATIVE).bits()
        );
        assert_eq!(atoms[1].flags, AtomFlags::SYNC.bits());

        // open(path, O_RDONLY, 0): the path pointer cell holds the string.
        let path = c.deref_arg(atoms[0].arg_ptr[0]).unwrap();
        let stored = c.storage[0].bytes();
        assert_eq!(path as usize, stored.as_ptr() as usize);
        assert_eq!(stored, b"/etc/hostname\0");
        assert_eq!(
            c.deref_arg(atoms[0].arg_ptr[1]),
            Some(libc::O_RDONLY as u64)
        );
        assert_eq!(c.deref_arg(atoms[0].arg_ptr[2]), Some(0));
        assert!(atoms[0].arg_ptr[3..].iter().all(|p| p.is_null()));

        // read(fd = open's result, buf, 100): the fd is the result cell.
        assert!(!atoms[0].ret_ptr.is_null());
        assert_eq!(atoms[1].arg_ptr[0] as usize, atoms[0].ret_ptr as usize);
        let buf = c.deref_arg(atoms[1].arg_ptr[1]).unwrap();
        assert_eq!(buf as usize, c.buffer(read).unwrap().as_ptr() as usize);
        assert_eq!(c.deref_arg(atoms[1].arg_ptr[2]), Some(100));
        assert!(atoms[1].arg_ptr[3].is_null());

        // close(fd)
        assert_eq!(atoms[2].arg_ptr[0] as usize, atoms[0].ret_ptr as usize);
        assert!(atoms[2].arg_ptr[1].is_null());

        // Result cells are distinct and reset.
        let rets: Vec<usize> = atoms.iter().map(|a| a.ret_ptr as usize).collect();
        assert_eq!(rets[1] - rets[0], 8);
        assert_eq!(rets[2] - rets[1], 8);
        for id in [open, read, close] {
            assert_eq!(c.result(id).map(|r| r.ok()), None);
        }
        assert!(atoms.iter().all(|a| a.private.is_null()));
    }

    #[test]
    fn loop_and_branch_wiring() {
        let mut c = Chain::new();
        let steps = c.counter(0);
        let total = c.counter(7);
        let open = c.open(cpath("/x"), libc::O_RDONLY, 0).id();
        let read = c
            .read(open, vec![0u8; 4096])
            .flags(AtomFlags::STOP_ON_NON_POSITIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP)
            .id();
        let close = c.close(open).end().id();
        let add_total = c.umem_add(total, read).id();
        let add_steps = c.umem_add(steps, 1).then(read).id();
        c.set_next(read, Some(add_total));

        let atoms = c.prepare().unwrap().to_vec();
        let base = c.atoms_ptr() as usize;
        let at = |i: AtomId| (base + i.index() * size_of::<Atom>()) as *const Atom;
        assert_eq!(atoms[open.index()].next, at(read));
        assert_eq!(atoms[read.index()].next, at(add_total));
        assert!(atoms[close.index()].next.is_null());
        assert_eq!(atoms[add_total.index()].next, at(add_steps));
        assert_eq!(atoms[add_steps.index()].next, at(read));
        // SKIP_TO_NEXT_ON_STOP goes to read + 1, which must be close.
        assert_eq!(close.index(), read.index() + 1);
        assert_eq!(
            atoms[read.index()].flags,
            (AtomFlags::SYNC | AtomFlags::STOP_ON_NON_POSITIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP)
                .bits()
        );

        // umem_add(&total, read's result)
        let a = &atoms[add_total.index()];
        assert_eq!(a.nr, 501);
        // The target argument is the counter's address, not its value.
        assert_eq!(
            c.deref_arg(a.arg_ptr[0]),
            Some(c.counters.as_ptr() as u64 + 8)
        );
        assert_eq!(a.arg_ptr[1] as usize, atoms[read.index()].ret_ptr as usize);
        // umem_add(&steps, 1)
        let a = &atoms[add_steps.index()];
        assert_eq!(c.deref_arg(a.arg_ptr[0]), Some(c.counters.as_ptr() as u64));
        assert_eq!(c.deref_arg(a.arg_ptr[1]), Some(1));
        assert!(a.arg_ptr[2].is_null());

        c.set_counter(steps, 41);
        assert_eq!(c.counter_value(steps), 41);
        assert_eq!(c.counter_value(total), 7);
    }

    #[test]
    fn self_loop_and_discarded_result() {
        let mut c = Chain::new();
        let g = c.getpid().id();
        c.atom(g).then(g);
        let h = c.getpid().discard_result().id();
        let atoms = c.prepare().unwrap().to_vec();
        assert_eq!(atoms[0].next, c.atoms_ptr());
        assert!(atoms[0].arg_ptr.iter().all(|p| p.is_null()));
        assert!(atoms[h.index()].ret_ptr.is_null());
        assert!(atoms[h.index()].next.is_null());
        assert_eq!(c.result(h).map(|r| r.ok()), None);
    }

    #[test]
    fn refuses_bad_layouts() {
        let mut c = Chain::new();
        let e = c.prepare().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(c.run().unwrap_err().kind(), io::ErrorKind::InvalidInput);

        c.getpid();
        c.getpid()
            .flags(AtomFlags::STOP_ON_ZERO | AtomFlags::SKIP_TO_NEXT_ON_STOP);
        let e = c.prepare().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Adding an atom after it makes atom + 1 part of the chain.
        c.getpid();
        assert!(c.prepare().is_ok());
    }

    #[test]
    #[should_panic(expected = "SYSLET_ASYNC")]
    fn refuses_async() {
        let mut c = Chain::new();
        c.getpid().flags(AtomFlags::ASYNC);
    }

    #[test]
    #[should_panic(expected = "not an open/openat atom")]
    fn close_needs_an_open_atom() {
        let mut c = Chain::new();
        let g = c.getpid().id();
        c.close(g);
    }

    #[test]
    #[should_panic(expected = "not an atom of this chain")]
    fn foreign_atom_id() {
        let mut a = Chain::new();
        a.getpid();
        let far = a.getpid().id();
        let mut b = Chain::new();
        let mine = b.counter(0);
        b.umem_add(mine, far);
    }

    #[test]
    #[should_panic(expected = "Counter is not of this chain")]
    fn foreign_counter() {
        let mut a = Chain::new();
        a.counter(0);
        let far = a.counter(0);
        let mut b = Chain::new();
        b.umem_add(far, 1);
    }

    #[test]
    fn borrowed_buffers_fd_and_offsets() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let mut inbuf = [0u8; 32];
        let outbuf = b"hello".to_vec();
        let in_addr = inbuf.as_ptr() as usize;
        let mut c = Chain::new();
        let off = c.counter(4096);
        let r = c.pread(&file, &mut inbuf, off).id();
        let w = c.pwrite(&file, &outbuf[..], -1i64).id();
        let s = c.fstat(&file).id();
        let f = c.fsync(Fd::Borrowed(file.as_fd())).id();
        let o = c.openat(Fd::Cwd, cpath("rel"), libc::O_RDONLY, 0o644).id();
        let atoms = c.prepare().unwrap().to_vec();
        let fd = file.as_raw_fd() as u64;

        let a = &atoms[r.index()];
        assert_eq!(a.nr, libc::SYS_pread64 as u64);
        assert_eq!(c.deref_arg(a.arg_ptr[0]), Some(fd));
        assert_eq!(c.deref_arg(a.arg_ptr[1]), Some(in_addr as u64));
        assert_eq!(c.deref_arg(a.arg_ptr[2]), Some(32));
        assert_eq!(c.deref_arg(a.arg_ptr[3]), Some(4096));
        assert_eq!(a.arg_ptr[3] as usize, c.counters.as_ptr() as usize);

        let a = &atoms[w.index()];
        assert_eq!(a.nr, libc::SYS_pwrite64 as u64);
        assert_eq!(
            c.deref_arg(a.arg_ptr[1]),
            Some(outbuf.as_ptr() as usize as u64)
        );
        assert_eq!(c.deref_arg(a.arg_ptr[2]), Some(5));
        assert_eq!(c.deref_arg(a.arg_ptr[3]), Some(u64::MAX));

        let a = &atoms[s.index()];
        assert_eq!(a.nr, libc::SYS_fstat as u64);
        let st = c.deref_arg(a.arg_ptr[1]).unwrap() as usize;
        assert_eq!(st, c.stats.as_ptr() as usize);
        assert_eq!(st % std::mem::align_of::<libc::stat>(), 0);

        let a = &atoms[f.index()];
        assert_eq!(a.nr, libc::SYS_fsync as u64);
        assert_eq!(c.deref_arg(a.arg_ptr[0]), Some(fd));

        let a = &atoms[o.index()];
        assert_eq!(a.nr, libc::SYS_openat as u64);
        assert_eq!(
            c.deref_arg(a.arg_ptr[0]),
            Some(libc::AT_FDCWD as i64 as u64)
        );
        assert_eq!(c.deref_arg(a.arg_ptr[3]), Some(0o644));

        // Write buffers borrowed as shared slices cannot be handed out
        // mutably; read buffers can.
        assert!(c.buffer_mut(w).is_none());
        assert_eq!(c.buffer_mut(r).map(|b| b.len()), Some(32));
        drop(c);
        assert_eq!(inbuf, [0u8; 32]);
    }

    #[test]
    fn results_and_bytes() {
        let mut c = Chain::new();
        let open = c.open(cpath("/x"), libc::O_RDONLY, 0).id();
        let read = c.read(open, b"abcdef".to_vec()).id();
        let st = c.fstat(open).id();
        c.prepare().unwrap();
        assert!(c.result(read).is_none());
        assert!(c.read_bytes(read).is_none());
        assert!(c.stat(st).is_none());

        c.set_result(open, -libc::ENOENT as i64);
        let e = c.result(open).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        c.set_result(read, 3);
        assert_eq!(c.result(read).unwrap().unwrap(), 3);
        assert_eq!(c.read_bytes(read), Some(&b"abc"[..]));
        assert_eq!(c.buffer(read), Some(&b"abcdef"[..]));
        c.set_result(st, 0);
        assert!(c.stat(st).is_some());
        // -4096 is a value, not an errno.
        c.set_result(read, -4096);
        assert_eq!(c.result(read).unwrap().unwrap(), -4096);
        assert!(c.read_bytes(read).is_none());

        // A new run resets every result.
        c.prepare().unwrap();
        assert_eq!(c.raw_result(open), None);
        assert_eq!(c.raw_result(read), None);
    }

    #[test]
    fn not_run_sentinel_is_a_bad_fd() {
        assert!(sys_call::cvt(NOT_RUN).is_ok(), "not an errno value");
    }

    #[test]
    fn arg_conversions() {
        assert_eq!(Arg::from(-1i32), Arg::Value(u64::MAX));
        assert_eq!(Arg::from(-2i64), Arg::Value(u64::MAX - 1));
        assert_eq!(Arg::from(u32::MAX), Arg::Value(u32::MAX as u64));
        assert_eq!(Arg::from(7usize), Arg::Value(7));
        assert_eq!(Arg::from(7u64), Arg::Value(7));
        assert_eq!(Arg::from(AtomId(3)), Arg::Result(AtomId(3)));
        assert_eq!(Arg::from(Counter(2)), Arg::Counter(Counter(2)));
    }

    #[test]
    fn owned_memory_survives_moves() {
        let mut c = Chain::new();
        let r = c.read(Fd::Cwd, vec![1u8; 10]).id();
        let before = c.prepare().unwrap()[0];
        let mut boxed = Box::new(c);
        let after = boxed.prepare().unwrap()[0];
        // The buffer did not move; its pointer cell holds the same address.
        assert_eq!(
            boxed.deref_arg(after.arg_ptr[1]),
            Some(boxed.buffer(r).unwrap().as_ptr() as u64)
        );
        assert_eq!(before.nr, after.nr);
    }
}
