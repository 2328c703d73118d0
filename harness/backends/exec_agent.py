"""The harness side of the exec agent (harness/exec_agent): the docker backend runs client commands through
it instead of one `docker exec` each, which costs the engine and runc about 85 ms of CPU per command.

The agent is built in its own image (statically linked, so it runs in any implementation's image), copied
into each standing client container before it starts, and is that container's main process. See
harness/exec_agent/src/main.rs for the protocol.
"""

from __future__ import annotations

import io
import socket
import struct
import tarfile
import time

import docker
from docker.errors import APIError

from .. import REPO
from .base import START_TIMEOUT, BuildFailed

FOLDER = REPO / "harness" / "exec_agent"
IMAGE = "upper-echo-exec-agent"
BINARY = "upper-echo-exec-agent"  # at the image's root; installed into INSTALL_DIR of client containers
INSTALL_DIR = "/usr/local/bin"
PORT = 7070
TOKEN_VARIABLE = "UPPER_ECHO_AGENT_TOKEN"
EXIT = 3  # the stream of the last frame: the exit status


def build_archive(engine: docker.DockerClient) -> bytes:
    """Build the agent's image (quick when the layer cache holds it) and return a tar of its one binary."""
    try:
        engine.images.build(path=str(FOLDER), tag=IMAGE, rm=True)
    except (APIError, docker.errors.BuildError) as failure:
        raise BuildFailed(f"building the exec agent ({IMAGE}) failed: {failure}") from None
    holder = engine.containers.create(IMAGE)
    try:
        chunks, _ = holder.get_archive(f"/{BINARY}")
        archive = b"".join(chunks)
    finally:
        holder.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:  # a clear error now rather than a container that exits
        if tar.getnames() != [BINARY]:
            raise BuildFailed(f"{IMAGE} holds {tar.getnames()}, not /{BINARY}")
    return archive


def wait_until_listening(address: tuple[str, int], container) -> None:
    """Return once the agent accepts connections; its container's logs say why when it does not."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                logs = container.logs()
                raise RuntimeError(f"the exec agent in {container.name} is not listening: {logs!r}") from None
            time.sleep(0.01)


def start_command(address: tuple[str, int], token: str, argv: list[str], env: dict[str, str]) -> socket.socket:
    """Connect and send the request; the caller then writes stdin and reads the framed output."""
    fields = [token, str(len(argv)), *argv, *(f"{name}={value}" for name, value in env.items())]
    header = "\0".join(fields).encode("utf-8")
    connection = socket.create_connection(address)
    connection.sendall(struct.pack(">I", len(header)) + header)
    return connection


def exit_status(frame: bytes, container_name: str) -> int:
    if len(frame) != 4:
        raise RuntimeError(f"the exec agent in {container_name} ended a command without its exit status")
    return struct.unpack(">i", frame)[0]
