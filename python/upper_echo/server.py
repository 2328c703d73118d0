"""The asyncio server: a thin I/O shell around UppercaseTransducer (spec section 5).

Built on asyncio's protocol layer, not on streams: one BufferedProtocol per connection, fed from one shared 64 KiB
read buffer (D-4), its answer written straight to the transport. Backpressure (D-5) is the transport's own: past
its write-buffer high-water mark it calls pause_writing(), and the connection stops reading until resume_writing().

The server accepts connections itself rather than through loop.create_server(), because the spec asks for what
asyncio's accept loop does not do: log every connection `accept` returns at once (S-6), reject beyond
--max-connections with a reset (S-3), pause 100 ms and log one line a second when accept runs out of a resource
(S-10), and never print a traceback (S-11).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import NamedTuple

from .failures import CannotListen
from .transducer import UppercaseTransducer

READ_BUFFER = 64 * 1024  # D-4: one buffer, shared by every connection (one thread reads at a time)
BACKLOG = 1024  # S-12
WRITE_HIGH_WATER = 64 * 1024  # D-5: stop reading from a client while this much of its answer waits
ACCEPT_PAUSE = 0.1  # S-10: after accept failed for want of a resource
ACCEPT_BATCH = 256  # connections accepted per readiness event, so that serving is not starved by accepting
DIAGNOSTIC_INTERVAL = 1.0  # S-10, S-11: at most one diagnostic line a second
DRAIN_CLOSE_WAIT = 0.5  # S-4: after the reset of what is left, the longest wait for the close lines
IDLE_TICKS = 8  # S-2: an idle connection is looked at this many times per timeout: closed within 1/8 of it late
IDLE_TICK_MIN = 0.01  # ...but not more often than this, however short the timeout
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset (S-2, S-3, S-4)


class ServerOptions(NamedTuple):
    """The server's command line, decoded (S-7); the defaults are cli.py's, from spec/cli.toml."""

    host: str
    port: int
    idle_timeout: float
    max_connections: int
    drain_timeout: float


def format_address(sockaddr: tuple) -> str:
    """ADDR:PORT as S-6 and S-8 write it: IPv6 in brackets, an IPv4-mapped IPv6 address as the IPv4 one."""
    host, port = sockaddr[0], sockaddr[1]
    if host[:7].lower() == "::ffff:" and "." in host:
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log(line: str) -> None:
    """One line on stderr; a broken stderr is not the connections' problem (S-5)."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def reset(sock: socket.socket | None) -> None:
    """Make the coming close() send a reset instead of a FIN."""
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        except OSError:
            pass  # already gone


class Diagnostics:
    """Rate-limited one-line diagnostics (S-10, S-11): at most one a second, the count left out on the next."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last = -DIAGNOSTIC_INTERVAL
        self.left_out = 0

    def __call__(self, message: str) -> None:
        now = self.loop.time()
        if now - self.last < DIAGNOSTIC_INTERVAL:
            self.left_out += 1
            return
        more = f" ({self.left_out} more left out)" if self.left_out else ""
        self.last, self.left_out = now, 0
        log(f"warning: {one_line(message)}{more}")

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """The loop's handler for what escapes a callback: one line, never a traceback (S-11)."""
        failure = context.get("exception")
        detail = f": {type(failure).__name__}: {failure}" if failure is not None else ""
        self(f"{context.get('message', 'unexpected error')}{detail}")


class Connection(asyncio.BufferedProtocol):
    """One client session (S-1): read, transform, write, with backpressure and an idle timeout."""

    def __init__(self, server: UpperEchoServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.transducer = UppercaseTransducer()
        self.received = 0
        self.written = 0  # handed to the transport
        self.unsent: int | None = None  # what was still waiting when the connection was reset
        self.doomed = False  # reset as soon as the transport exists (S-4 before connection_made)
        self.attaching: asyncio.Task | None = None  # the task that makes the transport, held until it is done
        self.idle_timer: asyncio.TimerHandle | None = None
        self.seen = (0, 0)  # (received, taken by the peer) when last looked at (S-2)
        self.last_progress = 0.0

    # --- asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.doomed:
            self.reset()
        elif self.server.idle_timeout:
            self.last_progress = self.server.loop.time()
            self.idle_timer = self.server.loop.call_later(self.server.idle_tick, self.check_idle)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        answer = self.transducer.feed(self.server.read_view[:nbytes].tobytes())
        if answer:
            self.written += len(answer)
            self.transport.write(answer)

    def eof_received(self) -> bool:
        tail = self.transducer.flush()  # E-1: the held-back tail, unchanged
        if tail:
            self.written += len(tail)
            self.transport.write(tail)
        return False  # the transport closes once everything owed is sent

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # D-5

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        sent = self.written - (self.unsent or 0)
        log(f"close peer={self.peer} in={self.received} out={sent}")
        self.server.forget(self)

    # --- closing

    def waiting_to_send(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def reset(self) -> None:
        """Close at once with a reset, whatever is still waiting (S-2, S-4)."""
        if self.transport is None:
            self.doomed = True
            return
        self.unsent = self.waiting_to_send()
        reset(self.transport.get_extra_info("socket"))
        self.transport.abort()

    def check_idle(self) -> None:
        """S-2: close after idle_timeout seconds without a byte received or a byte of the answer taken."""
        self.idle_timer = None
        loop, server = self.server.loop, self.server
        now = loop.time()
        seen = (self.received, self.written - self.waiting_to_send())
        if seen != self.seen:
            self.seen, self.last_progress = seen, now  # progress since the last look: count it as now
        elif now - self.last_progress >= server.idle_timeout - server.idle_tick / 2:
            if self.waiting_to_send() or self.transport.is_closing():
                self.reset()  # the peer stopped taking the answer: it cannot hold its slot for good
                return
            tail = self.transducer.flush()  # E-2: answer what was received, then an orderly close
            if tail:
                self.written += len(tail)
                self.transport.write(tail)
            self.transport.close()  # if the tail does not go out, the next look resets
        self.idle_timer = loop.call_later(server.idle_tick, self.check_idle)


class UpperEchoServer:
    def __init__(self, options: ServerOptions, write_stdout: Callable[[bytes], None]) -> None:
        self.options = options
        self.write_stdout = write_stdout
        self.idle_timeout = options.idle_timeout
        self.idle_tick = max(options.idle_timeout / IDLE_TICKS, IDLE_TICK_MIN)
        self.connections: set[Connection] = set()
        self.read_buffer = bytearray(READ_BUFFER)
        self.read_view = memoryview(self.read_buffer)
        self.listener: socket.socket | None = None
        self.accept_timer: asyncio.TimerHandle | None = None
        self.all_closed: asyncio.Future | None = None

    # --- accepting (S-3, S-6, S-10)

    def on_acceptable(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # died before accept returned it: not logged (S-6)
            except OSError as failure:
                # S-10: EMFILE, ENFILE, ENOBUFS, ENOMEM, or anything else the next try may not repeat: pause
                # rather than spin, and keep serving the open connections.
                self.diagnostic(f"accept failed: {failure.strerror or failure}; pausing {ACCEPT_PAUSE:g} s")
                self.loop.remove_reader(self.listener.fileno())
                self.accept_timer = self.loop.call_later(ACCEPT_PAUSE, self.resume_accepting)
                return
            self.accepted(sock, format_address(address))

    def resume_accepting(self) -> None:
        self.accept_timer = None
        if self.listener is not None:
            self.loop.add_reader(self.listener.fileno(), self.on_acceptable)

    def accepted(self, sock: socket.socket, peer: str) -> None:
        if len(self.connections) >= self.options.max_connections:
            log(f"reject peer={peer}")  # S-3: a reset, never an empty answer
            reset(sock)
            sock.close()
            return
        log(f"open peer={peer}")
        connection = Connection(self, sock, peer)
        self.connections.add(connection)
        connection.attaching = self.loop.create_task(self.attach(connection))

    async def attach(self, connection: Connection) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: connection, connection.sock)
        except Exception as failure:  # the transport could not be made: the connection ends here
            self.diagnostic(f"cannot serve peer={connection.peer}: {failure}")
            connection.sock.close()
            connection.connection_lost(failure)
        finally:
            connection.attaching = None

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        connection.sock = None
        if not self.connections and self.all_closed is not None and not self.all_closed.done():
            self.all_closed.set_result(None)

    # --- running

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.diagnostic = Diagnostics(self.loop)
        self.loop.set_exception_handler(self.diagnostic.exception_handler)
        self.listener = open_listener(self.options.host, self.options.port)
        self.listener.setblocking(False)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # S-4: ignored at start (nohup), so it stays ignored
            self.loop.add_signal_handler(signum, stop.set)  # a second signal changes nothing (S-4)
        self.loop.add_reader(self.listener.fileno(), self.on_acceptable)
        self.write_stdout(f"listening on {format_address(self.listener.getsockname())}\n".encode())  # S-8
        await stop.wait()

        # S-4: stop accepting (connect is refused from now on), drain, then reset whatever is still open.
        self.loop.remove_reader(self.listener.fileno())
        if self.accept_timer is not None:
            self.accept_timer.cancel()
        self.listener.close()
        self.listener = None
        if self.connections:
            self.all_closed = self.loop.create_future()
            await asyncio.wait([self.all_closed], timeout=self.options.drain_timeout)
            for connection in list(self.connections):
                connection.reset()
            if self.connections:
                await asyncio.wait([self.all_closed], timeout=DRAIN_CLOSE_WAIT)  # their close lines (S-6)


def open_listener(host: str, port: int) -> socket.socket:
    """Bind the first address `host` resolves to (S-7); any failure is CannotListen (S-9)."""
    try:  # the host is ASCII: as bytes it skips Python's IDNA codec, whose import costs each start
        family, kind, proto, _, address = socket.getaddrinfo(
            host.encode("ascii"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as error:
        raise CannotListen(f"cannot listen on {format_address((host, port))}: {error.strerror or error}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(BACKLOG)  # S-12
    except OSError as error:
        listener.close()
        raise CannotListen(f"cannot listen on {format_address(address)}: {error.strerror or error}") from None
    return listener


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: thousands of connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The standard library's loop, unless UPPER_ECHO_LOOP=uvloop asks for uvloop (the optional `fast` extra)."""
    if os.environ.get("UPPER_ECHO_LOOP") != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        log("warning: UPPER_ECHO_LOOP=uvloop but uvloop is not installed; using asyncio's own loop")
        return None
    return uvloop.new_event_loop


def serve(options: ServerOptions, write_stdout: Callable[[bytes], None]) -> None:
    """Serve until SIGTERM, SIGINT or SIGHUP (S-4). Raises CannotListen (S-9); whatever write_stdout raises
    propagates."""
    raise_open_file_limit()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(UpperEchoServer(options, write_stdout).run())
