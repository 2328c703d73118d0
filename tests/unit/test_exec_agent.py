"""The docker backend's exec agent (harness/exec_agent), built with this machine's cargo and run on the
loopback, spoken to through the backend's own side of the protocol: it must run a command as `docker exec -i`
does, byte for byte, with the same exit status."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from harness.backends import exec_agent
from harness.backends.docker import STDERR, STDOUT, exchange

from .processes import ended_within

TOKEN = "0123456789abcdef"


@pytest.fixture(scope="module")
def agent_port(tmp_path_factory: pytest.TempPathFactory):
    """A running agent's port; one build for all pytest-xdist workers (cargo's own lock guards the rest)."""
    target = tmp_path_factory.getbasetemp().parent / "exec-agent-target"
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--manifest-path", str(exec_agent.FOLDER / "Cargo.toml")],
            env={**os.environ, "CARGO_TARGET_DIR": str(target)},
            check=True,
        )
    binary = Path(target, "release", exec_agent.BINARY)
    # Started with SIGINT and SIGQUIT ignored, as a shell's background job is: commands must not inherit that.
    agent = subprocess.Popen(
        ["sh", "-c", 'trap "" INT QUIT; exec "$0" 0 127.0.0.1', binary],
        env={**os.environ, exec_agent.TOKEN_VARIABLE: TOKEN},
        stdout=subprocess.PIPE,
    )
    try:
        ready = agent.stdout.readline().decode()
        assert ready.startswith("upper-echo-exec-agent listening on port "), ready
        yield int(ready.rsplit(" ", 1)[1])
    finally:
        agent.kill()
        agent.wait()


def run(port: int, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None, token: str = TOKEN):
    """What DockerBackend.run does with a client container's agent: (exit status or None, stdout, stderr)."""
    connection = exec_agent.start_command(("127.0.0.1", port), token, argv, env or {})
    streams = exchange(connection, stdin, 30)
    assert streams is not None, f"{argv}: no end of output within 30 s"
    status = bytes(streams.get(exec_agent.EXIT, b""))
    return (exec_agent.exit_status(status, "test") if status else None), bytes(streams[STDOUT]), bytes(streams[STDERR])


def test_stdin_stdout_stderr_and_exit_code_byte_for_byte(agent_port: int) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert run(agent_port, ["sh", "-c", "cat; printf 'to stderr' >&2; exit 3"], data) == (3, data, b"to stderr")


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(agent_port: int) -> None:
    assert run(agent_port, ["sh", "-c", "kill -9 $$"]) == (137, b"", b"")


def test_environment_overrides_reach_the_command_and_the_token_does_not(agent_port: int) -> None:
    script = 'printf "%s|%s" "$NAME" "${UPPER_ECHO_AGENT_TOKEN-unset}"'
    assert run(agent_port, ["sh", "-c", script], env={"NAME": "a=b c"}) == (0, b"a=b c|unset", b"")


def test_the_command_starts_with_no_signal_ignored_or_blocked(agent_port: int) -> None:
    """As under docker exec: the agent ignores SIGPIPE (Rust's runtime does) and here was started with SIGINT
    and SIGQUIT ignored; a client must inherit none of that (X-6 needs SIGPIPE's default action). Signals
    32 and 33 are glibc's own (posix_spawn leaves them ignored; the C library takes them back at start)."""
    status, out, _ = run(agent_port, ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
    fields = dict(line.split(":\t") for line in out.decode().splitlines())
    assert status == 0
    assert int(fields["SigBlk"], 16) == 0
    assert int(fields["SigIgn"], 16) & ~(0b11 << 31) == 0, fields["SigIgn"]


def test_a_command_that_reads_no_stdin_still_ends(agent_port: int) -> None:
    assert run(agent_port, ["true"], b"x" * (8 * 1024 * 1024)) == (0, b"", b"")


def test_a_missing_command_exits_127_with_a_reason(agent_port: int) -> None:
    status, out, err = run(agent_port, ["/no/such/command"])
    assert (status, out) == (127, b"")
    assert err.startswith(b"cannot run /no/such/command: ")


def test_a_wrong_token_runs_nothing(agent_port: int, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    assert run(agent_port, ["touch", str(marker)], token="wrong") == (None, b"", b"")
    assert not marker.exists()


def test_a_command_the_harness_gives_up_on_is_killed_with_everything_it_started(
    agent_port: int, tmp_path: Path
) -> None:
    """The harness's timeout resets the connection (exchange); the agent then kills the command's process
    group, here a shell and its background child."""
    pid_file = tmp_path / "background.pid"
    argv = ["sh", "-c", f'sleep 60 & echo $! > "{pid_file}"; wait']
    connection = exec_agent.start_command(("127.0.0.1", agent_port), TOKEN, argv, {})
    assert exchange(connection, b"", 1) is None
    background = int(pid_file.read_text())
    assert ended_within(background, 5), f"the command's child {background} outlived the harness's timeout"
