"""Small scripted TCP servers that misbehave on purpose, for client conformance (spec section 6).

A FakeServer listens where the clients under test can reach it and runs its script once per connection in a
thread. Scripts get the connected socket and the server (to record what arrived); they never uppercase anything.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from .wire import reset

Script = Callable[[socket.socket, "FakeServer"], None]


class FakeServer:
    def __init__(self, host: str, script: Script) -> None:
        self.script = script
        self.received = bytearray()
        self.finished = threading.Event()  # the test is over: scripts that hold a connection let go
        self.input_ended = threading.Event()  # record_how_input_ends saw the client's FIN or RST ...
        self.input_ending = ""  # ... and which: "FIN" or "RST"
        self.listener = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run_script, args=(sock,), daemon=True).start()

    def _run_script(self, sock: socket.socket) -> None:
        try:
            self.script(sock, self)
        except OSError:
            pass  # the client went away: what the test checks is the client's side
        finally:
            sock.close()

    def read_until_eof(self, sock: socket.socket) -> None:
        while chunk := sock.recv(65536):
            self.received += chunk

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.finished.set()
        self.listener.close()


def record_then_reply(reply: bytes) -> Script:
    """Read everything until the client half-closes, then send `reply` and close."""

    def script(sock: socket.socket, server: FakeServer) -> None:
        server.read_until_eof(sock)
        sock.sendall(reply)

    return script


def record_how_input_ends(sock: socket.socket, server: FakeServer) -> None:
    """Read until the client half-closes or resets, record which, and answer "OK\n" to a half-close."""
    try:
        server.read_until_eof(sock)
        server.input_ending = "FIN"
        sock.sendall(b"OK\n")
    except ConnectionResetError:
        server.input_ending = "RST"
    finally:
        server.input_ended.set()


def echo_unchanged(sock: socket.socket, server: FakeServer) -> None:
    """Echo every byte as it arrives (identity, not U): a client that does not read concurrently deadlocks."""
    while chunk := sock.recv(65536):
        sock.sendall(chunk)


def reset_after_input(sock: socket.socket, server: FakeServer) -> None:
    server.read_until_eof(sock)
    reset(sock)


def reset_at_once(sock: socket.socket, server: FakeServer) -> None:
    """Accept and reset before reading anything, as a server at its --max-connections does (S-3)."""
    reset(sock)


def silent(sock: socket.socket, server: FakeServer) -> None:
    """Read everything, then neither answer nor close until the test ends."""
    server.read_until_eof(sock)
    server.finished.wait(60)


def trickle(reply: bytes, interval: float) -> Script:
    """After the client half-closed, send one byte every `interval` seconds."""

    def script(sock: socket.socket, server: FakeServer) -> None:
        server.read_until_eof(sock)
        for byte in reply:
            time.sleep(interval)
            sock.sendall(bytes([byte]))

    return script


def slow_to_read(delay: float) -> Script:
    """Read nothing for `delay` seconds (the client's sends block meanwhile), then echo."""

    def script(sock: socket.socket, server: FakeServer) -> None:
        time.sleep(delay)
        echo_unchanged(sock, server)

    return script


def answer_and_close_early(reply: bytes) -> Script:
    """Send `reply` and end the server's side at once, then keep reading so the close stays orderly."""

    def script(sock: socket.socket, server: FakeServer) -> None:
        sock.sendall(reply)
        sock.shutdown(socket.SHUT_WR)
        server.read_until_eof(sock)

    return script


def send_then_reset_unread(reply: bytes, delay: float) -> Script:
    """Send `reply` at once and read nothing, so a client's sends soon block, then reset the connection `delay`
    seconds after it opened: a client that is still sending meets the reset in a send (C-7)."""

    def script(sock: socket.socket, server: FakeServer) -> None:
        deadline = time.monotonic() + delay
        sock.settimeout(delay)
        with contextlib.suppress(TimeoutError):  # a client that does not read holds part of it back: no matter
            sock.sendall(reply)
        time.sleep(max(0.0, deadline - time.monotonic()))
        reset(sock)

    return script
