"""Server conformance: a raw-socket client against every server (spec sections 3-5)."""

from __future__ import annotations

import hashlib
import signal
import socket
import threading
import time

import pytest

from harness.bytes_diff import assert_same_bytes, describe_difference
from harness.fuzz import dense_stream
from harness.oracle import owed_after_each_read
from harness.outcomes import assert_one_error_line
from harness.wire import Conversation, connect, exchange, reset, wait_for

SPLIT_CHARACTERS = ["é", "€", "𐐨"]  # 2, 3 and 4 bytes


@pytest.mark.clause("D-1", "D-2")
def test_byte_at_a_time_with_pauses(servers, server) -> None:
    text = "héllo wörld ß 𐐨 ΐ\n".encode()
    actual = exchange(servers.get(server).address, text, pieces=[bytes([b]) for b in text], pause=0.005)
    expected = "HÉLLO WÖRLD SS 𐐀 \u0399\u0308\u0301\n".encode()
    assert_same_bytes(actual, expected)


@pytest.mark.clause("D-1")
def test_character_split_at_every_position(servers, server) -> None:
    pieces, expected = [], b""
    for character in SPLIT_CHARACTERS:
        encoded = character.encode()
        for cut in range(1, len(encoded)):
            pieces += [encoded[:cut], encoded[cut:]]
            expected += character.upper().encode()  # these three agree with the table
    actual = exchange(servers.get(server).address, b"", pieces=pieces, pause=0.05)
    assert_same_bytes(actual, expected)


# Sizes around 8, 16 and 64 and odd ones. The small ones repeat 300 times, so that every offset of a fast path's
# word (8 bytes in Java and C#, 64 in Rust) meets the end of a read; the large ones, a few dozen times.
READ_SIZES = [2, 3, 5, 7, 8, 9, 11, 16, 17, 23, 31, 63, 64, 65, 127, 1021, 4099]
READS_PER_SIZE = 300
LOCKSTEP_MAX_BYTES = 65536


@pytest.mark.clause("D-1", "D-2", "E-1", "T-1")
@pytest.mark.parametrize("read_size", READ_SIZES)
def test_reads_of_one_size_in_lockstep(servers, server, read_size) -> None:
    """Writes of `read_size` bytes, each sent only once everything the last one owes (D-2) has arrived, so the
    server reads them one by one: exactly, on loopback, where a write of up to 64 KiB is one segment, as long as
    the server's read buffer holds a whole write. (A write that owes nothing, being all a held-back prefix, may
    be read with the next.) Random segmentation meets such boundaries only by chance: a 3-byte character ending
    exactly at the end of a 17-byte read broke a draft of Java's word loop."""
    data = dense_stream(min(read_size * READS_PER_SIZE, LOCKSTEP_MAX_BYTES), seed=read_size)
    *owed, tail = owed_after_each_read(data, read_size)
    talk = Conversation(servers.get(server).address)
    try:
        for number, answer in enumerate(owed):
            start = number * read_size
            talk.send(data[start : start + read_size])
            actual = talk.receive(len(answer))
            last_sent = data[max(0, start - 16) : start + read_size]
            assert actual == answer, (
                f"read {number} (bytes {start}..{start + read_size} of {len(data)}): "
                f"{describe_difference(actual, answer)}\nwhat was sent ends {last_sent!r}"
            )
        talk.half_close()
        assert_same_bytes(talk.rest(), tail)
    finally:
        talk.close()


@pytest.mark.clause("D-2", "T-1")
def test_a_line_is_answered_while_the_connection_stays_open(servers, server) -> None:
    talk = Conversation(servers.get(server).address)
    try:
        talk.send(b"hello, world\n")
        talk.expect(b"HELLO, WORLD\n")  # no half-close: the answer cannot wait for the end of the stream
    finally:
        talk.close()


@pytest.mark.clause("D-2")
def test_replies_before_waiting_and_holds_back_only_a_possible_prefix(servers, server) -> None:
    talk = Conversation(servers.get(server).address)
    try:
        talk.send(b"abc")
        talk.expect(b"ABC")  # sent before the server waits for more input
        talk.send(b"\xf0\x90")  # a proper prefix of 𐐨: may be held back...
        assert talk.arriving_within(0.3) == b"", "a possible prefix must be held back, not passed through"
        talk.send(b"\x90\xa8")
        talk.expect("𐐀".encode())  # ...and completed into one character
        talk.send(b"\xe0\x80")  # can never become well-formed: nothing to hold back
        talk.expect(b"\xe0\x80")
        talk.send(b"\xed\xa0")  # an encoded surrogate's start: never well-formed either
        talk.expect(b"\xed\xa0")
        talk.half_close()
        assert talk.rest() == b""
    finally:
        talk.close()


@pytest.mark.clause("E-1", "T-3")
def test_half_close_flushes_the_held_back_tail(servers, server) -> None:
    actual = exchange(servers.get(server).address, b"abc\xe2\x82")
    assert_same_bytes(actual, b"ABC\xe2\x82")


@pytest.mark.clause("D-3", "T-1")
def test_ten_thousand_pipelined_lines(servers, server) -> None:
    lines = b"".join(f"line {n:05d} straße\n".encode() for n in range(10_000))
    expected = b"".join(f"LINE {n:05d} STRASSE\n".encode() for n in range(10_000))
    actual = exchange(servers.get(server).address, lines)
    assert_same_bytes(actual, expected)


STREAM_BLOCKS = 4096  # x 64 KiB = 256 MiB
RSS_GROWTH_BOUND_KIB = 64 * 1024  # D-4: a fixed buffer per connection, not the stream


def stream_block(mixed: bool) -> bytes:
    """64 KiB ending on a character boundary: mostly ASCII, or text with expanding characters."""
    unit = "mixed Ünïcödé straße ΐ 𐐨 text\n" if mixed else "plain ascii text for the stream\n"
    block = unit.encode() * (65536 // len(unit.encode()))
    return block + b"." * (65536 - len(block))


@pytest.mark.clause("D-4", "D-5", "T-1")
def test_256_mib_stream_with_bounded_memory(dedicated_server, server) -> None:
    running = dedicated_server(server)
    blocks = [stream_block(mixed=(n % 16 == 0)) for n in range(2)]
    expected_blocks = [exchange(running.address, block) for block in blocks]  # warm-up, and U of each block
    assert expected_blocks[1] == blocks[1].upper()
    before = running.memory_kib()["VmRSS"]

    expected_hash = hashlib.sha256()
    sock = connect(running.address)

    def send() -> None:
        for n in range(STREAM_BLOCKS):
            sock.sendall(blocks[n % 16 != 0])
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    for n in range(STREAM_BLOCKS):
        expected_hash.update(expected_blocks[n % 16 != 0])
    actual_hash, received = hashlib.sha256(), 0
    buffer = bytearray(1 << 20)
    sock.settimeout(120)
    with sock:
        while count := sock.recv_into(buffer):
            actual_hash.update(memoryview(buffer)[:count])
            received += count
    sender.join(10)
    expected_size = sum(len(expected_blocks[n % 16 != 0]) for n in range(STREAM_BLOCKS))
    assert received == expected_size, f"received {received} bytes, expected {expected_size}"
    assert actual_hash.hexdigest() == expected_hash.hexdigest(), "same length, different bytes"
    peak = running.memory_kib()["VmHWM"]
    assert peak - before < RSS_GROWTH_BOUND_KIB, f"peak RSS grew by {(peak - before) // 1024} MiB while streaming"


@pytest.mark.clause("S-1")
def test_500_idle_connections_do_not_delay_a_new_client(servers, server) -> None:
    address = servers.get(server).address
    idle = [connect(address) for _ in range(500)]
    try:
        started = time.monotonic()
        assert exchange(address, b"ping\n", timeout=10) == b"PING\n"
        assert time.monotonic() - started < 10
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.clause("S-1", "D-5")
@pytest.mark.slow
def test_a_client_that_never_reads_does_not_stall_others(servers, server) -> None:
    address = servers.get(server).address
    hog = connect(address)
    hog.setblocking(False)
    sent, chunk, stalled_since = 0, b"x" * 65536, None
    try:
        while sent < 512 * 1024 * 1024:
            try:
                sent += hog.send(chunk)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 2:
                    break
                time.sleep(0.01)
        assert sent < 128 * 1024 * 1024, f"the server kept reading {sent >> 20} MiB from a client that never reads"
        assert exchange(address, b"still there?\n", timeout=10) == b"STILL THERE?\n"
    finally:
        reset(hog)


@pytest.mark.clause("S-5")
def test_peer_reset_mid_stream_ends_only_that_connection(servers, server) -> None:
    running = servers.get(server)
    bystander = Conversation(running.address)
    victim = connect(running.address)
    victim.setblocking(False)  # send what the buffers take, however small they are (a container's may be)
    sent, chunk = 0, b"y" * 65536
    try:
        while sent < 4 * 1024 * 1024:
            sent += victim.send(chunk)
    except BlockingIOError:
        pass  # enough in flight for a reset mid-stream
    reset(victim)
    try:
        bystander.send(b"before and ")
        bystander.expect(b"BEFORE AND ")
        assert exchange(running.address, b"after\n") == b"AFTER\n"
        bystander.send(b"after")
        bystander.half_close()
        assert bystander.rest() == b"AFTER"
        assert running.is_running()
    finally:
        bystander.close()


def lines_since_last_open(lines: list[str], peer: str) -> list[str]:
    """The log lines of the latest connection from `peer`: the shared server may have seen the same
    ephemeral port before, in an earlier test."""
    opens = [n for n, line in enumerate(lines) if line == f"open peer={peer}"]
    return [line for line in lines[opens[-1] :] if f" peer={peer} " in f"{line} "] if opens else []


@pytest.mark.clause("S-6")
def test_one_log_line_per_open_and_close_with_byte_counts(servers, server) -> None:
    running = servers.get(server)
    talk = Conversation(running.address)
    local = "{}:{}".format(*talk.sock.getsockname()[:2])
    talk.send("ΐ\n".encode())  # 3 bytes in, 7 bytes out
    talk.half_close()
    assert talk.rest() == "\u0399\u0308\u0301\n".encode()
    talk.close()
    wanted = [f"open peer={local}", f"close peer={local} in=3 out=7"]
    wait_for(lambda: lines_since_last_open(running.log_lines(), local) == wanted, timeout=10)
    mine = lines_since_last_open(running.log_lines(), local)
    assert mine == wanted, f"log lines for {local} since its last open: {mine}"
    assert "Ϊ" not in running.stderr().decode("utf-8", "replace"), "payload must never be logged"


@pytest.mark.clause("S-2", "E-2")
@pytest.mark.slow
def test_idle_timeout_closes_a_quiet_connection(dedicated_server, server) -> None:
    running = dedicated_server(server, "--idle-timeout", "2")
    quiet = Conversation(running.address)
    talker = Conversation(running.address)
    try:
        talker.send(b"ab\xe2\x82")
        talker.expect(b"AB")
        for _ in range(9):  # activity every 0.4 s keeps a connection open past the timeout
            quiet.send(b"k")
            quiet.expect(b"K")
            time.sleep(0.4)
        assert not quiet.closed_by_peer.is_set()
        # the talker has been silent for over 3.6 s: closed, with its held-back tail answered (E-2)
        assert talker.rest(timeout=10) == b"\xe2\x82"
        started = time.monotonic()
        assert quiet.rest(timeout=10) == b""
        assert time.monotonic() - started >= 0.5, "closed before the idle timeout ran out"
    finally:
        quiet.close()
        talker.close()


@pytest.mark.clause("S-3")
def test_max_connections_accepts_and_closes_the_extra_one(dedicated_server, server) -> None:
    running = dedicated_server(server, "--max-connections", "2")
    first, second = Conversation(running.address), Conversation(running.address)
    try:
        for talk in (first, second):
            talk.send(b"a")
            talk.expect(b"A")
        try:
            extra = Conversation(running.address)
            extra.send(b"x")
        except (ConnectionResetError, BrokenPipeError):
            pass  # S-3: the reset may come before connect returns or before this send (test_hostile.py checks it)
        else:
            assert extra.rest(timeout=10) == b"", "the extra connection must be closed without data"
            extra.close()
        for talk in (first, second):  # the open ones are not affected
            talk.send(b"b")
            talk.expect(b"B")
        first.half_close()
        assert first.rest() == b""
        deadline, answer = time.monotonic() + 10, b""
        while answer != b"AGAIN\n" and time.monotonic() < deadline:  # the freed slot is usable again...
            try:
                answer = exchange(running.address, b"again\n")
            except OSError:  # ...but a try before the server freed it is rejected, maybe with a reset
                time.sleep(0.05)
        assert answer == b"AGAIN\n"
        assert wait_for(lambda: any(line.startswith("reject peer=") for line in running.log_lines()), timeout=10), (
            running.log_lines()[-6:]
        )
    finally:
        first.close()
        second.close()


def wait_until_refused(address: tuple[str, int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=1).close()
        except ConnectionRefusedError:
            return
        except ConnectionResetError:
            pass  # caught in the listener's backlog as it closed: not yet the refusal we wait for
        time.sleep(0.05)
    pytest.fail(f"the server still accepted connections {timeout:g} s after the signal")


SIGNALS_THAT_STOP = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
EARLY_SIGNAL_STARTS = 9  # a signal right after the readiness line: a race, so several starts (at most --timing-repeats)


@pytest.mark.clause("S-4", "S-9")
@pytest.mark.parametrize("signum", SIGNALS_THAT_STOP, ids=lambda signum: signum.name)
def test_signal_drains_open_connections_then_exits_0(dedicated_server, server, signum) -> None:
    running = dedicated_server(server, "--drain-timeout", "30")
    talk = Conversation(running.address)
    try:
        talk.send(b"abc")
        talk.expect(b"ABC")
        running.send_signal(signum)
        wait_until_refused(running.address)
        talk.send(b"def")  # the open connection is still served
        talk.expect(b"DEF")
        talk.half_close()
        assert talk.rest() == b""
        assert running.wait(timeout=20) == 0
        assert running.remaining_stdout() == b"", "stdout carries only the readiness line (S-8)"
    finally:
        talk.close()


@pytest.mark.clause("S-4")
@pytest.mark.slow
def test_drain_timeout_closes_what_is_still_open(dedicated_server, server) -> None:
    running = dedicated_server(server, "--drain-timeout", "1")
    talk = Conversation(running.address)
    try:
        talk.send(b"x")
        talk.expect(b"X")
        started = time.monotonic()
        running.send_signal(signal.SIGTERM)
        assert running.wait(timeout=20) == 0
        assert time.monotonic() - started >= 0.5, "exited before the drain timeout with a connection open"
        assert talk.closed_by_peer.wait(10), "the open connection was not closed"
        assert talk.ended_by == "RST", f"the drain ended a connection with a {talk.ended_by or 'close'}, not a reset"
    finally:
        talk.close()


@pytest.mark.clause("S-4", "S-8")
@pytest.mark.slow
def test_a_signal_right_after_the_readiness_line_stops_the_server(dedicated_server, server, request) -> None:
    """The readiness line says the server is ready for the signals too: one sent at once must never be lost.
    A race, so several starts, the three signals in turn; as few as --timing-repeats asks (CI's docker run: 5,
    where each start is a container)."""
    starts = min(EARLY_SIGNAL_STARTS, request.config.getoption("--timing-repeats"))
    for start in range(1, starts + 1):
        signum = SIGNALS_THAT_STOP[start % len(SIGNALS_THAT_STOP)]
        running = dedicated_server(server, "--drain-timeout", "1")
        running.send_signal(signum)
        stopped = wait_for(lambda handle=running: not handle.is_running(), timeout=10)  # else the fixture kills it
        assert stopped, f"start {start} of {starts}: still serving 10 s after {signum.name}"
        status = running.wait(timeout=5)
        assert status == 0, f"start {start} of {starts}: exit {status} after {signum.name}"


@pytest.mark.clause("S-4")
def test_sighup_ignored_at_start_stays_ignored(dedicated_server, server) -> None:
    """As under nohup: the server outlives SIGHUP and serves on. The pause gives one that did act on it (a
    signal thread may look only every 200 ms) the time to stop accepting."""
    running = dedicated_server(server, ignoring="HUP")
    running.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert running.is_running(), "the server acted on a SIGHUP that was ignored when it started"
    assert exchange(running.address, b"still here") == b"STILL HERE"
    running.send_signal(signal.SIGTERM)
    assert running.wait(timeout=20) == 0


@pytest.mark.clause("S-8", "N-1")
def test_ipv4s_any_address_takes_no_ipv6_connection(backend, dedicated_server, server) -> None:
    """0.0.0.0 is IPv4's any address, not a dual-stack listener. Locally the test reaches it over the loopback
    of both families; a container's own IPv6 loopback cannot be reached from outside, so there only the line."""
    running = dedicated_server(server, "--host", "0.0.0.0")
    assert running.ready_line == f"listening on 0.0.0.0:{running.port}\n".encode()
    assert exchange(running.address, b"ipv4") == b"IPV4"
    if backend.name == "local":
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", running.port), timeout=5).close()


@pytest.mark.clause("S-7", "S-8", "N-1")
@pytest.mark.parametrize("host,shown", [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")], ids=["ipv4", "ipv6"])
def test_port_0_and_the_listening_line(backend, dedicated_server, server, host, shown) -> None:
    running = dedicated_server(server, "--host", host)
    assert running.ready_line == f"listening on {shown}:{running.port}\n".encode()
    assert running.port != 0
    # the server's own client, beside it: a loopback address is only reachable from its own host
    result = backend.run(server, "client", "--host", host, "--port", str(running.port), "over ip", beside=running)
    assert (result.returncode, result.stdout) == (0, b"OVER IP\n"), result.stderr


def assert_cannot_listen(result) -> None:
    assert_one_error_line(result, 1)


@pytest.mark.clause("S-9")
def test_port_in_use_exits_1(backend, dedicated_server, server) -> None:
    running = dedicated_server(server)
    assert_cannot_listen(
        backend.run(server, "server", "--host", running.host, "--port", str(running.port), beside=running, timeout=30)
    )


@pytest.mark.clause("S-9")
def test_address_not_available_exits_1(backend, server) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: binding fails, no packet is sent.
    assert_cannot_listen(backend.run(server, "server", "--host", "192.0.2.1", "--port", "0", timeout=30))
