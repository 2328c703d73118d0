"""Mutants: the Python reference (python/upper_echo) with exactly one behaviour swapped for a classic bug.

    python3 -m mutate NAME [upper-echo arguments]     (tests/mutants/bin/upper-echo does this)

Each mutant below is a small patch applied before upper_echo's own main(); everything else is the reference.
They are registered in tests/mutants/mutants.toml, never in implementations.toml, and tests/mutants/
test_mutants.py checks that the matrix catches every one of them.
"""

from __future__ import annotations

import asyncio
import sys

from upper_echo import cli, client, server, transducer

MUTANTS = {}


def mutant(function):
    MUTANTS[function.__name__.replace("_", "-")] = function
    return function


def feed_without_fast_path(self, data: bytes) -> bytes:
    """UppercaseTransducer.feed minus its ASCII shortcut (bytes.upper), so every byte goes through _map."""
    data = self._tail + data
    held = transducer.POSSIBLE_PREFIX_AT_END.search(data, max(0, len(data) - 3))
    cut = held.start() if held else len(data)
    self._tail = data[cut:]
    return self._map(data[:cut])


def wrap_server_reader(make_reader) -> None:
    """Give every server connection a different reader (the rest of Connection is the reference's)."""
    original_init = server.Connection.__init__

    def __init__(self, reader, writer, idle_timeout):
        original_init(self, make_reader(reader), writer, idle_timeout)

    server.Connection.__init__ = __init__


@mutant
def locale_upper() -> None:
    """Uppercase with the C runtime's locale-dependent towupper() instead of the pinned table (T-4, T-5)."""
    import ctypes
    import ctypes.util
    import locale

    locale.setlocale(locale.LC_ALL, "")  # the environment's locale, as a C program does
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.towupper.argtypes, libc.towupper.restype = [ctypes.c_uint32], ctypes.c_uint32

    def _map(self, data: bytes) -> bytes:
        text = data.decode("utf-8", errors="surrogateescape")
        upper = "".join(c if 0xDC80 <= ord(c) <= 0xDCFF else chr(libc.towupper(ord(c))) for c in text)
        return upper.encode("utf-8", errors="surrogateescape")

    transducer.UppercaseTransducer._map = _map
    transducer.UppercaseTransducer.feed = feed_without_fast_path


@mutant
def drop_cr() -> None:
    """Line framing: the server reads line by line (waiting for LF) and turns CRLF into LF (D-2, D-3)."""

    class LineReader:
        def __init__(self, reader):
            self.reader = reader

        async def read(self, size: int) -> bytes:
            return (await self.reader.readline()).replace(b"\r\n", b"\n")

    wrap_server_reader(LineReader)


@mutant
def replace_invalid() -> None:
    """Decode with errors='replace': ill-formed bytes become U+FFFD (T-3)."""

    def _map(self, data: bytes) -> bytes:
        return data.decode("utf-8", errors="replace").translate(self._table).encode("utf-8")

    transducer.UppercaseTransducer._map = _map


@mutant
def buffer_to_eof() -> None:
    """Answer nothing until the client half-closes, then everything (D-2, D-4: no streaming)."""
    original_feed, original_flush = transducer.UppercaseTransducer.feed, transducer.UppercaseTransducer.flush

    def feed(self, data: bytes) -> bytes:
        self.__dict__.setdefault("pending", bytearray()).extend(data)
        return b""

    def flush(self) -> bytes:
        return original_feed(self, bytes(self.__dict__.pop("pending", b""))) + original_flush(self)

    transducer.UppercaseTransducer.feed, transducer.UppercaseTransducer.flush = feed, flush


@mutant
def one_at_a_time() -> None:
    """The classic single-threaded server: connections are accepted, then served one after another (S-1)."""
    original = server.UpperEchoServer._on_connect

    async def _on_connect(self, reader, writer):
        async with self.__dict__.setdefault("one_at_a_time", asyncio.Lock()):
            await original(self, reader, writer)

    server.UpperEchoServer._on_connect = _on_connect


@mutant
def ignore_half_close() -> None:
    """A FIN is not the end: the server keeps waiting for input (until the idle timeout) (E-1)."""

    class DeafToEof:
        def __init__(self, reader):
            self.reader = reader

        async def read(self, size: int) -> bytes:
            data = await self.reader.read(size)
            if not data:
                await asyncio.Event().wait()  # forever; only the idle timeout ends it
            return data

    wrap_server_reader(DeafToEof)


@mutant
def lose_tail() -> None:
    """At end of stream the held-back incomplete tail is dropped instead of sent unchanged (E-1, T-3)."""
    transducer.UppercaseTransducer.flush = lambda self: b""


@mutant
def drop_64k() -> None:
    """One byte lost every 64 KiB: the last byte of each 65536 received (T-1)."""

    class Dropping:
        def __init__(self, reader):
            self.reader, self.offset = reader, 0

        async def read(self, size: int) -> bytes:
            data = await self.reader.read(size)
            start, self.offset = self.offset, self.offset + len(data)
            return bytes(byte for index, byte in enumerate(data, start) if index % 65536 != 65535)

    wrap_server_reader(Dropping)


@mutant
def trailing_newline() -> None:
    """The client ends its output with a newline of its own, like print() (C-4)."""
    original = client.exchange

    def exchange(sock, timeout, outgoing, stdin, write):
        original(sock, timeout, outgoing, stdin, write)
        write(b"\n")

    client.exchange = exchange


@mutant
def exit0_on_reset() -> None:
    """The client takes a reset for an orderly close: no error line, exit 0 (C-6)."""
    original = client.exchange

    def exchange(sock, timeout, outgoing, stdin, write):
        try:
            original(sock, timeout, outgoing, stdin, write)
        except client.ConnectionBroke as broke:
            if not str(broke).startswith("connection broke"):
                raise  # the timeout of C-5 stays exit 4

    client.exchange = exchange


if __name__ == "__main__":
    name, *arguments = sys.argv[1:]
    MUTANTS[name]()
    sys.argv[0] = "upper-echo"
    sys.exit(cli.main(arguments))
