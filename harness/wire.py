"""A raw-socket test client: exact bytes, explicit half-close and reset, no implementation in between."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from .bytes_diff import assert_same_bytes

DEFAULT_WAIT = 20.0  # a hard bound on "promptly": generous for a loaded 2-core machine


def connect(address: tuple[str, int], timeout: float = DEFAULT_WAIT) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # so separate writes stay separate segments
    return sock


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Conversation:
    """One connection with a background reader, so the test can send, expect and wait independently."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = connect(address)
        self._received = bytearray()
        self._consumed = 0
        self.closed_by_peer = threading.Event()
        self.ended_by = ""  # once closed_by_peer is set: "FIN" or "RST", how the peer ended the stream
        self._arrived = threading.Condition()
        threading.Thread(target=self._read_loop, daemon=True).start()

    def _read_loop(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                with self._arrived:
                    self._received += chunk
                    self._arrived.notify_all()
            self.ended_by = "FIN"
        except ConnectionResetError:
            self.ended_by = "RST"
        except OSError:
            pass  # the test closed it: tests look at what arrived, at closed_by_peer and at ended_by
        finally:
            with self._arrived:
                self.closed_by_peer.set()
                self._arrived.notify_all()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, size: int, timeout: float = DEFAULT_WAIT) -> bytes:
        """The next `size` bytes, or fewer if the peer closed or the timeout ran out."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: len(self._received) - self._consumed >= size or self.closed_by_peer.is_set(), timeout
            )
            data = bytes(self._received[self._consumed : self._consumed + size])
        self._consumed += len(data)
        return data

    def expect(self, expected: bytes, timeout: float = DEFAULT_WAIT) -> None:
        actual = self.receive(len(expected), timeout)
        assert_same_bytes(actual, expected)

    def arriving_within(self, seconds: float) -> bytes:
        """Whatever arrives in the next `seconds` (to prove that nothing does)."""
        time.sleep(seconds)
        with self._arrived:
            data = bytes(self._received[self._consumed :])
        self._consumed += len(data)
        return data

    def half_close(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def rest(self, timeout: float = DEFAULT_WAIT) -> bytes:
        """Everything until the peer closes; fails if it does not close in time."""
        assert self.closed_by_peer.wait(timeout), f"the server did not close the connection within {timeout:g} s"
        return self.receive(len(self._received))

    def close(self) -> None:
        # Shut down first: while the reader thread is blocked in recv(), close() alone sends no FIN (the blocked
        # call keeps the socket alive), and the connection stays open on the server until the session ends.
        with contextlib.suppress(OSError):  # the peer may have reset it already
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def exchange(
    address: tuple[str, int], data: bytes, pieces: list[bytes] | None = None, pause: float = 0.0, timeout: float = 60.0
) -> bytes:
    """Send `data` (or `pieces`, pausing between them) while reading, half-close, return all until EOF."""
    conversation = Conversation(address)
    try:
        for piece in pieces if pieces is not None else [data]:
            conversation.send(piece)
            if pause:
                time.sleep(pause)
        conversation.half_close()
        return conversation.rest(timeout)
    finally:
        conversation.close()


def wait_for(condition, timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` runs out; whether it held. For what a server shows late, such
    as a log line that docker's log driver stores a little after the server writes it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
