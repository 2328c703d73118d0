"""Client conformance: every client against scripted fake servers (spec section 6)."""

from __future__ import annotations

import random
import socket
import time

import pytest

from harness.bytes_diff import assert_same_bytes
from harness.fake_servers import (
    FakeServer,
    answer_and_close_early,
    echo_unchanged,
    record_how_input_ends,
    record_then_reply,
    reset_after_input,
    reset_at_once,
    send_then_reset_unread,
    silent,
    slow_to_read,
    trickle,
)
from harness.outcomes import assert_one_error_line

RESET_AT_ONCE_RUNS = 10


def run_client(backend, client, port: int, *args: str, **kwargs):
    return backend.run(client, "client", "--host", backend.harness_host, "--port", str(port), *args, **kwargs)


@pytest.mark.clause("C-2", "C-1")
def test_messages_are_sent_as_lf_terminated_lines_then_half_close(backend, client) -> None:
    with FakeServer(backend.harness_host, record_then_reply(b"OK\n")) as fake:
        result = run_client(backend, client, fake.port, "Hello World", "straße", "")
    assert bytes(fake.received) == "Hello World\nstraße\n\n".encode()
    assert (result.returncode, result.stdout) == (0, b"OK\n"), result.stderr


@pytest.mark.clause("C-3")
def test_stdin_is_sent_unchanged(backend, client) -> None:
    data = bytes(range(256)) + b"\r\nno newline at the end"
    with FakeServer(backend.harness_host, record_then_reply(b"done")) as fake:
        result = run_client(backend, client, fake.port, stdin=data)
    assert_same_bytes(bytes(fake.received), data)
    assert (result.returncode, result.stdout) == (0, b"done"), result.stderr


@pytest.mark.clause("C-3", "E-1")
def test_empty_stdin_half_closes_at_once(backend, client) -> None:
    with FakeServer(backend.harness_host, record_then_reply(b"nothing to say\n")) as fake:
        result = run_client(backend, client, fake.port, stdin=b"")
    assert bytes(fake.received) == b""
    assert (result.returncode, result.stdout) == (0, b"nothing to say\n"), result.stderr


@pytest.mark.clause("C-8", "C-6", "X-7")
@pytest.mark.parametrize("redirect", ["</", "<&-"], ids=["stdin-a-directory", "stdin-not-open"])
def test_stdin_that_cannot_be_read_resets_and_exits_1(backend, client, redirect) -> None:
    """Never taken for end of input: a half-close would make the server answer a stream that was not the input.
    (With stdin not open, the JVM and Mono would otherwise read their own jar or assembly as the input.)"""
    with FakeServer(backend.harness_host, record_how_input_ends) as fake:
        result = run_client(backend, client, fake.port, redirect=redirect)
        assert fake.input_ended.wait(10), "the client neither half-closed nor reset the connection"
    assert_one_error_line(result, 1)
    assert (fake.input_ending, bytes(fake.received), result.stdout) == ("RST", b"", b"")


@pytest.mark.clause("C-8", "C-2")
def test_messages_do_not_read_stdin(backend, client) -> None:
    with FakeServer(backend.harness_host, record_then_reply(b"OK\n")) as fake:
        result = run_client(backend, client, fake.port, "hi", redirect="</")
    assert bytes(fake.received) == b"hi\n"
    assert (result.returncode, result.stdout) == (0, b"OK\n"), result.stderr


@pytest.mark.clause("C-9")
@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["INT", "TERM", "HUP"])
def test_a_signal_ends_the_client_silently_with_its_status(backend, client, signal_name) -> None:
    """Sent while the client waits for a reply that never comes. Locally the test sees whether the client died
    of the signal (minus its number) or exited with 128 + its number, as the JVM does unless told not to; the
    docker backend's agent reports both as 128 + the number."""
    with FakeServer(backend.harness_host, silent) as fake:
        result = run_client(backend, client, fake.port, "--timeout", "60", "hello", signal_after=signal_name)
    expected = backend.killed_status(signal_name)
    assert result.returncode == expected, f"exit {result.returncode}; stderr {result.stderr!r}"
    assert result.stderr == b""


@pytest.mark.clause("C-9", "C-5")
@pytest.mark.slow
def test_a_signal_ignored_at_start_stays_ignored(backend, client) -> None:
    """SIGINT ignored when the client starts, as for a background job of a script: the client outlives it and
    ends by its own timeout (exit 4)."""
    with FakeServer(backend.harness_host, silent) as fake:
        result = run_client(
            backend, client, fake.port, "--timeout", "2", "hello", signal_after="INT", signal_ignored=True
        )
    assert_one_error_line(result, 4)


@pytest.mark.clause("C-4")
@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_stdout_is_binary_safe(backend, client, locale) -> None:
    reply = bytes(range(256)) * 4 + b"\r\n\x00\xef\xbb\xbf\xff"
    with FakeServer(backend.harness_host, record_then_reply(reply)) as fake:
        result = run_client(backend, client, fake.port, "x", env={"LANG": locale, "LC_ALL": locale})
    assert_same_bytes(result.stdout, reply)
    assert result.returncode == 0, result.stderr


@pytest.mark.clause("C-3")
@pytest.mark.slow
def test_64_mib_round_trip_through_stdin_does_not_deadlock(backend, client, tmp_path) -> None:
    data = random.Random(64).randbytes(64 * 1024 * 1024)
    stdin = tmp_path / "stdin.bin"
    stdin.write_bytes(data)
    with FakeServer(backend.harness_host, echo_unchanged) as fake:
        result = run_client(backend, client, fake.port, stdin=stdin, timeout=180)
    assert_same_bytes(result.stdout, data)
    assert result.returncode == 0, result.stderr


@pytest.mark.clause("X-8", "C-3")
@pytest.mark.slow
def test_nonblocking_stdin_and_stdout_are_waited_on(backend, client) -> None:
    """stdin and stdout are non-blocking pipes, the input late and in two pieces, the output read late: a read
    that would block comes at the start and mid-input, a write that would block once stdout's pipe is full."""
    data = random.Random(8).randbytes(256 * 1024)  # 4x a pipe's 64 KiB
    with FakeServer(backend.harness_host, echo_unchanged) as fake:
        result = run_client(backend, client, fake.port, stdin=data, streams="nonblocking", timeout=60)
    assert (result.returncode, result.stderr) == (0, b""), f"exit {result.returncode}; stderr {result.stderr!r}"
    assert_same_bytes(result.stdout, data)  # the fake server echoes what it received


@pytest.mark.clause("C-7", "C-6")
@pytest.mark.slow
def test_a_reset_met_while_sending_and_stuck_on_stdout_exits_4(backend, client) -> None:
    """The server sends more than stdout's pipe holds, reads nothing and resets 1 s later, while stdout is read
    only from 2 s on. So the reset comes while the client still has input to send and cannot read the socket:
    a client whose send takes the reset and lets it go then reads only an end of stream, and exits 0."""
    reply = random.Random(7).randbytes(192 * 1024)
    with FakeServer(backend.harness_host, send_then_reset_unread(reply, 1.0)) as fake:
        result = run_client(backend, client, fake.port, stdin=bytes(16 << 20), streams="stdout-read-late")
    assert_one_error_line(result, 4, stdout=None)
    assert reply.startswith(result.stdout), f"stdout is not a prefix of what the server sent ({len(result.stdout)} B)"


@pytest.mark.clause("C-6")
def test_connection_refused_exits_3(backend, client) -> None:
    with socket.socket() as reserved:  # bound but not listening: connecting to it is refused
        reserved.bind((backend.harness_host, 0))
        result = run_client(backend, client, reserved.getsockname()[1], "hello")
    assert_one_error_line(result, 3)


@pytest.mark.clause("C-6")
def test_unknown_host_exits_3(backend, client) -> None:
    # An empty label is rejected by the resolver itself, so no DNS query leaves the machine.
    result = backend.run(client, "client", "--host", "no-such-host..invalid", "--port", "7007", "hello")
    assert_one_error_line(result, 3)


@pytest.mark.clause("C-5", "C-6")
@pytest.mark.slow
def test_connect_timeout_exits_3(backend, client) -> None:
    with socket.socket() as listener:
        listener.bind((backend.harness_host, 0))
        listener.listen(0)
        with socket.create_connection(listener.getsockname()):  # fills the accept queue of length 0
            probe = socket.socket()
            probe.settimeout(0.5)
            with pytest.raises(TimeoutError, match="timed out"):  # precondition: SYNs are now dropped
                probe.connect(listener.getsockname())
            probe.close()
            started = time.monotonic()
            result = run_client(backend, client, listener.getsockname()[1], "--timeout", "1", "hello")
            elapsed = time.monotonic() - started
    assert_one_error_line(result, 3)
    assert 0.9 <= elapsed < 15, f"gave up after {elapsed:.1f} s with --timeout 1"


@pytest.mark.clause("C-6")
def test_server_reset_exits_4(backend, client) -> None:
    with FakeServer(backend.harness_host, reset_after_input) as fake:
        result = run_client(backend, client, fake.port, "hello")
    assert_one_error_line(result, 4)


@pytest.mark.clause("C-6", "S-3")
def test_a_reset_at_once_after_the_accept_exits_4_every_time(backend, client) -> None:
    """The connection was made, so its reset is a broken connection (4), not a failed connect (3), however soon
    it comes: before or after the client has seen its connect complete. A race, so several runs."""
    with FakeServer(backend.harness_host, reset_at_once) as fake:
        for run in range(1, RESET_AT_ONCE_RUNS + 1):
            result = run_client(backend, client, fake.port, stdin=b"hello\n")  # stdin: the likelier race here
            assert_one_error_line(result, 4, why=f"run {run} of {RESET_AT_ONCE_RUNS}: ")


@pytest.mark.clause("C-6")
@pytest.mark.parametrize(
    "unspecified,listening",
    [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("::ffff:0.0.0.0", "127.0.0.1")],
    ids=["ipv4", "ipv6", "ipv4-mapped"],
)
def test_an_unspecified_address_is_never_connected_to(backend, client, unspecified, listening) -> None:
    """Linux would take 0.0.0.0 and :: for this host, and connect to a server listening on its loopback (here a
    fake one that would answer); other systems refuse. In a container the harness's loopback is not the
    client's, so there the fake server only stands by."""
    with FakeServer(listening if backend.name == "local" else backend.harness_host, record_then_reply(b"OK\n")) as fake:
        result = backend.run(client, "client", "--host", unspecified, "--port", str(fake.port), "hello")
    assert_one_error_line(result, 3)
    assert fake.received == b"", "the client connected to a server on this host"


@pytest.mark.clause("C-5", "C-6")
@pytest.mark.slow
def test_silent_server_exits_4_after_the_timeout(backend, client) -> None:
    with FakeServer(backend.harness_host, silent) as fake:
        started = time.monotonic()
        result = run_client(backend, client, fake.port, "--timeout", "1", "hello")
        elapsed = time.monotonic() - started
    assert_one_error_line(result, 4)
    assert result.stdout == b""
    assert 0.9 <= elapsed < 15, f"gave up after {elapsed:.1f} s with --timeout 1"


@pytest.mark.clause("C-5")
@pytest.mark.slow
def test_timeout_bounds_each_wait_not_the_whole_reply(backend, client) -> None:
    reply = b"trickled"  # 8 bytes, 0.5 s apart: 4 s in all, never 3 s without data
    with FakeServer(backend.harness_host, trickle(reply, 0.5)) as fake:
        result = run_client(backend, client, fake.port, "--timeout", "3", "hello")
    assert (result.returncode, result.stdout) == (0, reply), result.stderr


@pytest.mark.clause("C-5", "C-3")
@pytest.mark.slow
def test_no_timeout_while_still_sending(backend, client) -> None:
    data = b"z" * (32 * 1024 * 1024)  # more than the socket buffers hold: the client blocks sending
    with FakeServer(backend.harness_host, slow_to_read(3)) as fake:
        result = run_client(backend, client, fake.port, "--timeout", "1", stdin=data, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_same_bytes(result.stdout, data)


@pytest.mark.clause("C-7")
def test_server_closing_early_ends_the_client_with_0(backend, client) -> None:
    with FakeServer(backend.harness_host, answer_and_close_early(b"EARLY\n")) as fake:
        result = run_client(backend, client, fake.port, stdin=b"q" * (1024 * 1024), timeout=60)
    assert (result.returncode, result.stdout) == (0, b"EARLY\n"), result.stderr
