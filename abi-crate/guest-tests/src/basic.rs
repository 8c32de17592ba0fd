//! Basic execution: support, cached chains, results, argument fetching,
//! file-system atoms, long chains, leaks, the ring and the flags that do not
//! change control flow (SYNC, NO_COMPLETE, ASYNC).

use std::time::Instant;

use syslet::{AsyncHead, Atom, AtomFlags, Chain, Fd};

use crate::harness::*;
use crate::{diag, ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "supported",
        run: supported,
    },
    Test {
        name: "guest_is_smp",
        run: guest_is_smp,
    },
    Test {
        name: "cached_open_read_close",
        run: cached_open_read_close,
    },
    Test {
        name: "chain_runs_again",
        run: chain_runs_again,
    },
    Test {
        name: "ret_ptr_null_allowed",
        run: ret_ptr_null_allowed,
    },
    Test {
        name: "arg_fetch_stops_at_first_null",
        run: arg_fetch_stops_at_first_null,
    },
    Test {
        name: "fs_atoms_openat_pwrite_fsync_fstat_pread",
        run: fs_atoms,
    },
    Test {
        name: "generic_syscall_atom",
        run: generic_syscall_atom,
    },
    Test {
        name: "atoms_in_read_only_memory",
        run: atoms_in_read_only_memory,
    },
    Test {
        name: "sync_nocomplete_flags_accepted",
        run: sync_nocomplete_async_accepted,
    },
    Test {
        name: "ring_untouched_by_cached_syslets",
        run: ring_untouched,
    },
    Test {
        name: "long_chain_10000_atoms",
        run: long_chain,
    },
    Test {
        name: "no_fd_leak",
        run: no_fd_leak,
    },
];

/// The harness boots with `-smp 2`: the races the later issues test need
/// two CPUs, so a guest that sees only one is a broken set-up.
fn guest_is_smp() -> TestResult {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    diag!("{online} CPUs online");
    ensure!(
        online >= 2,
        "guest sees {online} CPU(s), expected at least 2"
    );
    Ok(())
}

fn supported() -> TestResult {
    syslet::check_supported()
        .map_err(|e| format!("async_exec(NULL, NULL) gave {e}, expected EFAULT: no syslets"))?;
    ensure!(syslet::is_supported(), "is_supported() is false");
    Ok(())
}

fn cached_open_read_close() -> TestResult {
    let content: Vec<u8> = b"hello from a syslet\n".repeat(50);
    let path = scratch_file("orc", &content)?;
    let fds = fd_count()?;
    let mut buf = vec![0u8; 4096];
    let mut c = Chain::new();
    let open = c
        .open(cpath(&path), libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let read = c.read(open, &mut buf[..]).id();
    let close = c.close(open).id();
    let last = c.run().ctx("run")?;
    ensure_eq!(last, close, "final atom");
    let fd = c.result(open).ok_or("open did not run")?.ctx("open")?;
    ensure!(fd >= 0, "open returned {fd}");
    let n = c.result(read).ok_or("read did not run")?.ctx("read")?;
    ensure_eq!(n, content.len() as i64);
    ensure_eq!(c.result(close).ok_or("close did not run")?.ctx("close")?, 0);
    diag!("open -> {fd}, read -> {n}, close -> 0");
    drop(c);
    ensure!(
        buf[..content.len()] == content[..],
        "buffer differs from the file"
    );
    ensure_eq!(fd_count()?, fds, "open descriptors");
    Ok(())
}

fn chain_runs_again() -> TestResult {
    let path = scratch_file("again", b"0123456789")?;
    let mut c = Chain::new();
    let n = c.counter(0);
    let open = c
        .open(cpath(&path), libc::O_RDONLY, 0)
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let read = c.read(open, vec![0u8; 64]).id();
    let close = c.close(open).id();
    let count = c.umem_add(n, 1).id();
    for round in 1..=3u64 {
        ensure_eq!(c.run().ctx("run")?, count, "round {round}");
        ensure_eq!(
            c.read_bytes(read),
            Some(&b"0123456789"[..]),
            "round {round}"
        );
        ensure_eq!(c.raw_result(close), Some(0), "round {round}");
        ensure_eq!(c.counter_value(n), round);
    }
    Ok(())
}

fn ret_ptr_null_allowed() -> TestResult {
    // Safe API: a discarded result is not stored but still tested by the
    // stop flags.
    let mut c = Chain::new();
    let a = c.getpid().discard_result().id();
    let b = c.getpid().id();
    ensure_eq!(c.run().ctx("run")?, b);
    ensure!(c.raw_result(a).is_none(), "discarded result was stored");
    ensure_eq!(c.raw_result(b), Some(i64::from(pid())));

    let mut c = Chain::new();
    let a = c
        .getpid()
        .discard_result()
        .flags(AtomFlags::STOP_ON_NONZERO)
        .id();
    let b = c.getpid().id();
    ensure_eq!(c.run().ctx("run")?, a, "stop on the unstored result");
    ensure!(c.raw_result(b).is_none(), "atom after the stop ran");

    // Raw: every ret_ptr NULL.
    let mut atoms = [atom(libc::SYS_getpid, std::ptr::null_mut(), &[]); 2];
    atoms[0].next = &atoms[1];
    // SAFETY: the atoms are live locals; no pointers besides `next`.
    let got = unsafe { exec(atoms.as_ptr()) };
    expect_final(got, &atoms[1])
}

fn arg_fetch_stops_at_first_null() -> TestResult {
    let bad = unmapped_addr()? as *const u64;
    let kern = KERNEL_ADDR as *const u64;

    // umem_add(&word, <NULL>, <bad>...): the increment is 0 and nothing
    // after the first NULL is read (a bad pointer there is no EFAULT).
    let mut word: u64 = 10;
    let wp: u64 = &mut word as *mut u64 as u64;
    let five: u64 = 5;
    let mut ret = UNTOUCHED;
    let a = atom(
        501,
        &mut ret,
        &[arg(&wp), std::ptr::null(), arg(&five), bad, kern, bad],
    );
    // SAFETY: `word`, `wp`, `five` and `ret` outlive the call; the bad
    // pointers are never valid user memory.
    let got = unsafe { exec(&a) };
    expect_final(got, &a)?;
    ensure_eq!(word, 10, "umem_add with a NULL second argument pointer");
    ensure_eq!(ret, 10);

    // getppid() with all argument pointers bad but the first NULL.
    let mut ret = UNTOUCHED;
    let a = atom(
        libc::SYS_getppid,
        &mut ret,
        &[std::ptr::null(), bad, bad, bad, bad, bad],
    );
    // SAFETY: as above.
    let got = unsafe { exec(&a) };
    expect_final(got, &a)?;
    ensure_eq!(ret, i64::from(std::os::unix::process::parent_id()));

    // write(pipe, buf, <NULL>) writes 0 bytes.
    let (r, w) = pipe()?;
    let fd = fd_arg(&w);
    let data = *b"must not be written";
    let bufp = data.as_ptr() as u64;
    let mut ret = UNTOUCHED;
    let a = atom(
        libc::SYS_write,
        &mut ret,
        &[arg(&fd), arg(&bufp), std::ptr::null(), bad],
    );
    // SAFETY: as above; `data` outlives the call.
    let got = unsafe { exec(&a) };
    expect_final(got, &a)?;
    ensure_eq!(ret, 0, "write with a NULL count pointer");
    drop(w);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut rest).ctx("read pipe")?;
    ensure!(rest.is_empty(), "{} bytes were written", rest.len());
    Ok(())
}

fn fs_atoms() -> TestResult {
    let dir = scratch_dir()?;
    let path = dir.join("fs-atoms");
    let data = pattern(5000);
    let mut back = vec![0u8; 5000];
    let mut c = Chain::new();
    let off = c.counter(0);
    let open = c
        .openat(
            Fd::Cwd,
            cpath(&path),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        )
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let pw = c
        .pwrite(open, &data[..], 0)
        .flags(AtomFlags::STOP_ON_NEGATIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP)
        .id();
    // On a failed pwrite, skip to this close and end.
    let close_err = c.close(open).end().id();
    let fsync = c.fsync(open).id();
    let st = c.fstat(open).id();
    let pr = c.pread(open, &mut back[..], off).id();
    let close = c.close(open).id();
    c.set_next(pw, Some(fsync));

    ensure_eq!(c.run().ctx("run")?, close, "final atom");
    ensure!(c.raw_result(close_err).is_none(), "error branch ran");
    ensure_eq!(
        c.result(pw).ok_or("pwrite did not run")?.ctx("pwrite")?,
        5000
    );
    ensure_eq!(c.raw_result(fsync), Some(0), "fsync");
    let size = c.stat(st).ok_or("fstat failed")?.st_size;
    ensure_eq!(size, 5000, "st_size");
    ensure_eq!(c.raw_result(pr), Some(5000), "pread");
    ensure_eq!(c.raw_result(close), Some(0), "close");
    drop(c);
    ensure!(back == data, "pread data differs");
    ensure!(
        std::fs::read(&path).ctx("read back")? == data,
        "file differs"
    );
    Ok(())
}

fn generic_syscall_atom() -> TestResult {
    let mut c = Chain::new();
    // SAFETY: getppid and getuid take no arguments and touch no memory.
    let ppid = unsafe { c.syscall(libc::SYS_getppid as u64, &[]) }.id();
    // SAFETY: as above.
    let uid = unsafe { c.syscall(libc::SYS_getuid as u64, &[]) }.id();
    c.run().ctx("run")?;
    ensure_eq!(
        c.raw_result(ppid),
        Some(i64::from(std::os::unix::process::parent_id()))
    );
    // SAFETY: no preconditions.
    ensure_eq!(
        c.raw_result(uid),
        Some(i64::from(unsafe { libc::getuid() }))
    );
    Ok(())
}

fn atoms_in_read_only_memory() -> TestResult {
    // The kernel only reads atoms: a chain in a read-only page must run, and
    // `private` must come back untouched.
    let m = Mapping::new(page_size(), libc::PROT_READ | libc::PROT_WRITE)?;
    let atoms = m.addr.cast::<Atom>();
    let mut word: u64 = 1;
    let wp: u64 = &mut word as *mut u64 as u64;
    let inc: u64 = 41;
    let mut rets = [UNTOUCHED; 2];
    let mut a0 = atom(libc::SYS_getpid, &mut rets[0], &[]);
    let mut a1 = atom(501, &mut rets[1], &[arg(&wp), arg(&inc)]);
    a0.next = atoms.wrapping_add(1);
    a0.private = 0x1234_5678usize as *mut libc::c_void;
    a1.private = usize::MAX as *mut libc::c_void;
    // SAFETY: the page is ours, writable now and large enough for 2 atoms.
    unsafe {
        atoms.write(a0);
        atoms.add(1).write(a1);
    }
    m.protect(libc::PROT_READ)?;
    // SAFETY: the atoms and everything they point at outlive the call.
    let got = unsafe { exec(atoms) };
    expect_final(got, atoms.wrapping_add(1))?;
    ensure_eq!(rets[0], i64::from(pid()));
    ensure_eq!(rets[1], 42);
    ensure_eq!(word, 42);
    // SAFETY: reading our own (read-only) page.
    let (p0, p1) = unsafe { ((*atoms).private as usize, (*atoms.add(1)).private as usize) };
    ensure_eq!((p0, p1), (0x1234_5678, usize::MAX), "private fields");
    Ok(())
}

fn sync_nocomplete_async_accepted() -> TestResult {
    let cases = [
        AtomFlags::SYNC,
        AtomFlags::NO_COMPLETE,
        AtomFlags::SYNC | AtomFlags::NO_COMPLETE,
        AtomFlags::ASYNC | AtomFlags::SYNC,
        AtomFlags::ASYNC | AtomFlags::SYNC | AtomFlags::NO_COMPLETE,
    ];
    for flags in cases {
        let mut word: u64 = 0;
        let wp: u64 = &mut word as *mut u64 as u64;
        let one: u64 = 1;
        let mut rets = [UNTOUCHED; 2];
        let mut atoms = [
            atom(libc::SYS_getpid, &mut rets[0], &[]),
            atom(501, &mut rets[1], &[arg(&wp), arg(&one)]),
        ];
        atoms[0].flags = flags.bits();
        atoms[1].flags = flags.bits();
        atoms[0].next = &atoms[1];
        let mut slots = [std::ptr::null_mut::<Atom>(); 4];
        let mut head = AsyncHead {
            completion_ring: slots.as_mut_ptr(),
            ring_size_bytes: 32,
            ..AsyncHead::default()
        };
        // SAFETY: everything is a live local for the whole call.
        let got = unsafe { exec_with(atoms.as_ptr(), &mut head) };
        expect_final(got, &atoms[1]).map_err(|e| format!("flags {flags:?}: {e}"))?;
        ensure_eq!(rets, [i64::from(pid()), 1], "flags {flags:?}");
        ensure_eq!(word, 1, "flags {flags:?}");
        ensure!(
            slots.iter().all(|s| s.is_null()),
            "flags {flags:?}: ring slot written"
        );
        ensure_eq!(head.kernel_ring_idx, 0, "flags {flags:?}");
    }
    Ok(())
}

fn ring_untouched() -> TestResult {
    let mut ret = UNTOUCHED;
    let a = atom(libc::SYS_getpid, &mut ret, &[]);
    let mut slots = [std::ptr::null_mut::<Atom>(); 8];
    let mut head = AsyncHead {
        kernel_ring_idx: 3,
        user_ring_idx: 5,
        completion_ring: slots.as_mut_ptr(),
        ring_size_bytes: 64,
        ..AsyncHead::default()
    };
    // SAFETY: all live locals.
    let got = unsafe { exec_with(&a, &mut head) };
    expect_final(got, &a)?;
    ensure!(
        slots.iter().all(|s| s.is_null()),
        "a cached syslet was posted"
    );
    ensure_eq!((head.kernel_ring_idx, head.user_ring_idx), (3, 5));
    ensure_eq!(head.completion_ring, slots.as_mut_ptr());
    ensure_eq!(head.ring_size_bytes, 64);
    ensure_eq!(
        (
            head.head_stack,
            head.head_eip,
            head.new_thread_stack,
            head.new_thread_eip
        ),
        (0, 0, 0, 0)
    );
    Ok(())
}

fn long_chain() -> TestResult {
    const N: usize = 10_000;
    let mut c = Chain::new();
    let k = c.counter(0);
    let ids: Vec<_> = (0..N).map(|_| c.umem_add(k, 1).id()).collect();
    let start = Instant::now();
    let last = c.run().ctx("run")?;
    let took = start.elapsed();
    ensure_eq!(last, ids[N - 1], "final atom");
    ensure_eq!(c.counter_value(k), N as u64);
    for (i, id) in ids.iter().enumerate() {
        ensure_eq!(c.raw_result(*id), Some(i as i64 + 1), "atom {i}");
    }
    diag!("{N} atoms in one async_exec: {took:?}");
    Ok(())
}

fn no_fd_leak() -> TestResult {
    let path = scratch_file("leak", &pattern(1000))?;
    let before = fd_count()?;
    for i in 0..200 {
        let mut c = Chain::new();
        let open = c
            .open(cpath(&path), libc::O_RDONLY, 0)
            .flags(AtomFlags::STOP_ON_NEGATIVE)
            .id();
        let read = c.read(open, vec![0u8; 512]).id();
        c.fstat(open);
        c.close(open);
        c.run().ctx("run")?;
        ensure_eq!(c.raw_result(read), Some(512), "round {i}");
    }
    ensure_eq!(fd_count()?, before, "open descriptors after 200 chains");
    Ok(())
}
