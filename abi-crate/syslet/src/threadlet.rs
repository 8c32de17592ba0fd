//! Threadlets: closures that run as function calls until they block, then
//! as threads of their own.

use core::cell::UnsafeCell;
use core::ffi::{c_long, c_void};
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use crate::sys_call::{futex_wait, futex_wake};
use crate::threadlet_sys::{
    idle_spares, stack_word, start_spares, threadlet_complete, threadlet_exec, THREADLET_ASYNC,
    THREADLET_DONE,
};

/// Default size of a threadlet stack (plus a guard page below it).
pub const DEFAULT_STACK_SIZE: usize = 256 << 10;

/// Default number of idle spare threads a [`Threadlets`] keeps.
pub const DEFAULT_SPARES: usize = 4;

/// What [`Threadlets::run`] did with a closure.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The closure ran to its end in the caller without blocking (a plain
    /// function call): its value, or the payload of its panic.
    Done(thread::Result<T>),
    /// The closure blocked and goes on in a thread of its own; the caller
    /// went on at once.  Wait for it with [`Handle::join`].
    Pending(Handle<T>),
}

impl<T> Outcome<T> {
    /// Whether the closure went asynchronous.
    pub fn is_pending(&self) -> bool {
        matches!(self, Outcome::Pending(_))
    }

    /// The closure's result either way: at once for [`Outcome::Done`],
    /// after [`Handle::join`] for [`Outcome::Pending`].
    pub fn join(self) -> thread::Result<T> {
        match self {
            Outcome::Done(r) => r,
            Outcome::Pending(h) => h.join(),
        }
    }
}

/// The state a closure and its [`Handle`] share.
struct Shared<T> {
    /// `RUNNING`, then `FINISHED` once `result` is set by the thread that
    /// went on (a futex word).
    state: AtomicU32,
    /// Written once by the closure's thread before `state` becomes
    /// `FINISHED` (or before `threadlet_exec` returns `THREADLET_DONE`),
    /// then read once by the owner of the `Handle` (or the caller).
    result: UnsafeCell<Option<thread::Result<T>>>,
}

const RUNNING: u32 = 0;
const FINISHED: u32 = 1;

// SAFETY: `result` is written by one thread and read by another only
// across the Release store / Acquire load of `state` (or within one
// thread); `T: Send` may move between threads.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    /// Take the result.
    ///
    /// # Safety
    ///
    /// The result has been written and is not accessed concurrently: the
    /// caller saw `state == FINISHED` (Acquire), or the closure finished in
    /// the calling thread.
    unsafe fn take(&self) -> thread::Result<T> {
        // SAFETY: the caller's contract.
        let r = unsafe { (*self.result.get()).take() };
        r.expect("a threadlet's result is taken once")
    }
}

/// A pending threadlet: its closure went on in a thread of its own.
///
/// Dropping the handle detaches the threadlet: it still runs to its end,
/// and its value is dropped in its thread.
pub struct Handle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Handle<T> {
    /// Whether the closure has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == FINISHED
    }

    /// Wait for the closure to finish (a futex wait) and return its value,
    /// or the payload of its panic.
    pub fn join(self) -> thread::Result<T> {
        while self.shared.state.load(Ordering::Acquire) != FINISHED {
            futex_wait(&self.shared.state, RUNNING, true);
        }
        // SAFETY: FINISHED was seen with Acquire; `self` is consumed, so
        // this is the only take.
        unsafe { self.shared.take() }
    }

    /// The result if the closure has finished, else the handle back.
    ///
    /// # Errors
    ///
    /// `Err(self)` while the closure still runs.
    pub fn try_join(self) -> Result<thread::Result<T>, Handle<T>> {
        if self.is_finished() {
            // SAFETY: as in `join`.
            Ok(unsafe { self.shared.take() })
        } else {
            Err(self)
        }
    }
}

/// What `threadlet_exec` is handed as `data`.
struct Job<F, T> {
    f: F,
    shared: Arc<Shared<T>>,
}

/// The function `threadlet_exec` runs: the closure, caught, on the
/// threadlet stack.
extern "C" fn body<F, T>(data: *mut c_void) -> c_long
where
    F: FnOnce() -> T,
{
    // SAFETY: `run` passes a `Box<Job<F, T>>` it leaked, for this function
    // to take back, exactly once.
    let job = unsafe { Box::from_raw(data.cast::<Job<F, T>>()) };
    let Job { f, shared } = *job;
    // Nothing unwinds past this: threadlet_exec's frames are assembly.
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    // SAFETY: nobody reads the result before `state` is FINISHED or, if
    // the closure never blocked, before `threadlet_exec` has returned to
    // the caller in this very thread.
    unsafe { *shared.result.get() = Some(result) };
    // SAFETY: the last act of the threadlet, once.
    let off = unsafe { threadlet_complete() };
    if off == THREADLET_ASYNC {
        shared.state.store(FINISHED, Ordering::Release);
        futex_wake(&shared.state, true);
    }
    off
}

/// A threadlet stack: one private mapping with a guard page at its low
/// end.  The word at `top - 8` tells whether a thread may still use it.
struct Stack {
    base: usize,
    len: usize,
}

impl Stack {
    fn new(size: usize) -> io::Result<Stack> {
        let page = page_size();
        let len = size.div_ceil(page) * page + page;
        // SAFETY: a fresh private anonymous mapping at an address of the
        // kernel's choosing overlaps no memory Rust uses.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack {
            base: base as usize,
            len,
        };
        // SAFETY: the lowest page of the mapping just made, used by nothing.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> usize {
        self.base + self.len
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: `top - 8` is in the mapping, which lives as long as
        // `self`; 16-byte aligned top.
        unsafe { stack_word(self.top()) }
    }

    /// No thread uses the stack any more.
    fn is_free(&self) -> bool {
        self.word().load(Ordering::Acquire) == 0
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping; `Threadlets` only drops stacks whose
        // word is 0 (no thread runs on them).
        unsafe { libc::munmap(self.base as *mut c_void, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[derive(Default)]
struct Stacks {
    /// Ready for the next threadlet.
    free: Vec<Stack>,
    /// Handed to threadlets that went asynchronous; free once their word
    /// is 0.
    busy: Vec<Stack>,
}

impl Stacks {
    /// Move the stacks no thread uses any more from `busy` to `free`.
    fn reclaim(&mut self) {
        let mut i = 0;
        while i < self.busy.len() {
            if self.busy[i].is_free() {
                let s = self.busy.swap_remove(i);
                self.free.push(s);
            } else {
                i += 1;
            }
        }
    }
}

/// Threadlets: run closures on pooled stacks as function calls that turn
/// into threads of their own when they block (v3's `threadlet_exec`).
///
/// [`run`](Self::run) runs a closure in the calling thread, on a stack of
/// the pool.  If it returns without blocking, that was a function call:
/// [`Outcome::Done`] with its value, no other thread involved.  If it
/// blocks anywhere — a system call, a page fault, a lock — while a spare
/// thread is idle, the spare takes over the caller (its thread ID, TLS,
/// signal mask, registers: the caller cannot tell) and `run` returns at
/// once with [`Outcome::Pending`]; the closure goes on in its own thread,
/// and its [`Handle`] gives its value when it ends.  A panic in the closure
/// is caught on its stack and comes back as the `Err` of its result.
///
/// ```no_run
/// use std::io::Read;
/// use syslet::{Outcome, Threadlets};
///
/// let rt = Threadlets::new()?;
/// // SAFETY: the closure keeps no thread-local borrow or thread-keyed
/// // lock (print!, stdio) across a point where it may block.
/// let outcome = unsafe {
///     rt.run(|| {
///         let mut s = String::new();
///         std::fs::File::open("/etc/hostname")?.read_to_string(&mut s)?;
///         Ok::<_, std::io::Error>(s)
///     })?
/// };
/// let text = match outcome {
///     Outcome::Done(r) => r,               // it was in the page cache
///     Outcome::Pending(handle) => {
///         // ... the caller goes on at once; later:
///         handle.join()
///     }
/// };
/// println!("{}", text.expect("no panic")?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Spares
///
/// Only idle spare threads ([`start_spares`]) take over threadlets, one
/// each: a threadlet that blocks while none is idle blocks in place (it is
/// a plain function call then, and `run` returns `Done` after the block).
/// So the number of idle spares bounds how many threadlets go asynchronous
/// at once.  A `Threadlets` starts [`Builder::spares`] of them (default
/// [`DEFAULT_SPARES`]) and, whenever a threadlet went asynchronous and
/// left fewer idle ([`idle_spares`](crate::idle_spares), an estimate),
/// starts new ones to keep that many.  The thread that ran an
/// asynchronous threadlet becomes a spare again when the closure ends, so
/// the process's spares grow to the most threadlets pending at once plus
/// the reserve, and stay (spares are process-wide, shared by every
/// `Threadlets`, and never exit).
///
/// # Threads, TLS and identity
///
/// Before its first block the closure runs in the caller's thread, with
/// the caller's TLS.  After the block it runs in a thread of its own that
/// has the TLS and thread ID of the spare that took over the caller:
/// `thread_local!` values are the spare's (fresh ones, unless an earlier
/// threadlet left something in them), `std::thread::current()` is the
/// spare's thread (named `threadlet-spare`), `gettid()` and
/// `pthread_self()` are the spare's former ones, `errno` is the spare's.
/// The caller keeps its own: after `run` returns — `Done` or `Pending` —
/// `gettid()`, `getpid()`, `pthread_self()`, its thread-locals and its
/// signal mask are what they were.  A parked spare blocks every signal
/// but the C library's internal ones, so process-directed signals go to
/// the program's own threads; after taking over, the caller's mask is the
/// caller's.
///
/// # Stacks
///
/// Each closure gets a stack of [`Builder::stack_size`] bytes (default
/// [`DEFAULT_STACK_SIZE`], plus a guard page) from the pool.  A stack that
/// went asynchronous goes back to the pool when the thread that ran the
/// closure has left it (its stack word is 0), which is just after the
/// closure's result is ready; [`wait_stacks`](Self::wait_stacks) waits
/// for that.  Dropping the `Threadlets` unmaps the stacks no thread uses
/// and leaks the others (their threadlets still run).  A closure that
/// overflows its stack hits the guard page: SIGSEGV (std's stack overflow
/// message only knows the threads' own stacks).  Signal handlers that run
/// in the closure run on its stack too (unless `sigaltstack`): leave room.
///
/// # References
///  - the project's ABI contract, `v3-abi.md`, A "Threadlets", B.2, B.3
pub struct Threadlets {
    stacks: Mutex<Stacks>,
    stack_size: usize,
    spares: usize,
}

impl fmt::Debug for Threadlets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Threadlets")
            .field("stack_size", &self.stack_size)
            .field("spares", &self.spares)
            .field("free_stacks", &s.free.len())
            .field("busy_stacks", &s.busy.len())
            .finish()
    }
}

/// Settings of a [`Threadlets`].
#[derive(Clone, Debug)]
pub struct Builder {
    stack_size: usize,
    spares: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            stack_size: DEFAULT_STACK_SIZE,
            spares: DEFAULT_SPARES,
        }
    }
}

impl Builder {
    /// The default settings.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The size of each threadlet stack, rounded up to whole pages (a guard
    /// page is added below it).  At least 16 KiB.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes.max(16 << 10);
        self
    }

    /// How many idle spare threads to keep: started by
    /// [`build`](Self::build) unless the process has that many idle, and
    /// topped up after every threadlet that went asynchronous.  0 starts
    /// none (threadlets then go asynchronous only on spares started
    /// otherwise, e.g. with [`start_spares`]).
    pub fn spares(mut self, n: usize) -> Builder {
        self.spares = n;
        self
    }

    /// Make the [`Threadlets`] and start its spares.
    ///
    /// # Errors
    ///
    /// The error of starting a spare thread.
    pub fn build(self) -> io::Result<Threadlets> {
        let t = Threadlets {
            stacks: Mutex::new(Stacks::default()),
            stack_size: self.stack_size,
            spares: self.spares,
        };
        t.top_up()?;
        Ok(t)
    }
}

impl Threadlets {
    /// Threadlets with the default settings ([`Builder::new`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Threadlets> {
        Builder::new().build()
    }

    /// The settings, to change them.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The size of the threadlet stacks.
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// The number of idle spares this `Threadlets` keeps.
    pub fn spares(&self) -> usize {
        self.spares
    }

    fn lock(&self) -> MutexGuard<'_, Stacks> {
        self.stacks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start spares until the estimate of idle ones reaches `self.spares`.
    fn top_up(&self) -> io::Result<()> {
        let idle = idle_spares();
        if idle < self.spares {
            start_spares(self.spares - idle)?;
        }
        Ok(())
    }

    fn take_stack(&self) -> io::Result<Stack> {
        {
            let mut s = self.lock();
            if s.free.is_empty() {
                s.reclaim();
            }
            if let Some(stack) = s.free.pop() {
                return Ok(stack);
            }
        }
        Stack::new(self.stack_size)
    }

    /// Run `f` as a threadlet: in the calling thread until it blocks, then
    /// in a thread of its own while the caller goes on.
    ///
    /// Returns [`Outcome::Done`] with `f`'s value (or its panic) if `f`
    /// returned without having blocked, or [`Outcome::Pending`] with a
    /// [`Handle`] as soon as `f` blocked and a spare took over the caller.
    /// With no idle spare `f` blocks in place and the outcome is `Done`.
    ///
    /// # Errors
    ///
    /// `f` did not run (it is dropped):
    ///  - `EBUSY`: the caller is itself a threadlet (they do not nest).
    ///  - `ENOSYS`: the kernel has no threadlets.
    ///  - `ENOMEM` (or another `mmap` error): no stack.
    ///
    /// # Safety
    ///
    /// `f` may move to another thread, with another TLS, at any point where
    /// it can block, and then runs concurrently with the caller, which has
    /// the TLS `f` had.  Rust cannot check what that breaks, so the caller
    /// must make sure `f` does not, *across any point where it may block*
    /// (any system call, page fault or lock — also inside the standard
    /// library):
    ///  - hold a reference into thread-local storage: no `LocalKey::with`
    ///    (or `with_borrow`, ...) closure that may block inside, no
    ///    thread-local `RefCell` borrow kept while blocking;
    ///  - hold a lock whose owner is a thread identity: the standard
    ///    streams' re-entrant locks (`print!`, `println!`, `eprint!`,
    ///    `eprintln!`, `dbg!`, `io::stdout().lock()`, ...), C stdio
    ///    locks, recursive or error-checking pthread mutexes.  (The
    ///    caller's thread would find the lock its own and enter it while
    ///    `f` still holds it.)  `std::sync::Mutex` and friends are fine;
    ///  - panic with a panic hook that may block: the panic count is
    ///    thread-local, so a panic that moves to another thread on its way
    ///    to `catch_unwind` leaves the caller's thread believing it is
    ///    panicking (the next panic there aborts).  The default hook
    ///    writes to stderr, which may block: install a hook that does not
    ///    (or one that only records) if `f` may panic.
    ///
    /// Values created inside `f` and kept inside `f` (an `Rc`, a
    /// `MutexGuard`) are fine: they move along with `f`.
    pub unsafe fn run<F, T>(&self, f: F) -> io::Result<Outcome<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let stack = self.take_stack()?;
        let shared = Arc::new(Shared {
            state: AtomicU32::new(RUNNING),
            result: UnsafeCell::new(None),
        });
        let job = Box::into_raw(Box::new(Job {
            f,
            shared: Arc::clone(&shared),
        }));
        // SAFETY: `threadlet_exec`'s contract:
        //  - the stack is ours alone (taken out of the pool) and its top is
        //    16-byte aligned (page aligned); the pool keeps it until its
        //    word says no thread uses it;
        //  - `body::<F, T>` takes the job back exactly once, catches every
        //    panic, and never calls threadlet_off() itself; the job (the
        //    closure and an `Arc` of the result) is on the heap, `Send`
        //    ('static, F: Send, T: Send) and only used by `body`, which
        //    owns it;
        //  - thread-local state across blocks is our caller's contract.
        let ret = unsafe {
            threadlet_exec(
                body::<F, T>,
                job.cast::<c_void>(),
                stack.top() as *mut c_void,
                ptr::null_mut(),
            )
        };
        match ret {
            THREADLET_DONE => {
                self.lock().free.push(stack);
                // SAFETY: `body` ran to its end in this thread.
                Ok(Outcome::Done(unsafe { shared.take() }))
            }
            THREADLET_ASYNC => {
                self.lock().busy.push(stack);
                // A spare is gone; starting a thread may fail at a limit,
                // which only means fewer threadlets go asynchronous.
                let _ = self.top_up();
                Ok(Outcome::Pending(Handle { shared }))
            }
            err => {
                // SAFETY: `body` did not run: the job is still ours.
                drop(unsafe { Box::from_raw(job) });
                self.lock().free.push(stack);
                Err(io::Error::from_raw_os_error(-err as i32))
            }
        }
    }

    /// The number of stacks threadlets that went asynchronous still use.
    pub fn stacks_in_use(&self) -> usize {
        let mut s = self.lock();
        s.reclaim();
        s.busy.len()
    }

    /// The number of stacks ready in the pool.
    pub fn stacks_free(&self) -> usize {
        let mut s = self.lock();
        s.reclaim();
        s.free.len()
    }

    /// Wait until no thread uses a stack of the pool any more: every
    /// threadlet that went asynchronous has ended and left its stack.
    pub fn wait_stacks(&self) {
        loop {
            let busy: Vec<Stack> = {
                let mut s = self.lock();
                s.reclaim();
                if s.busy.is_empty() {
                    return;
                }
                core::mem::take(&mut s.busy)
            };
            for stack in &busy {
                let w = stack.word();
                while w.load(Ordering::Acquire) != 0 {
                    futex_wait(w, 1, false);
                }
            }
            self.lock().free.extend(busy);
        }
    }
}

impl Drop for Threadlets {
    fn drop(&mut self) {
        let s = match self.stacks.get_mut() {
            Ok(s) => s,
            Err(e) => e.into_inner(),
        };
        s.reclaim();
        // Threadlets still run on these: never unmap them.
        for stack in s.busy.drain(..) {
            core::mem::forget(stack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_are_aligned_and_guarded() {
        let s = Stack::new(20_000).unwrap();
        let page = page_size();
        assert_eq!(s.top() % page, 0);
        assert!(s.len >= 20_000 + page);
        assert!(s.is_free());
        s.word().store(1, Ordering::Relaxed);
        assert!(!s.is_free());
        s.word().store(0, Ordering::Relaxed);
    }

    #[test]
    fn pool_reclaims_freed_stacks() {
        let mut p = Stacks::default();
        let a = Stack::new(16 << 10).unwrap();
        let b = Stack::new(16 << 10).unwrap();
        a.word().store(1, Ordering::Relaxed);
        p.busy.push(a);
        p.busy.push(b);
        p.reclaim();
        assert_eq!((p.free.len(), p.busy.len()), (1, 1));
        p.busy[0].word().store(0, Ordering::Release);
        p.reclaim();
        assert_eq!((p.free.len(), p.busy.len()), (2, 0));
    }

    #[test]
    fn builder_settings() {
        let b = Builder::new().stack_size(1).spares(0);
        assert_eq!(b.stack_size, 16 << 10);
        let t = b.build().unwrap();
        assert_eq!(t.spares(), 0);
        assert_eq!(t.stacks_in_use(), 0);
    }

    /// On a kernel without threadlets `run` fails before running the
    /// closure, and the stack goes back to the pool.
    #[test]
    fn run_without_kernel_support() {
        if crate::is_supported() {
            return;
        }
        let t = Threadlets::builder().spares(0).build().unwrap();
        let ran = Arc::new(AtomicU32::new(0));
        let r2 = Arc::clone(&ran);
        // SAFETY: the closure touches no thread-local state.
        let e = unsafe { t.run(move || r2.store(1, Ordering::Relaxed)) }.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSYS));
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert_eq!(Arc::strong_count(&ran), 1, "the closure was dropped");
        assert_eq!(t.stacks_free(), 1);
        assert_eq!(t.stacks_in_use(), 0);
    }
}
