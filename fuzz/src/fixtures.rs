//! The descriptors, paths and socket addresses a worker process makes for
//! its atoms, and the waker that keeps blocking atoms from blocking
//! forever.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Fixtures are moved to descriptors from here on (never closed by the
/// cleanup, which closes 3..=99 and 200..).
pub const FIXTURE_BASE: i32 = 100;
/// The waker's own descriptors start here.
pub const WAKER_BASE: i32 = 170;
/// Scratch descriptors (dup2 targets, close, close_range) are in
/// `SCRATCH_LO..=SCRATCH_HI`.
pub const SCRATCH_LO: i32 = 200;
/// See [`SCRATCH_LO`].
pub const SCRATCH_HI: i32 = 260;

/// A worker's fixtures.  Made once, leaked, shared by its threads.
pub struct Fixtures {
    /// All fixture descriptors (>= FIXTURE_BASE).
    pub fds: Vec<i32>,
    /// The directory fixture.
    pub dir_fd: i32,
    /// The epoll fixture.
    #[allow(dead_code)]
    pub epoll_fd: i32,
    /// Path strings (NUL-terminated, stable addresses).
    pub paths: Vec<CString>,
    /// sockaddr_un of the listener, the datagram receiver and an unbound
    /// name, with their lengths.
    pub addrs: Vec<(Box<libc::sockaddr_un>, u32)>,
    /// The fuzzer's directory.
    pub dir: String,
    /// Descriptors the waker uses: (pipe write, pipe read) reopened
    /// non-blocking; the eventfd; socket ends to feed and drain; the
    /// listener; a datagram sender.
    waker: Waker,
}

struct Waker {
    pipes: Vec<(i32, i32)>,
    eventfd: i32,
    sockets: Vec<i32>,
    listener_addr: usize,
    dgram_tx: i32,
    dgram_rx: i32,
}

fn check(what: &str, r: i32) -> i32 {
    if r < 0 {
        sys::say(&format!(
            "fuzz: fixture {what}: {}",
            std::io::Error::last_os_error()
        ));
    }
    r
}

/// Move `fd` to the first free descriptor >= `base`.
fn high(fd: i32, base: i32) -> i32 {
    if fd < 0 {
        return fd;
    }
    // SAFETY: plain descriptor calls.
    unsafe {
        let h = libc::fcntl(fd, libc::F_DUPFD, base);
        libc::close(fd);
        h
    }
}

fn sockaddr(name: &str) -> (Box<libc::sockaddr_un>, u32) {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut a: Box<libc::sockaddr_un> = Box::new(unsafe { std::mem::zeroed() });
    a.sun_family = libc::AF_UNIX as u16;
    // Abstract name: a leading NUL, no file to unlink.
    for (i, b) in name.bytes().enumerate() {
        a.sun_path[i + 1] = b as libc::c_char;
    }
    (a, (2 + 1 + name.len()) as u32)
}

fn timeouts(fd: i32) {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
    }
}

fn reopen(fd: i32, flags: i32) -> i32 {
    let p = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: a NUL-terminated path.
    let r = unsafe { libc::open(p.as_ptr(), flags | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    high(check("reopen pipe", r), WAKER_BASE)
}

impl Fixtures {
    /// Make the fixtures of process `pid` in `/tmp/fz.<pid>` (or `base`).
    pub fn new(pid: i32) -> &'static Fixtures {
        let dir = format!("/tmp/fz.{pid}");
        let _ = std::fs::create_dir_all(format!("{dir}/d0"));
        let _ = std::fs::write(format!("{dir}/f0"), vec![0x5au8; 65536]);
        let _ = std::fs::write(format!("{dir}/f1"), b"fuzz\n".repeat(100));
        let _ = std::os::unix::fs::symlink(format!("{dir}/f1"), format!("{dir}/sl"));
        let _ = std::env::set_current_dir(&dir);
        let mut names = vec![
            format!("{dir}/f0"),
            format!("{dir}/f1"),
            format!("{dir}/f2"),
            format!("{dir}/d0"),
            format!("{dir}/d0/x"),
            format!("{dir}/sl"),
            "f1".to_owned(),
            "d0/y".to_owned(),
            "/proc/self/status".to_owned(),
            "/proc/self/maps".to_owned(),
            "/nonexistent/x".to_owned(),
            String::new(),
            format!("{dir}/{}", "n".repeat(300)),
        ];
        names.dedup();
        let paths: Vec<CString> = names
            .into_iter()
            .map(|n| CString::new(n).expect("no NUL"))
            .collect();
        let c = |s: &str| CString::new(s).expect("no NUL");
        let mut fds = Vec::new();
        let mut open = |path: &str, flags: i32| {
            let p = c(path);
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
            let fd = high(check(path, fd), FIXTURE_BASE);
            fds.push(fd);
            fd
        };
        open(&format!("{dir}/f0"), libc::O_RDWR);
        open(&format!("{dir}/f1"), libc::O_RDONLY);
        let dir_fd = open(&dir, libc::O_RDONLY | libc::O_DIRECTORY);
        open("/dev/null", libc::O_RDWR);
        open("/dev/zero", libc::O_RDONLY);
        let mut waker = Waker {
            pipes: Vec::new(),
            eventfd: -1,
            sockets: Vec::new(),
            listener_addr: 0,
            dgram_tx: -1,
            dgram_rx: -1,
        };
        for _ in 0..2 {
            let mut p = [0i32; 2];
            // SAFETY: `p` holds two ints.
            check("pipe", unsafe {
                libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC)
            });
            let (r, w) = (high(p[0], FIXTURE_BASE), high(p[1], FIXTURE_BASE));
            fds.push(r);
            fds.push(w);
            waker
                .pipes
                .push((reopen(w, libc::O_WRONLY), reopen(r, libc::O_RDONLY)));
        }
        // SAFETY: plain descriptor creation calls below.
        unsafe {
            let e = high(
                check("eventfd", libc::eventfd(0, libc::EFD_CLOEXEC)),
                FIXTURE_BASE,
            );
            fds.push(e);
            waker.eventfd = e;
            fds.push(high(
                libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC),
                FIXTURE_BASE,
            ));
            for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
                let mut sv = [0i32; 2];
                check(
                    "socketpair",
                    libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()),
                );
                for s in sv {
                    let s = high(s, FIXTURE_BASE);
                    timeouts(s);
                    fds.push(s);
                    waker.sockets.push(s);
                }
            }
        }
        let addrs = vec![
            sockaddr(&format!("fz.{pid}.listen")),
            sockaddr(&format!("fz.{pid}.dgram")),
            sockaddr(&format!("fz.{pid}.none")),
        ];
        // SAFETY: socket calls with valid addresses of the given lengths.
        unsafe {
            let l = high(
                libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
                FIXTURE_BASE,
            );
            timeouts(l);
            check(
                "bind listener",
                libc::bind(
                    l,
                    (&*addrs[0].0 as *const libc::sockaddr_un).cast(),
                    addrs[0].1,
                ),
            );
            libc::listen(l, 64);
            fds.push(l);
            waker.listener_addr = &*addrs[0].0 as *const libc::sockaddr_un as usize;
            let d = high(
                libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0),
                FIXTURE_BASE,
            );
            timeouts(d);
            check(
                "bind dgram",
                libc::bind(
                    d,
                    (&*addrs[1].0 as *const libc::sockaddr_un).cast(),
                    addrs[1].1,
                ),
            );
            fds.push(d);
            waker.dgram_rx = d;
            waker.dgram_tx = high(
                libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0),
                WAKER_BASE,
            );
            let t = high(
                libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC),
                FIXTURE_BASE,
            );
            let its = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 5_000_000,
                },
                it_value: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 5_000_000,
                },
            };
            libc::timerfd_settime(t, 0, &its, std::ptr::null_mut());
            fds.push(t);
            let ep = high(libc::epoll_create1(libc::EPOLL_CLOEXEC), FIXTURE_BASE);
            for &f in &[waker.pipes[0].1, waker.eventfd, t] {
                let mut ev = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: f as u64,
                };
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, f, &mut ev);
            }
            fds.push(ep);
            let m = high(
                libc::memfd_create(
                    b"fuzz\0".as_ptr().cast(),
                    libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
                ),
                FIXTURE_BASE,
            );
            libc::ftruncate(m, 65536);
            fds.push(m);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            fds.push(high(
                libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC),
                FIXTURE_BASE,
            ));
            let ino = high(
                libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC),
                FIXTURE_BASE,
            );
            let dc = c(&dir);
            libc::inotify_add_watch(ino, dc.as_ptr(), libc::IN_ALL_EVENTS);
            fds.push(ino);
            fds.push(high(
                libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32,
                FIXTURE_BASE,
            ));
            let ep_fd = ep;
            fds.retain(|&f| f >= 0);
            Box::leak(Box::new(Fixtures {
                fds,
                dir_fd,
                epoll_fd: ep_fd,
                paths,
                addrs,
                dir,
                waker,
            }))
        }
    }

    /// One round of the waker: feed every blocking fixture a little and
    /// drain what piles up, so that every blocked read or write ends soon.
    pub fn wake(&self, round: u64) {
        let mut buf = [0u8; 65536];
        let one = [0x77u8; 1];
        // SAFETY: descriptor calls with valid local buffers.
        unsafe {
            // Atoms may shrink a pipe (F_SETPIPE_SZ, down to one slot that
            // a vmsplice of one byte fills) or a socket buffer: the waker
            // drains all there is, then leaves one byte for readers, and
            // never blocks itself.
            for &(w, r) in &self.waker.pipes {
                let mut n: i32 = 0;
                libc::ioctl(r, libc::FIONREAD, &mut n);
                if n > 0 {
                    nowait_read(r, &mut buf);
                }
                nowait_write(w, &one);
            }
            let e = self.waker.eventfd;
            let fl = libc::fcntl(e, libc::F_GETFL);
            libc::fcntl(e, libc::F_SETFL, fl | libc::O_NONBLOCK);
            let v: u64 = 1;
            if libc::write(e, (&v as *const u64).cast(), 8) < 0 {
                libc::read(e, buf.as_mut_ptr().cast(), 8);
            }
            libc::fcntl(e, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            for &s in &self.waker.sockets {
                libc::send(
                    s,
                    one.as_ptr().cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                );
                let mut n: i32 = 0;
                libc::ioctl(s, libc::FIONREAD, &mut n);
                if n > 0 {
                    libc::recv(s, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT);
                }
            }
            let a = self.waker.listener_addr as *const libc::sockaddr;
            let alen = self.addrs[0].1;
            if round % 8 == 0 {
                let s = libc::socket(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                );
                if s >= 0 {
                    libc::connect(s, a, alen);
                    libc::close(s);
                }
            }
            let d = self.addrs[1].0.as_ref() as *const libc::sockaddr_un as *const libc::sockaddr;
            libc::sendto(
                self.waker.dgram_tx,
                one.as_ptr().cast(),
                1,
                libc::MSG_DONTWAIT,
                d,
                self.addrs[1].1,
            );
            let mut n: i32 = 0;
            libc::ioctl(self.waker.dgram_rx, libc::FIONREAD, &mut n);
            if n > 0 && round % 4 == 0 {
                for _ in 0..64 {
                    if libc::recv(
                        self.waker.dgram_rx,
                        buf.as_mut_ptr().cast(),
                        1,
                        libc::MSG_DONTWAIT,
                    ) < 0
                    {
                        break;
                    }
                }
            }
        }
    }

    /// Truncate the fuzzer's files so that tmpfs (RAM) does not fill up.
    pub fn trim(&self) {
        for f in ["f0", "f2", "d0/x", "d0/y"] {
            let p = CString::new(format!("{}/{f}", self.dir)).expect("no NUL");
            // SAFETY: a NUL-terminated path.
            unsafe { libc::truncate(p.as_ptr(), 65536) };
        }
    }
}

/// Set O_NONBLOCK on `fd` (an atom may have cleared it).
fn nonblock(fd: i32) {
    // SAFETY: descriptor flag calls.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 && fl & libc::O_NONBLOCK == 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// A write that does not block whatever the descriptor's flags say
/// (RWF_NOWAIT; else O_NONBLOCK set just before).
fn nowait_write(fd: i32, b: &[u8]) {
    let iov = libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    };
    // SAFETY: one iovec over a live buffer.
    let r = unsafe { libc::pwritev2(fd, &iov, 1, -1, libc::RWF_NOWAIT) };
    if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
        nonblock(fd);
        // SAFETY: as above.
        unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
    }
}

/// A read that does not block (as [`nowait_write`]).
fn nowait_read(fd: i32, b: &mut [u8]) {
    let iov = libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    };
    // SAFETY: one iovec over a live buffer.
    let r = unsafe { libc::preadv2(fd, &iov, 1, -1, libc::RWF_NOWAIT) };
    if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
        nonblock(fd);
        // SAFETY: as above.
        unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
    }
}

/// Feed every descriptor of the process an atom can block on for good:
/// eventfds (atoms make them, or clear O_NONBLOCK on the non-blocking
/// fixture), timerfds (made unarmed), pipes and FIFOs (made by atoms, or
/// shrunk).  The fixtures proper are fed by [`Fixtures::wake`].
fn feed_all() {
    let mut link = [0u8; 64];
    let one = [0x66u8; 1];
    let mut buf = [0u8; 4096];
    let out = sys::OUT_FD.load(Ordering::Relaxed);
    for fd in (3..=260).filter(|&fd| fd != out) {
        let path = format!("/proc/self/fd/{fd}\0");
        // SAFETY: a NUL-terminated path and a local buffer.
        let n =
            unsafe { libc::readlink(path.as_ptr().cast(), link.as_mut_ptr().cast(), link.len()) };
        if n <= 0 {
            continue;
        }
        let l = &link[..n as usize];
        // SAFETY: descriptor calls with local buffers.
        unsafe {
            if l == b"anon_inode:[eventfd]" {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                let v: u64 = 1;
                if libc::write(fd, (&v as *const u64).cast(), 8) < 0 {
                    libc::read(fd, buf.as_mut_ptr().cast(), 8);
                }
                libc::fcntl(fd, libc::F_SETFL, fl);
            } else if l == b"anon_inode:[timerfd]" {
                let t = libc::itimerspec {
                    it_interval: libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 1_000_000,
                    },
                };
                libc::timerfd_settime(fd, 0, &t, std::ptr::null_mut());
            } else {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
                    continue;
                }
                let acc = libc::fcntl(fd, libc::F_GETFL) & libc::O_ACCMODE;
                if acc != libc::O_WRONLY {
                    let mut q: i32 = 0;
                    libc::ioctl(fd, libc::FIONREAD, &mut q);
                    if q > 0 {
                        nowait_read(fd, &mut buf);
                    }
                }
                if acc != libc::O_RDONLY {
                    nowait_write(fd, &one);
                }
            }
        }
    }
}

/// Set when a fuzzing thread drains: from then on the waker also ends
/// what atoms left waiting on sockets no one feeds, in every descriptor
/// table of the process (threads and cachemiss threads that unshared
/// CLONE_FILES have their own).
pub static DRAINING: AtomicBool = AtomicBool::new(false);

/// Shut down every socket an atom made, in every task's table: an atom
/// that reads one (an unbound datagram socket, a connection whose peer
/// never writes) would otherwise wait for good, and its syslet would
/// count as lost.  The fixtures' sockets (by inode) are left alone.
fn end_atom_sockets(keep: &[u64]) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for t in tasks.flatten() {
        let tid: i32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
        let Ok(fds) = std::fs::read_dir(t.path().join("fd")) else {
            continue;
        };
        let mut pidfd = -1;
        for e in fds.flatten() {
            let Ok(l) = std::fs::read_link(e.path()) else {
                continue;
            };
            let l = l.to_string_lossy().into_owned();
            let Some(ino) = l
                .strip_prefix("socket:[")
                .and_then(|x| x.strip_suffix(']'))
                .and_then(|x| x.parse::<u64>().ok())
            else {
                continue;
            };
            if keep.contains(&ino) {
                continue;
            }
            let fd: i64 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
            // SAFETY: descriptor calls; the copy is closed at once.
            unsafe {
                if pidfd < 0 {
                    // PIDFD_THREAD (O_EXCL): this thread's table.
                    pidfd = libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) as i32;
                    if pidfd < 0 {
                        break;
                    }
                }
                let s = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
                if s >= 0 {
                    libc::shutdown(s, libc::SHUT_RDWR);
                    libc::close(s);
                }
            }
        }
        if pidfd >= 0 {
            // SAFETY: our pidfd.
            unsafe { libc::close(pidfd) };
        }
    }
}

fn inode(fd: i32) -> u64 {
    // SAFETY: fstat into a local.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 {
            st.st_ino
        } else {
            0
        }
    }
}

/// Run the waker until `stop`.
pub fn waker_loop(fx: &'static Fixtures, stop: &AtomicBool) {
    let mut round = 0u64;
    let mut keep: Vec<u64> = fx.fds.iter().map(|&f| inode(f)).collect();
    keep.push(inode(fx.waker.dgram_tx));
    while !stop.load(Ordering::Relaxed) {
        fx.wake(round);
        if round % 25 == 0 {
            feed_all();
            if DRAINING.load(Ordering::Relaxed) {
                end_atom_sockets(&keep);
            }
        }
        round += 1;
        if round % 2000 == 0 {
            fx.trim();
        }
        sys::sleep_us(2000);
    }
}
