"""The local backend: every implementation runs as a process on this machine (the contract: base.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from ..registry import Implementation
from .base import (
    BASE_ENV,
    START_TIMEOUT,
    BuildFailed,
    Completed,
    ServerDidNotStart,
    parse_cpu_seconds,
    parse_memory,
    parse_ready_line,
    server_signals,
    wrapped,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """A running `upper-echo server`, its readiness line parsed (S-8): a base.ServerHandle."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path, nofile: int | None = None) -> None:
        self.argv = argv
        self._stderr_file = tempfile.NamedTemporaryFile(dir=log_dir, prefix="server-", suffix=".stderr", delete=False)
        limit = None if nofile is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr_file, env=env, preexec_fn=limit
        )
        self.ready_line = self._read_ready_line()
        try:
            self.host, self.port = parse_ready_line(self.ready_line, argv, self.stderr())
        except ServerDidNotStart:
            self.kill()
            raise

    def _read_ready_line(self) -> bytes:
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not line:
            self.kill()
            raise ServerDidNotStart(f"{self.argv}: no readiness line within {START_TIMEOUT:g} s")
        return line[0]

    @property
    def address(self) -> tuple[str, int]:
        """Where a client connects: the wildcard address is reached through loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return host, self.port

    @property
    def ipv4_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> bytes:
        return Path(self._stderr_file.name).read_bytes()

    def log_lines(self) -> list[str]:
        return self.stderr().decode("utf-8", "replace").splitlines()

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the server process, in KiB."""
        return parse_memory(Path(f"/proc/{self.pid}/status").read_text())

    def cpu_seconds(self) -> float:
        return parse_cpu_seconds(Path(f"/proc/{self.pid}/stat").read_text(), CLOCK_TICKS)

    def process_name(self) -> str:
        return Path(f"/proc/{self.pid}/comm").read_text().strip()

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def remaining_stdout(self) -> bytes:
        """Everything the server wrote to stdout after the readiness line (call after it exited)."""
        return self.process.stdout.read()

    def is_running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self._stderr_file.close()

    def release(self) -> None:
        """End of the session: this worker's servers are its own."""
        self.stop()

    def stop(self) -> None:
        """Ask politely (S-4), then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class LocalBackend:
    """Processes on this machine (a base.Backend); servers are per pytest-xdist worker."""

    name = "local"
    harness_host = "127.0.0.1"  # where the harness's fake servers listen for clients under test

    def __init__(self, work_dir: Path, lock_dir: Path) -> None:
        self.work_dir = work_dir
        self.lock_dir = lock_dir  # shared by all xdist workers, so each implementation builds once at a time

    def missing_tools(self, implementation: Implementation) -> list[str]:
        return implementation.missing_tools()

    def killed_status(self, signal_name: str) -> int:
        return -getattr(signal, f"SIG{signal_name}")  # as Popen reports a death by a signal

    def build(self, implementation: Implementation) -> None:
        with open(self.lock_dir / f"build-{implementation.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            result = subprocess.run(implementation.build_command, capture_output=True)
        if result.returncode != 0:
            raise BuildFailed(
                f"{implementation.name}: bin/build exited {result.returncode}\n"
                f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
            )

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **BASE_ENV, **(extra or {})}

    def start_server(
        self,
        implementation: Implementation,
        *args: str,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
        ignoring: str | None = None,
    ) -> ServerProcess:
        argv = server_signals([*implementation.command, "server", "--port", "0", *args], ignoring)
        return ServerProcess(argv, self.environment(env), self.work_dir, nofile)

    def shared_server(self, implementation: Implementation, turkish: bool) -> ServerProcess:
        """A default server for the session; local processes are per worker."""
        return self.start_server(implementation, env=implementation.turkish_environment() if turkish else None)

    def run(
        self,
        implementation: Implementation,
        *args: str,
        stdin: bytes | Path = b"",
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        beside: ServerProcess | None = None,
        redirect: str | None = None,
        signal_after: str | None = None,
        signal_ignored: bool = False,
        stdin_stays_open: bool = False,
        streams: str | None = None,
    ) -> Completed:
        """Run the CLI to completion; stdin is bytes or a file (for inputs too big to pipe from memory).

        `beside` runs it where it sees that server's loopback; for local processes that is everywhere.
        """
        argv = wrapped([*implementation.command, *args], redirect, signal_after, signal_ignored, streams)
        with contextlib.ExitStack() as files:
            if stdin_stays_open:  # a pipe whose writing end the harness holds until the command has ended
                source, writer = os.pipe()
                files.callback(os.close, writer)
                os.write(writer, stdin)  # small: the pipe's buffer takes it at once
                files.callback(os.close, source)
            elif isinstance(stdin, Path):
                source = files.enter_context(stdin.open("rb"))
            else:
                source = subprocess.PIPE
            # A process group of its own: a command under a wrapper (`streams` runs a pipeline under sh) is more
            # than one process, and a timeout or Ctrl-C must leave none of them running.
            with subprocess.Popen(
                argv,
                stdin=source,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(env),
                process_group=0,
            ) as process:
                try:
                    out, err = process.communicate(stdin if source == subprocess.PIPE else None, timeout=timeout)
                except BaseException:
                    with contextlib.suppress(ProcessLookupError):  # every one of them has ended already
                        os.killpg(process.pid, signal.SIGKILL)
                    raise
        result = subprocess.CompletedProcess(argv, process.returncode, out or b"", err)
        return Completed(argv, result.returncode, result.stdout, result.stderr)
