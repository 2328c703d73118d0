"""Hostile peers: what every server owes clients that misbehave and a machine that runs out (spec sections 4-5).

Each test starts its own server (nothing shared: these tests leave a server in states no other test should see)
and ends by checking that everything the server wrote to stderr was one-line diagnostics (S-11). Every load is
bounded in count and time and closes every socket it opens. The bounds the spec sets (S-4's drain-timeout + 1 s,
S-12's 2,000 connections in 2 s, S-10's 100 ms pause) are asserted as the spec states them plus a stated
slack for the harness's own observation on a loaded 2-core machine; nothing here is a benchmark.
"""

from __future__ import annotations

import collections
import contextlib
import re
import resource
import signal
import socket
import time

import pytest

from harness.backends import Backend, ServerHandle
from harness.wire import Conversation, connect, reset, wait_for

OPEN = re.compile(r"open peer=(\S+)")
CLOSE = re.compile(r"close peer=(\S+) in=\d+ out=\d+")
REJECT = re.compile(r"reject peer=(\S+)")
CONNECTION_LINES = ("open ", "close ", "reject ")  # S-6; a diagnostic must not start like these
# What the second line of a stack trace or a multi-line message looks like (Python, Java, .NET): S-11.
NOT_A_FIRST_LINE = ("Traceback", "at ", "Caused by", "Unhandled Exception")
NON_READER_BUFFER = 64 * 1024  # SO_RCVBUF of a client that stops reading
OBSERVATION_SLACK = 0.5  # seconds the harness may take to see an exit it asked for (signal, wait, a container's API)


@pytest.fixture
def hostile_server(backend: Backend):
    """A fresh server with the given flags (and RLIMIT_NOFILE) for one test; killed afterwards."""
    started: list[ServerHandle] = []

    def start(implementation, *args: str, nofile: int | None = None) -> ServerHandle:
        started.append(backend.start_server(implementation, *args, nofile=nofile))
        return started[-1]

    yield start
    for server in started:
        server.kill()


def raise_own_open_file_limit(needed: int) -> None:
    """The harness holds as many sockets as the test opens, plus its own files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"the harness needs {needed} open files; its hard limit is {hard} (raise it: ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def peers(lines: list[str], pattern: re.Pattern) -> collections.Counter:
    return collections.Counter(match[1] for line in lines if (match := pattern.fullmatch(line)))


def diagnostics(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith(CONNECTION_LINES)]


def assert_one_line_diagnostics(running: ServerHandle) -> None:
    """S-11 on everything the server wrote to stderr; and S-6's own lines are exactly S-6's format."""
    lines = running.log_lines()
    multi = [line for line in lines if not line or line[0].isspace() or line.startswith(NOT_A_FIRST_LINE)]
    assert not multi, f"S-11: {len(multi)} stderr lines continue a multi-line diagnostic, e.g. {multi[:4]}"
    malformed = [
        line
        for line in lines
        if line.startswith(CONNECTION_LINES) and not any(p.fullmatch(line) for p in (OPEN, CLOSE, REJECT))
    ]
    assert not malformed, f"S-6: lines that start like a connection line but are not one: {malformed[:4]}"


def wait_until_the_log_settles(running: ServerHandle, quiet: float = 0.5, timeout: float = 5.0) -> None:
    """Until the server has written no log line for `quiet` seconds (it has accepted what it could), or
    `timeout` passed (a server that logs every failed accept never settles: the window then measures it)."""
    deadline, count, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = len(running.log_lines())
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def peer_of(backend: Backend, sock: socket.socket) -> str:
    """How the server sees this harness socket (S-6): an IPv4 harness address, the socket's port."""
    return f"{backend.harness_host}:{sock.getsockname()[1]}"


def connect_or_fail(address: tuple[str, int], already: int) -> socket.socket:
    """A connect that must complete: the kernel does that into the backlog even while the server cannot accept."""
    try:
        return connect(address, timeout=10)
    except OSError as error:
        failure = f"connect failed with {already} connections open: {error!r} (a full backlog, S-12?)"
    pytest.fail(failure)


def served(address: tuple[str, int], within: float) -> bytes | None:
    """One normal exchange that must be finished within `within` seconds: its answer, or None."""
    deadline = time.monotonic() + within
    try:
        talk = Conversation(address)
    except OSError:
        return None
    try:
        talk.send(b"served?\n")
        talk.half_close()
        if not talk.closed_by_peer.wait(max(0.0, deadline - time.monotonic())):
            return None
        return talk.receive(1 << 20, timeout=0)
    except OSError:
        return None
    finally:
        talk.close()


def served_again(address: tuple[str, int], within: float) -> bool:
    """Exchanges until one is answered in full or `within` seconds pass (an early try may be rejected)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if served(address, deadline - time.monotonic()) == b"SERVED?\n":
            return True
        time.sleep(0.05)
    return False


def non_reader(address: tuple[str, int]) -> socket.socket:
    """A client that will stop reading, with a small receive buffer: the server's answer then stalls for sure,
    in the server's own buffers, rather than fitting in an autotuned buffer of ours (up to 32 MiB here)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NON_READER_BUFFER)
    sock.settimeout(10)
    sock.connect(address)
    return sock


def fill_until_stalled(
    socks: list[socket.socket], stall: float = 0.3, limit: int = 256 << 20
) -> tuple[float, set[socket.socket]]:
    """Send to every socket, never reading, until none has taken a byte for `stall` seconds (the server stopped
    reading from clients that stopped reading, D-5) or each has sent `limit` bytes. The time of the last
    progress (the server's answer stalled before it), and the sockets whose send saw a reset (the kernel
    reports a reset once: a later read of such a socket sees only the end of the stream)."""
    chunk, sent, reset_seen = b"x" * 65536, dict.fromkeys(socks, 0), set()
    for sock in socks:
        sock.setblocking(False)
    last = time.monotonic()
    while time.monotonic() - last < stall and any(count < limit for count in sent.values()):
        progressed = False
        for sock in socks:
            if sent[sock] < limit:
                try:
                    sent[sock] += sock.send(chunk)
                    progressed = True
                except BlockingIOError:
                    pass
                except OSError as error:
                    sent[sock] = limit  # closed or reset already: nothing more goes in
                    if isinstance(error, ConnectionResetError):
                        reset_seen.add(sock)
        if progressed:
            last = time.monotonic()
        else:
            time.sleep(0.01)
    return last, reset_seen


def how_it_ends(sock: socket.socket, timeout: float) -> str:
    """Read all that arrives: 'reset', or what else ended (or did not end) the stream."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return f"still open after {timeout:g} s ({received} bytes)"
    return f"an orderly EOF after {received} bytes"


EXHAUSTION_NOFILE = 256
EXHAUSTION_CONNECTIONS = 400
EXHAUSTION_WINDOW = 2.0  # seconds of exhaustion measured
RECOVERY_BOUND = 2.0  # S-10: back 100 ms after the descriptors are; 2 s is the bound with slack


@pytest.mark.clause("S-10", "S-6", "S-11")
@pytest.mark.slow
def test_descriptor_exhaustion_backs_off_and_recovers(backend, hostile_server, server) -> None:
    raise_own_open_file_limit(EXHAUSTION_CONNECTIONS + 200)
    running = hostile_server(server, nofile=EXHAUSTION_NOFILE)
    clients: list[socket.socket] = []
    mine: collections.Counter = collections.Counter()  # how the server sees each of them (S-6)
    try:
        # 400 connects before the server served any: the kernel completes them into the backlog (S-12); the
        # server accepts until it runs out of descriptors, and the rest wait in the backlog.
        for _ in range(EXHAUSTION_CONNECTIONS):
            clients.append(connect_or_fail(running.address, len(clients)))
            mine[peer_of(backend, clients[-1])] += 1
        wait_until_the_log_settles(running)

        lines_before, cpu_before, started = len(running.log_lines()), running.cpu_seconds(), time.monotonic()
        time.sleep(EXHAUSTION_WINDOW)
        window = time.monotonic() - started
        cpu, lines = running.cpu_seconds() - cpu_before, running.log_lines()[lines_before:]
        assert cpu < 0.10 * window, f"{cpu / window:.0%} CPU while out of descriptors: accept must pause 100 ms"
        assert len(lines) < 100 * window, f"{len(lines)} log lines in {window:.1f} s of exhaustion, e.g. {lines[:3]}"
        noise = diagnostics(lines)
        # S-10: one line a second, and a count of the ones left out MAY follow: at most 2 a second, rounded up
        assert len(noise) <= 2 * (window + 1), f"{len(noise)} diagnostics in {window:.1f} s (S-10: 1 a second)"

        first = clients[0]  # the first in the backlog: accepted before the descriptors ran out
        first.settimeout(10)
        first.sendall(b"still served\n")
        answer = b""
        with contextlib.suppress(OSError):
            while len(answer) < 13 and (chunk := first.recv(64)):
                answer += chunk
        assert answer == b"STILL SERVED\n", f"S-10: open connections are served while out of descriptors ({answer!r})"
    finally:
        for sock in clients:
            sock.close()
    closed = time.monotonic()
    answer = served(running.address, RECOVERY_BOUND)
    assert answer == b"SERVED?\n", (
        f"not served within {RECOVERY_BOUND:g} s of the descriptors coming back (answer {answer!r}): "
        "S-10 says accept again as soon as the resource is back"
    )
    assert time.monotonic() - closed < RECOVERY_BOUND + OBSERVATION_SLACK

    # S-6: every connection accept returned is logged opened and closed; none died before accept (closed with
    # FIN, each still waited in the backlog), so that is all 400.
    def logged() -> tuple[collections.Counter, collections.Counter]:
        lines = running.log_lines()
        return peers(lines, OPEN) & mine, peers(lines, CLOSE) & mine

    wait_for(lambda: logged() == (mine, mine), timeout=10)
    opened, closed_lines = logged()
    assert opened == closed_lines, f"S-6: {sum((opened - closed_lines).values())} opened connections never closed"
    assert opened == mine, f"S-6: {sum((mine - opened).values())} of {len(clients)} connections never logged"
    assert_one_line_diagnostics(running)


DRAIN_TIMEOUT = 0.5


@pytest.mark.clause("S-4", "D-5", "S-11")
@pytest.mark.slow
def test_drain_resets_a_client_that_stopped_reading(backend, hostile_server, server) -> None:
    running = hostile_server(server, "--drain-timeout", str(DRAIN_TIMEOUT))
    hog = non_reader(running.address)
    peer = peer_of(backend, hog)
    try:
        fill_until_stalled([hog])  # the server's answer to it is stuck, and so is its reading
        started = time.monotonic()
        running.send_signal(signal.SIGTERM)
        try:
            status = running.wait(timeout=20)
        except Exception:  # subprocess.TimeoutExpired, or the Docker client's own timeout
            pytest.fail("still running 20 s after SIGTERM, with a client that stopped reading (S-4)")
        took = time.monotonic() - started
        assert status == 0, f"exit status {status} after SIGTERM (S-4, S-9)"
        bound = DRAIN_TIMEOUT + 1
        assert took < bound + OBSERVATION_SLACK, f"exited {took:.2f} s after SIGTERM; S-4 bound {bound:g} s"
        assert peers(running.log_lines(), CLOSE)[peer] == 1, f"S-4: no close line for {peer}"
        assert_one_line_diagnostics(running)
    finally:
        reset(hog)


RESET_BURST = 300


@pytest.mark.clause("S-6", "S-5", "S-10", "S-11")
def test_a_burst_of_connect_then_reset_is_logged_and_survived(backend, hostile_server, server) -> None:
    running = hostile_server(server)
    mine: collections.Counter = collections.Counter()
    started = time.monotonic()
    for _ in range(RESET_BURST):  # one socket at a time: bounded, nothing left open
        sock = socket.create_connection(running.address, timeout=10)
        mine[peer_of(backend, sock)] += 1
        reset(sock)
    assert served_again(running.address, 10), "not served after a burst of resets (S-5)"

    def logged() -> tuple[collections.Counter, collections.Counter]:
        lines = running.log_lines()
        return peers(lines, OPEN) & mine, peers(lines, CLOSE) & mine

    wait_for(lambda: logged() == (mine, mine), timeout=10)
    opened, closed = logged()
    assert opened == closed, (
        f"S-6: {sum((opened - closed).values())} opened, never closed; {sum((closed - opened).values())} "
        "closed, never opened (a reset connection is logged with the address accept reported, in=0 out=0)"
    )
    # Linux's accept returns a connection that was reset while it waited in the backlog: all were accepted.
    assert opened == mine, f"S-6: {sum((mine - opened).values())} of {RESET_BURST} reset connections never logged"
    noise = diagnostics(running.log_lines())
    elapsed = time.monotonic() - started
    assert len(noise) <= 2 * (elapsed + 1), f"{len(noise)} diagnostics in {elapsed:.1f} s, e.g. {noise[:3]}"
    assert_one_line_diagnostics(running)


IDLE_TIMEOUT = 1
IDLE_MARGIN = 3.0  # timer granularity and a loaded machine


@pytest.mark.clause("S-2", "S-3", "D-5", "S-11")
@pytest.mark.slow
def test_idle_timeout_frees_the_slots_of_clients_that_stopped_reading(backend, hostile_server, server) -> None:
    running = hostile_server(server, "--idle-timeout", str(IDLE_TIMEOUT), "--max-connections", "2")
    hogs = [non_reader(running.address) for _ in range(2)]
    try:
        stalled, reset_seen = fill_until_stalled(hogs)  # no progress either way from here on
        assert served_again(running.address, stalled + IDLE_TIMEOUT + IDLE_MARGIN - time.monotonic()), (
            f"a third client was not served {IDLE_TIMEOUT + IDLE_MARGIN:g} s after two non-reading clients "
            f"stalled (--idle-timeout {IDLE_TIMEOUT}, --max-connections 2: S-2 frees their slots)"
        )
        # Both slots are freed, not just one; only then read what the hogs got (reading is progress again).
        stuck = collections.Counter(peer_of(backend, hog) for hog in hogs)
        assert wait_for(
            lambda: peers(running.log_lines(), CLOSE) & stuck == stuck,
            timeout=max(0.5, stalled + IDLE_TIMEOUT + IDLE_MARGIN - time.monotonic()),
        ), f"S-2: a non-reader still open {IDLE_TIMEOUT + IDLE_MARGIN:g} s after it stalled: {running.log_lines()}"
        for hog in hogs:
            ending = "reset" if hog in reset_seen else how_it_ends(hog, timeout=10)
            assert ending == "reset", f"S-2: a peer that stopped taking the answer is reset; this one saw {ending}"
        assert_one_line_diagnostics(running)
    finally:
        for hog in hogs:
            reset(hog)


def how_a_rejected_connection_ends(address: tuple[str, int], data: bytes, name: list[str]) -> str:
    """Connect (sending `data`) and read: 'reset', or what else happened. The reset may come as early as the
    connect itself (the kernel reports it once, to whichever call comes first). Its peer goes into `name`."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        sock.settimeout(10)
        sock.bind(("::" if ":" in address[0] else "0.0.0.0", 0))  # the port is known even if connect is reset
        name.append(sock.getsockname()[1])
        try:
            sock.connect(address)
            if data:
                sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):  # a send after the reset may see EPIPE instead
            return "reset"
        return how_it_ends(sock, timeout=10)
    finally:
        sock.close()


@pytest.mark.clause("S-3", "S-6", "S-11")
def test_a_rejected_connection_sees_a_reset_never_an_orderly_eof(backend, hostile_server, server) -> None:
    running = hostile_server(server, "--max-connections", "1")
    holder = Conversation(running.address)
    try:
        holder.send(b"a")
        holder.expect(b"A")
        ports: list[int] = []
        for name, data in (("a silent", b""), ("a talking", b"let me in\n")):
            ending = how_a_rejected_connection_ends(running.address, data, ports)
            assert ending == "reset", f"S-3: {name} rejected connection saw {ending}, not a reset"
        holder.send(b"b")  # open connections are not affected
        holder.expect(b"B")
        rejected = collections.Counter(f"{backend.harness_host}:{port}" for port in ports)
        assert wait_for(lambda: peers(running.log_lines(), REJECT) & rejected == rejected, timeout=10), (
            f"S-6: expected reject lines for {sorted(rejected)}; log: {running.log_lines()[-6:]}"
        )
        assert not peers(running.log_lines(), OPEN) & rejected, "a rejected connection is logged only as reject"
        assert_one_line_diagnostics(running)
    finally:
        holder.close()


@pytest.mark.clause("S-6", "N-1", "S-11")
def test_an_ipv4_mapped_peer_is_logged_as_ipv4(backend, hostile_server, server) -> None:
    running = hostile_server(server, "--host", "::")
    # An IPv4 client of a dual-stack :: listener: accept reports ::ffff:a.b.c.d. (In the docker backend the
    # harness connects across the session network, so the mapped peer is the harness's network address.)
    talk = Conversation(running.ipv4_address)
    peer = peer_of(backend, talk.sock)
    try:
        talk.send(b"mapped\n")
        talk.half_close()
        assert talk.rest() == b"MAPPED\n"
    finally:
        talk.close()
    wanted = (collections.Counter([peer]), collections.Counter([peer]))
    lines = lambda: running.log_lines()  # noqa: E731
    wait_for(lambda: (peers(lines(), OPEN), peers(lines(), CLOSE)) == wanted, timeout=10)
    assert (peers(lines(), OPEN), peers(lines(), CLOSE)) == wanted, f"S-6: expected {peer}; log: {lines()[-4:]}"
    assert "::ffff:" not in "\n".join(lines()), "S-6: an IPv4-mapped peer is written as its IPv4 address"
    assert_one_line_diagnostics(running)


BACKLOG_CONNECTIONS = 2000
BACKLOG_BOUND = 2.0  # seconds: the spec's bound (S-12); this harness takes ~0.3 s here, so 2 s is ~6x margin


@pytest.mark.clause("S-12", "S-1", "S-11")
@pytest.mark.slow
def test_2000_connections_are_opened_in_under_2_s(hostile_server, server) -> None:
    raise_own_open_file_limit(BACKLOG_CONNECTIONS + 200)
    running = hostile_server(server, "--max-connections", "4000", nofile=8192)
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(BACKLOG_CONNECTIONS):  # connect() returns once the kernel queued it: backlog, accept rate
            socks.append(socket.create_connection(running.address, timeout=10))
        took = time.monotonic() - started
        assert took < BACKLOG_BOUND, (
            f"{BACKLOG_CONNECTIONS} connects took {took:.2f} s: a backlog of 1024 (S-12) and a prompt accept "
            f"take them in under {BACKLOG_BOUND:g} s (a full backlog drops SYNs: 1 s retransmits)"
        )
        assert served_again(running.address, 10), f"not served with {BACKLOG_CONNECTIONS} connections open"
        assert_one_line_diagnostics(running)
    finally:
        for sock in socks:
            reset(sock)
