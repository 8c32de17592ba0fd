//! The process-level races issue 13 lists beside signals, fork and exec:
//! vfork, namespaces (unshare and setns), ptrace (seize, syscall tracing,
//! interrupt, detach), a cgroup pids limit, and memory pressure up to the
//! OOM killer.  Each runs in (or on) a forked child of a worker's racer
//! while the child's own threads submit syslets.

use std::ffi::CString;

use crate::fixtures::Fixtures;
use crate::rng::Rng;
use crate::shared::{Slot, C};
use crate::sys;

/// Where the supervisor mounts cgroup2 (with the pids controller on).
const CGROUP: &str = "/sys/fs/cgroup";

/// Mount cgroup2 and turn on the pids controller for its children, once,
/// in the supervisor.  Without it [`pids_child`] only fuzzes.
pub fn cgroup_setup() -> bool {
    let ctl = format!("{CGROUP}/cgroup.subtree_control");
    if std::path::Path::new(&ctl).exists() {
        return std::fs::write(&ctl, "+pids").is_ok();
    }
    // SAFETY: NUL-terminated strings; mounts over sysfs's empty directory.
    let r = unsafe {
        libc::mount(
            c"cgroup2".as_ptr(),
            c"/sys/fs/cgroup".as_ptr(),
            c"cgroup2".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    r == 0 && std::fs::write(&ctl, "+pids").is_ok()
}

/// The cgroup a pids child of process `pid` moves into.
pub fn pids_cgroup(pid: i32) -> String {
    format!("{CGROUP}/fuzz-{pid}")
}

/// Spawn `f` on a thread that may fail to start (pids limits, RLIMIT_NPROC).
fn try_thread(f: impl FnOnce() + Send + 'static) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .ok()
}

/// A child whose main thread vforks (glibc's posix_spawn: clone with
/// CLONE_VM | CLONE_VFORK) a short fuzz program while its other thread has
/// syslets in flight, a few times.
pub fn vfork_child(seed: u64, slot: &'static Slot, fx: &'static Fixtures) {
    let mut rng = Rng::new(seed);
    let t = try_thread(move || super::worker::child_fuzz(seed ^ 5, slot, fx, false, 300));
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    for _ in 0..rng.range(1, 4) {
        let args: Vec<CString> = ["syslet-fuzz", "--exec-child", &rng.next().to_string()]
            .iter()
            .map(|s| CString::new(*s).expect("no NUL"))
            .collect();
        let argv = [
            args[0].as_ptr(),
            args[1].as_ptr(),
            args[2].as_ptr(),
            std::ptr::null(),
        ];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let mut pid: libc::pid_t = 0;
        // SAFETY: NUL-terminated strings and arrays that outlive the call;
        // posix_spawn's child only execs or exits.
        let r = unsafe {
            libc::posix_spawn(
                &mut pid,
                exe.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr() as *const *mut libc::c_char,
                envp.as_ptr() as *const *mut libc::c_char,
            )
        };
        if r != 0 {
            continue;
        }
        slot.add(C::Vforks, 1);
        super::worker::child_fuzz(rng.next(), slot, fx, false, 20);
        let mut st = 0;
        // SAFETY: our own child; a bounded wait (it fuzzes 100 operations).
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
    if let Some(t) = t {
        let _ = t.join();
    }
}

/// A child that moves between namespaces while its other thread has
/// syslets in flight: unshare of UTS, IPC, net, cgroup and mount
/// namespaces, setns back to the saved ones and into its parent's by
/// pidfd, and now and then a user namespace first (which drops every
/// capability in the old ones).
pub fn ns_child(seed: u64, slot: &'static Slot, fx: &'static Fixtures) {
    let mut rng = Rng::new(seed);
    if rng.chance(250) {
        // SAFETY: single-threaded here (a user namespace needs one
        // thread); only this process is affected.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
            slot.add(C::Setns, 1);
        }
    }
    let saved: Vec<(i32, i32)> = [
        ("uts", libc::CLONE_NEWUTS),
        ("ipc", libc::CLONE_NEWIPC),
        ("net", libc::CLONE_NEWNET),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("mnt", libc::CLONE_NEWNS),
    ]
    .iter()
    .filter_map(|(name, ty)| {
        let p = CString::new(format!("/proc/self/ns/{name}")).expect("no NUL");
        // SAFETY: a NUL-terminated path; closed below.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        (fd >= 0).then_some((fd, *ty))
    })
    .collect();
    let t = try_thread(move || super::worker::child_fuzz(seed ^ 6, slot, fx, false, 300));
    for _ in 0..rng.range(2, 6) {
        let mut flags = 0;
        for &(_, ty) in &saved {
            // A new network namespace is costly to tear down: rarer.
            if rng.chance(if ty == libc::CLONE_NEWNET { 150 } else { 400 }) {
                flags |= ty;
            }
        }
        // SAFETY: unshare of this thread's namespaces (a new mount
        // namespace comes with an fs struct of its own; setns into one
        // fails while threads share the fs struct).
        if unsafe { libc::unshare(flags) } == 0 {
            slot.add(C::Setns, 1);
        }
        if rng.chance(300) {
            // SAFETY: a valid name and length.
            unsafe { libc::sethostname(c"fuzz".as_ptr(), 4) };
        }
        super::worker::child_fuzz(rng.next(), slot, fx, false, 20);
        for &(fd, ty) in &saved {
            // SAFETY: setns to a namespace descriptor this process holds.
            if rng.chance(500) && unsafe { libc::setns(fd, ty) } == 0 {
                slot.add(C::Setns, 1);
            }
        }
        if rng.chance(300) {
            // SAFETY: a pidfd of the parent worker, closed below.
            let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getppid(), 0) } as i32;
            if pfd >= 0 {
                // SAFETY: setns by pidfd into the parent's namespaces.
                if unsafe { libc::setns(pfd, libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) } == 0 {
                    slot.add(C::Setns, 1);
                }
                // SAFETY: our descriptor.
                unsafe { libc::close(pfd) };
            }
        }
    }
    if let Some(t) = t {
        let _ = t.join();
    }
    for (fd, _) in saved {
        // SAFETY: our descriptors.
        unsafe { libc::close(fd) };
    }
}

/// A child in a cgroup of its own whose pids.max (1 to 6) stops threads
/// and the kernel's spares from being made.  The racer removes the group
/// after the child is reaped.
pub fn pids_child(seed: u64, slot: &'static Slot, fx: &'static Fixtures) {
    let mut rng = Rng::new(seed);
    let dir = pids_cgroup(sys::getpid());
    // A group left by a worker killed before it removed it is empty (its
    // process is gone): use it.
    let made = match std::fs::create_dir(&dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
    };
    let ok = made
        && std::fs::write(format!("{dir}/pids.max"), rng.range(1, 6).to_string()).is_ok()
        && std::fs::write(format!("{dir}/cgroup.procs"), "0").is_ok();
    if ok {
        slot.add(C::Cgroups, 1);
    }
    let ts: Vec<_> = (0..rng.range(1, 4))
        .filter_map(|i| {
            try_thread(move || super::worker::child_fuzz(seed ^ (7 + i), slot, fx, false, 200))
        })
        .collect();
    super::worker::child_fuzz(seed, slot, fx, false, 200);
    if ok && rng.chance(300) {
        // Lift the limit while the threads run.
        let _ = std::fs::write(format!("{dir}/pids.max"), "max");
        super::worker::child_fuzz(seed ^ 0x1d, slot, fx, false, 100);
    }
    for t in ts {
        let _ = t.join();
    }
}

/// A child that fuzzes while its other thread allocates and touches
/// memory until the OOM killer takes the process (oom_score_adj 1000
/// makes it the victim).
pub fn hog_child(seed: u64, slot: &'static Slot, fx: &'static Fixtures) {
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    let _t = try_thread(move || super::worker::child_fuzz(seed ^ 8, slot, fx, false, 100_000));
    const CHUNK: usize = 8 << 20;
    loop {
        match sys::map(0, CHUNK, libc::PROT_READ | libc::PROT_WRITE) {
            Some(p) => {
                for off in (0..CHUNK).step_by(4096) {
                    // SAFETY: inside the mapping just made.
                    unsafe { ((p + off) as *mut u8).write_volatile(1) };
                }
            }
            None => sys::sleep_us(1000),
        }
    }
}

/// How long a killed process may take to die before it counts as a slow
/// death (and fails the seed, as a hang does).
/// (Generous: a guest under TCG with KASAN runs many times slower; the
/// hung task detector and the watchdog catch what never dies.)
pub const SLOW_DEATH_NS: u64 = 20_000_000_000;

/// Print every task of process `pid`: its state and where it sleeps
/// (with [`sys::say`]: a worker's stdout is /dev/null).
pub fn print_tasks(pid: i32, what: &str) {
    sys::say(&format!("fuzz: {what}: process {pid}"));
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for e in rd.flatten() {
        let dir = e.path();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let stat = read("stat");
        // The state follows the comm's closing parenthesis.
        let state = stat.rsplit_once(") ").map_or("?", |(_, r)| &r[..1]);
        sys::say(&format!(
            "fuzz:   task {} {state} wchan={} syscall={}",
            e.file_name().to_string_lossy(),
            read("wchan").trim(),
            read("syscall").trim()
        ));
    }
}

/// ptrace(2) with the address argument unused and `data` passed
/// pointer-sized, as the system call reads its variadic arguments.
///
/// # Safety
///
/// `data` must be what `req` takes: a value, or for a request that
/// writes (PTRACE_GETREGS, PTRACE_GETSIGINFO) the address of a buffer of
/// its type.
unsafe fn ptrace(req: libc::c_uint, tid: i32, data: usize) -> libc::c_long {
    libc::ptrace(req, tid, std::ptr::null_mut::<libc::c_void>(), data)
}

/// After a traced slow death: for each task of `child`, its tracer, what
/// this racer knew of its TID, and what waitpid() and PTRACE_CONT say now.
fn traced_diagnose(child: i32, traced: &[i32], foreign: &[i32]) {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{child}/task")) else {
        return;
    };
    for tid in rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let status =
            std::fs::read_to_string(format!("/proc/{child}/task/{tid}/status")).unwrap_or_default();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map_or("?", str::trim)
            .to_owned();
        let mut st = 0;
        // SAFETY: a wait without blocking; our child's threads only.
        let w = unsafe { libc::waitpid(tid, &mut st, libc::WNOHANG | libc::__WALL) };
        let werr = std::io::Error::last_os_error();
        // SAFETY: resume it, if it is our stopped tracee.
        let c = unsafe { ptrace(libc::PTRACE_CONT, tid, 0) };
        let cerr = std::io::Error::last_os_error();
        sys::say(&format!(
            "fuzz:   TID {tid}: tracer {tracer} (this racer {}), traced={} foreign={}, waitpid={w} status={st:#x} ({werr}), PTRACE_CONT={c} ({cerr})",
            sys::gettid(),
            traced.contains(&tid),
            foreign.contains(&tid)
        ));
    }
}

/// Fork a fuzzing child (two threads) and trace it: PTRACE_SEIZE of its
/// threads as they appear (some with PTRACE_O_TRACECLONE, so the kernel
/// attaches the new ones), syscall tracing, PTRACE_INTERRUPT, register
/// and siginfo reads, signal injection and detach, until it exits or is
/// killed after 4 s.
pub fn traced_race(rng: &mut Rng, slot: &'static Slot, fx: &'static Fixtures) {
    let seed = rng.next();
    // SAFETY: as in the worker's child_race: the child runs this thread
    // only and leaves with _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return;
    }
    if child == 0 {
        super::worker::forget_parent_tids();
        let t = try_thread(move || super::worker::child_fuzz(seed ^ 9, slot, fx, false, 300));
        super::worker::child_fuzz(seed, slot, fx, false, 300);
        if let Some(t) = t {
            let _ = t.join();
        }
        // SAFETY: leave the child without the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    slot.add(C::Children, 1);
    let opts = rng.pick(&[
        0,
        libc::PTRACE_O_TRACESYSGOOD,
        libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACECLONE,
        libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEEXIT,
    ]);
    let start = sys::now_ns();
    let mut traced: Vec<i32> = Vec::new();
    let mut foreign: Vec<i32> = Vec::new();
    let (mut killed_at, mut slow) = (0, false);
    loop {
        let now = sys::now_ns();
        if killed_at == 0 && now > start + 4_000_000_000 {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            slot.add(C::Kills, 1);
            killed_at = now;
        }
        if killed_at != 0 && now > killed_at + 2 * SLOW_DEATH_NS {
            // Counted below as a traced slow death; the tracees stay
            // attached to this thread, and the process to its SIGKILL.
            break;
        }
        // After the kill, every thread: one that the kernel attached
        // (PTRACE_O_TRACECLONE) and that nobody waits for stops at
        // PTRACE_EVENT_EXIT (PTRACE_O_TRACEEXIT) and holds up the death of
        // the process until its tracer resumes it.
        let dying = killed_at != 0;
        if dying {
            // TIDs move between tasks at each handoff: a TID that named
            // no tracee of ours before may name one now.
            foreign.clear();
        }
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{child}/task")) {
            for tid in rd
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            {
                if traced.contains(&tid)
                    || foreign.contains(&tid)
                    || (!dying && (traced.len() >= 32 || !rng.chance(400)))
                {
                    continue;
                }
                // SAFETY: a thread of our own child; the variadic
                // arguments are pointer-sized, as the system call reads them.
                let r = unsafe { ptrace(libc::PTRACE_SEIZE, tid, opts as usize) };
                if r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
                    // EPERM: attached already (PTRACE_O_TRACECLONE).
                    traced.push(tid);
                }
            }
        }
        let mut leader_gone = false;
        let mut i = 0;
        while i < traced.len() {
            let tid = traced[i];
            let mut st = 0;
            // SAFETY: a tracee or child of ours.
            let r = unsafe { libc::waitpid(tid, &mut st, libc::WNOHANG | libc::__WALL) };
            if r < 0 {
                // Not ours after all, or reaped.
                foreign.push(tid);
                traced.swap_remove(i);
                continue;
            }
            if r == tid && (libc::WIFEXITED(st) || libc::WIFSIGNALED(st)) {
                leader_gone |= tid == child;
                traced.swap_remove(i);
                continue;
            }
            if r == tid && libc::WIFSTOPPED(st) {
                slot.add(C::TraceStops, 1);
                let sig = libc::WSTOPSIG(st);
                let event = st >> 16;
                let inject = if event != 0 || sig & 0x7f == libc::SIGTRAP {
                    0
                } else {
                    sig
                };
                // SAFETY: reads of a stopped tracee into local buffers.
                unsafe {
                    if rng.chance(200) {
                        let mut regs: libc::user_regs_struct = std::mem::zeroed();
                        ptrace(
                            libc::PTRACE_GETREGS,
                            tid,
                            &mut regs as *mut libc::user_regs_struct as usize,
                        );
                    }
                    if rng.chance(100) {
                        let mut si: libc::siginfo_t = std::mem::zeroed();
                        ptrace(
                            libc::PTRACE_GETSIGINFO,
                            tid,
                            &mut si as *mut libc::siginfo_t as usize,
                        );
                    }
                }
                let req = if rng.chance(60) {
                    libc::PTRACE_DETACH
                } else if rng.chance(500) {
                    libc::PTRACE_SYSCALL
                } else {
                    libc::PTRACE_CONT
                };
                // SAFETY: resume our stopped tracee.
                let r = unsafe { ptrace(req, tid, inject as usize) };
                if r < 0 {
                    // Its stop was reported and is gone: nothing will
                    // report it again.
                    sys::say(&format!(
                        "fuzz: traced: request {req} after a stop of TID {tid} (status {st:#x}) failed: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                if req == libc::PTRACE_DETACH {
                    foreign.push(tid);
                    traced.swap_remove(i);
                    continue;
                }
            } else if rng.chance(20) {
                // SAFETY: stops our tracee (a PTRACE_EVENT_STOP follows).
                unsafe { ptrace(libc::PTRACE_INTERRUPT, tid, 0) };
            }
            i += 1;
        }
        if !traced.contains(&child) {
            let mut st = 0;
            // SAFETY: our own child.
            let r = unsafe { libc::waitpid(child, &mut st, libc::WNOHANG | libc::__WALL) };
            leader_gone |= r == child && (libc::WIFEXITED(st) || libc::WIFSIGNALED(st));
            leader_gone |= r < 0;
        }
        if leader_gone {
            break;
        }
        // Checked after the waits above, so that a racer that slept past
        // the limit does not count a child that is already dead.
        if killed_at != 0 && sys::now_ns() > killed_at + SLOW_DEATH_NS && !slow {
            slow = true;
            slot.add(C::TracedSlowDeaths, 1);
            print_tasks(child, "SLOW DEATH (traced child, 20 s after SIGKILL)");
            traced_diagnose(child, &traced, &foreign);
        }
        sys::sleep_us(1000);
    }
}
