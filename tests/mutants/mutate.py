"""Mutants: the Python reference (python/upper_echo) with exactly one behaviour swapped for a classic bug.

    python3 -m mutate NAME [upper-echo arguments]     (tests/mutants/bin/upper-echo does this)

Each mutant below is a small patch applied before upper_echo's own main(); everything else is the reference.
They are registered in tests/mutants/mutants.toml, never in implementations.toml, and tests/mutants/
test_mutants.py checks that the matrix catches every one of them.
"""

from __future__ import annotations

import runpy
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


def feed_instead(connection, data: bytes) -> None:
    """What Connection.buffer_updated does with bytes received, for mutants that change which bytes those are."""
    answer = connection.transducer.feed(data)
    if answer:
        connection.written += len(answer)
        connection.transport.write(answer)


def on_received(change) -> None:
    """Give every server connection's received bytes to `change(connection, data)` first (asyncio's public
    BufferedProtocol.buffer_updated is the seam; the rest of the Connection is the reference's)."""

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        feed_instead(self, change(self, self.server.read_view[:nbytes].tobytes()))

    server.Connection.buffer_updated = buffer_updated


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

    def whole_lines(connection, data: bytes) -> bytes:
        pending = connection.__dict__.get("pending", b"") + data
        end = pending.rfind(b"\n") + 1
        connection.__dict__["pending"] = pending[end:]
        return pending[:end].replace(b"\r\n", b"\n")

    on_received(whole_lines)


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
    original_accepted, original_forget = server.UpperEchoServer.accepted, server.UpperEchoServer.forget

    def accepted(self, sock, peer):
        waiting = self.__dict__.setdefault("waiting", [])
        if self.connections or waiting:
            waiting.append((sock, peer))  # accepted, but not served until the one before is done
        else:
            original_accepted(self, sock, peer)

    def forget(self, connection):
        original_forget(self, connection)
        waiting = self.__dict__.get("waiting", [])
        if not self.connections and waiting:
            original_accepted(self, *waiting.pop(0))

    server.UpperEchoServer.accepted, server.UpperEchoServer.forget = accepted, forget


@mutant
def ignore_half_close() -> None:
    """A FIN is not the end: the server keeps waiting for input (until the idle timeout) (E-1)."""
    server.Connection.eof_received = lambda self: True  # keep the connection open, owe nothing yet


@mutant
def lose_tail() -> None:
    """At end of stream the held-back incomplete tail is dropped instead of sent unchanged (E-1, T-3)."""
    transducer.UppercaseTransducer.flush = lambda self: b""


@mutant
def drop_64k() -> None:
    """One byte lost every 64 KiB: the last byte of each 65536 received (T-1)."""

    def dropping(connection, data: bytes) -> bytes:
        start = connection.received - len(data)
        return bytes(byte for index, byte in enumerate(data, start) if index % 65536 != 65535)

    on_received(dropping)


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


@mutant
def stdin_error_as_eof() -> None:
    """The classic stdin copier: a thread copies stdin into a pipe and closes it at the end of input and at a
    failed read alike, so an unreadable stdin is sent as an empty input: a half-close and exit 0 (C-8)."""
    import os
    import threading

    original = client.exchange

    def exchange(sock, timeout, outgoing, stdin, write):
        if outgoing is not None:
            return original(sock, timeout, outgoing, stdin, write)
        source, sink = os.pipe()

        def copy() -> None:
            with os.fdopen(sink, "wb") as pipe:
                try:
                    while data := os.read(stdin, 65536):
                        pipe.write(data)
                except OSError:
                    pass  # "the end of the input", as far as this copier can tell

        threading.Thread(target=copy, daemon=True).start()
        return original(sock, timeout, outgoing, source, write)

    client.exchange = exchange


@mutant
def eagain_as_failure() -> None:
    """A read of stdin or a write to stdout that would block (O_NONBLOCK left on by another process) is taken for
    a failure, as cat takes it: one error line, "Resource temporarily unavailable", exit 1 (X-8). The client
    selects on stdin, so it meets this only on a full stdout pipe."""
    import errno
    import os

    def wait_until_ready(descriptor: int, writing: bool) -> None:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    cli.wait_until_ready = wait_until_ready


@mutant
def reset_at_connect_is_refused() -> None:
    """A client slow between its connect and the check of its outcome, as Java's was (the JVM), meets an S-3
    rejection's reset there, and reports it as a failed connect, exit 3, as Java's did; the connection was made,
    so it is 4 (C-6). The reference checks at once, so on the loopback the reset comes later, to a recv."""
    import errno
    import socket
    import time

    original = client.socket.socket.connect

    def connect(self, address):
        original(self, address)
        time.sleep(0.05)  # the slow check: by now the fake server's reset has come
        if self.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET:
            raise OSError("Connection reset by peer")  # with its errno, OSError() would make a ConnectionResetError

    client.socket.socket.connect = connect


@mutant
def interrupt_traceback() -> None:
    """SIGINT stays Python's KeyboardInterrupt: the client dies with a stack trace on stderr (C-9)."""
    import _signal

    original = client.run_client

    def run_client(*args):
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        return original(*args)

    client.run_client = run_client


@mutant
def swallow_send_reset() -> None:
    """The classic two-thread client: a sender thread that swallows send errors ("the receiver decides") and
    a receiver that may then read a plain end of stream after a reset (C-6, C-7). Otherwise it keeps the
    contract: stdin is waited on (X-8), a failed stdin read resets and exits 1 (C-8), and after the half-close
    each wait for the server is bounded (C-5)."""
    import select
    import socket
    import threading
    import time

    def exchange(sock, timeout, outgoing, stdin, write):
        half_closed_at = []  # when the sender half-closed: from then on the waits are bounded (C-5)
        stdin_failure = []

        def pieces_of_input():
            if outgoing is not None:
                yield outgoing
                return
            while True:
                try:
                    data = cli.read_stdin(client.CHUNK)  # the reference's read: it waits out EAGAIN
                except client.StdinFailed as failure:  # C-8: closing will send a reset; the receiver reports it
                    client.reset_on_close(sock)
                    stdin_failure.append(failure)
                    return
                if not data:
                    return
                yield data

        def send_all() -> None:
            try:
                for data in pieces_of_input():
                    sock.sendall(data)
                if stdin_failure:
                    sock.shutdown(socket.SHUT_RD)  # wakes the receiver
                    return
                sock.shutdown(socket.SHUT_WR)
                half_closed_at.append(time.monotonic())
            except OSError:
                pass  # the bug: a reset seen here is lost

        sock.setblocking(True)
        threading.Thread(target=send_all, daemon=True).start()
        last_data = time.monotonic()
        while True:
            if not select.select([sock], [], [], 0.05)[0]:
                if half_closed_at and time.monotonic() - max(last_data, half_closed_at[0]) >= timeout:
                    raise client.ConnectionBroke(f"no data from the server for {timeout:g} s after sending everything")
                continue
            try:
                data = sock.recv(client.CHUNK)
            except OSError as failure:
                raise client.ConnectionBroke(f"connection broke: {failure}") from None
            if stdin_failure:
                raise stdin_failure[0]
            if not data:
                return
            last_data = time.monotonic()
            write(data)

    client.exchange = exchange


@mutant
def lose_output_on_early_close() -> None:
    """The client buffers what it receives until its own half-close; when the server closes first, the buffer is
    lost (C-4, C-7)."""
    original = client.exchange

    class HalfCloseFlushes:
        def __init__(self, sock, flush):
            self.sock, self.flush = sock, flush

        def __getattr__(self, name):
            return getattr(self.sock, name)

        def shutdown(self, how):
            self.flush()
            return self.sock.shutdown(how)

    def exchange(sock, timeout, outgoing, stdin, write):
        held: list[bytes] = []
        state = {"direct": False}

        def flush() -> None:
            for data in held:
                write(data)
            held.clear()
            state["direct"] = True

        def buffered_write(data: bytes) -> None:
            write(data) if state["direct"] else held.append(data)

        original(HalfCloseFlushes(sock, flush), timeout, outgoing, stdin, buffered_write)

    client.exchange = exchange


@mutant
def late_tail_raw() -> None:
    """A held-back incomplete character is given up on when the rest of it comes more than a millisecond later:
    the tail goes out unchanged and the rest is mapped on its own (D-1, D-2)."""
    import time

    original_feed = transducer.UppercaseTransducer.feed

    def feed(self, data: bytes) -> bytes:
        now = time.monotonic()
        late = self.__dict__.get("last_feed", now) < now - 0.001
        self.__dict__["last_feed"] = now
        given_up = self.flush() if late else b""
        return given_up + original_feed(self, data)

    transducer.UppercaseTransducer.feed = feed


@mutant
def busy_is_not_idle() -> None:
    """A connection with an answer waiting never counts as idle, so clients that stop reading hold their slots
    for good (S-2)."""
    original = server.Connection.check_idle

    def check_idle(self):
        if self.waiting_to_send():
            self.last_progress = self.server.loop.time()
        original(self)

    server.Connection.check_idle = check_idle


@mutant
def reject_with_fin() -> None:
    """Beyond --max-connections the extra connection gets an orderly close: its client reads an empty answer
    instead of a reset (S-3)."""
    original = server.UpperEchoServer.accepted

    def accepted(self, sock, peer):
        if len(self.connections) >= self.options.max_connections:
            server.log(f"reject peer={peer}")
            sock.close()
            return
        original(self, sock, peer)

    server.UpperEchoServer.accepted = accepted


@mutant
def drain_ends_with_fin() -> None:
    """At the end of the drain, what is still open is shut down before the reset, so the peer reads a FIN first:
    a client cut off mid-answer exits 0 with a truncated answer (S-4). C#'s server did this."""
    import contextlib
    import socket

    original = server.Connection.reset

    def reset(self):
        if self.server.listener is None and self.transport is not None:  # the drain's resets, not S-2's
            with contextlib.suppress(OSError):
                self.transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
        original(self)

    server.Connection.reset = reset


@mutant
def drain_waits_for_clients() -> None:
    """At the end of the drain, connections are left to finish instead of being reset: a client that stopped
    reading keeps the server from exiting (S-4)."""
    original = server.Connection.reset

    def reset(self):
        if self.server.listener is not None:  # S-2's resets still happen; the drain's do not
            original(self)

    server.Connection.reset = reset


@mutant
def mapped_peer_as_ipv6() -> None:
    """IPv4-mapped peers are logged in their IPv6 form, [::ffff:127.0.0.1]:P (S-6)."""

    def format_address(sockaddr):
        host, port = sockaddr[0], sockaddr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    server.format_address = format_address


@mutant
def accept_spins() -> None:
    """When accept fails for want of descriptors, the server retries at once and says so every time (S-10)."""
    server.ACCEPT_PAUSE = 0
    server.DIAGNOSTIC_INTERVAL = 0


@mutant
def traceback_diagnostics() -> None:
    """Diagnostics come with the stack that raised them, as a default logger prints them (S-11)."""
    original = server.Diagnostics.__call__

    def __call__(self, message):
        original(self, f'{message}\nTraceback (most recent call last):\n  File "server.py", in on_acceptable')

    server.Diagnostics.__call__ = __call__
    server.one_line = lambda text: str(text)  # the reference folds a message into one line; this one does not


@mutant
def backlog_100() -> None:
    """The listen backlog is 100, asyncio's default, not 1024: bursts of connections wait for SYN retries
    (S-12)."""
    server.BACKLOG = 100


if __name__ == "__main__":
    name, *arguments = sys.argv[1:]
    MUTANTS[name]()
    # Then the reference's own start-up, upper_echo/__main__.py (its SIGINT reset among it, C-9), so that a mutant
    # differs from the reference by its patch alone.
    sys.argv = ["upper-echo", *arguments]
    runpy.run_module("upper_echo", run_name="__main__")
