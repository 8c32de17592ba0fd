//! umem_add: the system call itself, and the loops it drives inside syslets.

use syslet::{Atom, AtomFlags, Chain};

use crate::harness::*;
use crate::{diag, ensure, ensure_eq};

pub static TESTS: &[Test] = &[
    Test {
        name: "umem_add_returns_new_value",
        run: umem_add_direct,
    },
    Test {
        name: "umem_add_efault",
        run: umem_add_efault,
    },
    Test {
        name: "umem_add_countdown_loop",
        run: countdown_loop,
    },
    Test {
        name: "umem_add_loop_reads_file_in_4k_steps",
        run: read_loop_safe,
    },
    Test {
        name: "umem_add_loop_advances_buffer_pointer",
        run: read_loop_raw,
    },
];

/// The size of the file the read loops walk: 40 KiB + 123 bytes.
const FILE_LEN: usize = 40 * 1024 + 123;

fn umem_add_direct() -> TestResult {
    let mut w: libc::c_ulong = 40;
    // SAFETY: `w` is a live local.
    let r = unsafe { syslet::umem_add(&mut w, 2) }.ctx("umem_add")?;
    ensure_eq!((r, w), (42, 42));
    // SAFETY: as above.
    let r = unsafe { syslet::umem_add(&mut w, 0) }.ctx("umem_add +0")?;
    ensure_eq!((r, w), (42, 42));
    // Wrapping: 42 + (2^64 - 42) = 0.
    // SAFETY: as above.
    let r = unsafe { syslet::umem_add(&mut w, 42u64.wrapping_neg()) }.ctx("umem_add wrap")?;
    ensure_eq!((r, w), (0, 0));
    // A large "negative" new value outside the errno range is a value.
    // SAFETY: as above.
    let r = unsafe { syslet::umem_add(&mut w, (-100_000i64) as u64) }.ctx("umem_add")?;
    ensure_eq!((r as i64, w as i64), (-100_000, -100_000));

    // As an atom, the result is the new value, stored in ret_ptr.
    let mut word: u64 = 7;
    let wp = &mut word as *mut u64 as u64;
    let inc: u64 = 3;
    let mut ret = UNTOUCHED;
    let a = atom(501, &mut ret, &[arg(&wp), arg(&inc)]);
    // SAFETY: all live locals.
    let got = unsafe { exec(&a) };
    expect_final(got, &a)?;
    ensure_eq!((ret, word), (10, 10));
    Ok(())
}

fn umem_add_efault() -> TestResult {
    let ro = Mapping::new(page_size(), libc::PROT_READ)?;
    let cases: [(&str, usize); 5] = [
        ("NULL", 0),
        ("unmapped", unmapped_addr()?),
        ("read-only page", ro.addr as usize),
        ("kernel address", KERNEL_ADDR),
        ("non-canonical", NON_CANONICAL),
    ];
    for (what, addr) in cases {
        // SAFETY: none of these is writable user memory: the kernel refuses.
        let r = unsafe { syslet::umem_add(addr as *mut libc::c_ulong, 1) };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {}
            other => return Err(format!("umem_add({what}): {other:?}, expected EFAULT")),
        }
        // In an atom, -EFAULT is the atom's result; the syslet goes on.
        let p = addr as u64;
        let one: u64 = 1;
        let mut rets = [UNTOUCHED; 2];
        let mut atoms = [
            atom(501, &mut rets[0], &[arg(&p), arg(&one)]),
            atom(libc::SYS_getpid, &mut rets[1], &[]),
        ];
        atoms[0].next = &atoms[1];
        // SAFETY: live locals; `p` is refused by the kernel.
        let got = unsafe { exec(atoms.as_ptr()) };
        expect_final(got, &atoms[1]).map_err(|e| format!("{what}: {e}"))?;
        ensure_eq!(
            rets,
            [neg(libc::EFAULT), i64::from(pid())],
            "atom umem_add({what})"
        );
    }
    Ok(())
}

fn countdown_loop() -> TestResult {
    //  0 umem_add(&left, -1)   STOP_ON_ZERO
    //  1 umem_add(&iters, 1)   -> 0
    let mut c = Chain::new();
    let left = c.counter(1000);
    let iters = c.counter(0);
    let dec = c.umem_add(left, -1).flags(AtomFlags::STOP_ON_ZERO).id();
    c.umem_add(iters, 1).then(dec);
    ensure_eq!(c.run().ctx("run")?, dec, "final atom");
    ensure_eq!((c.counter_value(left), c.counter_value(iters)), (0, 999));
    // Again, with the counters reset from user space.
    c.set_counter(left, 3);
    c.set_counter(iters, 0);
    ensure_eq!(c.run().ctx("run")?, dec);
    ensure_eq!(c.counter_value(iters), 2);
    Ok(())
}

fn read_loop_safe() -> TestResult {
    let data = pattern(FILE_LEN);
    let path = scratch_file("loop40k", &data)?;
    //  0 open                       STOP_ON_NEGATIVE
    //  1 read(fd, buf, 4096)        STOP_ON_NON_POSITIVE | SKIP -> 2; else -> 3
    //  2 close(fd)                  end
    //  3 umem_add(&total, <1>)      -> 4
    //  4 umem_add(&steps, 1)        -> 1
    let mut c = Chain::new();
    let steps = c.counter(0);
    let total = c.counter(0);
    let open = c
        .open(cpath(&path), libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let read = c
        .read(open, vec![0u8; 4096])
        .flags(AtomFlags::STOP_ON_NON_POSITIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP)
        .id();
    let close = c.close(open).end().id();
    let add = c.umem_add(total, read).id();
    c.umem_add(steps, 1).then(read);
    c.set_next(read, Some(add));

    let last = c.run().ctx("run")?;
    ensure_eq!(last, close, "final atom");
    ensure_eq!(c.raw_result(read), Some(0), "last read (EOF)");
    ensure_eq!(c.raw_result(close), Some(0), "close");
    ensure_eq!(c.counter_value(steps), 11, "non-empty reads");
    ensure_eq!(c.counter_value(total), FILE_LEN as u64, "bytes");
    // The buffer holds the last non-empty read: the final 123 bytes.
    let buf = c.buffer(read).ok_or("no buffer")?;
    ensure!(buf[..123] == data[40 * 1024..], "last chunk differs");
    diag!("11 reads, {FILE_LEN} bytes, one async_exec");
    Ok(())
}

fn read_loop_raw() -> TestResult {
    // The classic v3 idiom: read into `buf_ptr`, then advance `buf_ptr` by
    // the bytes read with umem_add, so the whole file lands in one buffer.
    let data = pattern(FILE_LEN);
    let path = scratch_file("loop40k-raw", &data)?;
    let cp = cpath(&path);
    let mut buf = vec![0u8; FILE_LEN + 4096];
    let base = buf.as_mut_ptr() as u64;

    let path_ptr = cp.as_ptr() as u64;
    let flags = libc::O_RDONLY as u64;
    let mut buf_ptr: u64 = base;
    let chunk: u64 = 4096;
    let one: u64 = 1;
    let mut steps: u64 = 0;
    let bpp: *mut u64 = &mut buf_ptr;
    let bp = bpp as u64;
    let sp = &mut steps as *mut u64 as u64;
    let mut fd: i64 = UNTOUCHED;
    let mut nread: i64 = UNTOUCHED;
    let mut r = [UNTOUCHED; 3];

    let mut atoms = [Atom::EMPTY; 5];
    atoms[0] = atom(libc::SYS_open, &mut fd, &[arg(&path_ptr), arg(&flags)]);
    atoms[1] = atom(
        libc::SYS_read,
        &mut nread,
        &[arg_from_ret(&fd), bpp.cast_const(), arg(&chunk)],
    );
    atoms[2] = atom(libc::SYS_close, &mut r[0], &[arg_from_ret(&fd)]);
    atoms[3] = atom(501, &mut r[1], &[arg(&bp), arg_from_ret(&nread)]);
    atoms[4] = atom(501, &mut r[2], &[arg(&sp), arg(&one)]);
    let p = atoms.as_ptr();
    atoms[0].flags = AtomFlags::STOP_ON_NEGATIVE.bits();
    atoms[0].next = p.wrapping_add(1);
    atoms[1].flags = (AtomFlags::STOP_ON_NON_POSITIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP).bits();
    atoms[1].next = p.wrapping_add(3);
    atoms[3].next = p.wrapping_add(4);
    atoms[4].next = p.wrapping_add(1);
    // The read atom's buffer argument is the cell umem_add advances.
    ensure_eq!(atoms[1].arg_ptr[1] as u64, bp);

    // SAFETY: every cell and the path outlive the call; the buffer has room
    // for the whole file plus one more 4 KiB read at its end.
    let got = unsafe { exec(atoms.as_ptr()) };
    expect_final(got, p.wrapping_add(2))?;
    ensure!(fd >= 0, "open: {}", show(fd));
    ensure_eq!(nread, 0, "last read");
    ensure_eq!(r[0], 0, "close");
    ensure_eq!(steps, 11);
    ensure_eq!(
        buf_ptr - base,
        FILE_LEN as u64,
        "buffer pointer advanced by"
    );
    ensure!(buf[..FILE_LEN] == data[..], "buffer differs from the file");
    ensure!(
        buf[FILE_LEN..].iter().all(|&b| b == 0),
        "wrote past the data"
    );
    Ok(())
}
