"""Network conditions: every client x server pair through the fault-injecting proxy (harness/proxy.py).

Ids read `java-client->[reset-client-sending]->csharp-server`; timing-dependent conditions run many times per
pair (`-r3of20`), each run a test of its own (harness/plugins/repeat.py). Every run attaches the proxy's
transcript of both legs; the reports keep a failing cell's, and harness/replay.py plays it back against one
implementation alone.
"""

from __future__ import annotations

import functools
import random
import re

import pytest

from harness.proxy import CONDITIONS, FaultProxy, client_outcome_problems
from harness.wire import exchange, wait_for

# Words of mixed text: ASCII, and characters that grow, shrink or span 2-4 bytes (T-4), so that segment
# boundaries fall inside characters (D-1).
WORDS = ["hello", "world", "straße", "ﬁsh", "ŉ", "ΐ", "ǅ", "𐐨", "ა", "istanbul", "µ", "ᾳ", "\n", " ", "😀"]
# jitter: about 130 random segments each way, some after a pause, per seed (20 seeds per pair by default).
# early-close: more than the client's and the proxy's socket buffers take, so the client is still sending.
INPUT_SIZE = {"split-1": 2048, "jitter": 4096, "stall": 2048, "slow-reader": 512 * 1024, "early-close": 2 << 20}
DEFAULT_INPUT_SIZE = 100_000  # what a client is still sending when the resets and the early close come
STALL_TIMEOUT = "0.5"


@functools.cache  # one per size and seed (a few hundred): made once per worker, not per cell
def mixed_text(size: int, seed: int) -> bytes:
    text = words_for_seed(seed)
    text *= -(-size // len(text))  # bigger inputs repeat the first 100 kB
    return text[:size]  # the cut may split a character: its tail is then sent unchanged (T-3)


@functools.cache  # every size of one seed is a prefix of the same words (20 ms per 100 kB)
def words_for_seed(seed: int) -> bytes:
    rng = random.Random(seed)
    text = bytearray()
    while len(text) < DEFAULT_INPUT_SIZE:
        text += rng.choice(WORDS).encode()
    return bytes(text)


def lines_for_port(server, port: int, log_start: int) -> list[str]:
    lines = server.log_lines()[log_start:]
    return [line for line in lines if re.search(rf"^(open|close) peer=\S+:{port}\b", line)]


@pytest.mark.clause("N-3", "T-1", "D-1", "D-2", "D-5", "C-5", "C-6", "C-7", "E-1", "S-5", "S-6")
def test_condition(backend, servers, client, server, condition, repeat_index, request) -> None:
    data = mixed_text(INPUT_SIZE.get(condition, DEFAULT_INPUT_SIZE), seed=repeat_index)
    shared = servers.get(server)
    # Only reset-server reads the shared server's log (its earlier connections may have had the same port):
    # the whole log is read each time, which in docker is a logs call that grows with the session.
    log_start = len(shared.log_lines()) if condition == "reset-server" else 0
    timeout = ["--timeout", STALL_TIMEOUT] if condition == "stall" else []
    with FaultProxy(backend.harness_host, shared.address, CONDITIONS[condition], seed=repeat_index) as proxy:
        port = str(proxy.port)
        result = backend.run(client, "client", "--host", backend.harness_host, "--port", port, *timeout, stdin=data)
        if condition != "stall":
            proxy.wait_until_done(10)
        transcript = proxy.transcripts[0] if proxy.transcripts else None
    request.node.user_properties.append(("condition", condition))
    problems = client_outcome_problems(condition, data, result.returncode, result.stdout, result.stderr)
    if condition == "reset-server" and transcript is not None:
        problems += server_problems_after_reset(shared, transcript.server_port, log_start)
    if transcript is not None and (problems or request.config.getoption("--keep-transcripts", default=False)):
        transcript.stdin, transcript.client_args = data, timeout
        request.node.user_properties.append(("transcript", transcript.as_dict()))
    assert not problems, f"{condition} ({CONDITIONS[condition].expects}): " + "; ".join(problems)


def server_problems_after_reset(server, port: int | None, log_start: int) -> list[str]:
    """S-6: exactly one open and one close line for the reset connection (logged after `log_start`);
    S-5: it serves on."""
    wait_for(lambda: len(lines_for_port(server, port, log_start)) >= 2, timeout=10)
    lines = lines_for_port(server, port, log_start)
    problems = [] if [line.split()[0] for line in lines] == ["open", "close"] else [f"log lines {lines}"]
    answer = exchange(server.address, b"still here")
    return problems + ([] if answer == b"STILL HERE" else [f"after the reset the server answered {answer!r}"])


@pytest.mark.clause("N-3")
def test_the_marker_cites_exactly_the_conditions_clauses() -> None:
    """The clause list above is written out for the spec's coverage check; harness/proxy.py is its source."""
    [marker] = [mark for mark in test_condition.pytestmark if mark.name == "clause"]
    assert set(marker.args) == {clause for spec in CONDITIONS.values() for clause in spec.clauses}
