"""The client (spec section 6): MESSAGEs or stdin to the socket, the socket to stdout.

One thread and one select() loop over the socket and stdin: neither direction can block the other (C-3), and every
socket error is seen in the order the kernel reports it. That order is what C-7 needs: after a reset, Linux reports
the error to the first send() or recv() that asks, and a later recv() sees only end of stream. So a send that fails
ends the session (exit 4) before any recv() can mistake the reset for the server's FIN.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
from collections import namedtuple
from collections.abc import Callable

from .failures import CannotConnect, ConnectionBroke, StdinFailed

CHUNK = 64 * 1024
UNSPECIFIED = ("0.0.0.0", "::", "::ffff:0.0.0.0")  # as getaddrinfo writes them


# The client's command line, decoded (C-1); the defaults are cli.py's, from spec/cli.toml. host is a str, port
# an int, timeout a float in seconds. (collections.namedtuple: importing typing costs 4 ms of every start.)
ClientOptions = namedtuple("ClientOptions", "host port timeout")


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect(options: ClientOptions) -> socket.socket:
    """A connection to the first address the host resolves to (X-5), made within the timeout (C-5)."""
    where = format_address(options.host, options.port)
    # The host is ASCII and goes to the resolver as bytes, as the other languages pass it: as a str, Python
    # would first put it through its IDNA codec, and importing that (with stringprep and unicodedata) costs each start.
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            options.host.encode("ascii"), options.port, type=socket.SOCK_STREAM
        )[0]
    except OSError as failure:
        raise CannotConnect(f"cannot connect to {where}: {failure.strerror or failure}") from None
    if address[0] in UNSPECIFIED:  # C-6: Linux would connect to this host instead; other systems refuse
        raise CannotConnect(f"cannot connect to {where}: {address[0]} is an unspecified address, which names no peer")
    sock = socket.socket(family, kind, proto)
    sock.settimeout(options.timeout)
    try:
        sock.connect(address)
    except (ConnectionResetError, BrokenPipeError) as failure:  # C-6: accepted, then reset (an S-3 rejection)
        sock.close()
        raise ConnectionBroke(f"connection broke: {failure.strerror}") from None
    except OSError as failure:
        sock.close()
        raise CannotConnect(f"cannot connect to {where}: {failure.strerror or failure}") from None
    return sock


def exchange(
    sock: socket.socket, timeout: float, outgoing: bytes | None, stdin: int, write: Callable[[bytes], None]
) -> None:
    """Send `outgoing` (or stdin when None), half-close, and pass every byte received to `write` until the FIN.

    Returns when the server's FIN was read and no error came before it; raises ConnectionBroke otherwise.
    """
    sock.setblocking(False)
    pending = memoryview(outgoing or b"")  # read from stdin (or the MESSAGEs) and not yet sent
    reading_stdin = outgoing is None
    sending = True
    while True:
        if sending and not pending and not reading_stdin:
            with contextlib.suppress(OSError):  # a reset that makes this fail is reported by the next recv()
                sock.shutdown(socket.SHUT_WR)
            sending = False
        readers: list[socket.socket | int] = [sock, stdin] if reading_stdin and not pending else [sock]
        writers = [sock] if pending else []
        readable, writable, _ = select.select(readers, writers, [], None if sending else timeout)  # C-5
        if not readable and not writable:
            raise ConnectionBroke(f"no data from the server for {timeout:g} s after sending everything")
        if sock in readable:  # first: a FIN already read ends the session before any later send can fail
            try:
                data = sock.recv(CHUNK)
            except BlockingIOError:
                data = None
            except OSError as failure:
                raise ConnectionBroke(f"connection broke: {failure.strerror or failure}") from None
            if data == b"":
                return  # C-7: the server's orderly close, stop sending whatever is left
            if data:
                write(data)  # C-4: the server's bytes, unchanged, at once
        if sock in writable:
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                pass
            except OSError as failure:  # C-7: a reset (or broken pipe) seen while sending counts too
                raise ConnectionBroke(f"connection broke: {failure.strerror or failure}") from None
        elif stdin in readable:
            try:
                pending = memoryview(os.read(stdin, CHUNK))
            except BlockingIOError:  # a non-blocking stdin that another reader emptied first; select waits
                continue
            except OSError as failure:  # C-8: not the end of input; the reset tells the server so
                reset_on_close(sock)
                raise StdinFailed.because(failure) from None
            reading_stdin = bool(pending)


def reset_on_close(sock: socket.socket) -> None:
    """SO_LINGER with no time: closing the socket sends a reset, never the FIN of a whole input (C-8)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def run_client(options: ClientOptions, messages: list[bytes], stdin: int, write: Callable[[bytes], None]) -> None:
    """C-2, C-3: each MESSAGE plus LF, or stdin when there are none; the reply goes to `write`."""
    outgoing = b"".join(message + b"\n" for message in messages) if messages else None
    with connect(options) as sock:
        exchange(sock, options.timeout, outgoing, stdin, write)
