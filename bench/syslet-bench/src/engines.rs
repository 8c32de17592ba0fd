//! The approaches: each reads the blocks at a list of offsets, keeping up
//! to `depth` reads in flight, checks every read, and reports the time.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use io_uring::{opcode, types, IoUring};
use syslet::{AsyncRing, AtomId, Chain, Completion, Counter, Outcome, Submitted, Threadlets};

use crate::target::{check, pread, Block, Tally, Target, BLOCK};

/// One way of doing the reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Approach {
    /// `pread` in a loop, one at a time (depth is always 1).
    Sync,
    /// `AsyncRing::submit` of one-atom syslets, `depth` in flight.
    Syslet,
    /// `AsyncRing::submit` of chains of 16 `pread` atoms, `depth` chains in
    /// flight (each chain reads its blocks one after the other).
    Chain16,
    /// `Threadlets::run` of a closure doing one `pread`, `depth` in flight.
    Threadlet,
    /// io_uring `IORING_OP_READ`, `depth` in flight; every `io_uring_enter`
    /// submits all free slots and waits for one completion.
    Uring,
    /// `depth` threads each doing `pread` in a loop.
    Pool,
}

impl Approach {
    /// Every approach, in table order.
    pub const ALL: [Approach; 6] = [
        Approach::Sync,
        Approach::Syslet,
        Approach::Chain16,
        Approach::Threadlet,
        Approach::Uring,
        Approach::Pool,
    ];

    /// The name in tables, CSV and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Approach::Sync => "sync",
            Approach::Syslet => "syslet",
            Approach::Chain16 => "chain16",
            Approach::Threadlet => "threadlet",
            Approach::Uring => "io_uring",
            Approach::Pool => "pool",
        }
    }

    /// By name.
    pub fn parse(s: &str) -> Option<Approach> {
        Approach::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Reads done (and checked).
    pub ops: u64,
    /// Wall-clock time for all of them.
    pub ns: u64,
    /// Submissions that went asynchronous (syslets, threadlets).
    pub went_async: u64,
    /// CPU time of the whole process (every thread, user and system)
    /// over the same interval.
    pub cpu_ns: u64,
}

impl Sample {
    /// Reads per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 * 1e9 / self.ns.max(1) as f64
    }
}

/// Syslet chains kept across measurements: `Chain<'static>` needs buffers
/// that live for ever, so they are made once (leaked) and reused.
pub struct ChainPool {
    chains: Vec<Chain<'static>>,
    /// The `pread` atoms of every chain and the counters holding their
    /// offsets (the same ids in every chain of the pool).
    atoms: Vec<(AtomId, Counter)>,
}

impl ChainPool {
    /// `count` chains of `len` `pread` atoms on `t`.
    pub fn new(t: &Target, len: usize, count: usize) -> ChainPool {
        let mut chains = Vec::with_capacity(count);
        let mut atoms = Vec::new();
        for _ in 0..count {
            let mut c: Chain<'static> = Chain::new();
            let fd = c.hold_fd(Arc::clone(&t.fd));
            atoms.clear();
            for _ in 0..len {
                let off = c.counter(0);
                let buf: &'static mut Block = Box::leak(Block::boxed());
                let id = c.pread(fd, &mut buf.0, off).id();
                atoms.push((id, off));
            }
            chains.push(c);
        }
        ChainPool { chains, atoms }
    }

    fn verify(&self, c: &Completion, tally: Option<&Tally>) -> io::Result<()> {
        for &(id, off) in &self.atoms {
            let ret = c
                .chain()
                .raw_result(id)
                .ok_or_else(|| io::Error::other("an atom of a finished chain did not run"))?;
            let buf = c.chain().buffer(id).unwrap_or(&[]);
            let off = c.chain().counter_value(off);
            check(ret, buf, off)?;
            mark(tally, off)?;
        }
        Ok(())
    }
}

/// Everything an approach keeps between measurements.
pub struct Ctx {
    /// One-atom chains.
    pub single: Option<ChainPool>,
    /// Chains of 16.
    pub chain16: Option<ChainPool>,
}

/// The deepest queue depth of the throughput workloads.
pub const MAX_DEPTH: usize = 64;

/// The most operations in flight at once (the scale workload).
pub const MAX_OUTSTANDING: usize = 16_384;

/// Run `a` over `offs` with up to `depth` reads in flight.  With a
/// `tally`, every completion is also counted against its offset.
pub fn run(
    a: Approach,
    t: &Target,
    ctx: &mut Ctx,
    depth: usize,
    offs: &[u64],
    tally: Option<&Tally>,
) -> io::Result<Sample> {
    assert!((1..=MAX_OUTSTANDING).contains(&depth));
    let s = match a {
        Approach::Sync => run_sync(t.raw(), offs, tally),
        Approach::Syslet => {
            if ctx.single.as_ref().map_or(true, |p| p.chains.len() < depth) {
                ctx.single = Some(ChainPool::new(t, 1, depth.max(MAX_DEPTH)));
            }
            let pool = ctx.single.as_mut().expect("just made");
            run_syslet(pool, depth, offs, tally)
        }
        Approach::Chain16 => {
            if ctx
                .chain16
                .as_ref()
                .map_or(true, |p| p.chains.len() < depth)
            {
                ctx.chain16 = Some(ChainPool::new(t, 16, depth.max(MAX_DEPTH)));
            }
            let pool = ctx.chain16.as_mut().expect("just made");
            run_syslet(pool, depth, offs, tally)
        }
        Approach::Threadlet => run_threadlet(t.raw(), depth, offs, tally),
        Approach::Uring => run_uring(t.raw(), depth, offs, tally),
        Approach::Pool => run_pool(t.raw(), depth, offs, tally),
    }?;
    if let Some(t) = tally {
        t.all(offs)?;
    }
    Ok(s)
}

/// The process's CPU time so far (all threads, live and exited; user
/// and system), in ns.
pub fn cpu_now() -> u64 {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wall-clock and CPU time from a start.
#[derive(Clone, Copy)]
pub struct Clock {
    t0: Instant,
    cpu0: u64,
}

impl Clock {
    /// Start now.
    pub fn start() -> Clock {
        Clock {
            cpu0: cpu_now(),
            t0: Instant::now(),
        }
    }

    /// A sample of `ops` operations ending now.
    pub fn sample(&self, ops: u64, went_async: u64) -> Sample {
        let ns = self.t0.elapsed().as_nanos() as u64;
        Sample {
            ops,
            ns,
            went_async,
            cpu_ns: cpu_now().saturating_sub(self.cpu0),
        }
    }
}

/// Record a completed read for the exactly-once count, if kept.
fn mark(tally: Option<&Tally>, off: u64) -> io::Result<()> {
    tally.map_or(Ok(()), |t| t.mark(off))
}

fn run_sync(fd: RawFd, offs: &[u64], tally: Option<&Tally>) -> io::Result<Sample> {
    let mut buf = Block::boxed();
    let clock = Clock::start();
    for &off in offs {
        check(pread(fd, &mut buf, off), &buf.0, off)?;
        mark(tally, off)?;
    }
    Ok(clock.sample(offs.len() as u64, 0))
}

fn run_syslet(
    pool: &mut ChainPool,
    depth: usize,
    offs: &[u64],
    tally: Option<&Tally>,
) -> io::Result<Sample> {
    let len = pool.atoms.len();
    let subs = offs.len() / len;
    let mut free: Vec<Chain<'static>> = pool.chains.drain(..depth).collect();
    let mut ring = AsyncRing::new(depth)?;
    let (mut next, mut done, mut went_async) = (0, 0, 0);
    let mut result = Ok(());
    let clock = Clock::start();
    'outer: while done < subs {
        while next < subs {
            let Some(mut c) = free.pop() else { break };
            for (k, &(_, ctr)) in pool.atoms.iter().enumerate() {
                c.set_counter(ctr, offs[next * len + k]);
            }
            next += 1;
            match ring.submit(c)? {
                Submitted::Done(comp) => {
                    if let Err(e) = pool.verify(&comp, tally) {
                        result = Err(e);
                    }
                    free.push(comp.into_chain());
                    done += 1;
                }
                Submitted::Pending(_) => went_async += 1,
            }
        }
        if done == subs {
            break;
        }
        let mut comp = Some(ring.reap()?);
        while let Some(c) = comp {
            if let Err(e) = pool.verify(&c, tally) {
                result = Err(e);
            }
            free.push(c.into_chain());
            done += 1;
            if done == subs {
                break 'outer;
            }
            comp = ring.try_reap()?;
        }
    }
    let sample = clock.sample((subs * len) as u64, went_async);
    pool.chains.extend(free);
    result?;
    Ok(sample)
}

fn run_threadlet(
    fd: RawFd,
    depth: usize,
    offs: &[u64],
    tally: Option<&Tally>,
) -> io::Result<Sample> {
    // One idle spare per threadlet that may be pending, parked before
    // the clock starts.
    let rt = Threadlets::builder().spares(depth).build()?;
    crate::spares::wait_parked(depth)?;
    let mut free: Vec<Box<Block>> = (0..depth).map(|_| Block::boxed()).collect();
    let mut pending = VecDeque::with_capacity(depth);
    let (mut next, mut done, mut went_async) = (0, 0, 0u64);
    let mut result = Ok(());
    let clock = Clock::start();
    while done < offs.len() {
        while next < offs.len() {
            let Some(mut buf) = free.pop() else { break };
            let off = offs[next];
            next += 1;
            // SAFETY: the closure uses no thread-local state and takes no
            // lock: a pread and a move of its own data.
            let outcome = unsafe {
                rt.run(move || {
                    let ret = pread(fd, &mut buf, off);
                    (ret, buf, off)
                })?
            };
            match outcome {
                Outcome::Done(r) => {
                    finish(r.map_err(|_| panicked())?, &mut free, &mut result, tally);
                    done += 1;
                }
                Outcome::Pending(h) => {
                    went_async += 1;
                    pending.push_back(h);
                }
            }
        }
        if done == offs.len() {
            break;
        }
        // Take the finished ones; if none, wait for the oldest.
        let mut got = 0;
        for _ in 0..pending.len() {
            let h = pending.pop_front().expect("counted");
            match h.try_join() {
                Ok(r) => {
                    finish(r.map_err(|_| panicked())?, &mut free, &mut result, tally);
                    got += 1;
                }
                Err(h) => pending.push_back(h),
            }
        }
        if got == 0 {
            let h = pending.pop_front().expect("something is in flight");
            finish(
                h.join().map_err(|_| panicked())?,
                &mut free,
                &mut result,
                tally,
            );
            got = 1;
        }
        done += got;
    }
    let sample = clock.sample(offs.len() as u64, went_async);
    rt.wait_stacks();
    result?;
    Ok(sample)
}

/// A threadlet's read is back: check it, free its buffer.
fn finish(
    (ret, buf, off): (i64, Box<Block>, u64),
    free: &mut Vec<Box<Block>>,
    result: &mut io::Result<()>,
    tally: Option<&Tally>,
) {
    if let Err(e) = check(ret, &buf.0, off).and_then(|()| mark(tally, off)) {
        *result = Err(e);
    }
    free.push(buf);
}

fn panicked() -> io::Error {
    io::Error::other("a threadlet panicked")
}

fn run_uring(fd: RawFd, depth: usize, offs: &[u64], tally: Option<&Tally>) -> io::Result<Sample> {
    // The buffers outlive the ring (declared first, dropped last).
    let mut bufs: Vec<Box<Block>> = (0..depth).map(|_| Block::boxed()).collect();
    let mut ring = IoUring::new(depth.next_power_of_two() as u32)?;
    let mut slot_off = vec![0u64; depth];
    let mut free: Vec<usize> = (0..depth).rev().collect();
    let (mut next, mut done) = (0, 0);
    let mut result = Ok(());
    let clock = Clock::start();
    while done < offs.len() {
        {
            let mut sq = ring.submission();
            while next < offs.len() {
                let Some(slot) = free.pop() else { break };
                let off = offs[next];
                next += 1;
                slot_off[slot] = off;
                let sqe = opcode::Read::new(types::Fd(fd), bufs[slot].0.as_mut_ptr(), BLOCK as u32)
                    .offset(off)
                    .build()
                    .user_data(slot as u64);
                // SAFETY: the buffer of `slot` is not touched until its
                // completion is reaped, and every read is reaped before
                // returning (errors are kept, not returned early), so the
                // buffers outlive the kernel's use of them.  The queue has
                // at least `depth` entries, so the push cannot fail.
                unsafe { sq.push(&sqe) }.expect("the submission queue has depth entries");
            }
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Nothing more can be submitted or waited for: the kernel may
            // still use the buffers, so leak them.
            Err(e) => {
                std::mem::forget(bufs);
                return Err(e);
            }
        }
        for cqe in ring.completion() {
            let slot = cqe.user_data() as usize;
            let off = slot_off[slot];
            if let Err(e) =
                check(cqe.result() as i64, &bufs[slot].0, off).and_then(|()| mark(tally, off))
            {
                result = Err(e);
            }
            free.push(slot);
            done += 1;
        }
    }
    let sample = clock.sample(offs.len() as u64, 0);
    result?;
    Ok(sample)
}

fn run_pool(fd: RawFd, threads: usize, offs: &[u64], tally: Option<&Tally>) -> io::Result<Sample> {
    let next = AtomicUsize::new(0);
    let errors = AtomicU64::new(0);
    let ready = AtomicUsize::new(0);
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    let mut sample = None;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Block::boxed();
                ready.fetch_add(1, Ordering::Release);
                start.wait();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&off) = offs.get(i) else { break };
                    if check(pread(fd, &mut buf, off), &buf.0, off)
                        .and_then(|()| mark(tally, off))
                        .is_err()
                    {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                end.wait();
            });
        }
        // Every thread is at the barrier: the clock starts before the
        // main thread releases them (not after, when they may have run).
        while ready.load(Ordering::Acquire) < threads {
            std::thread::yield_now();
        }
        let clock = Clock::start();
        start.wait();
        end.wait();
        sample = Some(clock.sample(offs.len() as u64, 0));
    });
    match errors.load(Ordering::Relaxed) {
        0 => Ok(sample.expect("measured")),
        n => Err(io::Error::other(format!("{n} reads of the pool failed"))),
    }
}
