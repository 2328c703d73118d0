//! What Rust's std does not offer and the spec needs: epoll, poll, SO_LINGER, a listen backlog of our
//! choosing, signal handlers, the open-file limit. Straight from glibc (std links it anyway), Linux only,
//! no crates. No protocol logic here.

use std::io;
use std::os::raw::{c_int, c_short, c_ulong, c_void};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

pub const EPOLLIN: u32 = 0x001;
pub const EPOLLOUT: u32 = 0x004;
pub const EPOLLERR: u32 = 0x008;
pub const EPOLLHUP: u32 = 0x010;
const EPOLL_CTL_ADD: c_int = 1;
const EPOLL_CTL_DEL: c_int = 2;
const EPOLL_CTL_MOD: c_int = 3;
const EPOLL_CLOEXEC: c_int = 0o2_000_000;

pub const POLLIN: c_short = 0x001;
pub const POLLOUT: c_short = 0x004;
pub const POLLERR: c_short = 0x008;
pub const POLLHUP: c_short = 0x010;

const SOL_SOCKET: c_int = 1;
const SO_LINGER: c_int = 13;
const RLIMIT_NOFILE: c_int = 7;
const O_NONBLOCK: c_int = 0o4000;
const O_CLOEXEC: c_int = 0o2_000_000;
pub const SIGHUP: c_int = 1;
pub const SIGINT: c_int = 2;
pub const SIGTERM: c_int = 15;
const SIG_IGN: usize = 1;
const SIGSET_WORDS: usize = 1024 / (8 * std::mem::size_of::<c_ulong>()); // glibc's sigset_t: 1024 bits

/// struct epoll_event: packed on x86_64 only (as glibc declares it).
#[cfg_attr(target_arch = "x86_64", repr(C, packed))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C))]
#[derive(Clone, Copy)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

#[repr(C)]
pub struct PollFd {
    pub fd: c_int,
    pub events: c_short,
    pub revents: c_short,
}

#[repr(C)]
struct Linger {
    onoff: c_int,
    linger: c_int,
}

/// glibc's struct sigaction (not the kernel's), as every architecture but MIPS lays it out.
#[repr(C)]
struct SigAction {
    handler: usize,
    mask: [c_ulong; SIGSET_WORDS],
    flags: c_int,
    restorer: usize,
}

#[repr(C)]
struct Rlimit {
    current: u64,
    maximum: u64,
}

extern "C" {
    fn epoll_create1(flags: c_int) -> c_int;
    fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut EpollEvent) -> c_int;
    fn epoll_wait(epfd: c_int, events: *mut EpollEvent, maxevents: c_int, timeout: c_int) -> c_int;
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn getrlimit(resource: c_int, limit: *mut Rlimit) -> c_int;
    fn setrlimit(resource: c_int, limit: *const Rlimit) -> c_int;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn signal(signum: c_int, handler: usize) -> usize;
    fn sigaction(signum: c_int, action: *const SigAction, old: *mut SigAction) -> c_int;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
    fn close(fd: c_int) -> c_int;
}

fn check(result: c_int) -> io::Result<c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// An epoll instance (level-triggered), closed on drop.
pub struct Epoll(RawFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        check(unsafe { epoll_create1(EPOLL_CLOEXEC) }).map(Epoll)
    }

    fn control(&self, op: c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = EpollEvent { events, data };
        check(unsafe { epoll_ctl(self.0, op, fd, &mut event) }).map(drop)
    }

    pub fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.control(EPOLL_CTL_ADD, fd, events, data)
    }

    pub fn modify(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.control(EPOLL_CTL_MOD, fd, events, data)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.control(EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Wait up to `timeout_ms` (-1: no limit); EINTR is an empty wait.
    pub fn wait(&self, events: &mut [EpollEvent], timeout_ms: c_int) -> io::Result<usize> {
        let count = unsafe { epoll_wait(self.0, events.as_mut_ptr(), events.len() as c_int, timeout_ms) };
        match check(count) {
            Ok(count) => Ok(count as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        unsafe { close(self.0) };
    }
}

/// poll(2) on `fds` for up to `timeout_ms` (-1: no limit); EINTR is retried by the caller as an empty wait.
pub fn poll_fds(fds: &mut [PollFd], timeout_ms: c_int) -> io::Result<usize> {
    check(unsafe { poll(fds.as_mut_ptr(), fds.len() as c_ulong, timeout_ms) }).map(|n| n as usize)
}

/// one read or write of `fd` (`attempt`) as if `fd` blocked, whatever O_NONBLOCK another process set on
/// its open file description: "would block" waits in poll(2) for `events` (no busy loop), then tries again, and
/// so does EINTR. Every other result, errors included, is the caller's.
pub fn as_blocking<T>(fd: RawFd, events: c_short, mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Ready, or an error or hang-up that the next attempt reports: either way, try again.
                match poll_fds(&mut [PollFd { fd, events, revents: 0 }], -1) {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
                    _ => {}
                }
            }
            result => return result,
        }
    }
}

/// SO_LINGER with a zero timeout: closing the socket then sends a reset (S-2, S-3, S-4).
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let value = Linger { onoff: 1, linger: 0 };
    let size = std::mem::size_of::<Linger>() as u32;
    check(unsafe { setsockopt(fd, SOL_SOCKET, SO_LINGER, &value as *const Linger as *const c_void, size) }).map(drop)
}

/// listen(2) again on a listening socket: Linux takes the new backlog (std binds with its own, S-12 says 1024).
pub fn set_backlog(fd: RawFd, backlog: c_int) -> io::Result<()> {
    check(unsafe { listen(fd, backlog) }).map(drop)
}

/// Lift the soft limit on open files to the hard one: thousands of connections need it.
pub fn raise_open_file_limit() {
    let mut limit = Rlimit { current: 0, maximum: 0 };
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut limit) } == 0 && limit.current < limit.maximum {
        limit.current = limit.maximum;
        unsafe { setrlimit(RLIMIT_NOFILE, &limit) };
    }
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_signum: c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        unsafe { write(fd, &byte as *const u8 as *const c_void, 1) }; // async-signal-safe; full pipe: one is enough
    }
}

/// Whether `signum` was ignored when the process started (exec keeps "ignored", nothing else).
fn ignored(signum: c_int) -> bool {
    let mut current = SigAction { handler: 0, mask: [0; SIGSET_WORDS], flags: 0, restorer: 0 };
    let found = unsafe { sigaction(signum, std::ptr::null(), &mut current) } == 0;
    found && current.handler == SIG_IGN
}

/// SIGTERM, SIGINT and SIGHUP as a readable, non-blocking file descriptor (a self-pipe): returns its read end.
/// A handler replaces whatever disposition was inherited, also "ignored" (a background job's SIGINT); only an
/// ignored SIGHUP stays ignored, as nohup leaves it for a server meant to outlive its terminal (S-4).
pub fn signal_pipe() -> io::Result<RawFd> {
    let mut fds = [-1 as c_int; 2];
    check(unsafe { pipe2(fds.as_mut_ptr(), O_NONBLOCK | O_CLOEXEC) })?;
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    for signum in [SIGTERM, SIGINT, SIGHUP] {
        if signum == SIGHUP && ignored(SIGHUP) {
            continue;
        }
        unsafe { signal(signum, on_signal as extern "C" fn(c_int) as usize) };
    }
    Ok(fds[0])
}

/// Empty the self-pipe; true when a signal had arrived.
pub fn drain_pipe(fd: RawFd) -> bool {
    let mut buffer = [0u8; 64];
    let mut any = false;
    while unsafe { read(fd, buffer.as_mut_ptr() as *mut c_void, buffer.len()) } > 0 {
        any = true;
    }
    any
}
