//! Syslets: chains of system calls run by the kernel in one `async_exec`.
//!
//! A syslet is a chain of *atoms*, each one system call plus control: where
//! its result goes, which atom follows, and flags that stop (or branch) the
//! chain on the result.  Arguments are passed by reference, so one atom's
//! result can be the next atom's argument and `umem_add` atoms can drive
//! loops.  This crate implements the user side of the v3 syslet ABI (Ingo
//! Molnar, 2007) for the patched Linux 6.12 kernel of this project.
//!
//! Two layers:
//!
//!  - the raw ABI: [`Atom`] (`struct syslet_uatom`), [`AsyncHead`]
//!    (`struct async_head_user`), [`AtomFlags`] (`SYSLET_*`), the system call
//!    numbers in [`nr`], and the system calls [`async_exec`] (`unsafe`: the
//!    one submission point), [`async_wait`], [`async_thread`] (`unsafe`),
//!    [`umem_add`] and [`threadlet_on`] / [`threadlet_off`] (`unsafe`);
//!    [`Ring`] owns a completion ring (head and slots) and follows its
//!    protocol;
//!  - the safe layer: [`Chain`] owns its atoms, argument cells, result cells,
//!    counters and buffers (or borrows them for its lifetime), has typed
//!    builders for common system calls, and runs synchronously with
//!    [`Chain::run`].  [`AsyncRing`] runs `Chain<'static>`s asynchronously:
//!    a submission either completes at once ([`Submitted::Done`]) or, when
//!    an atom blocks, returns a [`Ticket`] while the chain goes on in a
//!    kernel thread; its [`Completion`] (the chain and its results) is
//!    reaped from the ring later, with or without waiting.  [`Threadlets`]
//!    runs closures as threadlets on pooled stacks with a reserve of spare
//!    threads (its `run` is `unsafe` for one reason: the thread-local
//!    state a closure may use changes under it when it blocks).
//!
//! Asynchronous syslets ("cachemiss"): when an atom blocks, the kernel hands
//! the caller's user context — and its identity: thread ID, TLS, signal
//! mask — to a spare thread, which returns from `async_exec` at once with
//! NULL; the blocked atom and the rest of the chain finish in the original
//! kernel thread, which then posts the final atom to the completion ring.
//!
//! Threadlets: [`Threadlets::run`] runs a closure on a pooled stack as a
//! plain function call; if it blocks anywhere (a system call, a page
//! fault), a spare thread takes over the caller, which gets
//! [`Outcome::Pending`] at once while the closure goes on in a thread of
//! its own ([`Handle::join`] waits for it).  Underneath are the raw
//! [`threadlet_on`] / [`threadlet_off`] system calls, the assembly helpers
//! [`threadlet_exec`] / [`threadlet_complete`] (also exported to C by the
//! `syslet-c` library) and the spare threads of [`start_spares`].
//!
//! [`is_supported`] tells whether the running kernel has syslets; on other
//! kernels every call fails with `ENOSYS`.
//!
//! ```no_run
//! use syslet::{AtomFlags, Chain};
//!
//! let path = std::ffi::CStr::from_bytes_with_nul(b"/proc/version\0").unwrap();
//! let mut chain = Chain::new();
//! let open = chain
//!     .open(path, libc::O_RDONLY, 0)
//!     .flags(AtomFlags::STOP_ON_NEGATIVE)
//!     .id();
//! let read = chain.read(open, vec![0u8; 4096]).id();
//! chain.close(open);
//! chain.run()?;
//! let text = chain.read_bytes(read).unwrap_or_default();
//! print!("{}", String::from_utf8_lossy(text));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # References
//!  - `Documentation/userspace-api/syslet.rst` in the kernel patch series
//!  - the project's ABI contract, `v3-abi.md`
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("syslet: only x86_64 Linux is supported");

mod abi;
// One `unsafe` block: the asynchronous `async_exec` call.
#[allow(unsafe_code)]
mod async_ring;
mod chain;
mod ring;
#[allow(unsafe_code)]
mod sys_call;
// The result cell, the stacks and the one `threadlet_exec` call.
#[allow(unsafe_code)]
mod threadlet;
// The assembly helpers and the spare threads.
#[allow(unsafe_code)]
mod threadlet_sys;

pub use abi::{nr, AsyncHead, Atom, AtomFlags};
pub use async_ring::{AsyncRing, Completion, Submitted, Ticket};
pub use chain::{Arg, AtomId, AtomMut, Buf, BufMut, CPath, Chain, Counter, Fd, HeldFd, NOT_RUN};
pub use ring::{Ring, MAX_RING_BYTES};
pub use sys_call::{
    async_exec, async_thread, async_wait, check_supported, is_supported, threadlet_off,
    threadlet_on, umem_add,
};
pub use threadlet::{Builder, Handle, Outcome, Threadlets, DEFAULT_SPARES, DEFAULT_STACK_SIZE};
pub use threadlet_sys::{
    idle_spares, spares_started, start_spares, threadlet_complete, threadlet_exec,
    STACK_WORD_OFFSET, THREADLET_ASYNC, THREADLET_DONE,
};
