"""The `upper-echo` command line, identical for every language (spec sections 5-7)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from .client import ClientOptions, read_chunks, run_client
from .server import CannotListen, ServerOptions, serve
from .transducer import UppercaseTransducer

EXIT_USAGE = 2
EXIT_CANNOT_LISTEN = 1  # S-9


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the spec's usage-error format: one `error: ` line, exit 2 (X-1)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def ranged_int(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({bound})")
        return value
    return parse


def seconds(positive: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not value < float("inf") or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"{text} is out of range ({'above' if positive else 'at least'} 0)")
        return value
    return parse


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="upper-echo",
        description="Uppercase echo over TCP: the reference implementation of spec/PROTOCOL.md.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{server,client,transform}")

    server = commands.add_parser("server", help="serve the uppercase echo protocol",
                                 description="Serve U over TCP. Prints 'listening on ADDR:PORT' when ready.")
    server.add_argument("--host", default="127.0.0.1", help="address or name to listen on (default: %(default)s)")
    server.add_argument("--port", type=ranged_int(0, 65535), default=7007,
                        help="port; 0 takes a free one (default: %(default)s)")
    server.add_argument("--idle-timeout", type=seconds(positive=False), default=300.0, metavar="S",
                        help="close a connection that received nothing for S seconds; 0 = never (default: %(default)g)")
    server.add_argument("--max-connections", type=ranged_int(1), default=1024, metavar="N",
                        help="accept and close at once beyond N open connections (default: %(default)s)")
    server.add_argument("--drain-timeout", type=seconds(positive=False), default=5.0, metavar="S",
                        help="on SIGTERM/SIGINT, let connections finish for S seconds (default: %(default)g)")

    client = commands.add_parser("client", help="send MESSAGEs or stdin, print the reply",
                                 description="Send each MESSAGE plus LF (or stdin when none), half-close, "
                                             "and copy the server's bytes to stdout. Exit 0 ok, 3 cannot "
                                             "connect, 4 connection broke.")
    client.add_argument("--host", default="127.0.0.1", help="server address or name (default: %(default)s)")
    client.add_argument("--port", type=ranged_int(1, 65535), default=7007, help="server port (default: %(default)s)")
    client.add_argument("--timeout", type=seconds(positive=True), default=10.0, metavar="S",
                        help="bound on connecting and on each wait after half-close (default: %(default)g)")
    client.add_argument("messages", nargs="*", metavar="MESSAGE", help="lines to send; stdin is used when none")

    transform = commands.add_parser("transform", help="apply U to stdin without sockets",
                                    description="Write U(stdin) to stdout, feeding the transducer in reads of "
                                                "at most --chunk-size bytes.")
    transform.add_argument("--chunk-size", type=ranged_int(1), default=65536, metavar="N",
                           help="largest read fed to the transducer (default: %(default)s)")
    return parser


def run_transform(chunk_size: int) -> int:
    transducer = UppercaseTransducer()
    stdout = sys.stdout.buffer
    for chunk in read_chunks(sys.stdin.fileno(), chunk_size):
        stdout.write(transducer.feed(chunk))
        stdout.flush()
    stdout.write(transducer.flush())
    stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "server":
        try:
            serve(ServerOptions(args.host, args.port, args.idle_timeout, args.max_connections, args.drain_timeout))
        except CannotListen as failure:
            print(f"error: {failure}", file=sys.stderr)
            return EXIT_CANNOT_LISTEN
        return 0
    if args.command == "client":
        messages = [os.fsencode(m) for m in args.messages]
        return run_client(ClientOptions(args.host, args.port, args.timeout), messages or None)
    return run_transform(args.chunk_size)


if __name__ == "__main__":
    sys.exit(main())
