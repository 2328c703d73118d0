"""Network conditions: every client x server pair through the fault-injecting proxy (harness/proxy.py).

Ids read `java-client->[reset-client-sending]->csharp-server`; timing-dependent conditions run many times per
pair (`-r3of20`), each run a test of its own (harness/plugins/repeat.py). Every run attaches the proxy's
transcript of both legs; the reports keep a failing cell's, and harness/replay.py plays it back against one
implementation alone.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from harness.bytes_diff import assert_same_bytes
from harness.oracle import expected_u
from harness.proxy import CONDITIONS, FaultProxy
from harness.wire import exchange

# Words of mixed text: ASCII, and characters that grow, shrink or span 2-4 bytes (T-4), so that segment
# boundaries fall inside characters (D-1).
WORDS = ["hello", "world", "straße", "ﬁsh", "ŉ", "ΐ", "ǅ", "𐐨", "ა", "istanbul", "µ", "ᾳ", "\n", " ", "😀"]
INPUT_SIZE = {"split-1": 2048, "jitter": 16384, "stall": 2048, "slow-reader": 512 * 1024}
DEFAULT_INPUT_SIZE = 100_000  # what a client is still sending when the resets and the early close come
EARLY_CLOSE_AFTER = 10240
STALL_TIMEOUT = "0.5"


def mixed_text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    text = bytearray()
    while len(text) < size:
        text += rng.choice(WORDS).encode()
    return bytes(text[:size])  # the cut may split a character: its tail is then sent unchanged (T-3)


def assert_error_line(result, code: int) -> None:
    assert result.returncode == code, f"exit {result.returncode}, expected {code}; stderr {result.stderr!r}"
    assert result.stderr.startswith(b"error: ") and result.stderr.count(b"\n") == 1, result.stderr


def assert_prefix_of(actual: bytes, whole: bytes) -> None:
    assert whole.startswith(actual), f"stdout ({len(actual)} bytes) is not a prefix of U(input)"


def lines_for_port(server, port: int) -> list[str]:
    return [line for line in server.log_lines() if re.search(rf"^(open|close) peer=\S+:{port}\b", line)]


@pytest.mark.clause("N-3", "T-1", "D-1", "D-2", "D-5", "C-5", "C-6", "C-7", "E-1", "S-5", "S-6")
def test_condition(backend, servers, client, server, condition, repeat_index, request) -> None:
    spec = CONDITIONS[condition]
    data = mixed_text(INPUT_SIZE.get(condition, DEFAULT_INPUT_SIZE), seed=repeat_index)
    shared = servers.get(server)
    args = ["client", "--host", backend.harness_host]
    with FaultProxy(backend.harness_host, shared.address, spec, seed=repeat_index) as proxy:
        timeout = ["--timeout", STALL_TIMEOUT] if condition == "stall" else []
        result = backend.run(client, *args, "--port", str(proxy.port), *timeout, stdin=data, timeout=120)
        if condition != "stall":
            proxy.wait_until_done(10)
        transcript = proxy.transcripts[0] if proxy.transcripts else None
    request.node.user_properties.append(("condition", condition))
    if transcript is not None:
        request.node.user_properties.append(("transcript", transcript.as_dict()))

    expected = expected_u(data)
    if condition in ("clean", "split-1", "jitter", "slow-reader"):
        assert_same_bytes(result.stdout, expected)
        assert (result.returncode, result.stderr) == (0, b""), result.stderr
    elif condition == "early-close":
        assert_same_bytes(result.stdout, expected_u(data[:EARLY_CLOSE_AFTER]))
        assert (result.returncode, result.stderr) == (0, b""), result.stderr
    else:  # the resets and the stall
        assert_error_line(result, 4)
        assert_prefix_of(result.stdout, expected)
    if condition == "reset-server":
        assert transcript is not None and transcript.server_port is not None
        deadline = time.monotonic() + 10
        while len(lines_for_port(shared, transcript.server_port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = lines_for_port(shared, transcript.server_port)
        assert [line.split()[0] for line in lines] == ["open", "close"], lines  # S-6: exactly one close line
        assert exchange(shared.address, b"still here") == b"STILL HERE"  # S-5
