"""The client (spec section 6): stdin or MESSAGEs to the socket, the socket to stdout."""
from __future__ import annotations

import os
import select
import socket
import sys
import threading
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

CHUNK = 64 * 1024

EXIT_OK = 0
EXIT_CANNOT_CONNECT = 3  # C-6
EXIT_CONNECTION_BROKE = 4


@dataclass(frozen=True)
class ClientOptions:
    host: str = "127.0.0.1"
    port: int = 7007
    timeout: float = 10.0


def read_chunks(fd: int, size: int = CHUNK) -> Iterator[bytes]:
    while chunk := os.read(fd, size):
        yield chunk


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


class Session:
    """One connection: a sender thread and a receiver loop, so neither side can block the other (C-3)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self._wake_receiver, self._half_closed = socket.socketpair()

    def send_all(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                self.sock.sendall(chunk)
        except OSError:
            pass  # C-7: the server closed or reset; the receiver decides the outcome
        finally:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._wake_receiver.send(b"!")

    def receive_all(self, stdout: BinaryIO) -> int:
        """Copy the socket to stdout until the server closes; return the exit code."""
        half_closed = False
        while True:
            wait = self.timeout if half_closed else None  # C-5: no timeout while still sending
            ready, _, _ = select.select([self.sock, self._half_closed], [], [], wait)
            if not ready:
                error(f"no data from the server for {self.timeout:g} s after sending everything")
                return EXIT_CONNECTION_BROKE
            if self._half_closed in ready:
                self._half_closed.recv(1)
                half_closed = True
                continue
            try:
                data = self.sock.recv(CHUNK)
            except OSError as broken:
                error(f"connection broke: {broken.strerror or broken}")
                return EXIT_CONNECTION_BROKE
            if not data:
                return EXIT_OK
            stdout.write(data)  # C-4: the server's bytes, unchanged
            stdout.flush()


def run_client(options: ClientOptions, messages: list[bytes] | None) -> int:
    try:
        sock = socket.create_connection((options.host, options.port), timeout=options.timeout)
    except (OSError, UnicodeError) as failure:  # UnicodeError: a host name IDNA cannot encode
        reason = "timed out" if isinstance(failure, TimeoutError) else getattr(failure, "strerror", None) or str(failure)
        error(f"cannot connect to {options.host}:{options.port}: {reason}")
        return EXIT_CANNOT_CONNECT
    sock.settimeout(None)
    session = Session(sock, options.timeout)
    chunks = [b"".join(m + b"\n" for m in messages)] if messages else read_chunks(sys.stdin.fileno())
    # daemon: a sender blocked reading a terminal must not keep the client alive after the server closed (C-7)
    threading.Thread(target=session.send_all, args=(chunks,), daemon=True).start()
    with sock:
        return session.receive_all(sys.stdout.buffer)
