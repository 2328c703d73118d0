"""What a backend is: the contract the matrix's fixtures and tests rely on, and what every backend shares.

A backend decides where implementations run (local processes, docker containers). The tests never ask which
one they have: they build, start servers and run CLIs through `Backend`, and talk to servers through
`ServerHandle`. Both are structural (typing.Protocol): local.LocalBackend / local.ServerProcess and
docker.DockerBackend / docker.ServerContainer satisfy them without inheriting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..registry import Implementation

START_TIMEOUT = 30.0  # seconds a server has to print its readiness line (S-8)
# Every implementation runs under a UTF-8 C locale unless a test asks for another (the Turkish case, T-5).
BASE_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# Standard streams a test can give a command instead of pipes (Backend.run's `redirect`), as sh redirections.
REDIRECTS = {
    ">/dev/full",  # stdout where every write fails
    "</",  # stdin a directory: every read fails (C-8)
    "<&-",  # stdin not open
    ">&-",  # stdout not open
}
# Signals a test can have sent to a command a while after it starts (Backend.run's `signal_after`, C-9).
SIGNALS = {"INT", "TERM", "HUP"}
SIGNAL_DELAY = 1  # seconds: a client has started by then; one that has not dies of the signal all the same


# Standard streams a test can give a command in place of plain pipes (Backend.run's `streams`): name -> the sh
# script that runs "$@" between its own pipes. The command's stdout reaches the harness through a reader that
# starts late, so the command's exit status is passed out past it (POSIX sh has no pipefail).
def _read_late(command: str, seconds: float) -> str:
    reader = f"{{ sleep {seconds:g}; exec cat >&3; }} 4>&-"
    command = f"{{ {{ {command}; }} 4>&- 3>&-; echo $? >&4; }}"
    return f"{{ status=$( {{ {command} | {reader}; }} 4>&1 ); }} 3>&1; exit $status"


STREAMS = {
    # stdin and stdout made non-blocking (O_NONBLOCK on their shared open file descriptions, by GNU dd's
    # iflag/oflag). The input arrives late and in two pieces, 3 bytes after 1 s and the rest half a second
    # later, so every read before then would block; the output is read from 2.5 s on, so a command that writes
    # more than a pipe holds (64 KiB) meets a write that would block.
    "nonblocking": _read_late(
        "{ sleep 1; dd bs=1 count=3 status=none; sleep 0.5; exec cat; } 4>&- | { dd iflag=nonblock oflag=nonblock "
        'count=0 status=none && "$@"; }',
        2.5,
    ),
    # C-7: stdin as given, stdout read from 2 s on: a client that got more than a pipe holds (64 KiB) is stuck
    # writing its output meanwhile, however it shares its time between reading, sending and writing.
    "stdout-read-late": _read_late('"$@"', 2),
}


def wrapped(
    command: list[str],
    redirect: str | None = None,
    signal_after: str | None = None,
    signal_ignored: bool = False,
    streams: str | None = None,
) -> list[str]:
    """`command` exec'ed by sh with `redirect` (one of REDIRECTS) applied and, with `signal_after` (one of
    SIGNALS), that signal sent to it SIGNAL_DELAY seconds later by a background subshell (`$$` there is the
    shell that became the command). The command starts with that signal at its default action, whatever the
    harness inherited (pytest under nohup ignores SIGHUP), or, `signal_ignored`, ignored. `streams` (one of
    STREAMS, alone): run by sh between that condition's pipes. Every image has a POSIX sh and coreutils."""
    if streams is not None:
        if streams not in STREAMS:
            raise ValueError(f"unknown streams {streams!r}: one of {sorted(STREAMS)}")
        if redirect is not None or signal_after is not None:
            raise ValueError("streams is a condition of its own: no redirect or signal with it")
        return ["sh", "-c", STREAMS[streams], "sh", *command]
    if redirect is None and signal_after is None:
        return command
    if redirect is not None and redirect not in REDIRECTS:
        raise ValueError(f"unknown redirect {redirect!r}: one of {sorted(REDIRECTS)}")
    if signal_after is None:
        return ["sh", "-c", f'exec "$@" {redirect}', "sh", *command]
    if signal_after not in SIGNALS:
        raise ValueError(f"unknown signal {signal_after!r}: one of {sorted(SIGNALS)}")
    killer = f"(sleep {SIGNAL_DELAY}; kill -{signal_after} $$) >/dev/null 2>&1 & "
    disposition = f"trap '' {signal_after}; exec" if signal_ignored else f"exec env --default-signal={signal_after}"
    return ["sh", "-c", f'{killer}{disposition} "$@" {redirect or ""}', "sh", *command]


def server_signals(command: list[str], ignoring: str | None = None) -> list[str]:
    """`command` started with every signal of SIGNALS at its default action but `ignoring`, which it starts with
    ignored, as nohup starts one with SIGHUP. The harness may itself run with some ignored (pytest under nohup),
    and a command inherits that across exec."""
    if ignoring is not None and ignoring not in SIGNALS:
        raise ValueError(f"unknown signal {ignoring!r}: one of {sorted(SIGNALS)}")
    default = ",".join(sorted(SIGNALS - {ignoring}))
    return ["env", f"--default-signal={default}", *([f"--ignore-signal={ignoring}"] if ignoring else []), *command]


_LISTENING = re.compile(rb"^listening on (\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\s]+)):(?P<port>\d+)\n$")


class BuildFailed(Exception):
    """bin/build (or the image build) failed: every test of that implementation fails with this message."""


class ServerDidNotStart(Exception):
    """No well-formed readiness line in time, or the server exited first."""


def parse_ready_line(line: bytes, argv: list[str], stderr: bytes = b"") -> tuple[str, int]:
    """The host and port of a readiness line `listening on HOST:PORT` / `listening on [V6]:PORT` (S-8)."""
    match = _LISTENING.match(line)
    if not match:
        raise ServerDidNotStart(f"{argv}: expected 'listening on ADDR:PORT', got {line!r}; stderr: {stderr!r}")
    return (match["v6"] or match["v4"]).decode(), int(match["port"])


def parse_cpu_seconds(proc_stat: str, clock_ticks: int = 100) -> float:
    """User plus system CPU time of a process, in seconds, from /proc/PID/stat (utime and stime, all threads).

    The fields after the command name (which may hold spaces and parentheses) start at state (field 3);
    utime and stime are fields 14 and 15, in clock ticks."""
    fields = proc_stat[proc_stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / clock_ticks


def parse_memory(proc_status: str) -> dict[str, int]:
    """VmRSS and VmHWM from /proc/PID/status, in KiB."""
    return {
        key: int(value.split()[0])
        for key, value in (line.split(":", 1) for line in proc_status.splitlines())
        if key in ("VmRSS", "VmHWM")
    }


@dataclass(frozen=True)
class Completed:
    """A finished CLI run: what the harness compares, byte for byte."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes


@runtime_checkable
class ServerHandle(Protocol):
    """A started `upper-echo server` whose readiness line has been read and parsed.

    `argv` is its command line and `ready_line` the raw readiness line; `host` and `port` are what that line
    says, `address` where a client of this backend connects (loopback for a wildcard, the container's address).
    """

    argv: list[str]
    ready_line: bytes
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]: ...

    @property
    def ipv4_address(self) -> tuple[str, int]:
        """Where an IPv4 client of this backend reaches a server listening on a wildcard (`0.0.0.0`, or `::`,
        dual-stack: the peer is then IPv4-mapped, S-6); the server sees that client from `Backend.harness_host`."""

    def stderr(self) -> bytes:
        """Everything the server wrote to stderr so far (its log)."""

    def log_lines(self) -> list[str]:
        """stderr as text lines (undecodable bytes replaced)."""

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the server process, in KiB."""

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far, in seconds."""

    def process_name(self) -> str:
        """The server process's name (/proc/PID/comm): a shell there means bin/upper-echo did not exec."""

    def send_signal(self, signum: int) -> None:
        """Deliver a signal to the server process itself."""

    def wait(self, timeout: float) -> int:
        """Wait for the server to exit; its exit status. Raises on timeout."""

    def remaining_stdout(self) -> bytes:
        """What the server wrote to stdout after the readiness line (call after it exited)."""

    def is_running(self) -> bool: ...

    def kill(self) -> None:
        """Stop it now and free its resources; idempotent."""

    def release(self) -> None:
        """The end of a session for a shared server: stop it if this worker owns it, else leave it."""


@runtime_checkable
class Backend(Protocol):
    """Where implementations run. `name` is "local" or "docker"; `harness_host` is the address on which a
    client under test reaches the harness's own fake servers.

    Builds are serialized across pytest-xdist workers; every method may be called from any worker.
    """

    name: str
    harness_host: str

    def missing_tools(self, implementation: Implementation) -> list[str]:
        """What this backend lacks to run the implementation (empty: it can run); the test is skipped."""

    def killed_status(self, signal_name: str) -> int:
        """What run() returns for a command that SIG<signal_name> (one of SIGNALS) killed."""

    def build(self, implementation: Implementation) -> None:
        """Make the implementation runnable (bin/build, or its image); idempotent. Raises BuildFailed."""

    def start_server(
        self,
        implementation: Implementation,
        *args: str,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
        ignoring: str | None = None,
    ) -> ServerHandle:
        """Start `upper-echo server --port 0 ARGS` with BASE_ENV plus `env`; returns once it is ready.
        `nofile`: its RLIMIT_NOFILE, soft and hard (so it cannot raise it), for descriptor exhaustion (S-10).
        `ignoring`: a signal of SIGNALS that it starts with ignored (server_signals).
        Raises ServerDidNotStart. The caller kills it."""

    def shared_server(self, implementation: Implementation, turkish: bool) -> ServerHandle:
        """The session's default server of the implementation (under the Turkish locale if asked); the
        caller releases it at the end of the session."""

    def run(
        self,
        implementation: Implementation,
        *args: str,
        stdin: bytes | Path = b"",
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        beside: ServerHandle | None = None,
        redirect: str | None = None,
        signal_after: str | None = None,
        signal_ignored: bool = False,
        stdin_stays_open: bool = False,
        streams: str | None = None,
    ) -> Completed:
        """Run `upper-echo ARGS` to completion with `stdin` (bytes, or a file for big inputs), BASE_ENV plus
        `env`. `beside` a server: where that server's loopback is reachable. `redirect`, `signal_after` and
        `signal_ignored`: see wrapped() (`>/dev/full`: every write to stdout fails, and Completed.stdout is
        empty). `stdin_stays_open`: stdin (bytes) never ends, for a command that a signal ends.
        `streams`: stdin and stdout through the pipes of one of STREAMS (non-blocking, read late). A command
        killed by a signal returns killed_status(signal_name).
        Raises TimeoutError (or subprocess.TimeoutExpired) past `timeout`."""
