//! The exec agent: the main process of the docker backend's standing client containers. It runs each
//! client command the harness sends it, as `docker exec -i` would, at a fraction of the cost: an exec
//! costs the engine and runc about 85 ms of CPU, a fork and exec here about a millisecond.
//!
//! Usage: `upper-echo-exec-agent PORT [ADDRESS]` with the session's token in UPPER_ECHO_AGENT_TOKEN; it
//! listens on ADDRESS (default all: the container's own network) and says so in one line on stdout.
//!
//! One TCP connection per command. The harness sends a 4-byte big-endian length and that many bytes of
//! NUL-separated fields: the session token, the argument count, the arguments, then `NAME=value`
//! environment overrides. What follows is the command's stdin, until the harness half-closes. The agent
//! answers in Docker's attach framing (1 byte stream, 3 zero bytes, 4-byte big-endian size, data):
//! stream 1 is stdout, 2 is stderr, and a last frame of stream 3 holds the exit status as a 4-byte
//! big-endian integer, as Docker reports it: the exit code, or 128 + the signal that killed the process.
//!
//! The command inherits the container's environment (minus the token), working directory and user, and
//! starts with no signal ignored and an empty signal mask, in a process group of its own. A harness that
//! gives up on a command resets the connection: the agent then kills that group, so nothing it started
//! runs on.
use std::env;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{self, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

const TOKEN_VARIABLE: &str = "UPPER_ECHO_AGENT_TOKEN";
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const EXIT: u8 = 3;
const HEADER_LIMIT: usize = 16 * 1024 * 1024;

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn setpgid(pid: i32, pgid: i32) -> i32;
    fn kill(pid: i32, signum: i32) -> i32;
    fn poll(fds: *mut PollFd, count: u64, timeout_ms: i32) -> i32;
    fn waitid(id_type: i32, id: u32, info: *mut u8, options: i32) -> i32;
}

const SIGKILL: i32 = 9;
const SIGPIPE: i32 = 13;
const SIG_DFL: usize = 0;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;
const P_PID: i32 = 1;
const WEXITED: i32 = 4;
const WNOWAIT: i32 = 0x0100_0000;
const SIGINFO_SIZE: usize = 128;

fn main() {
    // A command inherits ignored signals across exec: start each as docker exec does, with none ignored.
    // (std's Command itself resets SIGPIPE, which Rust's runtime ignores in the agent.)
    for signum in 1..32 {
        if signum != SIGPIPE {
            unsafe { signal(signum, SIG_DFL) }; // SIGKILL and SIGSTOP refuse, harmlessly
        }
    }
    let token = env::var(TOKEN_VARIABLE).unwrap_or_default();
    env::remove_var(TOKEN_VARIABLE);
    let port = env::args().nth(1).and_then(|p| p.parse::<u16>().ok());
    let address = env::args().nth(2).unwrap_or_else(|| "0.0.0.0".to_string());
    let port = match (port, token.is_empty()) {
        (Some(port), false) => port,
        _ => {
            fail(&format!("usage: upper-echo-exec-agent PORT [ADDRESS], with the session token in {}", TOKEN_VARIABLE))
        }
    };
    let listener =
        TcpListener::bind((address.as_str(), port)).unwrap_or_else(|e| fail(&format!("cannot listen: {}", e)));
    // One line when ready, with the port (PORT 0: the kernel's choice).
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("upper-echo-exec-agent listening on port {}", bound);
    let _ = io::stdout().flush();
    for connection in listener.incoming().flatten() {
        let token = token.clone();
        thread::spawn(move || serve(connection, &token));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {}", message);
    process::exit(1);
}

/// One command: read the request, run it, stream its output back, then its exit status.
fn serve(mut connection: TcpStream, token: &str) {
    let request = match read_request(&mut connection) {
        Ok(request) => request,
        Err(_) => return, // not the harness, or a harness that went away: nothing to answer
    };
    if request.token != token || request.argv.is_empty() {
        return;
    }
    let output = Arc::new(Mutex::new(connection.try_clone().expect("a socket clone")));
    let mut command = Command::new(&request.argv[0]);
    command
        .args(&request.argv[1..])
        .envs(request.env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, for kill_on_reset (Command::process_group needs a newer Rust than bookworm's).
    unsafe {
        command.pre_exec(|| if setpgid(0, 0) == 0 { Ok(()) } else { Err(io::Error::last_os_error()) });
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // As docker exec: exit 127 for a command that is not there, 126 for one that cannot run.
            let status = if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 };
            let message = format!("cannot run {}: {}\n", request.argv[0], e);
            let _ = send_frame(&output, STDERR, message.as_bytes());
            finish(&output, status);
            return;
        }
    };
    let stdin = child.stdin.take().expect("a piped stdin");
    let waited = Arc::new(Mutex::new(false));
    let watched = connection.try_clone().expect("a socket clone");
    let group = child.id() as i32;
    let waited_for_watcher = Arc::clone(&waited);
    thread::spawn(move || kill_on_reset(watched, group, waited_for_watcher));
    thread::spawn(move || copy_stdin(connection, stdin));
    let readers = [
        forward(child.stdout.take().expect("a piped stdout"), STDOUT, &output),
        forward(child.stderr.take().expect("a piped stderr"), STDERR, &output),
    ];
    for reader in readers {
        let _ = reader.join();
    }
    wait_until_exited(group);
    *waited.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
    let status = match child.wait() {
        Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(_) => 255,
    };
    finish(&output, status);
}

/// Returns once the process has exited, leaving it a zombie (waitid's WNOWAIT): its id, and so its group's,
/// stays reserved until child.wait() reaps it.
fn wait_until_exited(pid: i32) {
    let mut info = [0u8; SIGINFO_SIZE];
    while unsafe { waitid(P_PID, pid as u32, info.as_mut_ptr(), WEXITED | WNOWAIT) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return; // not our child any more: child.wait() says what happened
        }
    }
}

/// Waits for the connection to end. A reset or a hang-up before the command has exited means that the harness
/// gave up on it (a timeout): kill its whole process group. Until `waited` is set the group's leader has not
/// been reaped, so its id cannot name anyone else's group.
fn kill_on_reset(connection: TcpStream, group: i32, waited: Arc<Mutex<bool>>) {
    let mut watch = PollFd { fd: connection.as_raw_fd(), events: 0, revents: 0 };
    loop {
        let ready = unsafe { poll(&mut watch, 1, -1) };
        if ready > 0 && watch.revents & (POLLERR | POLLHUP) != 0 {
            break;
        }
        if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
    let waited = waited.lock().unwrap_or_else(|poisoned| poisoned.into_inner()); // held across the kill
    if !*waited {
        unsafe { kill(-group, SIGKILL) };
    }
}

/// A thread that sends what the command writes to `pipe` as frames of `stream`, until the pipe's end.
fn forward(mut pipe: impl Read + Send + 'static, stream: u8, output: &Arc<Mutex<TcpStream>>) -> thread::JoinHandle<()> {
    let output = Arc::clone(output);
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    // The harness went away: keep reading, so the command never blocks on a full pipe.
                    let _ = send_frame(&output, stream, &buffer[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

struct Request {
    token: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

fn read_request(connection: &mut TcpStream) -> io::Result<Request> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut length = [0u8; 4];
    connection.read_exact(&mut length)?;
    let length = u32::from_be_bytes(length) as usize;
    if length > HEADER_LIMIT {
        return Err(invalid("request too long"));
    }
    let mut header = vec![0u8; length];
    connection.read_exact(&mut header)?;
    let header = String::from_utf8(header).map_err(|_| invalid("request not UTF-8"))?;
    let mut fields = header.split('\0');
    let token = fields.next().unwrap_or_default().to_string();
    let count: usize = fields.next().and_then(|c| c.parse().ok()).ok_or_else(|| invalid("no argument count"))?;
    let argv: Vec<String> = fields.by_ref().take(count).map(str::to_string).collect();
    if argv.len() != count {
        return Err(invalid("fewer arguments than counted"));
    }
    let mut env = Vec::new();
    for assignment in fields {
        let (name, value) = assignment.split_once('=').ok_or_else(|| invalid("an environment entry without ="))?;
        env.push((name.to_string(), value.to_string()));
    }
    Ok(Request { token, argv, env })
}

/// The rest of the connection into the command's stdin, closed at the harness's half-close. When the
/// command stops reading, the rest is read and dropped, so the harness's send never blocks.
fn copy_stdin(mut input: TcpStream, stdin: ChildStdin) {
    let mut stdin = Some(stdin);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(pipe) = stdin.as_mut() {
            if pipe.write_all(&buffer[..n]).is_err() {
                stdin = None;
            }
        }
    }
}

fn send_frame(output: &Mutex<TcpStream>, stream: u8, data: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&[stream, 0, 0, 0]);
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(data);
    output.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).write_all(&frame)
}

/// The exit status frame, then a half-close: the harness reads to the end, and then closes.
fn finish(output: &Mutex<TcpStream>, status: i32) {
    let _ = send_frame(output, EXIT, &status.to_be_bytes());
    let _ = output.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).shutdown(Shutdown::Write);
}
