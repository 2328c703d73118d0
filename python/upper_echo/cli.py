"""The `upper-echo` command line, identical for every language (spec sections 5-7, spec/cli.toml).

This layer owns the process: it decodes argv (X-3..X-5), owns stdout (X-6), and turns every outcome into an exit
code with at most one `error: ` line on stderr. server.py and client.py raise; only this module exits.
"""

from __future__ import annotations

import argparse
import os
import re
import select  # no cost at start: socket imports it already
import socket
import sys
from collections import namedtuple

from .failures import Failure, StdinFailed, StdoutFailed, UsageError

EXIT_OK = 0

STDIN_FILENO, STDOUT_FILENO = 0, 1

# spec/cli.toml [types.*]: the grammar of each kind of value, matched with re.fullmatch on the raw argument.
# The classes are spelled [0-9], never \d, which would also take other scripts' digits.
PATTERNS = {
    "integer": re.compile(r"[0-9]+"),
    "seconds": re.compile(r"[0-9]+(\.[0-9]{1,3})?"),
    "host": re.compile(r"[!-$&-Z\\^-~]+|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]"),
}
# [types.host] ipv4_like and ipv4: a host that looks like an IPv4 address must be one in dotted decimal.
IPV4_LIKE = re.compile(r"(?:[^:]*\.)?(?:[0-9]+|0[xX][^.:]*)\.?")
OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"(?:{OCTET}\.){{3}}{OCTET}")
GRAMMAR = {
    "integer": "a whole number in ASCII digits",
    "seconds": "seconds in ASCII digits, with at most three decimals",
    "host": "a host: an address or a name in printable ASCII, brackets only around an IPv6 address, no zone index",
}


# collections.namedtuple, not typing.NamedTuple: importing typing costs about 4 ms of every start.
# One row of spec/cli.toml [commands.*.options], the default and bounds written as the table writes them;
# kind is a key of PATTERNS.
Flag = namedtuple("Flag", "name kind default low high metavar", defaults=(None, None, None))
# operands: only a command that takes operands accepts `--`.
Command = namedtuple("Command", "flags operands help description")


# spec/cli.toml [commands.*], row by row.
# fmt: off
COMMANDS = {
    "server": Command(
        (
            Flag("host",            "host",    "127.0.0.1"),
            Flag("port",            "integer", "7007",  "0", "65535"),
            Flag("idle-timeout",    "seconds", "300",   "0", "1000000", "S"),
            Flag("max-connections", "integer", "1024",  "1", "1000000", "N"),
            Flag("drain-timeout",   "seconds", "5",     "0", "1000000", "S"),
        ),
        operands=False,
        help="serve the uppercase echo protocol",
        description="Serve U over TCP. Prints 'listening on ADDR:PORT' when ready.",
    ),
    "client": Command(
        (
            Flag("host",            "host",    "127.0.0.1"),
            Flag("port",            "integer", "7007",  "1", "65535"),
            Flag("timeout",         "seconds", "10",    "0.001", "1000000", "S"),
        ),
        operands=True,
        help="send MESSAGEs or stdin, print the reply",
        description="Send each MESSAGE plus LF (or stdin when none), half-close, and copy the server's bytes to "
                    "stdout. Exit 0 ok, 1 cannot write to stdout or read stdin, 3 cannot connect, 4 connection "
                    "broke.",
    ),
    "transform": Command(
        (
            Flag("chunk-size",      "integer", "65536", "1", "16777216", "N"),
        ),
        operands=False,
        help="apply U to stdin without sockets",
        description="Write U(stdin) to stdout, feeding the transducer in reads of at most --chunk-size bytes.",
    ),
}
# fmt: on
FLAG_HELP = {
    ("server", "host"): "address or name to listen on",
    ("server", "port"): "port; 0 takes a free one",
    ("server", "idle-timeout"): "close a connection that received nothing for S seconds; 0 = never",
    ("server", "max-connections"): "accept and close at once beyond N open connections",
    ("server", "drain-timeout"): "on SIGTERM/SIGINT/SIGHUP, let connections finish for S seconds",
    ("client", "host"): "server address or name",
    ("client", "port"): "server port",
    ("client", "timeout"): "bound on connecting and on each wait after half-close",
    ("transform", "chunk-size"): "largest read fed to the transducer",
}


def write_stdout(data: bytes) -> None:
    """Write to file descriptor 1 at once, unbuffered (C-4, S-8); a failed write is StdoutFailed (X-6), a full
    non-blocking pipe is waited on (X-8).

    Nothing is left in a Python buffer, so nothing fails again (with a traceback) when the interpreter exits.
    """
    view = memoryview(data)
    try:
        while view:
            try:
                view = view[os.write(STDOUT_FILENO, view) :]  # a partial write on a nearly full pipe: the rest next
            except BlockingIOError:
                wait_until_ready(STDOUT_FILENO, writing=True)
    except OSError as failure:
        raise StdoutFailed(f"cannot write to stdout: {failure.strerror or failure}") from None


def wait_until_ready(descriptor: int, writing: bool) -> None:
    """X-8: wait as a blocking read or write would, on a descriptor another process left non-blocking (EAGAIN)."""
    select.select([] if writing else [descriptor], [descriptor] if writing else [], [])


def error(message: str) -> None:
    """One `error: ` line on stderr, whatever the message holds (an argument may contain a newline)."""
    line = "".join(char if char.isprintable() else repr(char)[1:-1] for char in message)
    try:
        print(f"error: {line}", file=sys.stderr, flush=True)
    except OSError:
        pass  # stderr is gone too: the exit code is all that is left


def parse_value(flag: Flag, text: str) -> int | float | str:
    """The value of `--flag TEXT`, checked against the flag's grammar and range; ArgumentTypeError if not."""
    if not PATTERNS[flag.kind].fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not {GRAMMAR[flag.kind]}")
    if flag.kind == "host":
        if ":" in text:  # an IPv6 address, bracketed or not ([::1] is ::1), and never a name
            address = text[1:-1] if text.startswith("[") else text
            try:
                socket.inet_pton(socket.AF_INET6, address)  # glibc: RFC 4291, an IPv4 part in dotted decimal
            except OSError:
                raise argparse.ArgumentTypeError(f"{text!r} is not an IPv6 address") from None
            return address
        if IPV4_LIKE.fullmatch(text) and not IPV4.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an IPv4 address in dotted decimal (four numbers 0-255, no leading zeros)"
            )
        return text
    key = magnitude(text)
    if (flag.low is not None and key < magnitude(flag.low)) or (flag.high is not None and key > magnitude(flag.high)):
        raise argparse.ArgumentTypeError(f"{text} is out of range ({flag.low}-{flag.high})")
    _, whole, fraction = key
    return int(whole or "0") if flag.kind == "integer" else float(f"{whole or '0'}.{fraction}")


def magnitude(numeral: str) -> tuple[int, str, str]:
    """A key that orders numerals of the integer and seconds grammars by value, exactly, however many (leading)
    digits they have: int() refuses more than 4300 digits, and the decimal module costs 2 ms of every start."""
    whole, _, fraction = numeral.partition(".")
    whole = whole.lstrip("0")
    return len(whole), whole, fraction.ljust(3, "0")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout at 80 columns, what it uses when stdout is not a terminal, on every terminal too: without
    a width, every parser it builds imports shutil to ask the terminal: milliseconds of every start."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=80 - 2)  # argparse's own margin


class ArgumentParser(argparse.ArgumentParser):
    """argparse with X-3's flags (no abbreviations; every argument that starts with '-' is a flag), usage errors
    raised as UsageError, help through write_stdout."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_abbrev=False, formatter_class=HelpFormatter, **kwargs)
        self._stand_ins: dict[str, str] = {}

    def _parse_optional(self, arg_string: str):
        """X-3: an argument that starts with '-' (but is not '-') is one of our flags exactly (`--port`,
        `--port=7`, `-h`) or an unknown flag. argparse would make `-1` and `-x y` operands or values, and read
        `-hx` and `--help=x` as -h given a value. Any other such argument is passed on as a stand-in that no
        argument can equal (it holds a NUL), so argparse sees an unknown flag; error() shows the original."""
        name, equals, _ = arg_string.partition("=")
        action = self._option_string_actions.get(name)
        ours = action is not None and not (equals and action.nargs == 0)
        if arg_string.startswith("-") and arg_string not in ("-", "--") and not ours:
            stand_in = self._stand_ins.setdefault(arg_string, f"-\0{len(self._stand_ins)}")
            return super()._parse_optional(stand_in)
        return super()._parse_optional(arg_string)

    def error(self, message: str):
        for original, stand_in in self._stand_ins.items():
            message = message.replace(stand_in, original)
        raise UsageError(message)

    def print_help(self, file=None) -> None:
        write_stdout(self.format_help().encode("utf-8", errors="backslashreplace"))


def build_parsers() -> tuple[ArgumentParser, dict[str, ArgumentParser]]:
    """The top-level parser (usage, the choice of subcommand) and each subcommand's own parser."""
    parser = ArgumentParser(
        prog="upper-echo", description="Uppercase echo over TCP: the reference implementation of spec/PROTOCOL.md."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{server,client,transform}")
    subparsers = {}
    for name, command in COMMANDS.items():
        subparser = subparsers[name] = commands.add_parser(name, help=command.help, description=command.description)
        for flag in command.flags:
            subparser.add_argument(
                f"--{flag.name}",
                type=lambda text, flag=flag: parse_value(flag, text),
                default=flag.default,  # a string, so argparse passes it through parse_value too
                metavar=flag.metavar,
                help=f"{FLAG_HELP[name, flag.name]} (default: %(default)s)",
            )
        if command.operands:
            subparser.add_argument("messages", nargs="*", metavar="MESSAGE", help="lines to send; stdin when none")
    return parser, subparsers


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """X-3: flags and operands intermix. argparse cannot intermix under subcommands, and its intermixed parser
    mishandles `--`, so a subcommand's own parser reads the flags and what follows `--` is taken as operands."""
    parser, subparsers = build_parsers()
    if not argv or argv[0] not in subparsers:
        return parser.parse_args(argv)  # usage, --help, or an unknown subcommand
    command, rest = argv[0], argv[1:]
    after = []
    if COMMANDS[command].operands and "--" in rest:
        rest, after = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    arguments = subparsers[command].parse_intermixed_args(rest)
    arguments.command = command
    if after:
        arguments.messages += after
    return arguments


def run_transform(chunk_size: int) -> None:
    """X-2: U(stdin) to stdout, the transducer fed reads of at most chunk_size bytes."""
    from .transducer import UppercaseTransducer

    transducer = UppercaseTransducer()
    while chunk := read_stdin(chunk_size):
        write_stdout(transducer.feed(chunk))
    write_stdout(transducer.flush())


def read_stdin(size: int) -> bytes:
    """At most `size` bytes of stdin; a failed read is StdinFailed, never the end of input (C-8)."""
    try:
        while True:
            try:
                return os.read(STDIN_FILENO, size)
            except BlockingIOError:  # no input yet, not the end of it
                wait_until_ready(STDIN_FILENO, writing=False)
    except OSError as failure:
        raise StdinFailed.because(failure) from None


def run(args: argparse.Namespace) -> None:
    # Each command imports only its own module (failures.py says why).
    if args.command == "server":
        from .server import ServerOptions, serve

        serve(
            ServerOptions(args.host, args.port, args.idle_timeout, args.max_connections, args.drain_timeout),
            write_stdout,
        )
    elif args.command == "client":
        from .client import ClientOptions, run_client

        messages = [os.fsencode(message) for message in args.messages]  # the argument's own bytes
        run_client(ClientOptions(args.host, args.port, args.timeout), messages, STDIN_FILENO, write_stdout)
    else:
        run_transform(args.chunk_size)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one `error:` line and its exit code (failures.py)."""
    try:
        run(parse_arguments(sys.argv[1:] if argv is None else argv))
    except Failure as failure:
        error(str(failure))
        return failure.exit_code
    return EXIT_OK
