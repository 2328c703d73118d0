"""The command line shared by every language: usage errors and --help (X-1, S-7, C-1)."""

from __future__ import annotations

import pytest

USAGE_ERRORS = {
    "no-subcommand": [],
    "unknown-subcommand": ["frobnicate"],
    "server-unknown-flag": ["server", "--bogus"],
    "server-port-too-big": ["server", "--port", "65536"],
    "server-port-negative": ["server", "--port", "-1"],
    "server-port-not-a-number": ["server", "--port", "abc"],
    "server-port-missing-value": ["server", "--port"],
    "server-idle-timeout-negative": ["server", "--idle-timeout", "-1"],
    "server-max-connections-zero": ["server", "--max-connections", "0"],
    "server-drain-timeout-not-a-number": ["server", "--drain-timeout", "soon"],
    "server-extra-argument": ["server", "extra"],
    "client-port-zero": ["client", "--port", "0"],
    "client-timeout-zero": ["client", "--timeout", "0"],
    "client-unknown-flag": ["client", "--bogus", "hello"],
    "transform-chunk-size-zero": ["transform", "--chunk-size", "0"],
}

HELP = {
    "top": ([], ["server", "client", "transform"]),
    "server": (["server"], ["--host", "--port", "--idle-timeout", "--max-connections", "--drain-timeout"]),
    "client": (["client"], ["--host", "--port", "--timeout", "MESSAGE"]),
    "transform": (["transform"], ["--chunk-size"]),
}


@pytest.mark.clause("X-1", "S-7", "S-9", "C-1", "C-6")
@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_error_exits_2_with_one_error_line(backend, implementation, args) -> None:
    result = backend.run(implementation, *args, timeout=30)
    assert result.returncode == 2, f"exit {result.returncode}; stderr {result.stderr!r}"
    assert result.stdout == b""
    assert result.stderr.startswith(b"error: ") and result.stderr.count(b"\n") == 1, result.stderr


@pytest.mark.clause("X-1")
@pytest.mark.parametrize("args,mentions", HELP.values(), ids=HELP.keys())
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_goes_to_stdout_and_exits_0(backend, implementation, args, mentions, flag) -> None:
    result = backend.run(implementation, *args, flag, timeout=30)
    assert result.returncode == 0, result.stderr
    missing = [word for word in mentions if word.encode() not in result.stdout]
    assert not missing, f"--help does not mention {missing}:\n{result.stdout.decode(errors='replace')}"
