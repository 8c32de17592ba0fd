//! `--diag`: where the time of an uncached syslet or threadlet goes.  Per
//! read at depth 1: the time until `submit` / `run` returns, whether it
//! went asynchronous, the time until it is reaped, and the process's
//! thread count and context switches around the loop.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use syslet::{AsyncRing, Chain, Outcome, Submitted, Threadlets};

use crate::target::{check, pread, Block, Target};

fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [u64]) -> String {
    if v.is_empty() {
        return "n=0".into();
    }
    v.sort_unstable();
    let n = v.len();
    format!(
        "n={n} p10 {} p50 {} p90 {} max {} us",
        v[n / 10] / 1000,
        v[n / 2] / 1000,
        v[n * 9 / 10] / 1000,
        v[n - 1] / 1000
    )
}

fn report(name: &str, submit_done: Vec<u64>, submit_pend: Vec<u64>, total: Vec<u64>) {
    let (mut a, mut b, mut c) = (submit_done, submit_pend, total);
    println!("diag {name}: submit->Done      {}", pct(&mut a));
    println!("diag {name}: submit->Pending   {}", pct(&mut b));
    println!("diag {name}: whole read        {}", pct(&mut c));
}

/// Run the probes on `t` with `n` reads each.
pub fn run(t: &Target, n: usize) -> io::Result<()> {
    let offs = t.offsets(n, 99);
    let th0 = (status("Threads:"), status("voluntary_ctxt_switches:"));
    // sync
    let mut buf = Block::boxed();
    let mut tot = Vec::new();
    for &off in &offs {
        let t0 = Instant::now();
        check(pread(t.raw(), &mut buf, off), &buf.0, off)?;
        tot.push(t0.elapsed().as_nanos() as u64);
    }
    report("sync", Vec::new(), Vec::new(), tot);

    // syslets, one atom, depth 1
    let mut ring = AsyncRing::new(1)?;
    let mut c: Chain<'static> = Chain::new();
    let fd = c.hold_fd(Arc::clone(&t.fd));
    let ctr = c.counter(0);
    let b: &'static mut Block = Box::leak(Block::boxed());
    let id = c.pread(fd, &mut b.0, ctr).id();
    let mut chain = Some(c);
    let (mut sd, mut sp, mut tot) = (Vec::new(), Vec::new(), Vec::new());
    let th1 = (status("Threads:"), status("voluntary_ctxt_switches:"));
    for &off in &offs {
        let mut c = chain.take().expect("one chain");
        c.set_counter(ctr, off);
        let t0 = Instant::now();
        let comp = match ring.submit(c)? {
            Submitted::Done(comp) => {
                sd.push(t0.elapsed().as_nanos() as u64);
                comp
            }
            Submitted::Pending(_) => {
                sp.push(t0.elapsed().as_nanos() as u64);
                ring.reap()?
            }
        };
        tot.push(t0.elapsed().as_nanos() as u64);
        let r = comp.result(id).and_then(Result::ok).unwrap_or(-1);
        check(r, comp.chain().buffer(id).unwrap_or(&[]), off)?;
        chain = Some(comp.into_chain());
    }
    let th2 = (status("Threads:"), status("voluntary_ctxt_switches:"));
    report("syslet", sd, sp, tot);
    println!(
        "diag syslet: threads {} -> {}, voluntary switches of the main thread's process +{}",
        th1.0,
        th2.0,
        th2.1 - th1.1
    );

    // threadlets, depth 1
    let rt = Threadlets::builder().spares(1).build()?;
    let (mut sd, mut sp, mut tot) = (Vec::new(), Vec::new(), Vec::new());
    let mut buf = Some(Block::boxed());
    let fd = t.raw();
    for &off in &offs {
        let mut b = buf.take().expect("one buffer");
        let t0 = Instant::now();
        // SAFETY: a pread and moves of its own data: no TLS, no lock.
        let out = unsafe {
            rt.run(move || {
                let r = pread(fd, &mut b, off);
                (r, b)
            })?
        };
        let (r, b) = match out {
            Outcome::Done(r) => {
                sd.push(t0.elapsed().as_nanos() as u64);
                r
            }
            Outcome::Pending(h) => {
                sp.push(t0.elapsed().as_nanos() as u64);
                h.join()
            }
        }
        .map_err(|_| io::Error::other("threadlet panicked"))?;
        tot.push(t0.elapsed().as_nanos() as u64);
        check(r, &b.0, off)?;
        buf = Some(b);
    }
    report("threadlet", sd, sp, tot);
    let th3 = (status("Threads:"), status("voluntary_ctxt_switches:"));
    println!(
        "diag: threads at start {} , after syslets {}, after threadlets {}",
        th0.0, th2.0, th3.0
    );
    Ok(())
}
