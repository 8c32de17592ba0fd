//! Bad input never harms the kernel and gets the documented errno: bad
//! atom/next/argument/result pointers (EFAULT), unknown flag bits (EINVAL),
//! unknown system call numbers (-ENOSYS as the atom's result), refused
//! system calls (-EINVAL as the atom's result, process unchanged) and bad
//! rings (EFAULT / EINVAL, no atom runs).

use std::ffi::CString;
use std::ptr;

use syslet::{AsyncHead, Atom, AtomFlags};

use crate::harness::*;
use crate::{diag, ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "bad_atom_pointer_efault",
        run: bad_atom_pointer,
    },
    Test {
        name: "bad_next_pointer_efault",
        run: bad_next_pointer,
    },
    Test {
        name: "bad_arg_pointer_efault",
        run: bad_arg_pointer,
    },
    Test {
        name: "bad_ret_pointer_efault",
        run: bad_ret_pointer,
    },
    Test {
        name: "unknown_flag_bits_einval",
        run: unknown_flag_bits,
    },
    Test {
        name: "unknown_nr_enosys",
        run: unknown_nr,
    },
    Test {
        name: "refused_nrs_einval_process_unchanged",
        run: refused_nrs,
    },
    Test {
        name: "refused_nr_counts_for_stop_flags",
        run: refused_nr_stops,
    },
    Test {
        name: "bad_ring_efault_einval",
        run: bad_ring,
    },
];

/// Bad user pointers, by name.
fn bad_pointers() -> Result<Vec<(&'static str, usize)>, String> {
    Ok(vec![
        ("NULL", 0),
        ("unmapped", unmapped_addr()?),
        ("kernel direct map", KERNEL_ADDR),
        ("kernel text", KERNEL_TEXT),
        ("non-canonical", NON_CANONICAL),
        ("top of address space", usize::MAX - 7),
    ])
}

/// A `umem_add(&word, 1)` atom; `word` and `ret` are the caller's cells.
struct Inc {
    word: u64,
    wp: u64,
    one: u64,
    ret: i64,
}

impl Inc {
    fn new() -> Box<Inc> {
        let mut b = Box::new(Inc {
            word: 100,
            wp: 0,
            one: 1,
            ret: UNTOUCHED,
        });
        b.wp = &mut b.word as *mut u64 as u64;
        b
    }

    fn atom(&mut self) -> Atom {
        atom(501, &mut self.ret, &[arg(&self.wp), arg(&self.one)])
    }
}

fn bad_atom_pointer() -> TestResult {
    for (what, addr) in bad_pointers()? {
        // SAFETY: the kernel cannot read any of these.
        let got = unsafe { exec(addr as *const Atom) };
        expect_errno(got, libc::EFAULT, &format!("atom at {what} {addr:#x}"))?;
    }
    // An atom straddling the end of a mapping: its first 40 bytes readable.
    let ps = page_size();
    let m = Mapping::new(2 * ps, libc::PROT_READ | libc::PROT_WRITE)?;
    // SAFETY: unmapping the second page of our own mapping.
    unsafe { libc::munmap(m.addr.add(ps).cast(), ps) };
    let mut inc = Inc::new();
    let a = inc.atom();
    let at = m.addr.wrapping_add(ps - 40);
    // SAFETY: 40 bytes inside the first page.
    unsafe { ptr::copy_nonoverlapping((&a as *const Atom).cast::<u8>(), at, 40) };
    // SAFETY: only the mapped part is a user atom; the rest faults.
    let got = unsafe { exec(at.cast::<Atom>()) };
    expect_errno(got, libc::EFAULT, "atom straddling an unmapped page")?;
    ensure_eq!(
        (inc.word, inc.ret),
        (100, UNTOUCHED),
        "the partial atom ran"
    );
    Ok(())
}

fn bad_next_pointer() -> TestResult {
    for (what, addr) in bad_pointers()? {
        if addr == 0 {
            continue; // NULL next is the normal end
        }
        let mut inc = Inc::new();
        let mut a = inc.atom();
        a.next = addr as *const Atom;
        // SAFETY: `inc` outlives the call; `next` is refused.
        let got = unsafe { exec(&a) };
        expect_errno(got, libc::EFAULT, &format!("next = {what}"))?;
        // The first atom ran and its result was stored.
        ensure_eq!((inc.word, inc.ret), (101, 101), "next = {what}");
    }
    Ok(())
}

fn bad_arg_pointer() -> TestResult {
    for (what, addr) in bad_pointers()? {
        if addr == 0 {
            continue; // NULL ends the argument list (basic.rs)
        }
        let bad = addr as *const u64;
        // First argument pointer bad.
        let mut ret = UNTOUCHED;
        let one: u64 = 1;
        let a = atom(501, &mut ret, &[bad, arg(&one)]);
        // SAFETY: `ret` and `one` outlive the call; `bad` is refused.
        let got = unsafe { exec(&a) };
        expect_errno(got, libc::EFAULT, &format!("arg 0 at {what}"))?;
        ensure_eq!(ret, UNTOUCHED, "arg 0 at {what}: result stored");
        // Second argument pointer bad: nothing runs.
        let mut inc = Inc::new();
        let a = atom(501, &mut inc.ret, &[arg(&inc.wp), bad]);
        // SAFETY: as above.
        let got = unsafe { exec(&a) };
        expect_errno(got, libc::EFAULT, &format!("arg 1 at {what}"))?;
        ensure_eq!((inc.word, inc.ret), (100, UNTOUCHED), "arg 1 at {what}");
        // Bad argument in the second atom: the first one ran.
        let mut first = Inc::new();
        let mut ret2 = UNTOUCHED;
        let mut atoms = [first.atom(), atom(libc::SYS_getppid, &mut ret2, &[bad])];
        atoms[0].next = &atoms[1];
        // SAFETY: as above.
        let got = unsafe { exec(atoms.as_ptr()) };
        expect_errno(got, libc::EFAULT, &format!("second atom's arg at {what}"))?;
        ensure_eq!(
            (first.word, first.ret, ret2),
            (101, 101, UNTOUCHED),
            "{what}"
        );
    }
    Ok(())
}

fn bad_ret_pointer() -> TestResult {
    let ro = Mapping::new(page_size(), libc::PROT_READ)?;
    let mut cases = bad_pointers()?;
    cases.retain(|&(_, a)| a != 0); // NULL is allowed (basic.rs)
    cases.push(("read-only page", ro.addr as usize));
    for (what, addr) in cases {
        let mut inc = Inc::new();
        let mut a = inc.atom();
        a.ret_ptr = addr as *mut i64;
        let mut after = Inc::new();
        let b = after.atom();
        a.next = &b;
        // SAFETY: the cells outlive the call; `ret_ptr` is refused.
        let got = unsafe { exec(&a) };
        expect_errno(got, libc::EFAULT, &format!("ret_ptr at {what}"))?;
        ensure_eq!(
            (after.word, after.ret),
            (100, UNTOUCHED),
            "ret_ptr at {what}: ran past the fault"
        );
        diag!(
            "ret_ptr at {what}: the atom itself {} executed",
            if inc.word == 101 { "was" } else { "was not" }
        );
    }
    Ok(())
}

fn unknown_flag_bits() -> TestResult {
    let bits: [(&str, u64); 4] = [
        ("0x100", 0x100),
        ("1<<63", 1 << 63),
        ("0x200|STOP_ON_ZERO", 0x200 | AtomFlags::STOP_ON_ZERO.bits()),
        ("all bits", u64::MAX),
    ];
    for (what, flags) in bits {
        let mut inc = Inc::new();
        let mut a = inc.atom();
        a.flags = flags;
        // SAFETY: all live cells.
        let got = unsafe { exec(&a) };
        expect_errno(got, libc::EINVAL, &format!("flags {what}"))?;
        ensure_eq!(
            (inc.word, inc.ret),
            (100, UNTOUCHED),
            "flags {what}: the atom ran"
        );
        // Unknown bits on the second atom: the first one ran.
        let mut first = Inc::new();
        let mut second = Inc::new();
        let mut atoms = [first.atom(), second.atom()];
        atoms[1].flags = flags;
        atoms[0].next = &atoms[1];
        // SAFETY: all live cells.
        let got = unsafe { exec(atoms.as_ptr()) };
        expect_errno(got, libc::EINVAL, &format!("second atom flags {what}"))?;
        ensure_eq!(
            (first.word, second.word, second.ret),
            (101, 100, UNTOUCHED),
            "{what}"
        );
    }
    Ok(())
}

/// Run `[atom(nr, args)] -> [umem_add marker]`, return (result, marker ran).
fn run_nr(nr: u64, args: &[*const u64], flags: AtomFlags) -> Result<(i64, bool), String> {
    let mut ret = UNTOUCHED;
    let mut marker = Inc::new();
    let mut atoms = [atom(0, &mut ret, args), marker.atom()];
    atoms[0].nr = nr;
    atoms[0].flags = flags.bits();
    atoms[0].next = &atoms[1];
    let me = pid();
    // SAFETY: the cells outlive the call; the arguments are the caller's.
    let got = unsafe { exec(atoms.as_ptr()) };
    if pid() != me {
        // A refused fork-like call ran after all and this is the child:
        // leave at once, the parent reports it.
        // SAFETY: plain exit.
        unsafe { libc::_exit(0) };
    }
    let last = match got {
        Ok(Some(p)) => p.as_ptr() as *const Atom,
        other => return Err(format!("nr {nr}: async_exec -> {other:?}")),
    };
    let ran = marker.word == 101;
    let want_last = if ran {
        &atoms[1] as *const Atom
    } else {
        atoms.as_ptr()
    };
    ensure_eq!(last, want_last, "nr {nr}: final atom");
    Ok((ret, ran))
}

fn unknown_nr() -> TestResult {
    let cases: [(&str, u64); 7] = [
        ("100000", 100_000),
        ("u64::MAX", u64::MAX),
        ("1<<63", 1 << 63),
        (
            "getpid | 1<<32 (no truncation)",
            (1 << 32) | libc::SYS_getpid as u64,
        ),
        ("getpid | x32 bit", 0x4000_0000 | libc::SYS_getpid as u64),
        ("512", 512),
        ("499 (hole below 500)", 499),
    ];
    for (what, nr) in cases {
        let (r, ran) = run_nr(nr, &[], AtomFlags::empty())?;
        ensure_eq!(r, neg(libc::ENOSYS), "nr {what}: result {}", show(r));
        ensure!(ran, "nr {what}: the syslet did not go on after -ENOSYS");
        let (r, ran) = run_nr(nr, &[], AtomFlags::STOP_ON_NEGATIVE)?;
        ensure_eq!(r, neg(libc::ENOSYS), "nr {what}");
        ensure!(!ran, "nr {what}: -ENOSYS did not stop STOP_ON_NEGATIVE");
    }
    // Reserved for later issues (async_wait, async_thread, threadlet_on/off):
    // not wired yet (-ENOSYS) or wired and refused in atoms (-EINVAL).
    for nr in 502..=505u64 {
        let (r, _) = run_nr(nr, &[], AtomFlags::empty())?;
        ensure!(
            r == neg(libc::ENOSYS) || r == neg(libc::EINVAL),
            "reserved nr {nr}: result {}",
            show(r)
        );
        diag!("reserved nr {nr} in an atom: {}", show(r));
    }
    Ok(())
}

fn refused_nrs() -> TestResult {
    // Arguments chosen so that the call, if it ran anyway, would give a
    // result other than -EINVAL (or visibly change the process).
    let missing = CString::new("/nonexistent-syslet-test").unwrap();
    let path = missing.as_ptr() as u64;
    let zero: u64 = 0;
    let size64: u64 = 64;
    let sigchld = libc::SIGCHLD as u64;
    let at_fdcwd = libc::AT_FDCWD as i64 as u64;
    let cases: Vec<(&str, i64, Vec<*const u64>)> = vec![
        ("async_exec", 500, vec![]),
        ("fork", libc::SYS_fork, vec![]),
        ("vfork", libc::SYS_vfork, vec![]),
        (
            "clone",
            libc::SYS_clone,
            vec![
                arg(&sigchld),
                arg(&zero),
                arg(&zero),
                arg(&zero),
                arg(&zero),
            ],
        ),
        ("clone3", libc::SYS_clone3, vec![arg(&zero), arg(&size64)]),
        (
            "execve",
            libc::SYS_execve,
            vec![arg(&path), arg(&zero), arg(&zero)],
        ),
        (
            "execveat",
            libc::SYS_execveat,
            vec![
                arg(&at_fdcwd),
                arg(&path),
                arg(&zero),
                arg(&zero),
                arg(&zero),
            ],
        ),
        ("rt_sigreturn", libc::SYS_rt_sigreturn, vec![]),
        ("exit", libc::SYS_exit, vec![arg(&zero)]),
        ("restart_syscall", libc::SYS_restart_syscall, vec![]),
    ];
    ensure!(!has_children(), "test process has children before the test");
    let me = pid();
    for (what, nr, args) in &cases {
        let (r, ran) = run_nr(*nr as u64, args, AtomFlags::empty())?;
        ensure_eq!(
            r,
            neg(libc::EINVAL),
            "{what} ({nr}) in an atom: result {}",
            show(r)
        );
        ensure!(ran, "{what}: the syslet did not go on after -EINVAL");
        ensure_eq!(pid(), me, "{what}: process changed");
        ensure!(!has_children(), "{what} in an atom created a child");
    }
    Ok(())
}

fn refused_nr_stops() -> TestResult {
    for flags in [AtomFlags::STOP_ON_NEGATIVE, AtomFlags::STOP_ON_NONZERO] {
        let (r, ran) = run_nr(libc::SYS_fork as u64, &[], flags)?;
        ensure_eq!(r, neg(libc::EINVAL), "{flags:?}");
        ensure!(!ran, "{flags:?}: refused fork did not stop the syslet");
    }
    let (r, ran) = run_nr(libc::SYS_fork as u64, &[], AtomFlags::STOP_ON_ZERO)?;
    ensure_eq!(r, neg(libc::EINVAL));
    ensure!(ran, "STOP_ON_ZERO stopped on -EINVAL");
    ensure!(!has_children(), "a child was created");
    Ok(())
}

fn bad_ring() -> TestResult {
    const MIB16: u64 = 16 << 20;
    let mut slots = vec![ptr::null_mut::<Atom>(); 16];
    let ring = slots.as_mut_ptr();
    let big = Mapping::new(MIB16 as usize, libc::PROT_READ | libc::PROT_WRITE)?;
    let mk = |completion_ring: *mut *mut Atom, ring_size_bytes: u64| AsyncHead {
        completion_ring,
        ring_size_bytes,
        ..AsyncHead::default()
    };
    let bytes =
        |p: *mut *mut Atom, off: usize| p.cast::<u8>().wrapping_add(off).cast::<*mut Atom>();

    // Heads that are themselves bad pointers.
    let ps = page_size();
    let m = Mapping::new(2 * ps, libc::PROT_READ | libc::PROT_WRITE)?;
    // SAFETY: unmapping the second page of our own mapping.
    unsafe { libc::munmap(m.addr.add(ps).cast(), ps) };
    // Only the two indices are readable: the ring pointer and size, which
    // the kernel needs on every call, are in the unmapped page.  (Whether
    // the kernel also reads the cachemiss fields is not pinned here.)
    let straddle = m.addr.wrapping_add(ps - 16).cast::<AsyncHead>();
    let head_bytes = mk(ring, 128);
    // SAFETY: the first 16 bytes are in the mapped page.
    unsafe {
        ptr::copy_nonoverlapping(
            (&head_bytes as *const AsyncHead).cast::<u8>(),
            straddle.cast::<u8>(),
            16,
        )
    };
    let mut heads: Vec<(&str, *mut AsyncHead, i32)> = bad_pointers()?
        .into_iter()
        .map(|(w, a)| (w, a as *mut AsyncHead, libc::EFAULT))
        .collect();
    heads.push(("straddling an unmapped page", straddle, libc::EFAULT));
    for (what, h, errno) in heads {
        let mut inc = Inc::new();
        let a = inc.atom();
        // SAFETY: `inc` outlives the call; the head is refused.
        let got = unsafe { exec_with(&a, h) };
        expect_errno(got, errno, &format!("ahu at {what}"))?;
        ensure_eq!(
            (inc.word, inc.ret),
            (100, UNTOUCHED),
            "ahu at {what}: an atom ran"
        );
    }

    // Bad ring descriptions.
    let cases: Vec<(&str, AsyncHead, i32)> = vec![
        ("size 0", mk(ring, 0), libc::EINVAL),
        ("size 7", mk(ring, 7), libc::EINVAL),
        ("size 12", mk(ring, 12), libc::EINVAL),
        ("size 127", mk(ring, 127), libc::EINVAL),
        (
            "size 16 MiB + 8",
            mk(big.addr.cast(), MIB16 + 8),
            libc::EINVAL,
        ),
        ("size 32 MiB", mk(big.addr.cast(), 2 * MIB16), libc::EINVAL),
        ("size !7 (2^64 - 8)", mk(ring, !7), libc::EINVAL),
        ("ring NULL", mk(ptr::null_mut(), 128), libc::EINVAL),
        ("ring NULL, size 0", mk(ptr::null_mut(), 0), libc::EINVAL),
        ("ring misaligned by 1", mk(bytes(ring, 1), 64), libc::EINVAL),
        ("ring misaligned by 4", mk(bytes(ring, 4), 64), libc::EINVAL),
        (
            "ring in the kernel",
            mk(KERNEL_ADDR as *mut *mut Atom, 128),
            libc::EFAULT,
        ),
        (
            "ring at kernel text",
            mk(KERNEL_TEXT as *mut *mut Atom, 8),
            libc::EFAULT,
        ),
        (
            "ring non-canonical",
            mk(NON_CANONICAL as *mut *mut Atom, 8),
            libc::EFAULT,
        ),
    ];
    for (what, mut head, errno) in cases {
        let mut inc = Inc::new();
        let a = inc.atom();
        // SAFETY: `inc` and `head` outlive the call.
        let got = unsafe { exec_with(&a, &mut head) };
        expect_errno(got, errno, &format!("ring {what}"))?;
        ensure_eq!(
            (inc.word, inc.ret),
            (100, UNTOUCHED),
            "ring {what}: an atom ran"
        );
    }

    // The limits themselves are fine.
    for (what, mut head) in [
        ("one slot", mk(ring, 8)),
        ("16 slots", mk(ring, 128)),
        ("exactly 16 MiB", mk(big.addr.cast(), MIB16)),
    ] {
        let mut inc = Inc::new();
        let a = inc.atom();
        // SAFETY: `inc`, `head` and the ring memory outlive the call.
        let got = unsafe { exec_with(&a, &mut head) };
        expect_final(got, &a).map_err(|e| format!("ring {what}: {e}"))?;
        ensure_eq!((inc.word, inc.ret), (101, 101), "ring {what}");
    }
    Ok(())
}
