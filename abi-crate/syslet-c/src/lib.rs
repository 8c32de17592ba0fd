//! `libsyslet_c.a`: threadlets for C programs.
//!
//! A static library with the C entry points of `include/threadlet.h`:
//!
//!  - `threadlet_exec()` and `threadlet_complete()`, the assembly helpers
//!    of the `syslet` crate (they are defined there, under these C names,
//!    and come with it into the archive);
//!  - `threadlet_start_spares()`, `threadlet_idle_spares()`: the spare
//!    threads threadlets need to go asynchronous;
//!  - `threadlet_stack_wait()`: wait until no thread uses a threadlet
//!    stack any more.
//!
//! The syslet structures (`struct syslet_uatom`, `struct async_head_user`)
//! come from the kernel's installed `<linux/syslet.h>`, which the header
//! includes.
//!
//! Link with `-lpthread -ldl -lm` (the Rust standard library inside the
//! archive needs them; `-static` works too).
//!
//! ```text
//! cc -I abi-crate/syslet-c/include -I build/headers/include prog.c \
//!     target/release/libsyslet_c.a -lpthread -ldl -lm
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::{c_int, c_long, c_uint, c_void};
use core::sync::atomic::{AtomicU32, Ordering};

pub use syslet::{threadlet_complete, threadlet_exec, STACK_WORD_OFFSET};

/// `int threadlet_start_spares(unsigned int n)` — start `n` spare threads
/// (see [`syslet::start_spares`]).
///
/// Returns 0, or a negative errno if a thread could not be started (the
/// ones started before stay).
#[no_mangle]
pub extern "C" fn threadlet_start_spares(n: c_uint) -> c_int {
    match syslet::start_spares(n as usize) {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EAGAIN),
    }
}

/// `long threadlet_idle_spares(void)` — an estimate of the idle spare
/// threads (see [`syslet::idle_spares`]).
#[no_mangle]
pub extern "C" fn threadlet_idle_spares() -> c_long {
    syslet::idle_spares() as c_long
}

/// `void threadlet_stack_wait(void *stack_top)` — wait until the stack
/// word at `stack_top - 8` is 0: no thread uses the threadlet stack that
/// ends at `stack_top` any more.
///
/// # Safety
///
/// `stack_top` is a 16-byte aligned stack top that was passed to
/// `threadlet_exec()`, in memory that stays mapped during the call.
#[no_mangle]
pub unsafe extern "C" fn threadlet_stack_wait(stack_top: *mut c_void) {
    // SAFETY: the caller's contract: the word is mapped and 4-byte aligned.
    let word = unsafe { &*((stack_top as usize - STACK_WORD_OFFSET) as *const AtomicU32) };
    loop {
        let v = word.load(Ordering::Acquire);
        if v == 0 {
            return;
        }
        // Not private: the kernel's clear_child_tid wake is a shared one.
        // SAFETY: FUTEX_WAIT only reads the word; no timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                v,
                core::ptr::null::<libc::timespec>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_wait_returns_for_a_free_stack() {
        let mut stack = [0u128; 8];
        let top = stack.as_mut_ptr_range().end.cast::<c_void>();
        // SAFETY: a mapped, aligned top; its word is 0.
        unsafe { threadlet_stack_wait(top) };
    }

    #[test]
    fn idle_spares_starts_at_zero() {
        assert_eq!(threadlet_idle_spares(), 0);
    }
}
