"""Committed transcripts (tests/matrix/transcripts/, recorded by harness/proxy.py) replayed against every
client: a failure once found by the network-conditions axis stays a regression test of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.proxy import client_outcome_problems
from harness.replay import PlayedPeer, read_json

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.json.gz"))


@pytest.mark.clause("C-6", "C-7")
@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[path.name.split(".")[0] for path in TRANSCRIPTS])
def test_recorded_transcript_replays_as_the_spec_expects(backend, client, path: Path) -> None:
    transcript = read_json(path)
    stdin = bytes.fromhex(transcript["stdin_hex"])
    with PlayedPeer(backend.harness_host, transcript) as peer:
        args = ["--host", backend.harness_host, "--port", str(peer.port), *transcript.get("client_args", [])]
        result = backend.run(client, "client", *args, stdin=stdin)
    problems = client_outcome_problems(transcript["condition"], stdin, result.returncode, result.stdout, result.stderr)
    assert not problems, "; ".join(problems)
