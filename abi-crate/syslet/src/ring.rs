//! The completion ring: an [`AsyncHead`] and the slot array it points at.

use core::ffi::c_ulong;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::io;

use crate::abi::{AsyncHead, Atom};

/// The largest ring the kernel accepts, in bytes (16 MiB).
pub const MAX_RING_BYTES: usize = 16 << 20;

/// `struct async_head_user` as memory shared with the kernel: every field
/// is an atomic, because kernel threads write `kernel_ring_idx` (and read
/// the rest) while user space uses the head.
#[repr(C)]
#[derive(Debug)]
struct SharedHead {
    kernel_ring_idx: AtomicU64,
    user_ring_idx: AtomicU64,
    completion_ring: AtomicPtr<*mut Atom>,
    ring_size_bytes: AtomicU64,
    head_stack: AtomicU64,
    head_eip: AtomicU64,
    new_thread_stack: AtomicU64,
    new_thread_eip: AtomicU64,
}

// Same layout as `AsyncHead` (whose layout tests pin it to the header):
// the atomics have the size and alignment of their plain types.
const _: () = {
    assert!(size_of::<SharedHead>() == size_of::<AsyncHead>());
    assert!(align_of::<SharedHead>() == align_of::<AsyncHead>());
    assert!(size_of::<AtomicU64>() == size_of::<c_ulong>());
    assert!(size_of::<AtomicPtr<*mut Atom>>() == size_of::<*mut *mut Atom>());
};

/// A completion ring: an owned [`AsyncHead`] and its slot array.
///
/// This is the raw ring, for the `unsafe` [`async_exec`](crate::async_exec)
/// and for [`Chain`](crate::Chain)'s synchronous runs;
/// [`AsyncRing`](crate::AsyncRing) builds the safe asynchronous API on it.
///
/// Every `async_exec` names a ring, and the kernel validates it on every call
/// even when nothing will be queued; a `Ring` is always valid for that.  Only
/// syslets that went asynchronous are posted to it (their final atom, unless
/// it has `SYSLET_NO_COMPLETE`); [`pop`](Self::pop) hands those out in order
/// and [`wait`](Self::wait) sleeps until some are there.
///
/// Both parts live on the heap, so moving a `Ring` does not move the memory
/// the kernel sees.  The head is kept as atomics: kernel threads write
/// `kernel_ring_idx` while user space uses the ring, so [`head`](Self::head)
/// returns a snapshot, not a reference.
///
/// # Drop order
///
/// Fields drop in declaration order: the head first, then the slots, so the
/// head's `completion_ring` pointer never outlives the array it points at.
/// The kernel holds no reference to either between calls as long as no
/// syslet submitted on this ring is still in flight: it advances
/// `kernel_ring_idx` and reads the fallbacks before it stores a completion
/// into its slot, and touches neither afterwards, so the ring may be freed
/// once the last completion has been seen.  Users of the raw ring must
/// see to that themselves (the `# Safety` of `async_exec`).
///
/// # References
///  - `Documentation/userspace-api/syslet.rst` (kernel patch series),
///    "completion ring"
#[doc(alias = "async_head_user")]
#[derive(Debug)]
pub struct Ring {
    // Declaration order is drop order: see the type's documentation.
    head: Box<SharedHead>,
    slots: Box<[AtomicPtr<Atom>]>,
    /// The crate's thread entry is set as both fallbacks.
    user_threads: bool,
}

// `AtomicPtr<Atom>` is documented to have the size and bit validity of
// `*mut Atom`; the kernel sees the slot array as `struct syslet_uatom **`.
const _: () = assert!(size_of::<AtomicPtr<Atom>>() == size_of::<*mut Atom>());

impl Ring {
    /// `Ring::new(slots)` — a zero-filled ring of `slots` entries, with no
    /// fallback entry points (threads that finish a syslet park in the
    /// kernel).
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
        let slots: Box<[AtomicPtr<Atom>]> = (0..slots)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        // `as_ptr` of the atomics: the kernel writes the slots through this
        // pointer, which interior mutability allows.
        let ring = slots.as_ptr().cast::<*mut Atom>().cast_mut();
        let head = Box::new(SharedHead {
            kernel_ring_idx: AtomicU64::new(0),
            user_ring_idx: AtomicU64::new(0),
            completion_ring: AtomicPtr::new(ring),
            ring_size_bytes: AtomicU64::new(bytes as u64),
            head_stack: AtomicU64::new(0),
            head_eip: AtomicU64::new(0),
            new_thread_stack: AtomicU64::new(0),
            new_thread_eip: AtomicU64::new(0),
        });
        Ok(Ring {
            head,
            slots,
            user_threads: false,
        })
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// A snapshot of the head (`kernel_ring_idx`, `user_ring_idx`, the
    /// fallbacks, ...).
    pub fn head(&self) -> AsyncHead {
        let h = &self.head;
        AsyncHead {
            kernel_ring_idx: h.kernel_ring_idx.load(Ordering::Relaxed),
            user_ring_idx: h.user_ring_idx.load(Ordering::Relaxed),
            completion_ring: h.completion_ring.load(Ordering::Relaxed),
            ring_size_bytes: h.ring_size_bytes.load(Ordering::Relaxed),
            head_stack: h.head_stack.load(Ordering::Relaxed),
            head_eip: h.head_eip.load(Ordering::Relaxed),
            new_thread_stack: h.new_thread_stack.load(Ordering::Relaxed),
            new_thread_eip: h.new_thread_eip.load(Ordering::Relaxed),
        }
    }

    /// A pointer to the head, for the raw [`async_exec`](crate::async_exec)
    /// and [`async_wait`](crate::async_wait).
    ///
    /// Valid until the ring is dropped; it does not change when the `Ring`
    /// is moved.  With [user threads](Self::set_user_threads) on, this also
    /// refills `new_thread_stack` (which the kernel consumes whenever it
    /// creates a spare thread during `async_exec`), so call it for every
    /// `async_exec`.
    pub fn as_mut_ptr(&mut self) -> *mut AsyncHead {
        if self.user_threads {
            self.refill();
        }
        let p: *const SharedHead = &*self.head;
        p.cast_mut().cast::<AsyncHead>()
    }

    /// Point both fallbacks (`head_eip`/`head_stack` and
    /// `new_thread_eip`/`new_thread_stack`) at the crate's thread entry,
    /// or (`false`) clear them so that threads park in the kernel.
    ///
    /// A thread the kernel sends to a fallback (the original submitter of a
    /// syslet that went asynchronous, once it has posted the completion; a
    /// spare after it ran a `SYSLET_ASYNC` chain) arrives with no TLS and
    /// all registers zero.  The crate's entry is a few instructions of
    /// assembly that use no stack and no TLS: it blocks every signal and
    /// calls `async_thread()` in a loop, so the thread parks as a spare
    /// that can later take over a blocked head (see
    /// [`AsyncRing`](crate::AsyncRing) for the details and caveats).
    ///
    /// # Errors
    ///
    /// The `mmap` error if the crate's fallback stack cannot be mapped
    /// (only the first call maps it).
    pub fn set_user_threads(&mut self, on: bool) -> io::Result<()> {
        let (eip, stack) = if on {
            crate::sys_call::user_thread_entry()?
        } else {
            (0, 0)
        };
        let h = &self.head;
        h.head_eip.store(eip as u64, Ordering::Relaxed);
        h.head_stack.store(stack as u64, Ordering::Relaxed);
        h.new_thread_eip.store(eip as u64, Ordering::Relaxed);
        h.new_thread_stack.store(stack as u64, Ordering::Relaxed);
        self.user_threads = on;
        Ok(())
    }

    /// Whether the fallbacks point at the crate's thread entry
    /// ([`set_user_threads`](Self::set_user_threads)).
    pub fn user_threads(&self) -> bool {
        self.user_threads
    }

    /// Give `new_thread_stack` back its value if the kernel took it.
    pub(crate) fn refill(&self) {
        let h = &self.head;
        let stack = h.head_stack.load(Ordering::Relaxed);
        h.new_thread_stack.store(stack, Ordering::Relaxed);
    }

    /// `ring[user_ring_idx]` — take the next completion, if there is one.
    ///
    /// Follows the ring protocol: a non-NULL slot at `user_ring_idx` is a
    /// completed syslet's final atom; the slot is set back to NULL (which
    /// frees it for the kernel) and `user_ring_idx` advances, wrapping at the
    /// ring's length.  The returned pointer is the address of an atom user
    /// space submitted; read its result through its `ret_ptr`.
    ///
    /// A kernel thread that waits for a free slot (the ring was full)
    /// notices the freed one within 20 ms, or at once after an
    /// [`async_wait`](crate::async_wait) call on the ring.
    pub fn pop(&mut self) -> Option<NonNull<Atom>> {
        let n = self.slots.len();
        let idx = self.user_idx();
        let slot = &self.slots[idx];
        // Acquire pairs with the kernel's release store of the slot, so the
        // atom's result is visible once the pointer is.
        let atom = NonNull::new(slot.load(Ordering::Acquire))?;
        slot.store(ptr::null_mut(), Ordering::Release);
        self.head
            .user_ring_idx
            .store(((idx + 1) % n) as u64, Ordering::Relaxed);
        Some(atom)
    }

    /// `async_wait(min, user_ring_idx, head)` — sleep until at least `min`
    /// completions wait in the ring (from `user_ring_idx` on), and return
    /// how many do.  `min` 0 returns at once, and wakes kernel threads
    /// waiting for a slot of a full ring (after [`pop`](Self::pop) freed
    /// one).
    ///
    /// # Errors
    ///
    /// As [`async_wait`](crate::async_wait): `EINTR` when a signal handler
    /// ran, `EINVAL` if `min` is larger than the ring, `ENOSYS` without
    /// syslets.  It blocks for as long as it takes: with fewer than `min`
    /// syslets in flight, until a signal.
    pub fn wait(&self, min: usize) -> io::Result<usize> {
        let p: *const SharedHead = &*self.head;
        crate::sys_call::async_wait(min, self.user_idx(), p.cast::<AsyncHead>())
    }

    /// The number of completions waiting from `user_ring_idx` on (the
    /// consecutive non-NULL slots), without a system call.
    pub fn ready(&self) -> usize {
        let n = self.slots.len();
        let idx = self.user_idx();
        (0..n)
            .take_while(|k| !self.slots[(idx + k) % n].load(Ordering::Relaxed).is_null())
            .count()
    }

    /// `user_ring_idx`, reduced into the ring.
    pub(crate) fn user_idx(&self) -> usize {
        let idx = self.head.user_ring_idx.load(Ordering::Relaxed);
        usize::try_from(idx).map_or(0, |i| i % self.slots.len())
    }

    /// Test helper: post a completion the way the kernel does.
    #[cfg(test)]
    pub(crate) fn post(&mut self, atom: *mut Atom) {
        let n = self.slots.len();
        let idx = self.head.kernel_ring_idx.load(Ordering::Relaxed) as usize % n;
        // The index first, as the kernel does: the slot is the last write.
        self.head
            .kernel_ring_idx
            .store(((idx + 1) % n) as u64, Ordering::Relaxed);
        self.slots[idx].store(atom, Ordering::Release);
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
        let mut moved = r;
        assert_eq!(moved.as_mut_ptr() as usize, p);
        assert_eq!(&*moved.head as *const SharedHead as usize, p);
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
        assert_eq!(r.ready(), 0);
        for round in 0..2 {
            for a in atoms.iter_mut().take(3) {
                r.post(a);
            }
            assert_eq!(r.ready(), 3);
            for (i, a) in atoms.iter_mut().take(3).enumerate() {
                let got = r.pop().expect("completion");
                assert_eq!(got.as_ptr(), a as *mut Atom, "round {round} slot {i}");
                assert!(r.slots[i].load(Ordering::Relaxed).is_null());
                assert_eq!(r.ready(), 2 - i);
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
        assert_eq!(r.ready(), 1);
    }

    #[test]
    fn user_threads_fallbacks() {
        let mut r = Ring::new(2).unwrap();
        assert!(!r.user_threads());
        r.set_user_threads(true).unwrap();
        assert!(r.user_threads());
        let h = r.head();
        assert_ne!(h.head_eip, 0);
        assert_eq!(h.head_eip, h.new_thread_eip);
        assert_eq!(h.head_stack, h.new_thread_stack);
        // SysV: at function entry rsp + 8 is 16-byte aligned.
        assert_eq!(h.head_stack % 16, 8);
        // The kernel consumes new_thread_stack; as_mut_ptr refills it.
        r.head.new_thread_stack.store(0, Ordering::Relaxed);
        let _ = r.as_mut_ptr();
        assert_eq!(r.head().new_thread_stack, h.head_stack);
        r.set_user_threads(false).unwrap();
        let h = r.head();
        assert_eq!((h.head_eip, h.head_stack), (0, 0));
        assert_eq!((h.new_thread_eip, h.new_thread_stack), (0, 0));
        let _ = r.as_mut_ptr();
        assert_eq!(r.head().new_thread_stack, 0);
    }
}
