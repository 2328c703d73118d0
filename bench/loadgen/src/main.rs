//! The bench's load generator (bench/README.md). Std only: epoll is called straight from glibc,
//! which std already links, so the build needs no crates and no network.
//!
//!   loadgen pingpong --addr A --conns N --seconds S [--warmup S] [--size 64] [--identity]
//!   loadgen stream   --addr A --input FILE --expected FILE --bytes N
//!   loadgen hold     --addr A --conns N --seconds S [--settle S] [--interval-ms 100] [--window 200] [--identity]
//!   loadgen connect  --addr A --seconds S [--threads 2] [--identity]
//!
//! Every command prints one JSON object per line on stdout. `--identity` expects the bytes back
//! unchanged (the echo baseline) instead of uppercased ASCII. `hold` prints a `held` line once every
//! connection is open and answered, a `probed` line when probing is over, then waits for a line on
//! stdin before it closes the connections, so that the caller can read the server's RSS meanwhile.
use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod epoll {
    use std::io;

    pub const EPOLLIN: u32 = 0x001;
    pub const EPOLLRDHUP: u32 = 0x2000;
    const EPOLL_CTL_ADD: i32 = 1;
    const EPOLL_CTL_DEL: i32 = 2;
    const EPOLL_CLOEXEC: i32 = 0o2000000;

    #[cfg_attr(target_arch = "x86_64", repr(C, packed))]
    #[cfg_attr(not(target_arch = "x86_64"), repr(C))]
    #[derive(Clone, Copy)]
    pub struct Event {
        pub events: u32,
        pub data: u64,
    }

    extern "C" {
        fn epoll_create1(flags: i32) -> i32;
        fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: *mut Event) -> i32;
        fn epoll_wait(epfd: i32, events: *mut Event, maxevents: i32, timeout: i32) -> i32;
        fn close(fd: i32) -> i32;
    }

    pub struct Epoll {
        fd: i32,
        pub events: Vec<Event>,
    }

    impl Epoll {
        pub fn new() -> io::Result<Epoll> {
            let fd = unsafe { epoll_create1(EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Epoll { fd, events: vec![Event { events: 0, data: 0 }; 1024] })
        }

        pub fn add(&self, fd: i32, token: u64, events: u32) -> io::Result<()> {
            let mut event = Event { events, data: token };
            if unsafe { epoll_ctl(self.fd, EPOLL_CTL_ADD, fd, &mut event) } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        pub fn delete(&self, fd: i32) {
            let mut event = Event { events: 0, data: 0 };
            unsafe { epoll_ctl(self.fd, EPOLL_CTL_DEL, fd, &mut event) };
        }

        /// Waits up to `timeout_ms`; returns how many of `self.events` are filled.
        pub fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
            loop {
                let n = unsafe { epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as i32, timeout_ms) };
                if n >= 0 {
                    return Ok(n as usize);
                }
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }

    impl Drop for Epoll {
        fn drop(&mut self) {
            unsafe { close(self.fd) };
        }
    }
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// CPU seconds (user + system) this process has used so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm)": state is fields[0]; utime and stime are stat fields 14 and 15.
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let hz = unsafe { sysconf(2) }; // _SC_CLK_TCK
    ticks / if hz > 0 { hz as f64 } else { 100.0 }
}

struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    fn parse(raw: &[String]) -> Args {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let key = raw[i].trim_start_matches("--").to_string();
            if key == "identity" {
                flags.push(key);
                i += 1;
            } else if i + 1 < raw.len() {
                values.insert(key, raw[i + 1].clone());
                i += 2;
            } else {
                die(&format!("missing value for {}", raw[i]));
            }
        }
        Args { values, flags }
    }

    fn str(&self, key: &str) -> String {
        self.values.get(key).cloned().unwrap_or_else(|| die(&format!("--{} is required", key)))
    }

    fn num(&self, key: &str, default: f64) -> f64 {
        match self.values.get(key) {
            Some(v) => v.parse().unwrap_or_else(|_| die(&format!("--{}: not a number: {}", key, v))),
            None => default,
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }

    fn addr(&self) -> SocketAddr {
        let text = self.str("addr");
        text.to_socket_addrs().ok().and_then(|mut a| a.next()).unwrap_or_else(|| die(&format!("bad --addr {}", text)))
    }
}

fn die(message: &str) -> ! {
    eprintln!("error: {}", message);
    exit(2)
}

fn upper_ascii(data: &[u8], identity: bool) -> Vec<u8> {
    if identity { data.to_vec() } else { data.to_ascii_uppercase() }
}

/// Percentile (0..1) of sorted nanosecond samples, in microseconds.
fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return -1.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

fn connect(addr: &SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(addr, Duration::from_secs(10))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes all of `data` to a nonblocking socket (small messages: normally one call).
fn write_all_nonblocking(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    let mut offset = 0;
    while offset < data.len() {
        match stream.write(&data[offset..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => offset += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::yield_now(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// N connections, each with one `size`-byte line in flight: send, wait for the whole reply, repeat.
fn pingpong(args: &Args) {
    let addr = args.addr();
    let conns = args.num("conns", 1.0) as usize;
    let seconds = args.num("seconds", 3.0);
    let warmup = args.num("warmup", 0.5);
    let size = (args.num("size", 64.0) as usize).max(2);
    let mut message: Vec<u8> = (0..size - 1).map(|i| b'a' + (i % 26) as u8).collect();
    message.push(b'\n');
    let expected = upper_ascii(&message, args.flag("identity"));

    let mut ep = epoll::Epoll::new().unwrap_or_else(|e| die(&format!("epoll: {}", e)));
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let stream = connect(&addr).unwrap_or_else(|e| die(&format!("connect #{}: {}", i, e)));
        stream.set_nonblocking(true).unwrap();
        ep.add(stream.as_raw_fd(), i as u64, epoll::EPOLLIN).unwrap();
        streams.push(stream);
    }
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(seconds);
    let mut got = vec![0usize; conns];
    let mut sent_at = vec![start; conns];
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 20);
    let (mut errors, mut closed, mut all_requests) = (0u64, 0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..conns {
        sent_at[i] = Instant::now();
        if write_all_nonblocking(&mut streams[i], &message).is_err() {
            errors += 1;
        }
    }
    'run: loop {
        let n = ep.wait(100).unwrap();
        for e in 0..n {
            let i = ep.events[e].data as usize;
            let now = Instant::now();
            if now >= end {
                break 'run;
            }
            let r = match streams[i].read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    ep.delete(streams[i].as_raw_fd());
                    continue;
                }
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => {
                    closed += 1;
                    ep.delete(streams[i].as_raw_fd());
                    continue;
                }
            };
            if got[i] + r > size || buf[..r] != expected[got[i]..got[i] + r] {
                errors += 1;
                got[i] = 0;
                continue;
            }
            got[i] += r;
            if got[i] == size {
                got[i] = 0;
                all_requests += 1;
                if sent_at[i] >= measure_from {
                    latencies.push((now - sent_at[i]).as_nanos() as u64);
                }
                sent_at[i] = Instant::now();
                if write_all_nonblocking(&mut streams[i], &message).is_err() {
                    errors += 1;
                }
            }
        }
        if Instant::now() >= end {
            break;
        }
    }
    let elapsed = seconds;
    let cpu = cpu_seconds() - cpu_start;
    latencies.sort_unstable();
    println!(
        "{{\"requests\": {}, \"seconds\": {:.3}, \"rps\": {:.1}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"p999_us\": {:.1}, \
         \"errors\": {}, \"closed\": {}, \"loadgen_cpu_s\": {:.3}, \"conns\": {}, \"size\": {}, \"all_requests\": {}, \"all_seconds\": {:.3}}}",
        latencies.len(), elapsed, latencies.len() as f64 / elapsed,
        percentile_us(&latencies, 0.50), percentile_us(&latencies, 0.99), percentile_us(&latencies, 0.999),
        errors, closed, cpu, conns, size, all_requests, start.elapsed().as_secs_f64()
    );
}

/// One connection: a writer thread sends `input` repeatedly while this thread reads and compares
/// every byte with `expected` repeated (the input is whole characters, so U(a+b) = U(a)+U(b)).
fn stream(args: &Args) {
    let addr = args.addr();
    let input = std::fs::read(args.str("input")).unwrap_or_else(|e| die(&format!("--input: {}", e)));
    let expected = std::fs::read(args.str("expected")).unwrap_or_else(|e| die(&format!("--expected: {}", e)));
    let total = args.num("bytes", 1073741824.0) as u64;
    let reps = ((total + input.len() as u64 - 1) / input.len() as u64).max(1);
    let stream = connect(&addr).unwrap_or_else(|e| die(&format!("connect: {}", e)));
    let mut writer = stream.try_clone().unwrap();
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let input = Arc::new(input);
    let writer_input = input.clone();
    let sender = thread::spawn(move || -> io::Result<()> {
        for _ in 0..reps {
            writer.write_all(&writer_input)?;
        }
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = stream;
    let mut buf = vec![0u8; 256 * 1024];
    let (mut received, mut offset, mut mismatched) = (0u64, 0usize, 0u64);
    let mut first_mismatch: i64 = -1;
    loop {
        let r = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => die(&format!("read: {}", e)),
        };
        let mut done = 0;
        while done < r {
            let take = (r - done).min(expected.len() - offset);
            if buf[done..done + take] != expected[offset..offset + take] {
                mismatched += 1;
                if first_mismatch < 0 {
                    first_mismatch = (received + done as u64) as i64;
                }
            }
            done += take;
            offset = (offset + take) % expected.len();
        }
        received += r as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent_ok = sender.join().map(|r| r.is_ok()).unwrap_or(false);
    let bytes_in = reps * input.len() as u64;
    let bytes_out = reps * expected.len() as u64;
    let verified = sent_ok && mismatched == 0 && received == bytes_out;
    println!(
        "{{\"bytes_in\": {}, \"bytes_out_expected\": {}, \"bytes_out\": {}, \"seconds\": {:.3}, \"mb_per_s\": {:.1}, \
         \"verified\": {}, \"first_mismatch\": {}, \"loadgen_cpu_s\": {:.3}}}",
        bytes_in, bytes_out, received, elapsed, bytes_in as f64 / elapsed / 1e6, verified, first_mismatch,
        cpu_seconds() - cpu_start
    );
}

struct Held {
    stream: TcpStream,
    got: Vec<u8>,
    alive: bool,
    probe_sent: Option<Instant>,
}

/// Opens N connections (each answers one line first, at most `window` unanswered at a time), then
/// keeps them idle and sends a probe line on one of them every interval; counts dropped connections.
fn hold(args: &Args) {
    let addr = args.addr();
    let conns = args.num("conns", 10000.0) as usize;
    let seconds = args.num("seconds", 10.0);
    let settle = args.num("settle", 1.0);
    let interval = Duration::from_secs_f64(args.num("interval-ms", 100.0) / 1000.0);
    let window = args.num("window", 200.0) as usize;
    let open_limit = Duration::from_secs_f64(args.num("open-limit", 120.0));
    let identity = args.flag("identity");
    let (hello, hello_reply) = (b"hold\n".to_vec(), upper_ascii(b"hold\n", identity));
    let (probe, probe_reply) = (b"ping\n".to_vec(), upper_ascii(b"ping\n", identity));

    let mut ep = epoll::Epoll::new().unwrap_or_else(|e| die(&format!("epoll: {}", e)));
    let mut held: Vec<Held> = Vec::with_capacity(conns);
    let mut buf = vec![0u8; 4096];
    let (mut answered, mut errors, mut dropped) = (0usize, 0u64, 0usize);
    let start = Instant::now();
    let interest = epoll::EPOLLIN | epoll::EPOLLRDHUP;
    // Phase 1: open.
    while answered + dropped < conns {
        while held.len() < conns && held.len() - answered - dropped < window {
            match connect(&addr) {
                Ok(mut stream) => {
                    stream.set_nonblocking(true).unwrap();
                    let token = held.len() as u64;
                    if write_all_nonblocking(&mut stream, &hello).is_err() {
                        errors += 1;
                    }
                    ep.add(stream.as_raw_fd(), token, interest).unwrap();
                    held.push(Held { stream, got: Vec::new(), alive: true, probe_sent: None });
                }
                Err(e) => die(&format!("connect #{} after {:.1} s: {}", held.len(), start.elapsed().as_secs_f64(), e)),
            }
        }
        let n = ep.wait(1000).unwrap();
        for e in 0..n {
            let i = ep.events[e].data as usize;
            let h = &mut held[i];
            match h.stream.read(&mut buf) {
                Ok(0) | Err(_) if h.alive => {
                    // Err(WouldBlock) is spurious: only count a real close or error.
                    let spurious = matches!(h.stream.read(&mut buf), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
                    if !spurious {
                        h.alive = false;
                        dropped += 1;
                        ep.delete(h.stream.as_raw_fd());
                    }
                }
                Ok(r) => {
                    h.got.extend_from_slice(&buf[..r]);
                    if h.got.len() >= hello_reply.len() {
                        if h.got != hello_reply {
                            errors += 1;
                        }
                        h.got.clear();
                        answered += 1;
                    }
                }
                _ => {}
            }
        }
        if start.elapsed() > open_limit {
            die(&format!("opened {} of {} connections in {:?}; giving up", answered, conns, open_limit));
        }
    }
    let open_seconds = start.elapsed().as_secs_f64();
    println!("{{\"event\": \"held\", \"conns\": {}, \"answered\": {}, \"open_seconds\": {:.3}, \"errors\": {}, \"dropped\": {}}}",
             conns, answered, open_seconds, errors, dropped);
    io::stdout().flush().unwrap();

    // Phase 2: settle (idle), then probe every interval on a different connection.
    let probe_from = Instant::now() + Duration::from_secs_f64(settle);
    let probe_until = probe_from + Duration::from_secs_f64(seconds);
    let grace_until = probe_until + Duration::from_secs(2);
    let mut next_probe = probe_from;
    let (mut probes, mut probe_index) = (0usize, 0usize);
    let mut latencies: Vec<u64> = Vec::new();
    let mut outstanding = 0usize;
    loop {
        let now = Instant::now();
        if now >= probe_until && (outstanding == 0 || now >= grace_until) {
            break;
        }
        if now >= next_probe && now < probe_until {
            // Walk the connections with a stride, skipping dead ones and ones with a probe in flight.
            for _ in 0..conns {
                let i = (probe_index * 7919) % conns;
                probe_index += 1;
                if held[i].alive && held[i].probe_sent.is_none() {
                    held[i].probe_sent = Some(Instant::now());
                    if write_all_nonblocking(&mut held[i].stream, &probe).is_err() {
                        errors += 1;
                    }
                    probes += 1;
                    outstanding += 1;
                    break;
                }
            }
            next_probe += interval;
        }
        let wait_ms = if now < probe_until { next_probe.saturating_duration_since(Instant::now()).as_millis() as i32 } else { 50 };
        let n = ep.wait(wait_ms.max(0).min(100)).unwrap();
        for e in 0..n {
            let i = ep.events[e].data as usize;
            let h = &mut held[i];
            if !h.alive {
                continue;
            }
            match h.stream.read(&mut buf) {
                Ok(0) => {
                    h.alive = false;
                    dropped += 1;
                    ep.delete(h.stream.as_raw_fd());
                    if h.probe_sent.take().is_some() {
                        outstanding -= 1;
                    }
                }
                Ok(r) => {
                    let arrived = Instant::now();
                    h.got.extend_from_slice(&buf[..r]);
                    match h.probe_sent {
                        Some(sent) if h.got.len() >= probe_reply.len() => {
                            if h.got != probe_reply {
                                errors += 1;
                            }
                            latencies.push((arrived - sent).as_nanos() as u64);
                            h.got.clear();
                            h.probe_sent = None;
                            outstanding -= 1;
                        }
                        Some(_) => {}
                        None => {
                            errors += 1; // bytes nobody asked for
                            h.got.clear();
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    h.alive = false;
                    dropped += 1;
                    ep.delete(h.stream.as_raw_fd());
                    if h.probe_sent.take().is_some() {
                        outstanding -= 1;
                    }
                }
            }
        }
    }
    latencies.sort_unstable();
    println!(
        "{{\"event\": \"probed\", \"conns\": {}, \"probes\": {}, \"answered\": {}, \"unanswered\": {}, \"p50_us\": {:.1}, \
         \"p99_us\": {:.1}, \"max_us\": {:.1}, \"dropped\": {}, \"errors\": {}, \"open_seconds\": {:.3}}}",
        conns, probes, latencies.len(), outstanding, percentile_us(&latencies, 0.5), percentile_us(&latencies, 0.99),
        percentile_us(&latencies, 1.0), dropped, errors, open_seconds
    );
    io::stdout().flush().unwrap();
    // Keep every connection open until the caller has measured the server.
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    drop(held);
}

/// Connect, one line, half-close, read the answer to EOF, close; `threads` loops at once.
fn connect_rate(args: &Args) {
    let addr = args.addr();
    let seconds = args.num("seconds", 3.0);
    let threads = args.num("threads", 2.0) as usize;
    let expected = upper_ascii(b"ping\n", args.flag("identity"));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (done, errors, expected) = (done.clone(), errors.clone(), expected.clone());
            thread::spawn(move || {
                let mut answer = Vec::with_capacity(16);
                while Instant::now() < until {
                    let ok = (|| -> io::Result<bool> {
                        let mut s = connect(&addr)?;
                        s.set_read_timeout(Some(Duration::from_secs(10)))?;
                        s.write_all(b"ping\n")?;
                        s.shutdown(Shutdown::Write)?;
                        answer.clear();
                        s.read_to_end(&mut answer)?;
                        Ok(answer == expected)
                    })();
                    match ok {
                        Ok(true) => done.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"connections\": {}, \"seconds\": {:.3}, \"per_second\": {:.1}, \"errors\": {}, \"threads\": {}, \"loadgen_cpu_s\": {:.3}}}",
        n, elapsed, n as f64 / elapsed, errors.load(Ordering::Relaxed), threads, cpu_seconds() - cpu_start
    );
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "--help" || argv[0] == "-h" {
        println!("usage: loadgen pingpong|stream|hold|connect --addr HOST:PORT [options] (see bench/README.md)");
        exit(if argv.is_empty() { 2 } else { 0 });
    }
    let args = Args::parse(&argv[1..]);
    match argv[0].as_str() {
        "pingpong" => pingpong(&args),
        "stream" => stream(&args),
        "hold" => hold(&args),
        "connect" => connect_rate(&args),
        other => die(&format!("unknown command {}", other)),
    }
}
