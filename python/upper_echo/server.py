"""The asyncio server: a thin I/O shell around UppercaseTransducer (spec section 5)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .transducer import UppercaseTransducer

READ_BUFFER = 64 * 1024  # D-4


@dataclass(frozen=True)
class ServerOptions:
    """The server's command line, decoded (S-7); the defaults are cli.py's, from spec/cli.toml."""

    host: str
    port: int
    idle_timeout: float
    max_connections: int
    drain_timeout: float


class CannotListen(Exception):
    """The server could not bind or listen (exit 1, S-9)."""


def format_address(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Connection:
    """One client session: read, transform, write, with backpressure and an idle timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle_timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_timeout = idle_timeout or None
        self.peer = format_address(writer.get_extra_info("peername"))
        self.received = 0
        self.sent = 0

    async def serve(self) -> None:
        transducer = UppercaseTransducer()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: no extra Task per read (bench/RESULTS.md)
                    async with asyncio.timeout(self.idle_timeout):
                        data = await self.reader.read(READ_BUFFER)
                except TimeoutError:
                    data = b""  # S-2: idle; answer the held-back tail like at EOF (E-2)
                if not data:
                    await self._send(transducer.flush())
                    break
                self.received += len(data)
                # write + drain: waits while the client does not read, so we stop reading too (D-5)
                await self._send(transducer.feed(data))
        except (ConnectionError, OSError):
            pass  # S-5: a reset or broken pipe ends this connection only
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
            log(f"close peer={self.peer} in={self.received} out={self.sent}")

    async def _send(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            await self.writer.drain()
            self.sent += len(data)


class UpperEchoServer:
    def __init__(self, options: ServerOptions, write_stdout: Callable[[bytes], None]) -> None:
        self.options = options
        self.write_stdout = write_stdout
        self.connections: set[asyncio.Task] = set()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.connections) >= self.options.max_connections:
            log(f"reject peer={format_address(writer.get_extra_info('peername'))}")  # S-3
            writer.close()
            return
        connection = Connection(reader, writer, self.options.idle_timeout)
        log(f"open peer={connection.peer}")
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            await connection.serve()
        finally:
            self.connections.discard(task)

    async def run(self) -> None:
        listener = open_listener(self.options.host, self.options.port)
        server = await asyncio.start_server(self._on_connect, sock=listener, limit=READ_BUFFER)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        self.write_stdout(f"listening on {format_address(listener.getsockname())}\n".encode())  # S-8
        await stop.wait()

        # S-4: stop accepting, drain, then close whatever is still open.
        server.close()
        if self.connections:
            _, still_open = await asyncio.wait(set(self.connections), timeout=self.options.drain_timeout)
            for task in still_open:
                task.cancel()
            await asyncio.gather(*still_open, return_exceptions=True)
        await server.wait_closed()


def open_listener(host: str, port: int) -> socket.socket:
    """Bind the first address `host` resolves to (S-7); any failure is CannotListen (S-9)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as error:  # UnicodeError: a name IDNA cannot encode (empty or long label)
        reason = getattr(error, "strerror", None) or error
        raise CannotListen(f"cannot listen on {format_address((host, port))}: {reason}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(1024)
    except OSError as error:
        listener.close()
        raise CannotListen(f"cannot listen on {format_address(address)}: {error.strerror or error}") from None
    return listener


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: thousands of connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(options: ServerOptions, write_stdout: Callable[[bytes], None]) -> None:
    """Serve until SIGTERM or SIGINT (S-4). Raises CannotListen (S-9); whatever write_stdout raises propagates."""
    raise_open_file_limit()
    asyncio.run(UpperEchoServer(options, write_stdout).run())
