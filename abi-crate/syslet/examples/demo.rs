//! The `make run` demo: two syslets, each one `async_exec` call.
//!
//! 1. `open -> read -> close` of a file (argument, default /proc/version),
//!    printing every atom's result and the bytes read.
//! 2. A loop reading a second file (default: this program's own binary) in
//!    4 KiB steps: `read` stops the loop at
//!    end of file and branches (`SKIP_TO_NEXT_ON_STOP`) to `close`; two
//!    `umem_add` atoms count the steps and sum the bytes, and the last one
//!    jumps back to `read`.
//!
//! Exits non-zero if the kernel has no syslets or anything goes wrong.
//!
//! ```text
//! cargo run --example demo -- [FILE [LOOP_FILE]]
//! ```

use std::ffi::CString;
use std::io;
use std::process::ExitCode;

use syslet::{AtomFlags, AtomId, Chain};

fn main() -> ExitCode {
    // demo [FILE [LOOP_FILE]]: FILE for the open -> read -> close chain,
    // LOOP_FILE (default: this program's own binary, many 4 KiB blocks) for
    // the loop.
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/proc/version".to_owned());
    let loop_path = args.next().unwrap_or_else(|| "/proc/self/exe".to_owned());
    if let Err(e) = syslet::check_supported() {
        eprintln!("demo: this kernel has no syslets: async_exec probe: {e}");
        return ExitCode::FAILURE;
    }
    match open_read_close(&path).and_then(|()| read_loop(&loop_path)) {
        Ok(()) => {
            println!("demo: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn c_path(path: &str) -> io::Result<CString> {
    CString::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn fail(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Print one atom's result; return it, or an error naming the atom.
fn show(chain: &Chain<'_>, id: AtomId, what: &str) -> io::Result<i64> {
    match chain.result(id) {
        Some(Ok(v)) => {
            println!("  atom {} {what:<28} -> {v}", id.index());
            Ok(v)
        }
        Some(Err(e)) => {
            println!("  atom {} {what:<28} -> {e}", id.index());
            Err(fail(format!("{what}: {e}")))
        }
        None => {
            println!("  atom {} {what:<28} -> (did not run)", id.index());
            Err(fail(format!("{what}: did not run")))
        }
    }
}

fn open_read_close(path: &str) -> io::Result<()> {
    println!("syslet 1: open -> read -> close of {path}, one async_exec");
    let mut chain = Chain::new();
    let open = chain
        .open(c_path(path)?, libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let read = chain.read(open, vec![0u8; 4096]).id();
    let close = chain.close(open).id();

    let last = chain.run()?;
    println!("  async_exec returned atom {} (final atom)", last.index());
    let fd = show(&chain, open, &format!("open({path:?})"))?;
    let n = show(&chain, read, &format!("read({fd}, buf, 4096)"))?;
    show(&chain, close, &format!("close({fd})"))?;
    if last != close {
        return Err(fail(format!(
            "final atom is {}, expected close ({})",
            last.index(),
            close.index()
        )));
    }
    let bytes = chain.read_bytes(read).unwrap_or_default();
    println!("  {n} bytes read:");
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            for line in text.lines().take(40) {
                println!("  | {line}");
            }
        }
        Err(_) => println!(
            "  | (binary) {}",
            bytes[..bytes.len().min(32)].escape_ascii()
        ),
    }
    Ok(())
}

fn read_loop(path: &str) -> io::Result<()> {
    println!("syslet 2: read {path} in 4 KiB steps, a umem_add loop, one async_exec");
    let mut chain = Chain::new();
    let steps = chain.counter(0);
    let total = chain.counter(0);
    //  0 open                      stop if < 0
    //  1 read(fd, buf, 4096)       stop if <= 0, then skip to 2; else -> 3
    //  2 close(fd)                 end
    //  3 umem_add(&total, <1>)     -> 4
    //  4 umem_add(&steps, 1)       -> 1
    let open = chain
        .open(c_path(path)?, libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .flags(AtomFlags::STOP_ON_NEGATIVE)
        .id();
    let read = chain
        .read(open, vec![0u8; 4096])
        .flags(AtomFlags::STOP_ON_NON_POSITIVE | AtomFlags::SKIP_TO_NEXT_ON_STOP)
        .id();
    let close = chain.close(open).end().id();
    let add_total = chain.umem_add(total, read).id();
    chain.umem_add(steps, 1).then(read);
    chain.set_next(read, Some(add_total));

    let last = chain.run()?;
    println!("  async_exec returned atom {} (final atom)", last.index());
    let fd = show(&chain, open, &format!("open({path:?})"))?;
    let eof = show(&chain, read, &format!("last read({fd}, buf, 4096)"))?;
    show(&chain, close, &format!("close({fd})"))?;
    let (steps, total) = (chain.counter_value(steps), chain.counter_value(total));
    println!("  {steps} non-empty reads, {total} bytes in total");
    if last != close || eof != 0 {
        return Err(fail(format!(
            "loop ended at atom {} with read -> {eof}, expected close after EOF",
            last.index()
        )));
    }
    // Cross-check regular files against their size (files in /proc report
    // size 0 and are not checked).
    let meta = std::fs::metadata(path)?;
    if meta.is_file() && meta.len() > 0 {
        let len = meta.len();
        if total != len || steps != len.div_ceil(4096) {
            return Err(fail(format!(
                "file has {len} bytes: expected {len} bytes in {} steps",
                len.div_ceil(4096)
            )));
        }
    }
    Ok(())
}
