//! Asynchronous syslets: an [`AsyncRing`] owns a completion ring and every
//! chain in flight on it.

use core::fmt;
use core::ptr::NonNull;
use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use crate::abi::{AsyncHead, Atom};
use crate::chain::{AtomId, Chain, Wiring};
use crate::ring::Ring;

/// The receipt for a submission: [`AsyncRing::submit`] returns it for a
/// syslet that went asynchronous, and the [`Completion`] reaped for it
/// later carries the same ticket.
///
/// Tickets of one ring are distinct and increase with every submission
/// (synchronous ones too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket's number: 0 for the ring's first submission, then 1, ...
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A finished syslet: the chain, handed back, with its results.
///
/// Read the atoms' results with [`result`](Self::result) (or through
/// [`chain`](Self::chain)), take owned buffers back with
/// [`take_buffer`](Self::take_buffer), or get the whole chain back with
/// [`into_chain`](Self::into_chain) to submit it again.  The kernel no
/// longer uses any of its memory.
#[derive(Debug)]
pub struct Completion {
    ticket: Ticket,
    last: AtomId,
    went_async: bool,
    chain: Box<Chain<'static>>,
}

impl Completion {
    /// The submission's ticket.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// The final atom: the one that ended the syslet.
    pub fn final_atom(&self) -> AtomId {
        self.last
    }

    /// Whether the syslet went asynchronous (it was reaped from the ring)
    /// rather than completing within `submit`.
    pub fn went_async(&self) -> bool {
        self.went_async
    }

    /// The result of atom `id`, as [`Chain::result`].
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn result(&self, id: AtomId) -> Option<io::Result<i64>> {
        self.chain.result(id)
    }

    /// Take the owned buffer of atom `id` back, as [`Chain::take_buffer`].
    ///
    /// # Panics
    ///
    /// If `id` is not an atom of this chain.
    pub fn take_buffer(&mut self, id: AtomId) -> Option<Vec<u8>> {
        self.chain.take_buffer(id)
    }

    /// The chain.
    pub fn chain(&self) -> &Chain<'static> {
        &self.chain
    }

    /// The chain, to change counters or buffers before submitting it again.
    pub fn chain_mut(&mut self) -> &mut Chain<'static> {
        &mut self.chain
    }

    /// The chain, to submit it again or to keep its buffers.
    pub fn into_chain(self) -> Chain<'static> {
        *self.chain
    }
}

/// What [`AsyncRing::submit`] did with a chain.
#[derive(Debug)]
pub enum Submitted {
    /// The whole syslet ran in the caller without blocking ("cached"):
    /// here are the chain and its results.
    Done(Completion),
    /// It went asynchronous: the ring keeps the chain until its completion
    /// is reaped ([`AsyncRing::try_reap`], [`AsyncRing::reap`]).
    Pending(Ticket),
}

impl Submitted {
    /// The submission's ticket, either way.
    pub fn ticket(&self) -> Ticket {
        match self {
            Submitted::Done(c) => c.ticket(),
            Submitted::Pending(t) => *t,
        }
    }

    /// Whether the syslet went asynchronous.
    pub fn is_pending(&self) -> bool {
        matches!(self, Submitted::Pending(_))
    }
}

/// A chain the kernel may still use.
#[derive(Debug)]
struct InFlight {
    ticket: Ticket,
    /// End of its atom array (the map's key is the start).
    end: usize,
    chain: Box<Chain<'static>>,
}

/// Asynchronous syslets: a completion ring that owns its memory, its
/// [`AsyncHead`] and every chain in flight on it.
///
/// [`submit`](Self::submit) takes a [`Chain`] by value and runs it in the
/// calling thread.  If no atom blocks, the result is there at once
/// ([`Submitted::Done`]).  If an atom blocks, the kernel hands the caller's
/// user context (and its thread ID, TLS, signal mask, ...) to a spare
/// thread, which returns from `submit` at once with
/// [`Submitted::Pending`]; the chain goes on in a kernel thread, and when it
/// ends its final atom is posted to the ring.  [`try_reap`](Self::try_reap)
/// and [`reap`](Self::reap) (which sleeps in `async_wait`) hand out those
/// [`Completion`]s with the chain and its results.  [`queue`](Self::queue)
/// does not even try the caller: `SYSLET_ASYNC` sends the chain to a kernel
/// thread at once.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::os::fd::OwnedFd;
/// use syslet::{AsyncRing, Chain, Submitted};
///
/// let mut ring = AsyncRing::new(64)?;
/// let file: Arc<OwnedFd> = Arc::new(std::fs::File::open("/etc/hostname")?.into());
/// let mut chain = Chain::new();
/// let fd = chain.hold_fd(file.clone());
/// let read = chain.pread(fd, vec![0u8; 4096], 0).id();
/// let mut done = match ring.submit(chain)? {
///     Submitted::Done(c) => c,           // it was in the page cache
///     Submitted::Pending(_ticket) => {
///         // ... do other work, submit more ...
///         ring.reap()?                   // sleeps until it is done
///     }
/// };
/// let n = done.result(read).unwrap()? as usize;
/// let buf = done.take_buffer(read).unwrap();
/// println!("{}", String::from_utf8_lossy(&buf[..n]));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Ownership
///
/// The kernel may run atoms long after `submit` returned, in another
/// thread, so everything the atoms use must belong to the submission: a
/// `Chain<'static>` owns its atoms, argument and result cells, counters,
/// `struct stat` slots and owned buffers and paths (or borrows them for
/// `'static`), and [holds](Chain::hold_fd) its descriptors.  The ring keeps
/// the chain (its heap memory never moves) and gives it back only in the
/// `Completion` the kernel posted for it, after which the kernel no longer
/// touches it: a completion cannot outlive the memory it points at, and no
/// Rust reference to the memory exists while the kernel writes it.  Chains
/// with `SYSLET_NO_COMPLETE` atoms are refused: without a completion nobody
/// could tell when their memory is free.
///
/// Submitting and reaping take `&mut self`; the ring is neither `Send` nor
/// `Sync` (it holds chains), so one thread at a time reaps:
///
/// ```compile_fail
/// fn shared<T: Sync>(_: &T) {}
/// shared(&syslet::AsyncRing::new(8).unwrap());
/// ```
///
/// A ring may have more syslets in flight than slots: a kernel thread
/// whose completion finds the ring full waits for a free slot (woken by
/// reaping, or within 20 ms), so no completion is lost.
///
/// # Where finished threads go
///
/// Each syslet that went asynchronous leaves a thread without a user
/// context when it ends (the original submitter, or the kernel spare that
/// ran a [queued](Self::queue) chain).  The ring's fallbacks say where it
/// goes:
///
///  - [`new`](Self::new): nowhere (`head_eip` and `new_thread_eip` 0): it
///    parks in the kernel as a spare for the next handoff, and exits after
///    5 s idle if the process has other spares.  Nothing to manage.
///  - [`with_user_threads`](Self::with_user_threads): the crate's entry
///    point, at `head_eip` and `new_thread_eip`.  It runs in user space
///    with no TLS, blocks every signal and loops on `async_thread()`, so
///    the thread parks as a *user* spare: it serves the next handoff like a
///    kernel spare (taking over the blocked head's context, signal mask
///    included), but is never reaped for idleness, and it does not take
///    `SYSLET_ASYNC` chains.  This is the v3 way of doing it.  The entry
///    uses no stack, so all threads can share the one stack value the
///    kernel wants; it is nevertheless a real 64 KiB stack, mapped once
///    per process and never freed (threads may go there at any time), as
///    the kernel builds a signal frame on it if a signal arrives before
///    the entry's first instruction has blocked them all.  A handler that
///    runs there has no TLS (no `errno`, no `thread_local!`, no
///    allocation), and two such handlers at once would share the stack:
///    the kernel starts a thread at `head_eip` with the head's signal mask
///    and one at `new_thread_eip` with none blocked.  Processes with
///    signal handlers that need TLS should prefer [`new`](Self::new).
///
/// # Dropping
///
/// Dropping the ring waits (in `async_wait`, retrying after signals) for
/// every syslet still in flight, then drops their chains: the kernel may
/// write their memory until then.  A syslet that never ends — a read from
/// a pipe nobody writes to — blocks the drop forever; end it first (close
/// the pipe's other end, ...), or [`abandon`](Self::abandon) the ring,
/// which leaks the ring and the chains in flight instead.  In a child
/// after `fork` (whose kernel threads stayed in the parent) the drop leaks
/// the chains in flight rather than waiting for them.
///
/// The head and the slots are freed with the ring once nothing is in
/// flight: the kernel advances `kernel_ring_idx` and reads the fallbacks
/// *before* it stores a completion into its slot, and touches neither
/// afterwards.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
///  - the project's ABI contract, `v3-abi.md`: completion ring protocol,
///    B.4 (fallbacks), B.7 (a full ring)
pub struct AsyncRing {
    /// `None` only while dropping.
    ring: Option<Ring>,
    /// Keyed by the address of each chain's atom array.
    in_flight: BTreeMap<usize, InFlight>,
    next_ticket: u64,
    /// The process that submitted (a child after `fork` must not wait).
    owner: u32,
}

impl fmt::Debug for AsyncRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRing")
            .field("slots", &self.slots())
            .field("in_flight", &self.in_flight.len())
            .field("user_threads", &self.user_threads())
            .field("head", &self.head())
            .finish_non_exhaustive()
    }
}

impl AsyncRing {
    /// A ring of `slots` completion slots, in the zero-configuration mode:
    /// threads that finish a syslet park in the kernel.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `slots` is 0 or the ring would be larger than
    /// [`MAX_RING_BYTES`](crate::MAX_RING_BYTES).
    pub fn new(slots: usize) -> io::Result<AsyncRing> {
        Ok(AsyncRing {
            ring: Some(Ring::new(slots)?),
            in_flight: BTreeMap::new(),
            next_ticket: 0,
            owner: std::process::id(),
        })
    }

    /// A ring of `slots` completion slots whose finished threads go to the
    /// crate's user-space entry and park there in `async_thread()` (see
    /// "Where finished threads go" above).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), or the `mmap` error of the fallback stack.
    pub fn with_user_threads(slots: usize) -> io::Result<AsyncRing> {
        let mut r = AsyncRing::new(slots)?;
        r.raw_mut().set_user_threads(true)?;
        Ok(r)
    }

    fn raw(&self) -> &Ring {
        match &self.ring {
            Some(r) => r,
            None => unreachable!("the ring is only taken while dropping"),
        }
    }

    fn raw_mut(&mut self) -> &mut Ring {
        match &mut self.ring {
            Some(r) => r,
            None => unreachable!("the ring is only taken while dropping"),
        }
    }

    /// The number of completion slots.
    pub fn slots(&self) -> usize {
        self.raw().slots()
    }

    /// The number of syslets in flight: submitted, went asynchronous, not
    /// reaped yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the fallbacks point at the crate's thread entry
    /// ([`with_user_threads`](Self::with_user_threads)).
    pub fn user_threads(&self) -> bool {
        self.raw().user_threads()
    }

    /// A snapshot of the ring's head (indices and fallbacks).
    pub fn head(&self) -> AsyncHead {
        self.raw().head()
    }

    /// The number of completions waiting in the ring, without a system
    /// call.
    pub fn ready(&self) -> usize {
        self.raw().ready()
    }

    /// Run `chain`: in the caller until an atom blocks, then
    /// asynchronously.
    ///
    /// Returns [`Submitted::Done`] with the chain and its results if it ran
    /// to its end without blocking, or [`Submitted::Pending`] if it went
    /// asynchronous: the ring keeps the chain until its completion is
    /// reaped.  Atoms with [`AtomFlags::SYNC`](crate::AtomFlags::SYNC) never
    /// go asynchronous (the caller blocks in them).
    ///
    /// If the process cannot get a spare thread (`RLIMIT_NPROC`, the pids
    /// cgroup, ...) the kernel runs the chain synchronously to its end: that
    /// is a `Done`, never an error.
    ///
    /// # Errors
    ///
    /// The chain is dropped.
    ///  - `InvalidInput`: the chain is empty, its last atom has
    ///    `SKIP_TO_NEXT_ON_STOP`, or an atom has `SYSLET_NO_COMPLETE`.
    ///  - `Unsupported`: the chain may not run again (a buffer was taken
    ///    out of it).
    ///  - `ENOSYS`: the kernel has no syslets.
    ///  - `EINTR`: a signal interrupted the restart of the syslet after a
    ///    stop (SIGSTOP, a tracer).
    ///  - `InvalidData`: the kernel returned an atom outside the chain.
    #[doc(alias = "async_exec")]
    pub fn submit(&mut self, chain: Chain<'static>) -> io::Result<Submitted> {
        self.exec(chain, Wiring::Async)
    }

    /// Queue `chain` to a kernel thread at once (`SYSLET_ASYNC` on its
    /// first atom), without trying to run it in the caller.
    ///
    /// Usually [`Submitted::Pending`].  The kernel runs the chain in the
    /// caller after all (as [`submit`](Self::submit) does) when no idle
    /// kernel spare can take it, e.g. while the only idle spares are user
    /// ones ([`with_user_threads`](Self::with_user_threads)) or under
    /// ptrace; so this may be `Done` too.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub fn queue(&mut self, chain: Chain<'static>) -> io::Result<Submitted> {
        self.exec(chain, Wiring::Queue)
    }

    fn exec(&mut self, mut chain: Chain<'static>, mode: Wiring) -> io::Result<Submitted> {
        chain.wire(mode)?;
        let (base, len) = chain.atoms_span();
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let head = self.raw_mut().as_mut_ptr();
        // SAFETY: the `# Safety` of `async_exec`, point by point:
        //  - Memory: `wire` just pointed every atom at memory `chain` owns
        //    (its heap arrays of atoms, cells, results, counters, stat
        //    slots; owned buffers and paths) or borrows for 'static; the
        //    descriptors are borrowed for 'static or held by the chain.
        //    Lengths are the buffers' own; atoms only change result cells,
        //    counters and buffers, never pointer cells.  Nobody accesses
        //    `chain` during the call.  If the syslet goes asynchronous
        //    (`Ok(None)`) the chain is moved into `in_flight` below — moving
        //    a `Chain` moves none of its heap memory — and no reference to
        //    its memory is made, nor is it wired again, until the kernel
        //    posted its final atom and `try_reap` popped it.  Every
        //    asynchronous chain posts one: `wire` refused
        //    SYSLET_NO_COMPLETE, and the kernel posts failed chains too
        //    (only the death of the process loses a completion).
        //  - Reach: the last atom has no SKIP_TO_NEXT_ON_STOP (checked by
        //    `wire`), so `atom + 1` stays inside the array.
        //  - The ring: `self` keeps the head and the slots allocated while
        //    anything is in flight (`Drop` waits for or leaks the chains in
        //    flight); the kernel touches neither after it posted the last
        //    completion.  Its fallbacks are 0 or the crate's entry
        //    (`Ring::set_user_threads`).
        //  - The calls: the typed atoms are sound system calls on such
        //    memory, from any thread of the process and after `submit`
        //    returned; `Chain::syscall`'s caller vouched for the rest.
        let ret = unsafe { crate::async_exec(chain.atoms_ptr(), head) };
        if self.user_threads() {
            // Offer the next spare the kernel creates a stack again.
            self.raw().refill();
        }
        match ret? {
            Some(last) => {
                let last = chain.index_of(last).ok_or_else(outside)?;
                Ok(Submitted::Done(Completion {
                    ticket,
                    last,
                    went_async: false,
                    chain: Box::new(chain),
                }))
            }
            None => {
                self.in_flight.insert(
                    base,
                    InFlight {
                        ticket,
                        end: base + len,
                        chain: Box::new(chain),
                    },
                );
                Ok(Submitted::Pending(ticket))
            }
        }
    }

    /// Take the next completion from the ring, if one is there; never
    /// blocks.
    ///
    /// Completions come in the order the kernel posted them.  Freeing the
    /// slot lets a kernel thread that waits for one (more in flight than
    /// slots) post at once.
    ///
    /// # Errors
    ///
    /// `InvalidData` if the kernel posted an atom that is not the final
    /// atom of a chain in flight on this ring (a kernel bug; the slot is
    /// consumed, nothing is freed).
    pub fn try_reap(&mut self) -> io::Result<Option<Completion>> {
        let before = self.in_flight.len();
        let Some(atom) = self.raw_mut().pop() else {
            return Ok(None);
        };
        if before > self.slots() {
            // A kernel thread may wait for the slot just freed.
            let _ = self.raw().wait(0);
        }
        let addr = atom.as_ptr() as usize;
        let key = match self.in_flight.range(..=addr).next_back() {
            Some((&start, f)) if addr < f.end => start,
            _ => return Err(not_in_flight(atom)),
        };
        let last = self.in_flight[&key]
            .chain
            .index_of(atom)
            .ok_or_else(|| not_in_flight(atom))?;
        let f = self.in_flight.remove(&key).expect("the key was just found");
        Ok(Some(Completion {
            ticket: f.ticket,
            last,
            went_async: true,
            chain: f.chain,
        }))
    }

    /// Take the next completion, sleeping in `async_wait` until there is
    /// one.
    ///
    /// # Errors
    ///
    ///  - `InvalidInput`: nothing is in flight (it would sleep forever).
    ///  - `Interrupted`: a signal handler ran (nothing was taken; call
    ///    again).
    ///  - `InvalidData`: as [`try_reap`](Self::try_reap).
    pub fn reap(&mut self) -> io::Result<Completion> {
        loop {
            if let Some(c) = self.try_reap()? {
                return Ok(c);
            }
            if self.in_flight.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no syslet in flight on this ring",
                ));
            }
            self.raw().wait(1)?;
        }
    }

    /// Take the next completion, waiting at most `timeout`; `None` if none
    /// came (at once if nothing is in flight).
    ///
    /// `async_wait` has no timeout, so this polls the ring, sleeping 50 µs
    /// at first and up to 10 ms between looks.
    ///
    /// # Errors
    ///
    /// `InvalidData`: as [`try_reap`](Self::try_reap).
    pub fn reap_timeout(&mut self, timeout: Duration) -> io::Result<Option<Completion>> {
        let start = Instant::now();
        let mut nap = Duration::from_micros(50);
        loop {
            if let Some(c) = self.try_reap()? {
                return Ok(Some(c));
            }
            let waited = start.elapsed();
            if self.in_flight.is_empty() || waited >= timeout {
                return Ok(None);
            }
            std::thread::sleep(nap.min(timeout - waited));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// `async_wait`: sleep until at least `min` completions are in the
    /// ring, and return how many are (without taking them).  `min` 0
    /// returns at once.
    ///
    /// # Errors
    ///
    ///  - `InvalidInput`: `min` is more than the syslets in flight (it would
    ///    sleep forever) or than the ring's slots (the ring could never
    ///    hold them).
    ///  - `Interrupted`: a signal handler ran.
    #[doc(alias = "async_wait")]
    pub fn wait(&mut self, min: usize) -> io::Result<usize> {
        if min > self.in_flight.len() || min > self.slots() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot wait for more completions than syslets in flight or slots",
            ));
        }
        self.raw().wait(min)
    }

    /// Give up on the syslets in flight: return at once, leaking the ring
    /// and every chain in flight (the kernel may still use them), instead
    /// of the blocking drop.
    ///
    /// For syslets that may never end, or an exit path that must not wait.
    pub fn abandon(self) {
        core::mem::forget(self);
    }
}

impl Drop for AsyncRing {
    fn drop(&mut self) {
        if !self.in_flight.is_empty() && std::process::id() == self.owner {
            while !self.in_flight.is_empty() {
                match self.reap() {
                    Ok(c) => drop(c),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        if !self.in_flight.is_empty() {
            // After fork, or the ring failed: the kernel may still use all
            // of it.
            core::mem::forget(core::mem::take(&mut self.in_flight));
            core::mem::forget(self.ring.take());
            return;
        }
        drop(self.ring.take());
    }
}

fn outside() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "async_exec returned an atom outside the chain",
    )
}

fn not_in_flight(atom: NonNull<Atom>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the ring holds atom {:p}, which is not the final atom of a chain in flight",
            atom.as_ptr()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::AtomFlags;

    #[test]
    fn bad_sizes() {
        assert!(AsyncRing::new(0).is_err());
        assert!(AsyncRing::with_user_threads(0).is_err());
        let r = AsyncRing::new(8).unwrap();
        assert_eq!(r.slots(), 8);
        assert_eq!(r.in_flight(), 0);
        assert!(!r.user_threads());
        let h = r.head();
        assert_eq!((h.head_eip, h.new_thread_eip), (0, 0));
    }

    #[test]
    fn user_threads_set_fallbacks() {
        let r = AsyncRing::with_user_threads(2).unwrap();
        assert!(r.user_threads());
        let h = r.head();
        assert_ne!(h.head_eip, 0);
        assert_ne!(h.head_stack, 0);
        assert_eq!(h.head_eip, h.new_thread_eip);
        assert_eq!(h.head_stack, h.new_thread_stack);
        // Every ring shares the one process-wide fallback stack.
        let r2 = AsyncRing::with_user_threads(2).unwrap();
        assert_eq!(r2.head().head_stack, h.head_stack);
    }

    #[test]
    fn refuses_bad_chains() {
        let mut r = AsyncRing::new(2).unwrap();
        let e = r.submit(Chain::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let mut c = Chain::new();
        c.getpid().flags(AtomFlags::NO_COMPLETE);
        let e = r.submit(c).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let mut c = Chain::new();
        let read = c.read(crate::Fd::Cwd, vec![0u8; 4]).id();
        assert_eq!(c.take_buffer(read), Some(vec![0u8; 4]));
        let e = r.queue(c).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert_eq!(r.in_flight(), 0);
        // Nothing in flight: reaping never blocks.
        assert!(r.try_reap().unwrap().is_none());
        assert_eq!(r.reap().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(r.reap_timeout(Duration::from_secs(100)).unwrap().is_none());
        assert_eq!(r.wait(1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn tickets_count_up() {
        let mut r = AsyncRing::new(2).unwrap();
        for want in 0..3 {
            let mut c = Chain::new();
            c.getpid();
            // On a kernel without syslets the submission fails, but it
            // still takes a ticket.
            match r.submit(c) {
                Ok(s) => {
                    assert_eq!(s.ticket().get(), want);
                    if let Submitted::Done(done) = s {
                        assert!(!done.went_async());
                        assert!(done.result(done.final_atom()).unwrap().unwrap() > 0);
                    }
                }
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOSYS)),
            }
        }
        assert_eq!(r.next_ticket, 3);
        assert_eq!(Ticket(7).to_string(), "#7");
    }

    /// The reaping logic against completions posted by hand, the way the
    /// kernel posts them: the chains are put in flight without a kernel.
    #[test]
    fn reap_matches_posted_atoms_to_chains() {
        let mut r = AsyncRing::new(2).unwrap();
        let mut ids = Vec::new();
        for k in 0..3 {
            let mut c = Chain::new();
            let a = c.getpid().id();
            let b = c.getpid().id();
            c.wire(Wiring::Async).unwrap();
            let (base, len) = c.atoms_span();
            let t = Ticket(100 + k);
            r.in_flight.insert(
                base,
                InFlight {
                    ticket: t,
                    end: base + len,
                    chain: Box::new(c),
                },
            );
            // Chain k ended at its first atom if k is odd.
            let last = if k % 2 == 1 { a } else { b };
            ids.push((t, base, last));
        }
        // Post the first two (a full ring), reap one, post the third.
        let atom = |base: usize, id: AtomId| {
            (base + id.index() * core::mem::size_of::<Atom>()) as *mut Atom
        };
        for &(_, base, last) in &ids[..2] {
            r.raw_mut().post(atom(base, last));
        }
        assert_eq!(r.ready(), 2);
        let c0 = r.try_reap().unwrap().unwrap();
        assert_eq!((c0.ticket(), c0.final_atom()), (ids[0].0, ids[0].2));
        assert!(c0.went_async());
        r.raw_mut().post(atom(ids[2].1, ids[2].2));
        let c1 = r.reap().unwrap();
        assert_eq!((c1.ticket(), c1.final_atom()), (ids[1].0, ids[1].2));
        let c2 = r.reap_timeout(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!((c2.ticket(), c2.final_atom()), (ids[2].0, ids[2].2));
        assert_eq!(r.in_flight(), 0);
        assert!(r.try_reap().unwrap().is_none());

        // An atom the ring does not know, or one in the middle of an atom.
        let mut stray = Atom::EMPTY;
        r.raw_mut().post(&mut stray);
        let e = r.try_reap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut c = Chain::new();
        c.getpid();
        c.wire(Wiring::Async).unwrap();
        let (base, len) = c.atoms_span();
        r.in_flight.insert(
            base,
            InFlight {
                ticket: Ticket(9),
                end: base + len,
                chain: Box::new(c),
            },
        );
        r.raw_mut().post((base + 8) as *mut Atom);
        let e = r.try_reap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // The chain stays in flight; dropping would wait for it, so give
        // up on it.
        assert_eq!(r.in_flight(), 1);
        r.abandon();
    }

    #[test]
    fn wiring_modes_set_flags() {
        let mut c = Chain::new();
        c.getpid();
        c.getpid().flags(AtomFlags::SYNC);
        let atoms = c.prepare().unwrap().to_vec();
        assert!(atoms.iter().all(|a| a.flags == AtomFlags::SYNC.bits()));
        c.wire(Wiring::Async).unwrap();
        assert_eq!(c.wired_atoms()[0].flags, 0);
        assert_eq!(c.wired_atoms()[1].flags, AtomFlags::SYNC.bits());
        c.wire(Wiring::Queue).unwrap();
        assert_eq!(c.wired_atoms()[0].flags, AtomFlags::ASYNC.bits());
        assert_eq!(c.wired_atoms()[1].flags, AtomFlags::SYNC.bits());
    }
}
