//! Tests that call the kernel.  On a kernel without syslets (the usual host)
//! each one returns early with a note; the guest tests
//! (`syslet-guest-tests`) cover the kernel in depth and require syslets.

use std::ffi::CString;
use std::ptr;

use syslet::{AsyncHead, AsyncRing, Atom, AtomFlags, Chain, Ring, Submitted};

/// Return early (test passes) on a kernel without syslets.
macro_rules! require_syslets {
    () => {
        if !syslet::is_supported() {
            eprintln!(
                "note: skipped, this kernel has no syslets ({})",
                syslet::check_supported().unwrap_err()
            );
            return;
        }
    };
}

#[test]
fn probe_is_consistent() {
    let checked = syslet::check_supported();
    assert_eq!(syslet::is_supported(), checked.is_ok());
    assert_eq!(syslet::is_supported(), syslet::is_supported());
    if let Err(e) = checked {
        // No syslets here: the call itself must say so, not crash.
        assert!(
            matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)),
            "unexpected probe error {e}"
        );
    }
}

#[test]
fn without_syslets_run_fails_with_enosys() {
    if syslet::is_supported() {
        return;
    }
    let mut c = Chain::new();
    c.getpid();
    let e = c.run().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSYS));
}

#[test]
fn open_read_close() {
    require_syslets!();
    let mut buf = [0u8; 4096];
    let mut c = Chain::new();
    let open = c
        .open(
            CString::new("/proc/self/stat").unwrap(),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let read = c.read(open, &mut buf).id();
    let close = c.close(open).id();
    assert_eq!(c.run().unwrap(), close);
    assert!(c.result(open).unwrap().unwrap() >= 0);
    let n = c.result(read).unwrap().unwrap() as usize;
    assert_eq!(c.result(close).unwrap().unwrap(), 0);
    drop(c);
    let pid = std::process::id().to_string();
    assert!(buf[..n].starts_with(pid.as_bytes()));
}

#[test]
fn umem_add_loop() {
    require_syslets!();
    let mut c = Chain::new();
    let left = c.counter(10);
    let dec = c.umem_add(left, -1i64).flags(AtomFlags::STOP_ON_ZERO).id();
    c.atom(dec).then(dec);
    assert_eq!(c.run().unwrap(), dec);
    assert_eq!(c.counter_value(left), 0);
    assert_eq!(c.result(dec).unwrap().unwrap(), 0);
}

#[test]
fn umem_add_direct() {
    require_syslets!();
    let mut word: libc::c_ulong = 40;
    // SAFETY: `word` is a live local, not otherwise accessed during the call.
    let new = unsafe { syslet::umem_add(&mut word, 2) }.unwrap();
    assert_eq!((new, word), (42, 42));
    // SAFETY: NULL is never a valid user address: the kernel refuses it.
    let e = unsafe { syslet::umem_add(ptr::null_mut(), 1) }.unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
}

#[test]
fn generic_syscall() {
    require_syslets!();
    let mut c = Chain::new();
    // SAFETY: getppid takes no arguments and touches no memory.
    let id = unsafe { c.syscall(libc::SYS_getppid as u64, &[]) }.id();
    c.run().unwrap();
    let ppid = std::os::unix::process::parent_id();
    assert_eq!(c.result(id).unwrap().unwrap(), i64::from(ppid));
}

#[test]
fn raw_bad_ring() {
    require_syslets!();
    let mut ret: libc::c_long = 0;
    let mut atom = Atom::new(libc::SYS_getpid as u64);
    atom.ret_ptr = &mut ret;
    let mut ring = Ring::new(1).unwrap();
    let mut head = AsyncHead {
        completion_ring: ring.head().completion_ring,
        ring_size_bytes: 7,
        ..AsyncHead::default()
    };
    // SAFETY: the atom, its result and the ring outlive the call.
    let e = unsafe { syslet::async_exec(&atom, &mut head) }.unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(ret, 0, "the atom must not run with a bad ring");
    // SAFETY: as above, with a valid ring.
    let last = unsafe { syslet::async_exec(&atom, ring.as_mut_ptr()) }.unwrap();
    assert_eq!(
        last.map(|p| p.as_ptr() as *const Atom),
        Some(&atom as *const Atom)
    );
    assert_eq!(ret, i64::from(std::process::id()));
}

#[test]
fn async_ring_without_syslets_fails_with_enosys() {
    if syslet::is_supported() {
        return;
    }
    let mut ring = AsyncRing::new(4).unwrap();
    let mut c = Chain::new();
    c.getpid();
    let e = ring.submit(c).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSYS));
    assert_eq!(ring.in_flight(), 0);
    assert!(ring.try_reap().unwrap().is_none());
}

#[test]
fn async_ring_cached_chain_is_done() {
    require_syslets!();
    let mut ring = AsyncRing::new(4).unwrap();
    let mut c = Chain::new();
    let g = c.getpid().id();
    match ring.submit(c).unwrap() {
        Submitted::Done(done) => {
            assert_eq!(done.final_atom(), g);
            assert_eq!(
                done.result(g).unwrap().unwrap(),
                i64::from(std::process::id())
            );
        }
        Submitted::Pending(t) => panic!("getpid went asynchronous ({t})"),
    }
    assert_eq!(ring.in_flight(), 0);
}
