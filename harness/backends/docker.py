"""The docker backend: every server and every client runs in its own container, driven by the Docker SDK.

Everything lives on one private network made for the test session. No host port is published and nothing
is bind-mounted; the harness reaches servers at their addresses on that network, and clients reach the
harness's fake servers at the harness's own address on it (the network's gateway when pytest runs on the
engine's host, its container address when pytest itself runs in a container on the network).

Shared state across pytest-xdist workers: the session id comes from the controller, and the network and the
default servers have names derived from it, so the first worker to ask creates them and the others find
them. The controller removes everything labelled with the session id at the end, pass, fail or Ctrl-C.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from .. import REPO
from ..registry import Implementation
from . import exec_agent
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

SESSION_LABEL = "upper-echo.session"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the engine's kernel is this machine's (see the module docstring)
STDOUT, STDERR = 1, 2


def demultiplex(raw: socket.socket, streams: dict[int, bytearray]) -> None:
    """Split Docker's attach stream (8-byte frame headers: stream, 0, 0, 0, big-endian size) into its parts,
    by stream number (the exec agent adds a third, the exit status)."""

    def read_exactly(size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = raw.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return bytes(data)

    while len(header := read_exactly(8)) == 8:
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        streams.setdefault(stream, bytearray()).extend(read_exactly(size))


def exchange(raw: socket.socket, data: bytes, timeout: float, end_stdin: bool = True) -> dict[int, bytearray] | None:
    """Send `data` as a process's stdin, then its end unless not `end_stdin`, while reading the framed output until
    it ends; close the connection. The streams by number, or None when the output did not end within `timeout`
    seconds."""
    streams = {STDOUT: bytearray(), STDERR: bytearray()}
    reader = threading.Thread(target=demultiplex, args=(raw, streams), daemon=True)
    reader.start()

    def feed() -> None:
        try:
            raw.sendall(data)
            if end_stdin:
                raw.shutdown(socket.SHUT_WR)  # stdin EOF for the process
        except OSError:
            pass  # the process exited without reading all of stdin

    threading.Thread(target=feed, daemon=True).start()
    reader.join(timeout)
    if not reader.is_alive():
        raw.close()
        return streams
    # Given up: end the reader's recv (a close alone would leave the socket open under it), then close with a
    # reset, not a FIN, which tells the exec agent to kill the command (exec_agent/src/main.rs).
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.shutdown(socket.SHUT_RDWR)
    reader.join(5)
    raw.close()
    return None


class ServerContainer:
    """A server in a container (a base.ServerHandle)."""

    def __init__(self, container, network: str) -> None:
        self.container = container
        self.argv = container.attrs["Config"]["Cmd"]
        self.ready_line = self._wait_for_ready_line()
        self.host, self.port = parse_ready_line(self.ready_line, self.argv, self.stderr())
        container.reload()
        self.network_address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]

    def _wait_for_ready_line(self) -> bytes:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            stdout = self.container.logs(stdout=True, stderr=False)
            if b"\n" in stdout:
                return stdout[: stdout.index(b"\n") + 1]
            self.container.reload()
            if self.container.status == "exited":
                break
            time.sleep(0.05)
        raise ServerDidNotStart(f"{self.argv}: no readiness line within {START_TIMEOUT:g} s; stderr: {self.stderr()!r}")

    @property
    def address(self) -> tuple[str, int]:
        return self.network_address, self.port

    @property
    def ipv4_address(self) -> tuple[str, int]:
        return self.network_address, self.port

    def stderr(self) -> bytes:
        return self.container.logs(stdout=False, stderr=True)

    def log_lines(self) -> list[str]:
        return self.stderr().decode("utf-8", "replace").splitlines()

    def _read_file(self, path: str) -> str:
        result = self.container.exec_run(["cat", path])
        if result.exit_code != 0:  # say why, rather than hand on an engine's or cat's message as the file
            raise RuntimeError(f"cat {path} in {self.container.name} exited {result.exit_code}: {result.output!r}")
        return result.output.decode()

    def memory_kib(self) -> dict[str, int]:
        return parse_memory(self._read_file("/proc/1/status"))

    def cpu_seconds(self) -> float:
        """The server is the container's process 1 (bin/upper-echo execs, I-1); the exec that reads its stat
        is another process, so its own CPU time is not counted. Clock ticks are the host kernel's (100)."""
        return parse_cpu_seconds(self._read_file("/proc/1/stat"), CLOCK_TICKS)

    def process_name(self) -> str:
        return self._read_file("/proc/1/comm").strip()

    def send_signal(self, signum: int) -> None:
        self.container.kill(signal=int(signum))

    def wait(self, timeout: float) -> int:
        return self.container.wait(timeout=timeout)["StatusCode"]

    def remaining_stdout(self) -> bytes:
        return self.container.logs(stdout=True, stderr=False)[len(self.ready_line) :]

    def is_running(self) -> bool:
        try:
            self.container.reload()
        except NotFound:
            return False
        return self.container.status == "running"

    def kill(self) -> None:
        try:
            self.container.remove(force=True)
        except NotFound:
            pass

    def release(self) -> None:
        """Shared by all workers: the controller removes it at the end of the session."""


class ClientContainer:
    """A standing client container and how to reach the exec agent in it."""

    def __init__(self, container, network: str) -> None:
        self.container = container
        self.agent_address = (container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"], exec_agent.PORT)
        environment = dict(entry.split("=", 1) for entry in container.attrs["Config"]["Env"])
        self.agent_token = environment[exec_agent.TOKEN_VARIABLE]


class DockerBackend:
    """Containers on a private network (a base.Backend); default servers are shared by all workers."""

    name = "docker"

    def __init__(self, session: str, lock_dir: Path, network: str | None = None, compose_servers: bool = False) -> None:
        self.docker = docker.from_env(timeout=300)
        self.session = session
        self.lock_dir = lock_dir
        self.labels = {SESSION_LABEL: session}
        self.network = network or self._shared_network()
        self.compose_servers = compose_servers
        self.harness_host = self._own_address_on_network()
        self._entrypoints: dict[str, list[str]] = {}  # image -> its entrypoint
        self._clients: dict[str, ClientContainer] = {}  # by implementation
        self._agent_archive: bytes | None = None

    def _locked(self, name: str):
        lock = open(self.lock_dir / f"docker-{self.session}-{name}.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def _shared_network(self) -> str:
        name = f"upper-echo-{self.session}"
        with self._locked("network"):
            if not self.docker.networks.list(names=[name]):
                self.docker.networks.create(name, driver="bridge", labels=self.labels)
        return name

    def _own_address_on_network(self) -> str:
        gateway = self.docker.networks.get(self.network).attrs["IPAM"]["Config"][0]["Gateway"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((gateway, 9))  # no packet is sent: this only asks the kernel for the route's source
            return probe.getsockname()[0]

    def missing_tools(self, implementation: Implementation) -> list[str]:
        # the toolchain is in the image; an entry without one cannot run here
        return [] if implementation.image else ["an image (implementations.toml `image`)"]

    def killed_status(self, signal_name: str) -> int:
        return 128 + getattr(signal, f"SIG{signal_name}")  # as the exec agent, like docker, reports it

    def build(self, implementation: Implementation) -> None:
        """Build the image from the implementation's Dockerfile (once per session across workers): with the
        layer cache this is quick when nothing changed, and the tests never run a stale image."""
        if self.compose_servers:
            return  # compose built the images (and this runner's context holds no implementation folders)
        marker = self.lock_dir / f"docker-{self.session}-built-{implementation.name}"
        with self._locked(f"build-{implementation.name}"):
            if marker.exists():
                return
            dockerfile = (implementation.folder / "Dockerfile").relative_to(REPO)
            try:
                self.docker.images.build(path=str(REPO), dockerfile=str(dockerfile), tag=implementation.image, rm=True)
            except (APIError, docker.errors.BuildError) as failure:
                raise BuildFailed(f"{implementation.name}: building {implementation.image} failed: {failure}") from None
            marker.touch()

    def _create(
        self,
        implementation: Implementation,
        command: list[str],
        env: dict[str, str] | None,
        name: str | None = None,
        entrypoint: list[str] | None = None,
        nofile: int | None = None,
    ):
        """Create (not start) a container on the session network; `nofile`: its RLIMIT_NOFILE, soft and hard."""
        api = self.docker.api
        ulimits = None if nofile is None else [docker.types.Ulimit(name="nofile", soft=nofile, hard=nofile)]
        # the IPv6 loopback too, for servers told to listen on ::1 (N-1)
        host_config = api.create_host_config(
            network_mode=self.network, sysctls={"net.ipv6.conf.lo.disable_ipv6": "0"}, ulimits=ulimits
        )
        created = api.create_container(
            implementation.image,
            command,
            name=name,
            labels=self.labels,
            entrypoint=entrypoint,
            healthcheck={"Test": ["NONE"]},  # the harness checks readiness itself; spare the CPU
            environment={**BASE_ENV, **(env or {})},
            host_config=host_config,
            networking_config=api.create_networking_config({self.network: api.create_endpoint_config()}),
        )
        return self.docker.containers.get(created["Id"])

    def start_server(
        self,
        implementation: Implementation,
        *args: str,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
        ignoring: str | None = None,
        name: str | None = None,
    ) -> ServerContainer:
        host = [] if "--host" in args else ["--host", "0.0.0.0"]
        command = ["server", *host, "--port", "0", *args]
        # a container's first process starts with every signal at its default: only `ignoring` needs the wrapper
        entrypoint = None if ignoring is None else server_signals(self._entrypoint(implementation), ignoring)
        try:
            container = self._create(implementation, command, env, name=name, entrypoint=entrypoint, nofile=nofile)
        except APIError as conflict:
            if name is None or conflict.status_code != 409:
                raise
            return ServerContainer(self.docker.containers.get(name), self.network)  # another worker made it
        container.start()
        return ServerContainer(container, self.network)

    def shared_server(self, implementation: Implementation, turkish: bool) -> ServerContainer:
        """The session's default server for one implementation and locale, shared by every worker."""
        if self.compose_servers and not turkish and implementation.service:
            return self._compose_server(implementation)
        name = f"upper-echo-{self.session}-{implementation.name}{'-tr' if turkish else ''}"
        env = implementation.turkish_environment() if turkish else None
        with self._locked(name):
            return self.start_server(implementation, env=env, name=name)

    def _compose_server(self, implementation: Implementation) -> ServerContainer:
        found = self.docker.containers.list(
            filters={"label": f"com.docker.compose.service={implementation.service}", "network": self.network}
        )
        if not found:
            raise ServerDidNotStart(f"no running compose service {implementation.service} on {self.network}")
        return ServerContainer(found[0], self.network)

    def run(
        self,
        implementation: Implementation,
        *args: str,
        stdin: bytes | Path = b"",
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        beside: ServerContainer | None = None,
        redirect: str | None = None,
        signal_after: str | None = None,
        signal_ignored: bool = False,
        stdin_stays_open: bool = False,
        streams: str | None = None,
    ) -> Completed:
        """`upper-echo ARGS < stdin` in the implementation's standing client container, through its exec agent
        (a fraction of the cost of a docker exec), or, `beside` a server, `docker exec -i` in that server's
        container."""
        data = stdin.read_bytes() if isinstance(stdin, Path) else stdin
        if beside is not None and beside.container.attrs["Config"]["Image"] != implementation.image:
            raise ValueError(f"{implementation.image} cannot run beside a {beside.container.attrs['Config']['Image']}")
        api = self.docker.api
        command = wrapped([*self._entrypoint(implementation), *args], redirect, signal_after, signal_ignored, streams)
        environment = {**BASE_ENV, **(env or {})}
        if beside is None:
            client = self._client_container(implementation)
            container = client.container
            raw = exec_agent.start_command(client.agent_address, client.agent_token, command, environment)
        else:
            container = beside.container
            exec_id = api.exec_create(container.id, command, stdin=True, environment=environment)["Id"]
            raw = api.exec_start(exec_id, socket=True)._sock  # the SDK exposes the hijacked connection only this way
        streams = exchange(raw, data, timeout, end_stdin=not stdin_stays_open)
        if streams is None:
            raise TimeoutError(f"{implementation.name} {' '.join(args)} did not finish within {timeout:g} s")
        if beside is None:
            returncode = exec_agent.exit_status(bytes(streams.get(exec_agent.EXIT, b"")), container.name)
        else:
            returncode = self._exit_code(exec_id)
        return Completed(list(args), returncode, bytes(streams[STDOUT]), bytes(streams[STDERR]))

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(100):  # the output stream ends a moment before the engine records the exit code
            state = self.docker.api.exec_inspect(exec_id)
            if not state["Running"] and state["ExitCode"] is not None:
                return state["ExitCode"]
            time.sleep(0.02)
        raise TimeoutError(f"exec {exec_id} finished its output but not its process")

    def _entrypoint(self, implementation: Implementation) -> list[str]:
        if implementation.image not in self._entrypoints:
            image = self.docker.images.get(implementation.image)
            self._entrypoints[implementation.image] = image.attrs["Config"]["Entrypoint"]
        return self._entrypoints[implementation.image]

    def _client_container(self, implementation: Implementation) -> ClientContainer:
        """A standing container of the implementation's image on the session network, for its client runs: its
        main process is the exec agent, listening on the network (the first worker to ask creates it)."""
        if implementation.name in self._clients:
            return self._clients[implementation.name]
        name = f"upper-echo-{self.session}-{implementation.name}-clients"
        with self._locked(name):
            try:
                container = self.docker.containers.get(name)
            except NotFound:
                agent = f"{exec_agent.INSTALL_DIR}/{exec_agent.BINARY}"
                token = {exec_agent.TOKEN_VARIABLE: secrets.token_hex(16)}
                container = self._create(implementation, [str(exec_agent.PORT)], token, name=name, entrypoint=[agent])
                container.put_archive(exec_agent.INSTALL_DIR, self._exec_agent_archive())
                container.start()
                container.reload()
            client = ClientContainer(container, self.network)
            exec_agent.wait_until_listening(client.agent_address, container)
        self._clients[implementation.name] = client
        return client

    def _exec_agent_archive(self) -> bytes:
        """The agent binary as a tar, built once per session (the first worker to ask builds it)."""
        if self._agent_archive is None:
            path = self.lock_dir / f"docker-{self.session}-exec-agent.tar"
            with self._locked("exec-agent"):
                if not path.exists():
                    path.write_bytes(exec_agent.build_archive(self.docker))
            self._agent_archive = path.read_bytes()
        return self._agent_archive


def remove_session(session: str) -> None:
    """Remove every container and the network of a session (the controller calls this at the end)."""
    engine = docker.from_env()
    selector = {"label": f"{SESSION_LABEL}={session}"}
    for container in engine.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for network in engine.networks.list(filters=selector):
        network.remove()
