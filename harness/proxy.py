"""A fault-injecting, recording TCP proxy: the network conditions axis of the matrix (spec/PROTOCOL.md N-3).

It sits between a client under test and a server under test. It listens where clients reach the harness (as
the fake servers do) and dials the server. Each named condition shapes or breaks the two legs in one way and is
seeded, so a run can be repeated; every event on both legs is recorded with its time, direction and who caused
it, so that a failing cell carries its transcript and the transcript can be replayed (harness/replay.py).

The proxy runs an asyncio loop in a thread of the test process: no extra process, no extra port per condition.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

EARLY_CLOSE_AFTER = 10240  # upload bytes the server gets before its side ends (early-close)
TRANSCRIPT_BYTES_CAP = 4 * 1024 * 1024  # data kept per transcript (the first: where a failure starts)
TRANSCRIPT_EVENTS_CAP = 50_000


@dataclass(frozen=True)
class Condition:
    """A named network condition: how the proxy treats the legs, and what the spec then expects."""

    name: str
    clauses: tuple[str, ...]
    timing: bool  # its outcome can depend on scheduling: it runs many times per pair by default
    expects: str
    segment: int | None = None  # largest segment forwarded per write, both ways (1: a byte per write)
    jitter: bool = False  # random segment sizes and short random delays (seeded)
    cut_after: tuple[str, int] | None = None  # (direction, bytes forwarded) after which `at_cut` happens
    at_cut: str = ""  # "reset" both legs, or "close-upload": half-close toward the server, drop the rest
    stall_after_fin: bool = False  # once the client half-closed, forward nothing more to it
    slow_read: bool = False  # read the reply in small pieces with pauses, from a small receive buffer


CONDITIONS = {
    condition.name: condition
    for condition in (
        Condition("clean", ("T-1", "N-3"), False, "pass-through: exit 0, stdout is exactly U(input)"),
        Condition("split-1", ("D-1", "D-2"), False, "one byte per write both ways: exit 0, stdout U(input)", 1),
        Condition("jitter", ("D-1", "D-2"), True, "random segments and delays: exit 0, stdout U(input)", jitter=True),
        Condition(
            "reset-client-sending",
            ("C-6", "C-7"),
            True,
            "RST to the client after 10 upload bytes while it still sends: exit 4, one error line",
            cut_after=("to-server", 10),
            at_cut="reset",
        ),
        Condition(
            "reset-client-receiving",
            ("C-6",),
            True,
            "RST to the client after 1000 reply bytes: exit 4, one error line, stdout a prefix of U(input)",
            cut_after=("to-client", 1000),
            at_cut="reset",
        ),
        Condition(
            "reset-server",
            ("S-5", "S-6"),
            True,
            "RST to the server mid-stream: it logs one close line and serves on; the client exits 4",
            cut_after=("to-server", 10240),
            at_cut="reset",
        ),
        Condition(
            "early-close",
            ("C-7", "E-1"),
            True,
            "the server's side ends after 10240 upload bytes while the client is blocked sending: exit 0, stdout "
            "U(those bytes)",
            cut_after=("to-server", EARLY_CLOSE_AFTER),
            at_cut="close-upload",
        ),
        Condition(
            "stall",
            ("C-5",),
            False,
            "the reply stops after the client half-closed, past its --timeout: exit 4, one error line",
            stall_after_fin=True,
        ),
        Condition(
            "slow-reader",
            ("D-5", "T-1"),
            False,
            "the reply is read slowly, so backpressure reaches the server: exit 0, stdout U(input)",
            slow_read=True,
        ),
    )
}


def client_outcome_problems(condition: str, stdin: bytes, returncode: int, stdout: bytes, stderr: bytes) -> list[str]:
    """What is wrong with a client's outcome under `condition`, by the clauses it cites; [] when right."""
    from .oracle import expected_u  # the independent oracle (not an implementation under test)
    from .outcomes import is_one_error_line

    expected = expected_u(stdin[:EARLY_CLOSE_AFTER] if condition == "early-close" else stdin)
    problems = []
    if condition in ("clean", "split-1", "jitter", "slow-reader", "early-close"):
        if returncode != 0 or stderr:
            problems.append(f"exit {returncode} with stderr {stderr[:300]!r}; expected exit 0 and no stderr")
        if stdout != expected:
            problems.append(f"stdout ({len(stdout)} bytes) is not U(input) ({len(expected)} bytes)")
    else:  # the resets and the stall
        if returncode != 4 or not is_one_error_line(stderr):
            problems.append(f"exit {returncode} with stderr {stderr[:300]!r}; expected exit 4 and one error line")
        if not expected.startswith(stdout):
            problems.append(f"stdout ({len(stdout)} bytes) is not a prefix of U(input)")
    return problems


@dataclass
class Transcript:
    """Both legs of one proxied connection, in order: what the harness shows and replays."""

    condition: str
    seed: int
    started: float = field(default_factory=time.monotonic)
    events: list[dict] = field(default_factory=list)
    dropped: int = 0
    kept_bytes: int = 0
    server_port: int | None = None  # the proxy's own port on the server leg: how the server's log names it
    stdin: bytes = b""  # what the client under test was given to send (set by the test) ...
    client_args: list[str] = field(default_factory=list)  # ... and its flags beyond --host and --port

    def add(self, leg: str, direction: str, kind: str, by: str, data: bytes = b"") -> None:
        """One event: on `leg` ("client" or "server"), travelling `direction`, `kind` data/fin/rst, done by
        "client", "server" or "proxy"."""
        if len(self.events) >= TRANSCRIPT_EVENTS_CAP or self.kept_bytes + len(data) > TRANSCRIPT_BYTES_CAP:
            self.dropped += 1
            return
        event = {"t": round(time.monotonic() - self.started, 6), "leg": leg, "dir": direction, "kind": kind, "by": by}
        if kind == "data":
            event["hex"] = data.hex()
            self.kept_bytes += len(data)
        self.events.append(event)

    def as_dict(self) -> dict:
        """The JSON form that the reports carry and harness/replay.py reads."""
        return {
            "format": "upper-echo-transcript/1",
            "condition": self.condition,
            "seed": self.seed,
            "server_port": self.server_port,
            "stdin_hex": self.stdin.hex(),
            "client_args": self.client_args,
            "events": self.events,
            "dropped": self.dropped,
        }


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """`with FaultProxy(listen_host, server_address, condition, seed) as proxy:` then point the client at
    (listen_host, proxy.port). `proxy.transcripts` holds one Transcript per connection served."""

    def __init__(self, listen_host: str, target: tuple[str, int], condition: Condition, seed: int) -> None:
        self.target = target
        self.condition = condition
        self.seed = seed
        self.transcripts: list[Transcript] = []
        family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((listen_host, 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"proxy-{condition.name}", daemon=True)
        self.connections_done = threading.Event()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        self.accepting = asyncio.run_coroutine_threadsafe(self._accept_loop(), self.loop)
        return self

    def __exit__(self, *exc_info) -> None:
        async def stop() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.listener.close()
        self.loop.close()

    def wait_until_done(self, timeout: float) -> bool:
        """True once the first connection's legs have both ended (its transcript is complete)."""
        return self.connections_done.wait(timeout)

    async def _accept_loop(self) -> None:
        while True:
            client, _ = await self.loop.sock_accept(self.listener)
            asyncio.create_task(self._serve(client, Transcript(self.condition.name, self.seed)))

    async def _serve(self, client: socket.socket, transcript: Transcript) -> None:
        self.transcripts.append(transcript)
        server = socket.socket(socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET, socket.SOCK_STREAM)
        server.setblocking(False)
        client.setblocking(False)
        if self.condition.segment == 1 or self.condition.jitter:
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.condition.slow_read:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            await self.loop.sock_connect(server, self.target)
            transcript.server_port = server.getsockname()[1]
        except OSError:
            transcript.add("server", "to-server", "rst", "server")
            _reset(client)
            server.close()
            self.connections_done.set()
            return
        legs = _Legs(self, client, server, transcript)
        legs.tasks = [asyncio.create_task(legs.pump_upload()), asyncio.create_task(legs.pump_download())]
        try:
            await asyncio.gather(*legs.tasks, return_exceptions=True)
        finally:
            for task in legs.tasks:
                task.cancel()
            legs.close()
            self.connections_done.set()


class _Legs:
    """The two legs of one proxied connection and the condition's state for them."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket, transcript: Transcript):
        self.loop = proxy.loop
        self.condition = proxy.condition
        self.rng = random.Random(proxy.seed)
        self.client, self.server = client, server
        self.transcript = transcript
        self.forwarded = {"to-server": 0, "to-client": 0}
        self.client_fin = asyncio.Event()
        self.client_leg_ended = asyncio.Event()  # the proxy sent its FIN to the client
        self.reset_done = False
        self.tasks: list[asyncio.Task] = []

    def close(self) -> None:
        for sock in (self.client, self.server):
            if sock.fileno() != -1:
                sock.close()

    def reset_both(self) -> None:
        """RST on both legs. The other pump is cancelled first and the loop forgets both sockets, so that no
        coroutine waits on a closed descriptor."""
        if self.reset_done:
            return
        self.reset_done = True
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for sock, leg, direction in ((self.client, "client", "to-client"), (self.server, "server", "to-server")):
            if sock.fileno() != -1:
                self.loop.remove_reader(sock.fileno())
                self.loop.remove_writer(sock.fileno())
                _reset(sock)
                self.transcript.add(leg, direction, "rst", "proxy")

    def segments(self, data: bytes) -> list[tuple[bytes, float]]:
        """How `data` is written on: pieces, each with the pause before it."""
        if self.condition.segment:
            size = self.condition.segment
            return [(data[i : i + size], 0.0) for i in range(0, len(data), size)]
        if self.condition.jitter:
            pieces, start = [], 0
            while start < len(data):
                size = self.rng.randint(1, 64)
                pause = self.rng.choice((0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.rng.uniform(0.0005, 0.003)))
                pieces.append((data[start : start + size], pause))
                start += size
            return pieces
        return [(data, 0.0)]

    async def _read(self, sock: socket.socket, leg: str, size: int) -> bytes | None:
        """The next bytes from one leg; b"" at its FIN; None after a reset (recorded)."""
        try:
            data = await self.loop.sock_recv(sock, size)
        except (ConnectionResetError, BrokenPipeError):
            self.transcript.add(leg, "to-server" if leg == "client" else "to-client", "rst", leg)
            return None
        except OSError:  # the proxy itself reset this leg
            return None
        direction = "to-server" if leg == "client" else "to-client"
        self.transcript.add(leg, direction, "data" if data else "fin", leg, data)
        return data

    async def _write(self, sock: socket.socket, leg: str, direction: str, data: bytes) -> bool:
        """Forward `data` as the condition shapes it; False once this direction is cut."""
        for piece, pause in self.segments(data):
            if pause:
                await asyncio.sleep(pause)
            cut = self.condition.cut_after
            if cut and cut[0] == direction:
                room = cut[1] - self.forwarded[direction]
                if room <= 0:
                    return False
                piece = piece[:room]
            try:
                await self.loop.sock_sendall(sock, piece)
            except OSError:
                self.transcript.add(leg, direction, "rst", leg)
                return False
            self.transcript.add(leg, direction, "data", "proxy", piece)
            self.forwarded[direction] += len(piece)
            if cut and cut[0] == direction and self.forwarded[direction] >= cut[1]:
                return False
        return True

    async def pump_upload(self) -> None:
        while True:
            data = await self._read(self.client, "client", 65536)
            if data is None:  # the client reset: so does the proxy toward the server
                self.reset_both()
                return
            if not data:
                self.client_fin.set()
                self._half_close(self.server, "server", "to-server")
                return
            if not await self._write(self.server, "server", "to-server", data):
                if self.condition.at_cut == "reset":
                    self.reset_both()
                    return
                if self.condition.at_cut == "close-upload":
                    self._half_close(self.server, "server", "to-server")
                    # Read no more from the client until the answer and FIN are on their way to it: so it is
                    # still sending (blocked) when the server's side ends, the case C-7 is about.
                    await self.client_leg_ended.wait()
                    await self._drain_client()
                return

    async def _drain_client(self) -> None:
        """After an early close toward the server, read and drop what the client still sends, so that its
        socket does not end with a reset for unread data."""
        while await self._read(self.client, "client", 65536):
            pass
        self.client_fin.set()

    async def pump_download(self) -> None:
        size = 8192 if self.condition.slow_read else 65536
        while True:
            data = await self._read(self.server, "server", size)
            if data is None:
                self.reset_both()
                return
            if not data:
                if self.condition.stall_after_fin:
                    await asyncio.sleep(3600)  # never: the test ends the proxy once the client gave up
                self._half_close(self.client, "client", "to-client")
                self.client_leg_ended.set()
                return
            if self.condition.stall_after_fin and self.client_fin.is_set():
                continue  # the reply stops here (C-5)
            if not await self._write(self.client, "client", "to-client", data):
                if self.condition.at_cut == "reset":
                    self.reset_both()
                return
            if self.condition.slow_read:
                await asyncio.sleep(0.002)

    def _half_close(self, sock: socket.socket, leg: str, direction: str) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        self.transcript.add(leg, direction, "fin", "proxy")
