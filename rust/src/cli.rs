//! The `upper-echo` command line, identical for every language (spec sections 5-7, spec/cli.toml).
//!
//! This layer decodes argv into options; main.rs owns stdout and the exit codes.
//! Flags are written in full (`--po` is unknown), as `--flag VALUE` or `--flag=VALUE`; the last of a
//! repeated flag counts; `--` ends the flags only where operands may follow (the client's MESSAGEs).

use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStringExt;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Integer,
    Seconds,
    Host,
}

/// One row of spec/cli.toml [commands.*.options]; bounds in the flag's unit (seconds: milliseconds).
struct Flag {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    low: u64,
    high: u64,
    help: &'static str,
}

struct CommandSpec {
    name: &'static str,
    flags: &'static [Flag],
    operands: bool,
    summary: &'static str,
}

const MS: u64 = 1000;

// spec/cli.toml [commands.*], row by row.
#[rustfmt::skip]
const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "server",
        flags: &[
            Flag { name: "host", kind: Kind::Host, default: "127.0.0.1", low: 0, high: 0,
                   help: "address or name to listen on" },
            Flag { name: "port", kind: Kind::Integer, default: "7007", low: 0, high: 65535,
                   help: "port; 0 takes a free one" },
            Flag { name: "idle-timeout", kind: Kind::Seconds, default: "300", low: 0, high: 1_000_000 * MS,
                   help: "close a connection with no progress either way for S seconds; 0 = never" },
            Flag { name: "max-connections", kind: Kind::Integer, default: "1024", low: 1, high: 1_000_000,
                   help: "beyond N open connections, accept and reset at once" },
            Flag { name: "drain-timeout", kind: Kind::Seconds, default: "5", low: 0, high: 1_000_000 * MS,
                   help: "on SIGTERM/SIGINT/SIGHUP, let connections finish for S seconds, then reset the rest" },
        ],
        operands: false,
        summary: "serve the uppercase echo protocol; prints 'listening on ADDR:PORT' when ready",
    },
    CommandSpec {
        name: "client",
        flags: &[
            Flag { name: "host", kind: Kind::Host, default: "127.0.0.1", low: 0, high: 0,
                   help: "server address or name" },
            Flag { name: "port", kind: Kind::Integer, default: "7007", low: 1, high: 65535,
                   help: "server port" },
            Flag { name: "timeout", kind: Kind::Seconds, default: "10", low: 1, high: 1_000_000 * MS,
                   help: "bound on connecting and on each wait after the half-close" },
        ],
        operands: true,
        summary: "send each MESSAGE plus LF (or stdin when none), half-close, copy the reply to stdout; \
                  exit 0 ok, 1 cannot write to stdout or read stdin, 3 cannot connect, 4 connection broke",
    },
    CommandSpec {
        name: "transform",
        flags: &[
            Flag { name: "chunk-size", kind: Kind::Integer, default: "65536", low: 1, high: 16_777_216,
                   help: "largest read fed to the transducer" },
        ],
        operands: false,
        summary: "apply U to stdin without sockets, feeding the transducer reads of at most N bytes",
    },
];

pub struct ServerOptions {
    pub host: String,
    pub port: u16,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    pub drain_timeout_ms: u64,
}

pub struct ClientOptions {
    pub host: String,
    pub port: u16,
    pub timeout_ms: u64,
    /// The MESSAGEs' own bytes (C-2); None: stdin (C-3).
    pub messages: Option<Vec<Vec<u8>>>,
}

pub enum Command {
    Server(ServerOptions),
    Client(ClientOptions),
    Transform {
        chunk_size: usize,
    },
    /// Usage text for stdout, exit 0.
    Help(String),
}

enum Value {
    Number(u64),
    Host(String),
}

/// Quote an argument for an error line: control characters escaped, so the line stays one line.
fn quoted(text: &str) -> String {
    format!("{:?}", text)
}

fn parse_digits(digits: &str) -> Option<u64> {
    let significant = digits.trim_start_matches('0');
    if significant.len() > 18 {
        return None; // far above every bound of the table
    }
    Some(if significant.is_empty() { 0 } else { significant.parse().ok()? })
}

fn parse_value(flag: &Flag, text: &str) -> Result<Value, String> {
    let malformed = |what: &str| format!("--{}: {} is not {}", flag.name, quoted(text), what);
    let number = match flag.kind {
        Kind::Host => return parse_host(text).map(Value::Host).map_err(malformed),
        Kind::Integer => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("a whole number in ASCII digits"));
            }
            parse_digits(text)
        }
        Kind::Seconds => {
            let (whole, fraction) = match text.find('.') {
                Some(dot) => (&text[..dot], &text[dot + 1..]),
                None => (text, ""),
            };
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            if whole.is_empty()
                || !digits(whole)
                || !digits(fraction)
                || fraction.len() > 3
                || (text.contains('.') && fraction.is_empty())
            {
                return Err(malformed("seconds in ASCII digits, with at most three decimals"));
            }
            let millis = format!("{:0<3}", fraction);
            parse_digits(whole).and_then(|w| w.checked_mul(MS)).map(|w| w + millis.parse::<u64>().unwrap_or(0))
        }
    };
    match number {
        Some(n) if n >= flag.low && n <= flag.high => Ok(Value::Number(n)),
        _ => {
            let show =
                |n: u64| if flag.kind == Kind::Seconds { format!("{}", n as f64 / MS as f64) } else { n.to_string() };
            Err(format!("--{}: {} is out of range ({}-{})", flag.name, text, show(flag.low), show(flag.high)))
        }
    }
}

/// an IPv4 or IPv6 address (`::1` or `[::1]`) or a name, in printable ASCII with no space; no zone index,
/// nothing empty, brackets only around an IPv6 address, an IPv4 address only in dotted decimal. Returns the host
/// without brackets, or what it is not.
fn parse_host(text: &str) -> Result<String, &'static str> {
    const HOST: &str =
        "a host: an address or a name in printable ASCII, brackets only around an IPv6 address, no zone index";
    // Some resolvers map other scripts' digits and dots to ASCII ones (IDNA), others do not: never resolve those
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains('%') {
        return Err(HOST);
    }
    if text.contains(':') {
        // An IPv6 address or nothing, never a name. std's parser takes what glibc's inet_pton(AF_INET6) takes, an
        // IPv4 part in dotted decimal included
        let inner = match text.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or(HOST)?,
            None => text,
        };
        return inner.parse::<Ipv6Addr>().map(|_| inner.to_string()).map_err(|_| "an IPv6 address");
    }
    if text.contains(['[', ']']) {
        return Err(HOST);
    }
    // std's parser is dotted decimal exactly: four parts 0-255, no leading zeros
    if ipv4_like(text) && text.parse::<Ipv4Addr>().is_err() {
        return Err("an IPv4 address in dotted decimal (four numbers 0-255, no leading zeros)");
    }
    Ok(text.to_string())
}

/// cli.toml [types.host] ipv4_like: no ':', and the last part (after one trailing dot) is digits or starts with 0x.
fn ipv4_like(text: &str) -> bool {
    let last = text.strip_suffix('.').unwrap_or(text).rsplit('.').next().unwrap_or("");
    !text.contains(':')
        && !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") || last.starts_with("0X"))
}

/// an argument that starts with '-' and is not "-" alone is a flag, never a value or an operand.
fn is_flag(text: &str) -> bool {
    text.starts_with('-') && text != "-"
}

fn top_help() -> String {
    let mut text = String::from(
        "usage: upper-echo {server,client,transform} ...\n\n\
         Uppercase echo over TCP: the Rust implementation of spec/PROTOCOL.md.\n\ncommands:\n",
    );
    for command in COMMANDS {
        text += &format!("  {:<10} {}\n", command.name, command.summary);
    }
    text + "\n`upper-echo COMMAND --help` describes each command's flags.\n"
}

fn command_help(command: &CommandSpec) -> String {
    let mut usage = format!("usage: upper-echo {}", command.name);
    let mut lines = String::new();
    for flag in command.flags {
        let metavar = match flag.kind {
            Kind::Host => "H",
            Kind::Integer => "N",
            Kind::Seconds => "S",
        };
        usage += &format!(" [--{} {}]", flag.name, metavar);
        let spelled = format!("--{} {}", flag.name, metavar);
        lines += &format!("  {:<21} {} (default: {})\n", spelled, flag.help, flag.default);
    }
    if command.operands {
        usage += " [MESSAGE ...]";
        lines += &format!("  {:<21} lines to send; stdin when none\n", "MESSAGE ...");
    }
    format!("{}\n\n{}.\n\n{}  {:<21} this help\n", usage, command.summary, lines, "-h, --help")
}

/// Decode argv (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let first = match args.next() {
        Some(first) => first,
        None => return Err("missing command: server, client or transform (see --help)".into()),
    };
    let name = first.to_string_lossy().into_owned();
    if name == "--help" || name == "-h" {
        return Ok(Command::Help(top_help()));
    }
    let spec = match COMMANDS.iter().find(|c| c.name == name) {
        Some(spec) => spec,
        None => return Err(format!("unknown command {} (server, client or transform)", quoted(&name))),
    };
    let mut values: Vec<Option<Value>> = spec.flags.iter().map(|_| None).collect();
    let mut operands: Vec<Vec<u8>> = Vec::new();
    let mut only_operands = false;
    // X-3: -h/--help anywhere wins over unknown flags and operands (so those errors wait until the end),
    // but not over a missing or malformed value before it (those are errors at once).
    let mut deferred: Option<String> = None;
    let mut defer = |error: String| {
        deferred.get_or_insert(error);
    };
    while let Some(arg) = args.next() {
        if only_operands {
            operands.push(arg.into_vec());
            continue;
        }
        let text = arg.to_string_lossy().into_owned();
        if text == "--help" || text == "-h" {
            return Ok(Command::Help(command_help(spec)));
        }
        if text == "--" {
            if spec.operands {
                only_operands = true;
            } else {
                defer(format!("{} takes no operands, so `--` is not allowed", spec.name));
            }
            continue;
        }
        if !is_flag(&text) {
            if spec.operands {
                operands.push(arg.into_vec());
            } else {
                defer(format!("{} takes no operands: unexpected {}", spec.name, quoted(&text)));
            }
            continue;
        }
        let (flag_name, inline) = match text.find('=') {
            Some(eq) if text.starts_with("--") => (&text[..eq], Some(text[eq + 1..].to_string())),
            _ => (text.as_str(), None),
        };
        let index = match spec.flags.iter().position(|f| flag_name.strip_prefix("--") == Some(f.name)) {
            Some(index) => index,
            None => {
                defer(format!("{}: unknown flag {}", spec.name, quoted(flag_name)));
                continue;
            }
        };
        let flag = &spec.flags[index];
        let value = match inline {
            Some(value) => value,
            None => match args.next() {
                Some(value) if !is_flag(&value.to_string_lossy()) => value.to_string_lossy().into_owned(),
                _ => return Err(format!("--{}: a value is required", flag.name)),
            },
        };
        if value.is_empty() {
            return Err(format!("--{}: the value is empty", flag.name));
        }
        values[index] = Some(parse_value(flag, &value)?); // every occurrence is checked; the last counts
    }
    if let Some(error) = deferred {
        return Err(error);
    }
    let mut value = |name: &str| -> Value {
        let index = spec.flags.iter().position(|f| f.name == name).expect("flag in the table");
        match values[index].take() {
            Some(value) => value,
            None => parse_value(&spec.flags[index], spec.flags[index].default).expect("defaults are valid"),
        }
    };
    let number = |v: Value| match v {
        Value::Number(n) => n,
        Value::Host(_) => unreachable!("a host flag read as a number"),
    };
    let host = |v: Value| match v {
        Value::Host(h) => h,
        Value::Number(_) => unreachable!("a number flag read as a host"),
    };
    Ok(match spec.name {
        "server" => Command::Server(ServerOptions {
            host: host(value("host")),
            port: number(value("port")) as u16,
            idle_timeout_ms: number(value("idle-timeout")),
            max_connections: number(value("max-connections")) as usize,
            drain_timeout_ms: number(value("drain-timeout")),
        }),
        "client" => Command::Client(ClientOptions {
            host: host(value("host")),
            port: number(value("port")) as u16,
            timeout_ms: number(value("timeout")),
            messages: if operands.is_empty() { None } else { Some(operands) },
        }),
        _ => Command::Transform { chunk_size: number(value("chunk-size")) as usize },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn pinned_rows() {
        for bad in [
            &["server", "--po", "0"][..],
            &["server", "--host", "", "--port", "0"],
            &["server", "--host", "::1%lo"],
            &["server", "--host", "[::1%lo]"],
            &["server", "--host", "[127.0.0.1]"],
            &["server", "--host", "0177.0.0.1"],
            &["server", "--host", "127.1"],
            &["server", "--host", "127.0.0.1."],
            &["server", "--host", "0x7f.0.0.1"],
            &["server", "--host", "::ffff:127.0.0.01"],
            &["server", "--host", "::ffff:0177.0.0.1"],
            &["server", "--host", "[::ffff:017.0.0.1]"],
            &["server", "--host", "[::1"],
            &["server", "--host", "::1]"],
            &["client", "--host", "localhost:7007"],
            &["client", "--host", "127\u{3002}0\u{3002}0\u{3002}1"],
            &["client", "--host", "\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}"],
            &["client", "--host", "\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}"],
            &["client", "--host", "localhost "],
            &["client", "--host", "local\thost"],
            &["server", "--host", "-1", "--port", "0"],
            &["client", "--port", "1", "-5"],
            &["server", "--idle-timeout", "1e400"],
            &["server", "--idle-timeout", "1_0"],
            &["server", "--idle-timeout", "0.0001"],
            &["server", "--idle-timeout", "1."],
            &["server", "--idle-timeout", ".5"],
            &["client", "--port", "7_007", "x"],
            &["client", "--port=", "x"],
            &["client", "--port", "0", "x"],
            &["client", "--timeout", "0.0001", "x"],
            &["client", "--timeout", "0", "x"],
            &["server", "--port", "\u{0661}"],
            &["server", "--port", "65536"],
            &["server", "--port", "99999999999999999999999999999999999999"],
            &["server", "--port", "0", "--"],
            &["server", "extra"],
            &["transform", "--"],
            &["transform", "--chunk-size", "0"],
            &["transform", "--chunk-size", "16777217"],
            &["frobnicate"],
            &[],
        ] {
            assert!(run(bad).is_err(), "{:?} accepted", bad);
        }
        match run(&["server", "--host", "[::1]", "--port", "1", "--port=00", "--drain-timeout", "0.5"]) {
            Ok(Command::Server(o)) => {
                assert_eq!((o.host.as_str(), o.port, o.drain_timeout_ms, o.idle_timeout_ms), ("::1", 0, 500, 300_000))
            }
            _ => panic!("rejected"),
        }
        match run(&["client", "--host", "::ffff:127.0.0.1"]) {
            Ok(Command::Client(o)) => assert_eq!(o.host, "::ffff:127.0.0.1"),
            _ => panic!("rejected"),
        }
        match run(&["client", "--", "-x", "--port"]) {
            Ok(Command::Client(o)) => assert_eq!(o.messages, Some(vec![b"-x".to_vec(), b"--port".to_vec()])),
            _ => panic!("rejected"),
        }
        match run(&["client", "--timeout=0.001"]) {
            Ok(Command::Client(o)) => assert_eq!((o.timeout_ms, o.messages), (1, None)),
            _ => panic!("rejected"),
        }
        assert!(matches!(run(&["client", "-h"]), Ok(Command::Help(_))));
        assert!(matches!(run(&["server", "--bogus", "--help"]), Ok(Command::Help(_))));
        assert!(matches!(run(&["server", "-h", "extra"]), Ok(Command::Help(_))));
        assert!(run(&["server", "--port", "abc", "--help"]).is_err());
        assert!(run(&["server", "--port", "abc", "--port", "0"]).is_err());
        assert!(run(&["server", "--port", "--help"]).is_err());
        match run(&["client", "a", "--port", "7", "b"]) {
            Ok(Command::Client(o)) => assert_eq!((o.port, o.messages), (7, Some(vec![b"a".to_vec(), b"b".to_vec()]))),
            _ => panic!("rejected"),
        }
    }
}
