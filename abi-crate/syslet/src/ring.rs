//! The completion ring: an [`AsyncHead`] and the slot array it points at.

use core::ffi::c_ulong;
use core::mem::size_of;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use std::io;

use crate::abi::{AsyncHead, Atom};

/// The largest ring the kernel accepts, in bytes (16 MiB).
pub const MAX_RING_BYTES: usize = 16 << 20;

/// A completion ring: an owned [`AsyncHead`] and its slot array.
///
/// Every `async_exec` names a ring, and the kernel validates it on every call
/// even when nothing will be queued; a `Ring` is always valid for that.  Only
/// syslets that went asynchronous are posted to it (their final atom, unless
/// it has `SYSLET_NO_COMPLETE`); [`pop`](Self::pop) hands those out in order.
/// The kernel this crate is written against completes every syslet
/// synchronously for now, so the ring stays empty.
///
/// Both parts live on the heap, so moving a `Ring` does not move the memory
/// the kernel sees.
///
/// # Drop order
///
/// Fields drop in declaration order: the head first, then the slots, so the
/// head's `completion_ring` pointer never outlives the array it points at.
/// The kernel holds no reference to either between calls as long as no
/// syslet submitted on this ring is still in flight; with synchronous
/// syslets (all of them, today) that is always the case when `drop` runs.
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series),
///    "completion ring"
#[doc(alias = "async_head_user")]
#[derive(Debug)]
pub struct Ring {
    // Declaration order is drop order: see the type's documentation.
    head: Box<AsyncHead>,
    slots: Box<[AtomicPtr<Atom>]>,
}

// `AtomicPtr<Atom>` is documented to have the size and bit validity of
// `*mut Atom`; the kernel sees the slot array as `struct syslet_uatom **`.
const _: () = assert!(size_of::<AtomicPtr<Atom>>() == size_of::<*mut Atom>());

impl Ring {
    /// `Ring::new(slots)` — a zero-filled ring of `slots` entries.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `slots` is 0 or the ring would be larger than
    /// [`MAX_RING_BYTES`] (the kernel would refuse it with `EINVAL`).
    pub fn new(slots: usize) -> io::Result<Ring> {
        let bytes = slots.checked_mul(size_of::<*mut Atom>());
        let bytes = match bytes {
            Some(b) if slots > 0 && b <= MAX_RING_BYTES => b,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ring size must be 1..=2097152 slots (at most 16 MiB)",
                ))
            }
        };
        let mut slots: Box<[AtomicPtr<Atom>]> = (0..slots)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        let head = Box::new(AsyncHead {
            completion_ring: slots.as_mut_ptr().cast::<*mut Atom>(),
            ring_size_bytes: bytes as c_ulong,
            ..AsyncHead::default()
        });
        Ok(Ring { head, slots })
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The head, for inspection (`kernel_ring_idx`, `user_ring_idx`, ...).
    pub fn head(&self) -> &AsyncHead {
        &self.head
    }

    /// A pointer to the head, for the raw [`async_exec`](crate::async_exec).
    ///
    /// Valid until the ring is dropped; it does not change when the `Ring`
    /// is moved.
    pub fn as_mut_ptr(&mut self) -> *mut AsyncHead {
        &mut *self.head
    }

    /// `ring[user_ring_idx]` — take the next completion, if there is one.
    ///
    /// Follows the ring protocol: a non-NULL slot at `user_ring_idx` is a
    /// completed syslet's final atom; the slot is set back to NULL (which
    /// frees it for the kernel) and `user_ring_idx` advances, wrapping at the
    /// ring's length.  The returned pointer is the address of an atom user
    /// space submitted; read its result through its `ret_ptr`.
    pub fn pop(&mut self) -> Option<NonNull<Atom>> {
        let n = self.slots.len();
        let idx = usize::try_from(self.head.user_ring_idx).map_or(0, |i| i % n);
        let slot = &self.slots[idx];
        // Acquire pairs with the kernel's release store of the slot, so the
        // atom's result is visible once the pointer is.
        let atom = NonNull::new(slot.load(Ordering::Acquire))?;
        slot.store(ptr::null_mut(), Ordering::Release);
        self.head.user_ring_idx = ((idx + 1) % n) as c_ulong;
        Some(atom)
    }

    /// Test helper: post a completion the way the kernel does.
    #[cfg(test)]
    fn post(&mut self, atom: *mut Atom) {
        let n = self.slots.len();
        let idx = self.head.kernel_ring_idx as usize % n;
        self.slots[idx].store(atom, Ordering::Release);
        self.head.kernel_ring_idx = ((idx + 1) % n) as c_ulong;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_describes_slots() {
        let mut r = Ring::new(4).unwrap();
        assert_eq!(r.slots(), 4);
        let base = r.slots.as_ptr() as usize;
        let h = r.head();
        assert_eq!(h.ring_size_bytes, 32);
        assert_eq!(h.completion_ring as usize, base);
        assert_eq!(h.completion_ring as usize % 8, 0);
        assert_eq!((h.kernel_ring_idx, h.user_ring_idx), (0, 0));
        assert_eq!((h.head_stack, h.head_eip), (0, 0));
        assert_eq!((h.new_thread_stack, h.new_thread_eip), (0, 0));
        let p = r.as_mut_ptr() as usize;
        let moved = r;
        assert_eq!(moved.head() as *const AsyncHead as usize, p);
    }

    #[test]
    fn size_limits() {
        assert!(Ring::new(0).is_err());
        assert!(Ring::new(1).is_ok());
        assert!(Ring::new(MAX_RING_BYTES / 8 + 1).is_err());
        assert!(Ring::new(usize::MAX).is_err());
        let r = Ring::new(MAX_RING_BYTES / 8).unwrap();
        assert_eq!(r.head().ring_size_bytes as usize, MAX_RING_BYTES);
    }

    #[test]
    fn pop_follows_protocol_and_wraps() {
        let mut atoms = [Atom::EMPTY; 5];
        let mut r = Ring::new(3).unwrap();
        assert_eq!(r.pop(), None);
        for round in 0..2 {
            for a in atoms.iter_mut().take(3) {
                r.post(a);
            }
            for (i, a) in atoms.iter_mut().take(3).enumerate() {
                let got = r.pop().expect("completion");
                assert_eq!(got.as_ptr(), a as *mut Atom, "round {round} slot {i}");
                assert!(r.slots[i].load(Ordering::Relaxed).is_null());
            }
            assert_eq!(r.pop(), None);
            assert_eq!(r.head().user_ring_idx, 0);
        }
        r.post(&mut atoms[3]);
        r.post(&mut atoms[4]);
        assert_eq!(
            r.pop().map(NonNull::as_ptr),
            Some(&mut atoms[3] as *mut Atom)
        );
        assert_eq!(r.head().user_ring_idx, 1);
    }
}
