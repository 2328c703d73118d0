//! The server (spec/PROTOCOL.md section 5): one thread, one level-triggered epoll loop.
//!
//! Memory: a connection is a small struct in a slab (its socket, peer, counters, the transducer's at most 3
//! held-back bytes, its last progress time). The 64 KiB read buffer and the output buffer are the loop's,
//! shared by every connection; a connection owns bytes only while its client is not taking the answer
//! (`pending`), and then it is not read from until they are out (D-4, D-5). So an idle connection costs a
//! slab entry and the kernel's socket, nothing more.
//!
//! Time: the loop reads the clock once per wake-up. Idle connections (S-2) are found by a sweep over the
//! slab that runs only when the earliest possible deadline has passed (never more often than 1/8 of the
//! timeout or 100 ms), so thousands of idle connections cost no wake-ups of their own.
//!
//! Shutdown (S-4): SIGTERM/SIGINT/SIGHUP arrive through a self-pipe in the same loop; the listener is closed (new
//! connects are refused), open connections are served until they finish or the drain timeout passes, then
//! the rest are reset (SO_LINGER 0) and logged, and `serve` returns (exit 0).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::cli::ServerOptions;
use crate::quirks::{self, Epoll, EpollEvent, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT};
use crate::table::Table;
use crate::transducer::Transducer;

const READ_BUFFER: usize = 64 * 1024; // D-4
const BACKLOG: i32 = 1024; // S-12
const LISTENER: u64 = u64::MAX;
const SIGNALS: u64 = u64::MAX - 1;
const ACCEPT_PAUSE: Duration = Duration::from_millis(100); // S-10
const DIAGNOSTIC_INTERVAL: Duration = Duration::from_secs(1); // S-10: at most one line a second
const ACCEPTS_PER_WAKEUP: usize = 256;

pub enum Failure {
    /// Cannot listen: exit 1 (S-9).
    CannotListen(String),
    /// Cannot write the readiness line, or the event loop itself failed: exit 1.
    Fatal(String),
}

/// ADDR:PORT as S-6 and S-8 write it: IPv6 in brackets, an IPv4-mapped address (a peer, or `--host ::ffff:a.b.c.d`)
/// as the IPv4 one.
pub fn format_peer(address: &SocketAddr) -> String {
    match address.ip() {
        IpAddr::V4(ip) => format!("{}:{}", ip, address.port()),
        IpAddr::V6(ip) => match ip.octets() {
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => {
                format!("{}:{}", Ipv4Addr::new(a, b, c, d), address.port())
            }
            _ => format!("[{}]:{}", ip, address.port()),
        },
    }
}

/// One line on stderr, in one write (S-6, S-11). A failing stderr is ignored: there is nowhere to say so.
pub fn log(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
    text.push('\n');
    let _ = io::stderr().write_all(text.as_bytes());
}

pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    generation: u32,
    received: u64,
    sent: u64,
    transducer: Transducer,
    /// The answer the client has not taken yet (D-5: no reading while it is not empty).
    pending: Vec<u8>,
    pending_from: usize,
    /// Input has ended (EOF or S-2): close once `pending` is out.
    finishing: bool,
    last_progress: Instant,
}

enum Close {
    Orderly,
    /// SO_LINGER 0: the client sees a reset (S-2 non-reading peer, S-4 after the drain timeout).
    Reset,
    /// The peer reset it, or the socket failed: nothing left to say.
    Gone,
}

struct Server<'a> {
    options: &'a ServerOptions,
    table: &'static Table,
    epoll: Epoll,
    listener: Option<TcpListener>,
    signals: RawFd,
    slots: Vec<Option<Connection>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    open: usize,
    read_buffer: Vec<u8>,
    out: Vec<u8>,
    now: Instant,
    idle: Option<Duration>,
    next_sweep: Option<Instant>,
    accept_paused_until: Option<Instant>,
    last_diagnostic: Option<Instant>,
    diagnostics_left_out: u64,
    drain_deadline: Option<Instant>,
}

fn token(index: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | index as u64
}

fn resource_exhausted(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM (S-10)
    matches!(error.raw_os_error(), Some(24) | Some(23) | Some(105) | Some(12))
}

fn open_listener(host: &str, port: u16) -> Result<TcpListener, Failure> {
    let shown = if host.contains(':') { format!("[{}]:{}", host, port) } else { format!("{}:{}", host, port) };
    let cannot = |error: &io::Error| Failure::CannotListen(format!("cannot listen on {}: {}", shown, describe(error)));
    let address = match (host, port).to_socket_addrs() {
        Ok(mut addresses) => match addresses.next() {
            Some(address) => address,
            None => return Err(cannot(&io::Error::new(io::ErrorKind::NotFound, "the name has no address"))),
        },
        Err(error) => return Err(cannot(&error)),
    };
    let listener = TcpListener::bind(address).map_err(|e| cannot(&e))?; // SO_REUSEADDR, as std sets it
    quirks::set_backlog(listener.as_raw_fd(), BACKLOG).map_err(|e| cannot(&e))?;
    listener.set_nonblocking(true).map_err(|e| cannot(&e))?;
    Ok(listener)
}

/// Serve until SIGTERM, SIGINT or SIGHUP (S-4). `announce` writes the readiness line (S-8) to stdout.
pub fn serve(
    options: &ServerOptions,
    table: &'static Table,
    announce: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), Failure> {
    quirks::raise_open_file_limit();
    let listener = open_listener(&options.host, options.port)?;
    let fatal = |what: &str, error: io::Error| Failure::Fatal(format!("{}: {}", what, describe(&error)));
    let signals = quirks::signal_pipe().map_err(|e| fatal("cannot watch for signals", e))?;
    let epoll = Epoll::new().map_err(|e| fatal("cannot create an epoll instance", e))?;
    epoll.add(listener.as_raw_fd(), EPOLLIN, LISTENER).map_err(|e| fatal("epoll", e))?;
    epoll.add(signals, EPOLLIN, SIGNALS).map_err(|e| fatal("epoll", e))?;
    let local = listener.local_addr().map_err(|e| fatal("cannot read the listening address", e))?;
    let ready = format!("listening on {}\n", format_peer(&local));
    announce(ready.as_bytes()).map_err(|e| Failure::Fatal(format!("cannot write to stdout: {}", describe(&e))))?;
    let mut server = Server {
        options,
        table,
        epoll,
        listener: Some(listener),
        signals,
        slots: Vec::new(),
        generations: Vec::new(),
        free: Vec::new(),
        open: 0,
        read_buffer: vec![0; READ_BUFFER],
        out: Vec::with_capacity(READ_BUFFER * 3 + 3),
        now: Instant::now(),
        idle: if options.idle_timeout_ms == 0 { None } else { Some(Duration::from_millis(options.idle_timeout_ms)) },
        next_sweep: None,
        accept_paused_until: None,
        last_diagnostic: None,
        diagnostics_left_out: 0,
        drain_deadline: None,
    };
    server.run().map_err(|e| fatal("event loop failed", e))
}

impl<'a> Server<'a> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = vec![EpollEvent { events: 0, data: 0 }; 1024];
        loop {
            let count = self.epoll.wait(&mut events, self.wait_ms())?;
            self.now = Instant::now();
            for event in &events[..count] {
                let (flags, data) = (event.events, event.data);
                match data {
                    LISTENER => self.accept(),
                    SIGNALS => {
                        if quirks::drain_pipe(self.signals) {
                            self.stop();
                        }
                    }
                    _ => self.ready(data, flags),
                }
            }
            if let Some(until) = self.accept_paused_until {
                if self.now >= until {
                    self.accept_paused_until = None;
                    if let Some(listener) = &self.listener {
                        self.epoll.modify(listener.as_raw_fd(), EPOLLIN, LISTENER)?;
                    }
                }
            }
            if self.next_sweep.map_or(false, |at| self.now >= at) {
                self.sweep_idle();
            }
            if let Some(deadline) = self.drain_deadline {
                if self.now >= deadline {
                    for index in 0..self.slots.len() {
                        if self.slots[index].is_some() {
                            self.close(index, Close::Reset);
                        }
                    }
                }
                if self.open == 0 {
                    return Ok(());
                }
            }
        }
    }

    /// How long epoll may sleep: until the next timer (sweep, accept pause, drain deadline), or for good.
    fn wait_ms(&self) -> i32 {
        let timers = [self.next_sweep, self.accept_paused_until, self.drain_deadline];
        match timers.iter().flatten().min() {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                let ms = (left.as_micros() + 999) / 1000;
                ms.min(i32::MAX as u128) as i32
            }
        }
    }

    fn diagnostic(&mut self, message: String) {
        if self.last_diagnostic.map_or(false, |at| self.now.duration_since(at) < DIAGNOSTIC_INTERVAL) {
            self.diagnostics_left_out += 1;
            return;
        }
        let left_out = std::mem::replace(&mut self.diagnostics_left_out, 0);
        if left_out > 0 {
            log(&format!("warning: {} ({} more like it left out)", message, left_out));
        } else {
            log(&format!("warning: {}", message));
        }
        self.last_diagnostic = Some(self.now);
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let result = match &self.listener {
                Some(listener) => listener.accept(),
                None => return,
            };
            match result {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // S-10: out of descriptors or memory (or anything else): keep serving, pause accepting.
                    let what =
                        if resource_exhausted(&e) { "accept failed for want of a resource" } else { "accept failed" };
                    self.diagnostic(format!("{}: {}; pausing accepts for 100 ms", what, describe(&e)));
                    self.accept_paused_until = Some(self.now + ACCEPT_PAUSE);
                    if let Some(listener) = &self.listener {
                        let _ = self.epoll.modify(listener.as_raw_fd(), 0, LISTENER);
                    }
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.open >= self.options.max_connections {
            log(&format!("reject peer={}", format_peer(&peer))); // S-3: reset at once, without data
            let _ = quirks::set_linger_zero(stream.as_raw_fd());
            return;
        }
        log(&format!("open peer={}", format_peer(&peer)));
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                self.slots.len() - 1
            }
        };
        self.generations[index] = self.generations[index].wrapping_add(1);
        let generation = self.generations[index];
        let setup = stream
            .set_nonblocking(true)
            .and_then(|_| stream.set_nodelay(true))
            .and_then(|_| self.epoll.add(stream.as_raw_fd(), EPOLLIN, token(index, generation)));
        self.slots[index] = Some(Connection {
            stream,
            peer,
            generation,
            received: 0,
            sent: 0,
            transducer: Transducer::new(self.table),
            pending: Vec::new(),
            pending_from: 0,
            finishing: false,
            last_progress: self.now,
        });
        self.open += 1;
        if let Err(e) = setup {
            self.diagnostic(format!("cannot watch a connection: {}", describe(&e)));
            self.close(index, Close::Gone);
            return;
        }
        if let Some(idle) = self.idle {
            if self.next_sweep.is_none() {
                self.next_sweep = Some(self.now + idle);
            }
        }
    }

    fn ready(&mut self, data: u64, flags: u32) {
        let index = (data & 0xFFFF_FFFF) as usize;
        let generation = (data >> 32) as u32;
        let waiting_to_send = match self.slots.get(index) {
            Some(Some(connection)) if connection.generation == generation => !connection.pending.is_empty(),
            _ => return, // closed earlier in this batch
        };
        if waiting_to_send {
            if flags & (EPOLLOUT | EPOLLERR | EPOLLHUP) != 0 {
                self.flush_pending(index);
            }
        } else {
            self.receive(index);
        }
    }

    fn receive(&mut self, index: usize) {
        let connection = self.slots[index].as_mut().expect("a live slot");
        let result = (&connection.stream).read(&mut self.read_buffer);
        self.out.clear();
        match result {
            Ok(0) => {
                connection.transducer.finish(&mut self.out); // E-1: the held-back tail, unchanged
                connection.finishing = true;
            }
            Ok(count) => {
                connection.received += count as u64;
                connection.last_progress = self.now;
                connection.transducer.feed(&self.read_buffer[..count], &mut self.out);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => return self.close(index, Close::Gone), // S-5: a reset ends this connection only
        }
        self.send_out(index);
    }

    /// Send `self.out` on the connection; keep what the kernel does not take (and stop reading, D-5).
    fn send_out(&mut self, index: usize) {
        let connection = self.slots[index].as_mut().expect("a live slot");
        let mut written = 0;
        while written < self.out.len() {
            match (&connection.stream).write(&self.out[written..]) {
                Ok(count) => {
                    written += count;
                    connection.sent += count as u64;
                    connection.last_progress = self.now;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.close(index, Close::Gone),
            }
        }
        if written < self.out.len() {
            connection.pending.extend_from_slice(&self.out[written..]);
            connection.pending_from = 0;
            let (fd, data) = (connection.stream.as_raw_fd(), token(index, connection.generation));
            if self.epoll.modify(fd, EPOLLOUT, data).is_err() {
                self.close(index, Close::Gone);
            }
        } else if connection.finishing {
            self.close(index, Close::Orderly);
        }
    }

    fn flush_pending(&mut self, index: usize) {
        let connection = self.slots[index].as_mut().expect("a live slot");
        while connection.pending_from < connection.pending.len() {
            match (&connection.stream).write(&connection.pending[connection.pending_from..]) {
                Ok(count) => {
                    connection.pending_from += count;
                    connection.sent += count as u64;
                    connection.last_progress = self.now; // S-2: the client took some of the answer
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.close(index, Close::Gone),
            }
        }
        connection.pending = Vec::new(); // give the memory back: D-4 bounds what an idle connection holds
        connection.pending_from = 0;
        if connection.finishing {
            return self.close(index, Close::Orderly);
        }
        let (fd, data) = (connection.stream.as_raw_fd(), token(index, connection.generation));
        if self.epoll.modify(fd, EPOLLIN, data).is_err() {
            self.close(index, Close::Gone);
        }
    }

    /// S-2: close what made no progress either way for the idle timeout; schedule the next sweep.
    fn sweep_idle(&mut self) {
        let idle = match self.idle {
            Some(idle) => idle,
            None => return,
        };
        let mut earliest: Option<Instant> = None;
        for index in 0..self.slots.len() {
            let (last, waiting) = match &self.slots[index] {
                Some(connection) => (connection.last_progress, !connection.pending.is_empty()),
                None => continue,
            };
            if self.now.duration_since(last) < idle {
                earliest = Some(earliest.map_or(last, |e| e.min(last)));
                continue;
            }
            if waiting {
                self.close(index, Close::Reset); // the client stopped taking the answer
                continue;
            }
            // Nothing waiting: answer the held-back tail (E-2), then an orderly close.
            let connection = self.slots[index].as_mut().expect("a live slot");
            self.out.clear();
            connection.transducer.finish(&mut self.out);
            connection.finishing = true;
            connection.last_progress = self.now; // a client that does not take the tail is reset one timeout on
            self.send_out(index);
            if let Some(Some(connection)) = self.slots.get(index) {
                let last = connection.last_progress;
                earliest = Some(earliest.map_or(last, |e| e.min(last)));
            }
        }
        let granularity = (idle / 8).min(Duration::from_millis(100)).max(Duration::from_millis(1));
        self.next_sweep = earliest.map(|last| (last + idle).max(self.now + granularity));
    }

    /// S-4: stop accepting (the listener closes, so new connects are refused), start the drain clock.
    fn stop(&mut self) {
        if self.drain_deadline.is_some() {
            return;
        }
        if let Some(listener) = self.listener.take() {
            let _ = self.epoll.delete(listener.as_raw_fd());
        }
        self.accept_paused_until = None;
        self.drain_deadline = Some(self.now + Duration::from_millis(self.options.drain_timeout_ms));
    }

    fn close(&mut self, index: usize, how: Close) {
        let connection = match self.slots[index].take() {
            Some(connection) => connection,
            None => return,
        };
        if let Close::Reset = how {
            let _ = quirks::set_linger_zero(connection.stream.as_raw_fd());
        }
        let line =
            format!("close peer={} in={} out={}", format_peer(&connection.peer), connection.received, connection.sent);
        drop(connection); // closing the descriptor also removes it from the epoll set
        log(&line);
        self.free.push(index);
        self.open -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};

    #[test]
    fn peers_are_formatted_as_s6_says() {
        let v4: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(format_peer(&v4), "127.0.0.1:40000");
        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 40000, 0, 3));
        assert_eq!(format_peer(&v6), "[::1]:40000");
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:5".parse().unwrap();
        assert_eq!(format_peer(&mapped), "10.1.2.3:5");
        let full: SocketAddr = "[2001:db8:0:0:1:0:0:1]:7".parse().unwrap();
        assert_eq!(format_peer(&full), "[2001:db8::1:0:0:1]:7");
    }
}
