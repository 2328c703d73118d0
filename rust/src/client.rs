//! The client (spec section 6): MESSAGEs or stdin to the socket, the socket to stdout.
//!
//! One thread and one poll() loop over the socket and stdin: neither direction can block the other (C-3),
//! and every socket error is seen in the order the kernel reports it, by the one thread that does all the
//! socket I/O. That order is what C-7 needs: after a reset, Linux reports the error to the first send() or
//! recv() that asks, and a later recv() sees only end of stream. So a send that fails ends the session
//! (exit 4) before any recv() can mistake the reset for the server's FIN; and when the socket is readable
//! it is read first, so a FIN already there is seen before a later send could fail.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use crate::cli::ClientOptions;
use crate::quirks::{self, PollFd, POLLERR, POLLHUP, POLLIN, POLLOUT};
use crate::server::describe;

const CHUNK: usize = 64 * 1024;
const STDIN: i32 = 0;

pub enum Failure {
    /// No connection made: refused, unknown host, unreachable, connect timeout, an unspecified address: exit 3.
    CannotConnect(String),
    /// Reset (also during the connect), broken pipe, or silence after the half-close (C-5, C-6, C-7): exit 4.
    Broke(String),
    /// stdout failed: exit 1.
    Stdout(String),
    /// stdin could not be read (C-8), and the connection was reset: exit 1.
    Stdin(String),
}

fn connect(options: &ClientOptions) -> Result<TcpStream, Failure> {
    let host = &options.host;
    let shown =
        if host.contains(':') { format!("[{}]:{}", host, options.port) } else { format!("{}:{}", host, options.port) };
    let cannot = |why: String| Failure::CannotConnect(format!("cannot connect to {}: {}", shown, why));
    let address = match (host.as_str(), options.port).to_socket_addrs() {
        Ok(mut addresses) => addresses.next().ok_or_else(|| cannot("the name has no address".into()))?,
        Err(e) => return Err(cannot(describe(&e))),
    };
    // C-6: Linux would take 0.0.0.0, :: or ::ffff:0.0.0.0 for this host; other systems refuse them
    let unspecified = match address.ip() {
        IpAddr::V4(ip) => ip.is_unspecified(),
        IpAddr::V6(ip) => ip.is_unspecified() || ip.to_ipv4_mapped().map_or(false, |mapped| mapped.is_unspecified()),
    };
    if unspecified {
        return Err(cannot(format!("{} is an unspecified address, which names no peer", address.ip())));
    }
    TcpStream::connect_timeout(&address, Duration::from_millis(options.timeout_ms)).map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut => cannot(format!("no connection within {} s", options.timeout_ms as f64 / 1000.0)),
        // C-6: the server accepted, then reset before the connect was seen to complete (an S-3 rejection)
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => broke(&e),
        _ => cannot(describe(&e)),
    })
}

fn broke(error: &io::Error) -> Failure {
    Failure::Broke(format!("connection broke: {}", describe(error)))
}

/// C-2, C-3: each MESSAGE plus LF, or stdin when there are none; the reply goes to `write`.
pub fn run(options: &ClientOptions, write: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> Result<(), Failure> {
    let stream = connect(options)?;
    stream.set_nonblocking(true).map_err(|e| broke(&e))?;
    let mut pending: Vec<u8> = match &options.messages {
        Some(messages) => messages.iter().flat_map(|m| m.iter().copied().chain(std::iter::once(b'\n'))).collect(),
        None => Vec::new(),
    };
    let mut pending_from = 0;
    let mut reading_stdin = options.messages.is_none();
    let mut sending = true;
    let mut buffer = vec![0u8; CHUNK];
    let timeout_ms = options.timeout_ms.min(i32::MAX as u64) as i32;
    loop {
        let unsent = pending_from < pending.len();
        if sending && !unsent && !reading_stdin {
            let _ = stream.shutdown(Shutdown::Write); // a reset that makes this fail is reported by the next recv
            sending = false;
        }
        let mut fds = [
            PollFd { fd: stream.as_raw_fd(), events: POLLIN | if unsent { POLLOUT } else { 0 }, revents: 0 },
            PollFd { fd: STDIN, events: POLLIN, revents: 0 },
        ];
        let watched = if reading_stdin && !unsent { 2 } else { 1 };
        let ready = match quirks::poll_fds(&mut fds[..watched], if sending { -1 } else { timeout_ms }) {
            Ok(ready) => ready,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(broke(&e)),
        };
        if ready == 0 {
            return Err(Failure::Broke(format!(
                "no data from the server for {} s after sending everything",
                options.timeout_ms as f64 / 1000.0
            )));
        }
        let socket_events = fds[0].revents;
        if socket_events & (POLLIN | POLLHUP | POLLERR) != 0 {
            // First: a FIN already read ends the session before any later send can fail (C-7).
            match (&stream).read(&mut buffer) {
                Ok(0) => return Ok(()), // the server's orderly close: stop sending whatever is left
                Ok(count) => write(&buffer[..count])
                    .map_err(|e| Failure::Stdout(format!("cannot write to stdout: {}", describe(&e))))?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(broke(&e)),
            }
        }
        if unsent && socket_events & (POLLOUT | POLLERR | POLLHUP) != 0 {
            match (&stream).write(&pending[pending_from..]) {
                Ok(count) => pending_from += count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(broke(&e)), // C-7: a reset (or broken pipe) seen while sending counts too
            }
            if pending_from == pending.len() {
                pending.clear();
                pending_from = 0;
            }
        } else if watched == 2 && fds[1].revents != 0 {
            pending.resize(CHUNK, 0);
            match crate::raw_fd(STDIN).read(&mut pending) {
                Ok(count) => {
                    pending.truncate(count);
                    reading_stdin = count > 0;
                }
                // a non-blocking stdin that another reader emptied first is not yet input: poll again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock => {
                    pending.clear()
                }
                Err(e) => {
                    // C-8: not the end of input. The stream closes with a reset, never a half-close, so the
                    // server cannot take what it got for the whole input.
                    let _ = quirks::set_linger_zero(stream.as_raw_fd());
                    return Err(Failure::Stdin(format!("cannot read stdin: {}", describe(&e))));
                }
            }
            pending_from = 0;
        }
    }
}
