//! The system calls that atoms are made of, with the kind of each
//! argument (what the generator in `chain.rs` may put there), and the ones
//! left out, with the reason.

/// The kind of an argument: which values the generator draws from.
#[derive(Clone, Copy, Debug)]
pub enum K {
    /// 0.
    Zero,
    /// One of these values.
    Of(&'static [u64]),
    /// An OR of a random subset of these bits.
    Bits(&'static [u64]),
    /// 0..=16.
    Small,
    /// A protection key for pkey_free: 1..=16 or an invalid one, never 0,
    /// and never an earlier result or a missing (0) argument.  Upstream
    /// pkey_free(0) frees the default key; the next pkey_alloc() or
    /// PROT_EXEC-only mprotect() hands key 0 out again and denies the
    /// calling thread access to all its ordinary memory (its stack).
    Pkey,
    /// Flags of a call that makes a descriptor: an OR of a random subset
    /// of these, always with O_NONBLOCK (0x800, the same bit for
    /// eventfd, timerfd, signalfd, inotify, pipe2 and socket types), and
    /// never cut off.  A read of an eventfd or timerfd an atom made can
    /// wait for good, and the descriptor can be closed under it, out of
    /// the waker's reach.
    Nb(&'static [u64]),
    /// A descriptor: a fixture, a dup in the scratch range, an earlier
    /// atom's result, or a bad one (never 0, 1 or 2).
    Fd,
    /// A descriptor for close/dup2 targets: only the fuzzer's scratch
    /// range or bad ones (fixtures survive).
    ScratchFd,
    /// AT_FDCWD, the directory fixture, or a bad descriptor.
    Dirfd,
    /// A writable buffer in the thread's scratch area, or a bad pointer.
    Buf,
    /// A readable buffer (scratch or a read-only page), or a bad pointer.
    RBuf,
    /// A length for a buffer: 0..64 KiB, or one the kernel must refuse
    /// (>= 2^47).
    Len,
    /// A file offset.
    Off,
    /// A file length (ftruncate, truncate): may be large (sparse).
    FileLen,
    /// A small file length (fallocate): <= 1 MiB, tmpfs is RAM.
    AllocLen,
    /// A path of the fuzzer's own directory, a harmless system path, or a
    /// bad pointer.
    Path,
    /// A process ID that is safe to signal: this process, its group, or
    /// one that does not exist (never -1, 1 or the supervisor).
    Pid,
    /// A thread ID of this process (0 = self for sched_* calls), or one
    /// that does not exist.
    Tid,
    /// A signal this process handles (or 0).
    Sig,
    /// An address in the thread's victim region (mmap, munmap, ...).
    Addr,
    /// A length that keeps `Addr + len` inside the victim region.
    MLen,
    /// A pointer to a short relative timespec (<= 20 ms), or an unreadable
    /// one (never NULL, never readable garbage: both can wait forever).
    Ts,
    /// A pointer to an itimerspec / itimerval with short times.
    Itimer,
    /// Milliseconds for poll-style timeouts: 0..=20.
    Ms,
    /// A pointer to 1..4 iovecs into the scratch area.
    Iov,
    /// An iovec count.
    IovCnt,
    /// A pointer to a sockaddr_un of the fuzzer's sockets.
    Sockaddr,
    /// A sockaddr length.
    SockLen,
    /// A pointer to a msghdr with one iovec.
    Msghdr,
    /// A pointer to pollfds of the fixtures.
    PollFds,
    /// A pointer to an fd_set with some fixtures set, or NULL.
    FdSet,
    /// select's nfds.
    SelNfds,
    /// A pointer to a timeval of <= 20 ms.
    Tv,
    /// A pointer to a 64-bit signal set.
    Sigset,
    /// A pointer to an epoll_event.
    EpEvent,
    /// A pointer to a sigevent (SIGEV_NONE, SIGEV_SIGNAL with a handled
    /// signal, or SIGEV_THREAD_ID to this thread).
    Sigev,
    /// A POSIX timer ID: 0..8.
    TimerId,
    /// A pointer to an umem counter, or a bad pointer.
    Counter,
    /// An umem increment.
    Inc,
    /// A pointer to a cpu mask.
    CpuMask,
    /// A pointer to a sched_param with priority 0.
    SchedParam,
    /// A pointer to a capability header (good or bad version).
    CapHdr,
    /// An argument of fcntl: small, O_NONBLOCK, or a pointer to scratch.
    FcntlArg,
    /// A pointer to an int in scratch (socklen_t and friends).
    IntPtr,
    /// Any value at all: only where every value is harmless.
    Any,
}

/// One system call of the table.
pub struct Sys {
    /// Its name.
    pub name: &'static str,
    /// Its x86-64 number.
    pub nr: u64,
    /// Its arguments.
    pub args: &'static [K],
    /// Relative weight.
    pub weight: u32,
    /// The kernel must refuse it in an atom with -EINVAL (v3-abi B.8).
    pub refused: bool,
}

use K::*;

const O_FLAGS: &[u64] = &[
    libc::O_RDWR as u64,
    libc::O_WRONLY as u64,
    libc::O_CREAT as u64,
    libc::O_TRUNC as u64,
    libc::O_APPEND as u64,
    libc::O_NONBLOCK as u64,
    libc::O_CLOEXEC as u64,
    libc::O_DIRECTORY as u64,
    libc::O_EXCL as u64,
    libc::O_NOFOLLOW as u64,
    libc::O_PATH as u64,
    libc::O_TMPFILE as u64,
    libc::O_NOATIME as u64,
    libc::O_DSYNC as u64,
];
const MODES: &[u64] = &[0o600, 0o644, 0o755, 0o000, 0o7777];
const REG_MODES: &[u64] = &[0o100600, 0o100644, 0o170000, 0o600];
const MSG: &[u64] = &[
    libc::MSG_DONTWAIT as u64,
    libc::MSG_PEEK as u64,
    libc::MSG_TRUNC as u64,
    libc::MSG_NOSIGNAL as u64,
    libc::MSG_OOB as u64,
    // Not MSG_WAITALL: with MSG_PEEK on a unix stream socket fed one byte
    // at a time it waits for more bytes than the queue can ever hold.
];
const CLOCKS: &[u64] = &[0, 1, 4, 7, 2, 3, 0xffff_ffff];
const PROT: &[u64] = &[1, 2, 4, 0x0100_0000];
const ADVICE: &[u64] = &[
    0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 25, 9999,
];
const FCNTL: &[u64] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1030, 1031, 1032, 1033, 1034, 1026, 9999,
];
const SOCKOPT: &[u64] = &[2, 9, 7, 8, 16, 12, 36, 6, 3, 4, 9999];
const PRCTL: &[u64] = &[1, 2, 3, 15, 16, 21, 30, 36, 37, 39, 40, 0xdead_0000];
const FUTEX_OPS: &[u64] = &[0, 1, 128, 129, 9, 10, 137, 6, 7, 8, 134, 135, 136, 4, 5, 99];
const UNSHARE: &[u64] = &[
    libc::CLONE_FILES as u64,
    libc::CLONE_FS as u64,
    libc::CLONE_SYSVSEM as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
];
const NEG1: u64 = u32::MAX as u64;

macro_rules! s {
    ($name:ident, $w:expr, [$($a:expr),*]) => {
        Sys {
            name: stringify!($name),
            nr: paste_nr!($name),
            args: &[$($a),*],
            weight: $w,
            refused: false,
        }
    };
}

macro_rules! paste_nr {
    ($name:ident) => {
        syscall_nr::$name as u64
    };
}

macro_rules! refused {
    ($name:literal, $nr:expr, [$($a:expr),*]) => {
        Sys { name: $name, nr: $nr, args: &[$($a),*], weight: 1, refused: true }
    };
}

/// The numbers, from libc (`SYS_*`), under their plain names.
#[allow(non_upper_case_globals)]
mod syscall_nr {
    pub use libc::{
        SYS_accept as accept, SYS_accept4 as accept4, SYS_access as access, SYS_alarm as alarm,
        SYS_bind as bind, SYS_capget as capget, SYS_capset as capset, SYS_chdir as chdir,
        SYS_chmod as chmod, SYS_clock_getres as clock_getres, SYS_clock_gettime as clock_gettime,
        SYS_clock_nanosleep as clock_nanosleep, SYS_close as close, SYS_close_range as close_range,
        SYS_connect as connect, SYS_copy_file_range as copy_file_range, SYS_creat as creat,
        SYS_dup as dup, SYS_dup2 as dup2, SYS_dup3 as dup3, SYS_epoll_create1 as epoll_create1,
        SYS_epoll_ctl as epoll_ctl, SYS_epoll_pwait as epoll_pwait,
        SYS_epoll_pwait2 as epoll_pwait2, SYS_epoll_wait as epoll_wait, SYS_eventfd2 as eventfd2,
        SYS_exit_group as exit_group, SYS_faccessat2 as faccessat2, SYS_fadvise64 as fadvise64,
        SYS_fallocate as fallocate, SYS_fchdir as fchdir, SYS_fchmod as fchmod,
        SYS_fchmodat as fchmodat, SYS_fchown as fchown, SYS_fchownat as fchownat,
        SYS_fcntl as fcntl, SYS_fdatasync as fdatasync, SYS_flock as flock, SYS_fstat as fstat,
        SYS_fstatfs as fstatfs, SYS_fsync as fsync, SYS_ftruncate as ftruncate, SYS_futex as futex,
        SYS_futex_waitv as futex_waitv, SYS_get_mempolicy as get_mempolicy,
        SYS_get_robust_list as get_robust_list, SYS_getcpu as getcpu, SYS_getcwd as getcwd,
        SYS_getdents64 as getdents64, SYS_getegid as getegid, SYS_geteuid as geteuid,
        SYS_getgid as getgid, SYS_getgroups as getgroups, SYS_getitimer as getitimer,
        SYS_getpeername as getpeername, SYS_getpgid as getpgid, SYS_getpgrp as getpgrp,
        SYS_getpid as getpid, SYS_getppid as getppid, SYS_getpriority as getpriority,
        SYS_getrandom as getrandom, SYS_getresgid as getresgid, SYS_getresuid as getresuid,
        SYS_getrlimit as getrlimit, SYS_getrusage as getrusage, SYS_getsid as getsid,
        SYS_getsockname as getsockname, SYS_getsockopt as getsockopt, SYS_gettid as gettid,
        SYS_gettimeofday as gettimeofday, SYS_getuid as getuid,
        SYS_inotify_add_watch as inotify_add_watch, SYS_inotify_init1 as inotify_init1,
        SYS_inotify_rm_watch as inotify_rm_watch, SYS_ioctl as ioctl, SYS_ioprio_get as ioprio_get,
        SYS_ioprio_set as ioprio_set, SYS_kcmp as kcmp, SYS_kill as kill, SYS_linkat as linkat,
        SYS_listen as listen, SYS_lseek as lseek, SYS_lstat as lstat, SYS_madvise as madvise,
        SYS_membarrier as membarrier, SYS_memfd_create as memfd_create, SYS_mincore as mincore,
        SYS_mkdirat as mkdirat, SYS_mknodat as mknodat, SYS_mlock as mlock, SYS_mlock2 as mlock2,
        SYS_mmap as mmap, SYS_mprotect as mprotect, SYS_mremap as mremap, SYS_msync as msync,
        SYS_munlock as munlock, SYS_munmap as munmap, SYS_nanosleep as nanosleep,
        SYS_newfstatat as newfstatat, SYS_open as open, SYS_openat as openat,
        SYS_pidfd_open as pidfd_open, SYS_pidfd_send_signal as pidfd_send_signal,
        SYS_pipe2 as pipe2, SYS_pkey_alloc as pkey_alloc, SYS_pkey_free as pkey_free,
        SYS_pkey_mprotect as pkey_mprotect, SYS_poll as poll, SYS_ppoll as ppoll,
        SYS_prctl as prctl, SYS_pread64 as pread64, SYS_preadv as preadv, SYS_preadv2 as preadv2,
        SYS_prlimit64 as prlimit64, SYS_pselect6 as pselect6, SYS_pwrite64 as pwrite64,
        SYS_pwritev as pwritev, SYS_pwritev2 as pwritev2, SYS_read as read,
        SYS_readahead as readahead, SYS_readlinkat as readlinkat, SYS_readv as readv,
        SYS_recvfrom as recvfrom, SYS_recvmsg as recvmsg, SYS_rename as rename,
        SYS_renameat2 as renameat2, SYS_rt_sigaction as rt_sigaction,
        SYS_rt_sigpending as rt_sigpending, SYS_rt_sigprocmask as rt_sigprocmask,
        SYS_rt_sigqueueinfo as rt_sigqueueinfo, SYS_rt_sigtimedwait as rt_sigtimedwait,
        SYS_rt_tgsigqueueinfo as rt_tgsigqueueinfo,
        SYS_sched_get_priority_max as sched_get_priority_max,
        SYS_sched_getaffinity as sched_getaffinity, SYS_sched_getattr as sched_getattr,
        SYS_sched_getparam as sched_getparam, SYS_sched_getscheduler as sched_getscheduler,
        SYS_sched_setaffinity as sched_setaffinity, SYS_sched_setscheduler as sched_setscheduler,
        SYS_sched_yield as sched_yield, SYS_select as select, SYS_sendfile as sendfile,
        SYS_sendmsg as sendmsg, SYS_sendto as sendto, SYS_set_mempolicy as set_mempolicy,
        SYS_setfsuid as setfsuid, SYS_setgroups as setgroups, SYS_setitimer as setitimer,
        SYS_setpgid as setpgid, SYS_setpriority as setpriority, SYS_setresgid as setresgid,
        SYS_setresuid as setresuid, SYS_setsid as setsid, SYS_setsockopt as setsockopt,
        SYS_shutdown as shutdown, SYS_sigaltstack as sigaltstack, SYS_signalfd4 as signalfd4,
        SYS_socket as socket, SYS_socketpair as socketpair, SYS_splice as splice, SYS_stat as stat,
        SYS_statfs as statfs, SYS_statx as statx, SYS_symlinkat as symlinkat, SYS_sync as sync,
        SYS_sync_file_range as sync_file_range, SYS_syncfs as syncfs, SYS_sysinfo as sysinfo,
        SYS_tee as tee, SYS_tgkill as tgkill, SYS_time as time, SYS_timer_create as timer_create,
        SYS_timer_delete as timer_delete, SYS_timer_getoverrun as timer_getoverrun,
        SYS_timer_gettime as timer_gettime, SYS_timer_settime as timer_settime,
        SYS_timerfd_create as timerfd_create, SYS_timerfd_gettime as timerfd_gettime,
        SYS_timerfd_settime as timerfd_settime, SYS_times as times, SYS_tkill as tkill,
        SYS_truncate as truncate, SYS_umask as umask, SYS_uname as uname, SYS_unlinkat as unlinkat,
        SYS_unshare as unshare, SYS_utimensat as utimensat, SYS_vmsplice as vmsplice,
        SYS_write as write, SYS_writev as writev,
    };
    pub const umem_add: i64 = 501;
}

/// `umem_add`'s number.
pub const NR_UMEM_ADD: u64 = 501;
/// `exit_group`'s number (only in child processes, see [`EXIT_GROUP`]).
#[allow(dead_code)]
pub const NR_EXIT_GROUP: u64 = libc::SYS_exit_group as u64;

/// exit_group as an atom: only in deliberately forked children.
pub static EXIT_GROUP: Sys = s!(exit_group, 1, [Small]);

/// The table.  Weights favour the calls that block (and so hand off),
/// umem_add (loops) and the plain ones.
pub static TABLE: &[Sys] = &[
    // I/O on the fixtures: these block on pipes, eventfds, sockets, timerfds.
    s!(read, 12, [Fd, Buf, Len]),
    s!(write, 10, [Fd, RBuf, Len]),
    s!(pread64, 3, [Fd, Buf, Len, Off]),
    s!(pwrite64, 3, [Fd, RBuf, Len, Off]),
    s!(readv, 3, [Fd, Iov, IovCnt]),
    s!(writev, 3, [Fd, Iov, IovCnt]),
    s!(preadv, 2, [Fd, Iov, IovCnt, Off, Zero]),
    s!(pwritev, 2, [Fd, Iov, IovCnt, Off, Zero]),
    s!(
        preadv2,
        2,
        [Fd, Iov, IovCnt, Off, Zero, Bits(&[1, 2, 4, 8, 16])]
    ),
    s!(
        pwritev2,
        2,
        [Fd, Iov, IovCnt, Off, Zero, Bits(&[1, 2, 4, 8, 16])]
    ),
    s!(lseek, 2, [Fd, Off, Of(&[0, 1, 2, 3, 4, 99])]),
    s!(close, 3, [ScratchFd]),
    s!(close_range, 1, [ScratchFd, ScratchFd, Of(&[0, 2, 4])]),
    s!(dup, 2, [Fd]),
    s!(dup2, 2, [Fd, ScratchFd]),
    s!(dup3, 2, [Fd, ScratchFd, Of(&[0, 0x80000, 1])]),
    s!(fcntl, 4, [Fd, Of(FCNTL), FcntlArg]),
    s!(ftruncate, 2, [Fd, FileLen]),
    s!(
        fallocate,
        1,
        [Fd, Of(&[0, 1, 3, 0x10, 0x20, 0x8]), Off, AllocLen]
    ),
    s!(fsync, 2, [Fd]),
    s!(fdatasync, 1, [Fd]),
    s!(sync_file_range, 1, [Fd, Off, Len, Small]),
    s!(fadvise64, 1, [Fd, Off, Len, Small]),
    s!(readahead, 1, [Fd, Off, Len]),
    s!(sendfile, 2, [Fd, Fd, Zero, Len]),
    s!(splice, 3, [Fd, Zero, Fd, Zero, Len, Bits(&[1, 2, 4, 8])]),
    s!(tee, 2, [Fd, Fd, Len, Bits(&[1, 2, 4, 8])]),
    s!(copy_file_range, 1, [Fd, Zero, Fd, Zero, Len, Zero]),
    s!(vmsplice, 1, [Fd, Iov, IovCnt, Bits(&[2, 8])]),
    s!(getdents64, 2, [Fd, Buf, Len]),
    s!(flock, 1, [Fd, Of(&[5, 6, 8, 12, 99])]),
    s!(
        ioctl,
        2,
        [
            Fd,
            Of(&[0x541b, 0x5451, 0x5450, 0x5401, 0x5452, 0xdead]),
            IntPtr
        ]
    ),
    // Files and paths (the fuzzer's own directory).
    s!(fstat, 2, [Fd, Buf]),
    s!(stat, 1, [Path, Buf]),
    s!(lstat, 1, [Path, Buf]),
    s!(
        newfstatat,
        2,
        [Dirfd, Path, Buf, Bits(&[0x100, 0x1000, 0x800])]
    ),
    s!(
        statx,
        2,
        [
            Dirfd,
            Path,
            Bits(&[0x100, 0x1000, 0x800, 0x2000]),
            Of(&[0xfff, 1, 0x7ff]),
            Buf
        ]
    ),
    s!(access, 1, [Path, Small]),
    s!(faccessat2, 1, [Dirfd, Path, Small, Bits(&[0x200, 0x100])]),
    s!(readlinkat, 1, [Dirfd, Path, Buf, Len]),
    s!(statfs, 1, [Path, Buf]),
    s!(fstatfs, 1, [Fd, Buf]),
    s!(open, 2, [Path, Bits(O_FLAGS), Of(MODES)]),
    s!(openat, 3, [Dirfd, Path, Bits(O_FLAGS), Of(MODES)]),
    s!(creat, 1, [Path, Of(MODES)]),
    s!(mkdirat, 1, [Dirfd, Path, Of(MODES)]),
    s!(mknodat, 1, [Dirfd, Path, Of(REG_MODES), Zero]),
    s!(unlinkat, 1, [Dirfd, Path, Of(&[0, 0x200])]),
    s!(rename, 1, [Path, Path]),
    s!(renameat2, 1, [Dirfd, Path, Dirfd, Path, Of(&[0, 1, 2, 4])]),
    s!(linkat, 1, [Dirfd, Path, Dirfd, Path, Of(&[0, 0x400])]),
    s!(symlinkat, 1, [Path, Dirfd, Path]),
    s!(truncate, 1, [Path, FileLen]),
    s!(chmod, 1, [Path, Of(MODES)]),
    s!(fchmod, 1, [Fd, Of(MODES)]),
    s!(fchmodat, 1, [Dirfd, Path, Of(MODES)]),
    s!(fchown, 1, [Fd, Of(&[0, NEG1]), Of(&[0, NEG1])]),
    s!(
        fchownat,
        1,
        [Dirfd, Path, Of(&[0, NEG1]), Of(&[0, NEG1]), Of(&[0, 0x100])]
    ),
    s!(utimensat, 1, [Dirfd, Path, Zero, Of(&[0, 0x100])]),
    s!(chdir, 1, [Path]),
    s!(fchdir, 1, [Fd]),
    s!(getcwd, 1, [Buf, Len]),
    s!(umask, 1, [Of(&[0o22, 0o77, 0])]),
    s!(inotify_init1, 1, [Nb(&[0x80000])]),
    s!(inotify_add_watch, 1, [Fd, Path, Of(&[0xfff, 2, 0x100])]),
    s!(inotify_rm_watch, 1, [Fd, Small]),
    s!(memfd_create, 1, [RBuf, Bits(&[1, 2, 4])]),
    s!(eventfd2, 1, [Small, Nb(&[0x80000, 1])]),
    s!(pipe2, 1, [Buf, Nb(&[0x80000, 0x4000])]),
    s!(sync, 1, []),
    s!(syncfs, 1, [Fd]),
    // Memory: only the thread's victim region.
    s!(
        mmap,
        2,
        [
            Addr,
            MLen,
            Bits(PROT),
            Of(&[0x32, 0x31, 0x100032, 0x11]),
            Fd,
            Off
        ]
    ),
    s!(munmap, 2, [Addr, MLen]),
    s!(mprotect, 2, [Addr, MLen, Bits(PROT)]),
    s!(madvise, 2, [Addr, MLen, Of(ADVICE)]),
    s!(mremap, 1, [Addr, MLen, MLen, Of(&[0])]),
    s!(mincore, 1, [Addr, MLen, Buf]),
    s!(msync, 1, [Addr, MLen, Of(&[1, 4, 2, 6, 0])]),
    s!(mlock, 1, [Addr, MLen]),
    s!(mlock2, 1, [Addr, MLen, Of(&[0, 1, 2])]),
    s!(munlock, 1, [Addr, MLen]),
    s!(pkey_alloc, 1, [Zero, Of(&[0, 1, 2, 3])]),
    s!(pkey_free, 1, [Pkey]),
    s!(pkey_mprotect, 1, [Addr, MLen, Bits(PROT), Small]),
    s!(
        set_mempolicy,
        1,
        [Of(&[0, 1, 2, 3, 4]), RBuf, Of(&[1, 64, 1024])]
    ),
    s!(get_mempolicy, 1, [Buf, Buf, Of(&[64, 1024]), Zero, Zero]),
    // Sockets (unix; the fixtures have receive and send timeouts).
    s!(
        socket,
        1,
        [
            Of(&[1, 2, 10, 16]),
            Of(&[0x801, 0x802, 0x805, 0x80801]),
            Zero
        ]
    ),
    s!(
        socketpair,
        1,
        [Of(&[1]), Of(&[0x801, 0x802, 0x805]), Zero, Buf]
    ),
    s!(bind, 1, [Fd, Sockaddr, SockLen]),
    s!(connect, 2, [Fd, Sockaddr, SockLen]),
    s!(listen, 1, [Fd, Small]),
    s!(accept, 2, [Fd, Zero, Zero]),
    s!(accept4, 2, [Fd, Buf, IntPtr, Of(&[0x800, 0x80800])]),
    s!(sendto, 4, [Fd, RBuf, Len, Bits(MSG), Zero, Zero]),
    s!(recvfrom, 5, [Fd, Buf, Len, Bits(MSG), Zero, Zero]),
    s!(sendmsg, 2, [Fd, Msghdr, Bits(MSG)]),
    s!(recvmsg, 3, [Fd, Msghdr, Bits(MSG)]),
    s!(shutdown, 1, [Fd, Of(&[0, 1, 2, 7])]),
    s!(getsockname, 1, [Fd, Buf, IntPtr]),
    s!(getpeername, 1, [Fd, Buf, IntPtr]),
    s!(
        setsockopt,
        1,
        [Fd, Of(&[1, 0, 0xffff]), Of(SOCKOPT), RBuf, Of(&[4, 8, 16])]
    ),
    s!(
        getsockopt,
        1,
        [
            Fd,
            Of(&[1, 0]),
            Of(&[2, 3, 4, 7, 8, 17, 20, 21, 9999]),
            Buf,
            IntPtr
        ]
    ),
    // Waiting, all with short timeouts.
    s!(poll, 4, [PollFds, Of(&[1, 2, 4]), Ms]),
    s!(ppoll, 3, [PollFds, Of(&[1, 2, 4]), Ts, Sigset, Of(&[8, 7])]),
    s!(select, 2, [SelNfds, FdSet, FdSet, FdSet, Tv]),
    s!(pselect6, 2, [SelNfds, FdSet, FdSet, FdSet, Ts, Zero]),
    s!(epoll_create1, 1, [Of(&[0, 0x80000, 1])]),
    s!(epoll_ctl, 2, [Fd, Of(&[1, 2, 3, 9]), Fd, EpEvent]),
    s!(epoll_wait, 3, [Fd, Buf, Of(&[1, 4, 0]), Ms]),
    s!(epoll_pwait, 2, [Fd, Buf, Of(&[1, 4]), Ms, Sigset, Of(&[8])]),
    s!(
        epoll_pwait2,
        2,
        [Fd, Buf, Of(&[1, 4]), Ts, Sigset, Of(&[8])]
    ),
    s!(nanosleep, 5, [Ts, Buf]),
    s!(clock_nanosleep, 3, [Of(CLOCKS), Of(&[0]), Ts, Zero]),
    s!(
        futex,
        3,
        [
            Buf,
            Of(FUTEX_OPS),
            Small,
            Ts,
            Buf,
            Of(&[1, u32::MAX as u64])
        ]
    ),
    s!(
        futex_waitv,
        1,
        [Buf, Of(&[0, 1, 129]), Zero, Ts, Of(&[0, 1])]
    ),
    // Time and timers.
    s!(clock_gettime, 2, [Of(CLOCKS), Buf]),
    s!(clock_getres, 1, [Of(CLOCKS), Buf]),
    s!(gettimeofday, 1, [Buf, Zero]),
    s!(time, 1, [Buf]),
    s!(times, 1, [Buf]),
    s!(getitimer, 1, [Of(&[0, 1, 2, 5]), Buf]),
    s!(setitimer, 1, [Of(&[0, 1, 2, 5]), Itimer, Zero]),
    s!(alarm, 1, [Of(&[0, 1])]),
    s!(timer_create, 1, [Of(CLOCKS), Sigev, Buf]),
    s!(timer_settime, 1, [TimerId, Of(&[0, 1]), Itimer, Zero]),
    s!(timer_gettime, 1, [TimerId, Buf]),
    s!(timer_getoverrun, 1, [TimerId]),
    s!(timer_delete, 1, [TimerId]),
    s!(timerfd_create, 1, [Of(&[0, 1, 7]), Nb(&[0x80000])]),
    s!(timerfd_settime, 1, [Fd, Of(&[0, 1, 2]), Itimer, Zero]),
    s!(timerfd_gettime, 1, [Fd, Buf]),
    // Signals (handled ones only, to this process or its threads).
    s!(kill, 2, [Pid, Sig]),
    s!(tkill, 2, [Tid, Sig]),
    s!(tgkill, 2, [Pid, Tid, Sig]),
    s!(rt_sigqueueinfo, 1, [Pid, Sig, RBuf]),
    s!(rt_tgsigqueueinfo, 1, [Pid, Tid, Sig, RBuf]),
    s!(
        rt_sigprocmask,
        2,
        [Of(&[0, 1, 2, 3]), Sigset, Buf, Of(&[8, 16])]
    ),
    s!(rt_sigpending, 1, [Buf, Of(&[8, 16])]),
    s!(rt_sigtimedwait, 2, [Sigset, Buf, Ts, Of(&[8])]),
    s!(rt_sigaction, 1, [Sig, Zero, Buf, Of(&[8, 7])]),
    s!(sigaltstack, 1, [Zero, Buf]),
    s!(
        signalfd4,
        1,
        [Of(&[NEG1]), Sigset, Of(&[8]), Nb(&[0x80000])]
    ),
    s!(pidfd_open, 1, [Pid, Of(&[0, 0x800])]),
    s!(pidfd_send_signal, 1, [Fd, Sig, Zero, Zero]),
    // The process and its threads.
    s!(getpid, 3, []),
    s!(getppid, 1, []),
    s!(gettid, 2, []),
    s!(getuid, 1, []),
    s!(geteuid, 1, []),
    s!(getgid, 1, []),
    s!(getegid, 1, []),
    s!(getresuid, 1, [Buf, Buf, Buf]),
    s!(getresgid, 1, [Buf, Buf, Buf]),
    s!(getgroups, 1, [Small, Buf]),
    s!(getpgid, 1, [Pid]),
    s!(getpgrp, 1, []),
    s!(getsid, 1, [Pid]),
    s!(setpgid, 1, [Zero, Zero]),
    s!(setsid, 1, []),
    s!(getpriority, 1, [Of(&[0, 1, 2]), Zero]),
    s!(setpriority, 1, [Of(&[0]), Zero, Of(&[0, 5, 19])]),
    s!(getrlimit, 1, [Small, Buf]),
    s!(prlimit64, 1, [Zero, Small, Zero, Buf]),
    s!(getrusage, 1, [Of(&[0, NEG1 | !0xffff_ffff, 1, 9]), Buf]),
    s!(sysinfo, 1, [Buf]),
    s!(uname, 1, [Buf]),
    s!(getcpu, 1, [Buf, Buf, Zero]),
    s!(sched_yield, 2, []),
    s!(sched_getaffinity, 1, [Tid, Of(&[8, 128, 3]), Buf]),
    s!(sched_setaffinity, 1, [Tid, Of(&[8]), CpuMask]),
    s!(sched_getscheduler, 1, [Tid]),
    s!(
        sched_setscheduler,
        1,
        [Tid, Of(&[0, 3, 5, 0x4000_0000]), SchedParam]
    ),
    s!(sched_getparam, 1, [Tid, Buf]),
    s!(sched_get_priority_max, 1, [Small]),
    s!(sched_getattr, 1, [Tid, Buf, Of(&[48, 56, 4096]), Zero]),
    s!(ioprio_get, 1, [Of(&[1, 2]), Zero]),
    s!(
        ioprio_set,
        1,
        [Of(&[1]), Zero, Of(&[0x4004, 0x6000, 0x2007])]
    ),
    s!(getrandom, 1, [Buf, Len, Bits(&[1, 2, 4])]),
    s!(capget, 1, [CapHdr, Buf]),
    s!(capset, 1, [CapHdr, RBuf]),
    s!(prctl, 2, [Of(PRCTL), FcntlArg, Zero, Zero, Zero]),
    s!(
        setresuid,
        1,
        [Of(&[NEG1, 0]), Of(&[NEG1, 0]), Of(&[NEG1, 0])]
    ),
    s!(
        setresgid,
        1,
        [Of(&[NEG1, 0]), Of(&[NEG1, 0]), Of(&[NEG1, 0])]
    ),
    s!(setfsuid, 1, [Of(&[0, NEG1])]),
    s!(setgroups, 1, [Of(&[0, 1 << 20]), RBuf]),
    s!(unshare, 1, [Bits(UNSHARE)]),
    s!(
        kcmp,
        1,
        [Pid, Pid, Of(&[0, 1, 2, 3, 4, 5, 6, 7, 8]), Fd, Fd]
    ),
    s!(membarrier, 1, [Of(&[0, 8, 16, 1 << 10]), Zero, Zero]),
    s!(get_robust_list, 1, [Tid, Buf, Buf]),
    s!(umem_add, 20, [Counter, Inc]),
    // Refused in atoms (v3-abi B.8): the result must be -EINVAL.
    refused!("exit", 60, [Small]),
    refused!("fork", 57, []),
    refused!("vfork", 58, []),
    refused!("clone", 56, [Of(&[0x11]), Zero, Zero, Zero, Zero]),
    refused!("clone3", 435, [RBuf, Of(&[88])]),
    refused!("execve", 59, [Path, Zero, Zero]),
    refused!("execveat", 322, [Dirfd, Path, Zero, Zero, Zero]),
    refused!("rt_sigreturn", 15, []),
    refused!("restart_syscall", 219, []),
    refused!("async_exec", 500, [Zero, Zero]),
    refused!("async_wait", 502, [Zero, Zero, Zero]),
    refused!("async_thread", 503, []),
    refused!("threadlet_on", 504, [Zero, Zero, Zero]),
    refused!("threadlet_off", 505, []),
    // Unknown numbers: -ENOSYS.
    Sys {
        name: "nr_506",
        nr: 506,
        args: &[Any, Any],
        weight: 1,
        refused: false,
    },
    Sys {
        name: "nr_x32_getpid",
        nr: 0x4000_0000 | 39,
        args: &[],
        weight: 1,
        refused: false,
    },
    Sys {
        name: "nr_huge",
        nr: u64::MAX,
        args: &[Any],
        weight: 1,
        refused: false,
    },
];

/// Left out of the table, with the reason (printed by `--list`).
pub static EXCLUDED: &[(&str, &str)] = &[
    ("reboot, kexec_load, kexec_file_load", "would end or replace the guest"),
    ("exit_group", "ends the fuzzing process; only in forked children"),
    ("kill(-1, ..), kill(1, ..), signals to the supervisor", "the Pid generator never makes -1, 1 or the supervisor's pid"),
    ("SIGKILL, SIGSTOP, SIGSEGV, SIGABRT, ... to itself", "only handled signals are sent from atoms (stops come from the supervisor)"),
    ("pause, rt_sigsuspend", "never return once in a cachemiss thread (syslet.rst): every async one would be 'lost'"),
    ("nanosleep, poll, futex, ... with long or NULL timeouts", "blocking atoms are bounded (<= 20 ms) so that async syslets complete"),
    ("brk (other than through malloc), arch_prctl(SET_FS), set_tid_address, set_robust_list, rseq", "would corrupt the fuzzer's own heap, TLS or thread exit"),
    ("mmap/munmap/mremap/mprotect/madvise outside the victim region", "addresses are drawn from a region reserved for them"),
    ("pkey_free(0)", "frees the default key: a later pkey_alloc(0, DISABLE_ACCESS) or PROT_EXEC mprotect hands key 0 out with access denied, and the thread faults on its own stack (SEGV_PKUERR)"),
    ("blocking descriptors made by atoms; F_SETFL or FIONBIO clearing O_NONBLOCK", "an atom blocked on a descriptor the waker does not feed (or one closed under it) waits for good: atoms make descriptors non-blocking and F_SETFL keeps O_NONBLOCK"),
    ("MSG_WAITALL", "with MSG_PEEK, a recv on a unix stream socket waits for more bytes than fit in its queue of one-byte messages: for good"),
    ("process_vm_writev, /proc/self/mem", "writes into the fuzzer's own memory"),
    ("ptrace, seccomp (as atoms)", "PTRACE_TRACEME or a strict filter stops or kills the fuzzer; seccomp is raced in children instead"),
    ("userfaultfd", "faults on registered ranges wait forever"),
    ("chroot, pivot_root, mount, umount2, swapon, swapoff, quotactl", "change or damage the guest's file systems"),
    ("syslog", "SYSLOG_ACTION_CONSOLE_OFF would hide the splats the harness looks for"),
    ("vhangup, ioctl on the console", "the console carries the results; fds 0-2 are never used"),
    ("settimeofday, clock_settime, adjtimex, clock_adjtime", "would break every timeout of the run"),
    ("iopl, ioperm", "port I/O; also init's isa-debug-exit"),
    ("init_module, finit_module, delete_module, bpf, perf_event_open", "not in scope; large and slow under TCG"),
    ("setuid/setresuid/capset to other users (as atoms)", "only no-op values in atoms; privilege drops are raced in children"),
    ("prctl(PR_SET_SECCOMP, PR_SET_TIMERSLACK, PR_SET_MM, ...)", "kill the fuzzer or make every sleep unbounded"),
    ("fcntl F_SETLEASE, F_OFD_SETLKW; flock without LOCK_NB", "a lease break or an OFD lock in the same process blocks for 45 s or forever"),
    ("setsockopt SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, SO_RCVBUFFORCE", "would make fixture sockets block forever or overflow the scratch buffer"),
    ("msgrcv, semop, mq_timedreceive, io_uring_*", "not yet: SysV IPC and io_uring have no fixtures yet"),
    ("fork, vfork, clone, clone3, execve, execveat, exit, ...", "in the table, but as refused calls whose result is checked (-EINVAL)"),
];

/// The sum of the weights.
pub fn total_weight() -> u64 {
    TABLE.iter().map(|s| u64::from(s.weight)).sum()
}

/// A table entry chosen by weight from a number in `0..total_weight()`.
pub fn by_weight(mut x: u64) -> &'static Sys {
    for s in TABLE {
        let w = u64::from(s.weight);
        if x < w {
            return s;
        }
        x -= w;
    }
    &TABLE[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_100_real_calls() {
        let real = TABLE.iter().filter(|s| !s.refused && s.nr < 500).count();
        assert!(real >= 100, "{real} real system calls");
        for s in TABLE {
            assert!(s.args.len() <= 6, "{}", s.name);
        }
    }
}
