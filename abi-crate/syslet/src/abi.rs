//! The raw ABI: the two structures, the flags and the system call numbers.
//!
//! [`Atom`] and [`AsyncHead`] are this crate's own `#[repr(C)]` copies of
//! `struct syslet_uatom` and `struct async_head_user`; the tests at the end
//! of this file prove them equal (size, alignment, offset of every field) to
//! the bindgen output in `syslet-sys`, which is generated from the kernel's
//! installed `<linux/syslet.h>`.

use core::ffi::{c_long, c_ulong, c_void};
use core::ptr;

use syslet_sys as sys;

/// `struct syslet_uatom` — one system call of a syslet, plus control.
///
/// The kernel only reads atoms (they may live in read-only memory); it writes
/// the result through [`ret_ptr`](Self::ret_ptr).  88 bytes on x86-64.
///
/// This is the raw form, used with the `unsafe` [`async_exec`](crate::async_exec).
/// [`Chain`](crate::Chain) builds and owns atoms without raw pointers.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "syslet_uatom")]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Atom {
    /// `SYSLET_*` flags: the bits of [`AtomFlags`].  Any other bit makes
    /// `async_exec` fail with `EINVAL`.
    pub flags: c_ulong,
    /// The system call number (`__NR_*`).
    pub nr: c_ulong,
    /// Where the kernel stores the call's return value (a `long`); NULL:
    /// nowhere.
    pub ret_ptr: *mut c_long,
    /// The next atom; NULL ends the syslet.
    pub next: *const Atom,
    /// POINTERS to the argument values.  The kernel reads them in order and
    /// stops at the first NULL; the missing arguments are 0.
    pub arg_ptr: [*const c_ulong; 6],
    /// For user space; never touched by the kernel.
    pub private: *mut c_void,
}

impl Atom {
    /// An atom with every field zero (`nr` 0 is `read` on x86-64).
    pub const EMPTY: Atom = Atom {
        flags: 0,
        nr: 0,
        ret_ptr: ptr::null_mut(),
        next: ptr::null(),
        arg_ptr: [ptr::null(); 6],
        private: ptr::null_mut(),
    };

    /// An atom for system call `nr` with no flags, no arguments, no result
    /// pointer and no successor.
    pub const fn new(nr: c_ulong) -> Atom {
        Atom { nr, ..Atom::EMPTY }
    }
}

impl Default for Atom {
    fn default() -> Self {
        Atom::EMPTY
    }
}

/// `struct async_head_user` — a completion ring and its cachemiss settings.
///
/// Every `async_exec` names one; the kernel validates it on every call
/// (`ring_size_bytes` a non-zero multiple of 8 of at most 16 MiB,
/// `completion_ring` non-NULL and 8-byte aligned).  [`Ring`](crate::Ring)
/// owns one together with its slot array.  64 bytes on x86-64.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
#[doc(alias = "async_head_user")]
#[repr(C)]
#[derive(Debug, PartialEq, Eq)]
pub struct AsyncHead {
    /// Next ring slot the kernel fills; written by the kernel.
    pub kernel_ring_idx: c_ulong,
    /// Next ring slot user space reads; written by user space.
    pub user_ring_idx: c_ulong,
    /// The ring: an array of atom pointers, zero-filled by user space.
    pub completion_ring: *mut *mut Atom,
    /// Size of the `completion_ring` array in bytes.
    pub ring_size_bytes: c_ulong,
    /// User stack top for the original submitter once it has become a
    /// cachemiss thread and finished its work (0: park in the kernel).
    pub head_stack: c_ulong,
    /// User entry point that goes with `head_stack`.
    pub head_eip: c_ulong,
    /// User stack top for threads the kernel creates; the kernel consumes it
    /// (sets it to 0) and user space refills it.
    pub new_thread_stack: c_ulong,
    /// User entry point that goes with `new_thread_stack`.
    pub new_thread_eip: c_ulong,
}

impl Default for AsyncHead {
    fn default() -> Self {
        AsyncHead {
            kernel_ring_idx: 0,
            user_ring_idx: 0,
            completion_ring: ptr::null_mut(),
            ring_size_bytes: 0,
            head_stack: 0,
            head_eip: 0,
            new_thread_stack: 0,
            new_thread_eip: 0,
        }
    }
}

bitflags::bitflags! {
    /// `SYSLET_*` — the flags of an [`Atom`].
    ///
    /// The stop tests apply to the result of the atom just executed.  Without
    /// a stop, execution follows `next`; a stop ends the syslet, unless
    /// [`SKIP_TO_NEXT_ON_STOP`](Self::SKIP_TO_NEXT_ON_STOP) is set.
    ///
    /// # References
    ///  - `Documentation/userspace-api/syslet.rst` (kernel patch series)
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct AtomFlags: c_ulong {
        /// `SYSLET_ASYNC` — queue the syslet to a cachemiss thread at once
        /// instead of running it in the caller (`async_exec` returns NULL
        /// and the final atom shows up in the ring).  Checked at each atom
        /// the caller itself runs; the kernel runs the chain in the caller
        /// after all if no idle kernel spare thread can take it.
        #[doc(alias = "SYSLET_ASYNC")]
        const ASYNC = sys::SYSLET_ASYNC as c_ulong;
        /// `SYSLET_SYNC` — never go asynchronous, even if the atom blocks.
        #[doc(alias = "SYSLET_SYNC")]
        const SYNC = sys::SYSLET_SYNC as c_ulong;
        /// `SYSLET_NO_COMPLETE` — do not put the final atom in the ring.
        #[doc(alias = "SYSLET_NO_COMPLETE")]
        const NO_COMPLETE = sys::SYSLET_NO_COMPLETE as c_ulong;
        /// `SYSLET_STOP_ON_NONZERO` — stop if the atom returned `!= 0`.
        #[doc(alias = "SYSLET_STOP_ON_NONZERO")]
        const STOP_ON_NONZERO = sys::SYSLET_STOP_ON_NONZERO as c_ulong;
        /// `SYSLET_STOP_ON_ZERO` — stop if the atom returned `0`.
        #[doc(alias = "SYSLET_STOP_ON_ZERO")]
        const STOP_ON_ZERO = sys::SYSLET_STOP_ON_ZERO as c_ulong;
        /// `SYSLET_STOP_ON_NEGATIVE` — stop if the atom returned `< 0`.
        #[doc(alias = "SYSLET_STOP_ON_NEGATIVE")]
        const STOP_ON_NEGATIVE = sys::SYSLET_STOP_ON_NEGATIVE as c_ulong;
        /// `SYSLET_STOP_ON_NON_POSITIVE` — stop if the atom returned `<= 0`.
        #[doc(alias = "SYSLET_STOP_ON_NON_POSITIVE")]
        const STOP_ON_NON_POSITIVE = sys::SYSLET_STOP_ON_NON_POSITIVE as c_ulong;
        /// `SYSLET_SKIP_TO_NEXT_ON_STOP` — on a stop, continue with the atom
        /// physically next in memory (`atom + 1`) instead of ending: this is
        /// how syslets branch.
        #[doc(alias = "SYSLET_SKIP_TO_NEXT_ON_STOP")]
        const SKIP_TO_NEXT_ON_STOP = sys::SYSLET_SKIP_TO_NEXT_ON_STOP as c_ulong;
    }
}

impl AtomFlags {
    /// `SYSLET_STOP_MASK` — the four `STOP_ON_*` flags.
    #[doc(alias = "SYSLET_STOP_MASK")]
    pub const STOP_MASK: AtomFlags = AtomFlags::STOP_ON_NONZERO
        .union(AtomFlags::STOP_ON_ZERO)
        .union(AtomFlags::STOP_ON_NEGATIVE)
        .union(AtomFlags::STOP_ON_NON_POSITIVE);
}

/// System call numbers of the syslet subsystem (x86-64), taken from the
/// patched kernel's `<asm/unistd_64.h>` through `syslet-sys`.
pub mod nr {
    use core::ffi::c_ulong;

    use syslet_sys as sys;

    /// `__NR_async_exec`
    #[doc(alias = "__NR_async_exec")]
    pub const ASYNC_EXEC: c_ulong = sys::__NR_async_exec as c_ulong;
    /// `__NR_umem_add`
    #[doc(alias = "__NR_umem_add")]
    pub const UMEM_ADD: c_ulong = sys::__NR_umem_add as c_ulong;
    /// `__NR_async_wait`
    #[doc(alias = "__NR_async_wait")]
    pub const ASYNC_WAIT: c_ulong = sys::__NR_async_wait as c_ulong;
    /// `__NR_async_thread`
    #[doc(alias = "__NR_async_thread")]
    pub const ASYNC_THREAD: c_ulong = sys::__NR_async_thread as c_ulong;
    /// `__NR_threadlet_on`
    #[doc(alias = "__NR_threadlet_on")]
    pub const THREADLET_ON: c_ulong = sys::__NR_threadlet_on as c_ulong;
    /// `__NR_threadlet_off`
    #[doc(alias = "__NR_threadlet_off")]
    pub const THREADLET_OFF: c_ulong = sys::__NR_threadlet_off as c_ulong;
}

// The named types must be the generated ones: checked at compile time for
// size and alignment, at test time for every field offset.
const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<Atom>() == size_of::<sys::syslet_uatom>());
    assert!(align_of::<Atom>() == align_of::<sys::syslet_uatom>());
    assert!(size_of::<AsyncHead>() == size_of::<sys::async_head_user>());
    assert!(align_of::<AsyncHead>() == align_of::<sys::async_head_user>());
    assert!(size_of::<Atom>() == 88);
    assert!(size_of::<AsyncHead>() == 64);
};

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of, size_of_val};

    /// Offset of a field, from a real value: no `unsafe`, no `offset_of!`.
    fn off<T, F>(base: &T, field: &F) -> usize {
        field as *const F as usize - base as *const T as usize
    }

    #[test]
    fn atom_layout_matches_bindgen() {
        let a = Atom::EMPTY;
        let s = sys::syslet_uatom::default();
        assert_eq!(size_of::<Atom>(), size_of::<sys::syslet_uatom>());
        assert_eq!(align_of::<Atom>(), align_of::<sys::syslet_uatom>());
        assert_eq!(off(&a, &a.flags), off(&s, &s.flags));
        assert_eq!(off(&a, &a.nr), off(&s, &s.nr));
        assert_eq!(off(&a, &a.ret_ptr), off(&s, &s.ret_ptr));
        assert_eq!(off(&a, &a.next), off(&s, &s.next));
        assert_eq!(off(&a, &a.arg_ptr), off(&s, &s.arg_ptr));
        assert_eq!(size_of_val(&a.arg_ptr), size_of_val(&s.arg_ptr));
        assert_eq!(off(&a, &a.private), off(&s, &s.private));
        // v3's x86-64 layout, pinned.
        assert_eq!(
            [
                off(&a, &a.flags),
                off(&a, &a.nr),
                off(&a, &a.ret_ptr),
                off(&a, &a.next),
                off(&a, &a.arg_ptr),
                off(&a, &a.private),
            ],
            [0, 8, 16, 24, 32, 80]
        );
        assert_eq!(size_of::<Atom>(), 88);
    }

    #[test]
    fn async_head_layout_matches_bindgen() {
        let h = AsyncHead::default();
        let s = sys::async_head_user::default();
        assert_eq!(size_of::<AsyncHead>(), size_of::<sys::async_head_user>());
        assert_eq!(align_of::<AsyncHead>(), align_of::<sys::async_head_user>());
        let ours = [
            off(&h, &h.kernel_ring_idx),
            off(&h, &h.user_ring_idx),
            off(&h, &h.completion_ring),
            off(&h, &h.ring_size_bytes),
            off(&h, &h.head_stack),
            off(&h, &h.head_eip),
            off(&h, &h.new_thread_stack),
            off(&h, &h.new_thread_eip),
        ];
        let theirs = [
            off(&s, &s.kernel_ring_idx),
            off(&s, &s.user_ring_idx),
            off(&s, &s.completion_ring),
            off(&s, &s.ring_size_bytes),
            off(&s, &s.head_stack),
            off(&s, &s.head_eip),
            off(&s, &s.new_thread_stack),
            off(&s, &s.new_thread_eip),
        ];
        assert_eq!(ours, theirs);
        assert_eq!(ours, [0, 8, 16, 24, 32, 40, 48, 56]);
        assert_eq!(size_of::<AsyncHead>(), 64);
    }

    #[test]
    fn field_types_have_c_sizes() {
        let a = Atom::EMPTY;
        let s = sys::syslet_uatom::default();
        assert_eq!(size_of_val(&a.flags), size_of_val(&s.flags));
        assert_eq!(size_of_val(&a.nr), size_of_val(&s.nr));
        assert_eq!(size_of_val(&a.ret_ptr), size_of_val(&s.ret_ptr));
        assert_eq!(size_of_val(&a.next), size_of_val(&s.next));
        assert_eq!(size_of_val(&a.private), size_of_val(&s.private));
    }

    #[test]
    fn flag_values_are_abi() {
        // The values are ABI (v3-abi.md, part A); the header must agree.
        let table = [
            (AtomFlags::ASYNC, 0x01, sys::SYSLET_ASYNC),
            (AtomFlags::SYNC, 0x02, sys::SYSLET_SYNC),
            (AtomFlags::NO_COMPLETE, 0x04, sys::SYSLET_NO_COMPLETE),
            (
                AtomFlags::STOP_ON_NONZERO,
                0x08,
                sys::SYSLET_STOP_ON_NONZERO,
            ),
            (AtomFlags::STOP_ON_ZERO, 0x10, sys::SYSLET_STOP_ON_ZERO),
            (
                AtomFlags::STOP_ON_NEGATIVE,
                0x20,
                sys::SYSLET_STOP_ON_NEGATIVE,
            ),
            (
                AtomFlags::STOP_ON_NON_POSITIVE,
                0x40,
                sys::SYSLET_STOP_ON_NON_POSITIVE,
            ),
            (
                AtomFlags::SKIP_TO_NEXT_ON_STOP,
                0x80,
                sys::SYSLET_SKIP_TO_NEXT_ON_STOP,
            ),
        ];
        for (flag, value, c) in table {
            assert_eq!(flag.bits(), value, "{flag:?}");
            assert_eq!(flag.bits(), c_ulong::from(c), "{flag:?}");
        }
        assert_eq!(AtomFlags::all().bits(), 0xff);
        assert_eq!(AtomFlags::STOP_MASK.bits(), 0x78);
        assert_eq!(
            AtomFlags::STOP_MASK.bits(),
            c_ulong::from(sys::SYSLET_STOP_MASK)
        );
        assert_eq!(AtomFlags::from_bits(0x100), None);
    }

    #[test]
    fn syscall_numbers() {
        assert_eq!(nr::ASYNC_EXEC, 500);
        assert_eq!(nr::UMEM_ADD, 501);
        assert_eq!(nr::ASYNC_WAIT, 502);
        assert_eq!(nr::ASYNC_THREAD, 503);
        assert_eq!(nr::THREADLET_ON, 504);
        assert_eq!(nr::THREADLET_OFF, 505);
    }

    #[test]
    fn empty_atom_is_zero() {
        let a = Atom::new(39);
        assert_eq!(a.nr, 39);
        assert_eq!(a.flags, 0);
        assert!(a.ret_ptr.is_null() && a.next.is_null() && a.private.is_null());
        assert!(a.arg_ptr.iter().all(|p| p.is_null()));
        assert_eq!(Atom::default(), Atom::EMPTY);
    }
}
