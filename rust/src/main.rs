//! `upper-echo server | client | transform`: the Rust implementation of spec/PROTOCOL.md.
//!
//! This file owns the process: stdout (unbuffered, every failure an exit 1, X-6), the one `error: ` line
//! on stderr, and the exit codes (S-9, C-6, X-1). server.rs and client.rs return failures; only this exits.
//! Rust ignores SIGPIPE before main, so a closed stdout is an error to report, never a signal; nothing
//! here uses print!, which would panic on it.

mod cli;
mod client;
mod quirks;
mod server;
mod table;
mod transducer;

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::unix::io::FromRawFd;

use cli::Command;
use table::Table;
use transducer::Transducer;

const EXIT_OK: i32 = 0;
const EXIT_FAILURE: i32 = 1; // cannot listen (S-9), cannot write to stdout
const EXIT_USAGE: i32 = 2;
const EXIT_CANNOT_CONNECT: i32 = 3; // C-6
const EXIT_CONNECTION_BROKE: i32 = 4; // C-6

/// A standard descriptor as a File that is never closed.
pub fn raw_fd(fd: i32) -> ManuallyDrop<File> {
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

/// Write everything to file descriptor 1 at once (C-4, S-8: unbuffered, so already flushed); a full
/// non-blocking pipe is waited for, so not write_all, which fails there and loses count of what went.
fn write_stdout(mut data: &[u8]) -> io::Result<()> {
    let mut stdout = raw_fd(1);
    while !data.is_empty() {
        match quirks::as_blocking(1, quirks::POLLOUT, || stdout.write(data))? {
            0 => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer")),
            count => data = &data[count..],
        }
    }
    Ok(())
}

/// One `error: ` line on stderr, whatever the message holds.
fn error(message: &str) {
    server::log(&format!("error: {}", message));
}

fn table() -> &'static Table {
    Box::leak(Box::new(Table::embedded()))
}

/// U(stdin) to stdout, the transducer fed reads of at most `chunk_size` bytes.
fn transform(chunk_size: usize) -> Result<(), String> {
    let mut transducer = Transducer::new(table());
    let mut input = vec![0u8; chunk_size];
    let mut out = Vec::with_capacity(chunk_size.min(1 << 20) * 3 + 3);
    let mut stdin = raw_fd(0);
    let stdout_failed = |e: io::Error| format!("cannot write to stdout: {}", server::describe(&e));
    loop {
        let count = match quirks::as_blocking(0, quirks::POLLIN, || stdin.read(&mut input)) {
            Ok(0) => break,
            Ok(count) => count,
            Err(e) => return Err(format!("cannot read stdin: {}", server::describe(&e))),
        };
        out.clear();
        transducer.feed(&input[..count], &mut out);
        write_stdout(&out).map_err(stdout_failed)?;
    }
    out.clear();
    transducer.finish(&mut out);
    write_stdout(&out).map_err(stdout_failed)
}

fn run(command: Command) -> i32 {
    match command {
        Command::Help(text) => match write_stdout(text.as_bytes()) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                error(&format!("cannot write to stdout: {}", server::describe(&e)));
                EXIT_FAILURE
            }
        },
        Command::Transform { chunk_size } => match transform(chunk_size) {
            Ok(()) => EXIT_OK,
            Err(message) => {
                error(&message);
                EXIT_FAILURE
            }
        },
        Command::Server(options) => match server::serve(&options, table(), &mut write_stdout) {
            Ok(()) => EXIT_OK,
            Err(server::Failure::CannotListen(message)) | Err(server::Failure::Fatal(message)) => {
                error(&message);
                EXIT_FAILURE
            }
        },
        Command::Client(options) => match client::run(&options, &mut write_stdout) {
            Ok(()) => EXIT_OK,
            Err(client::Failure::Stdout(message)) | Err(client::Failure::Stdin(message)) => {
                error(&message);
                EXIT_FAILURE
            }
            Err(client::Failure::CannotConnect(message)) => {
                error(&message);
                EXIT_CANNOT_CONNECT
            }
            Err(client::Failure::Broke(message)) => {
                error(&message);
                EXIT_CONNECTION_BROKE
            }
        },
    }
}

fn main() {
    // S-11: whatever goes wrong, one line (a panic would print several).
    std::panic::set_hook(Box::new(|info| error(&format!("internal error: {}", info))));
    let args = std::env::args_os().skip(1).collect();
    let code = match cli::parse(args) {
        Ok(command) => run(command),
        Err(message) => {
            error(&message);
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}
