"""The matrix's pytest plumbing: parametrization from the registry, builds and shared servers
(its options and the run-wide session are in harness/plugins/session.py).

Tests ask for `client` and/or `server` (an Implementation): they are parametrized over the registry's
implementations that provide that role (implementations.toml `role`) with ids like `java-client` and
`python-server`, and every implementation a test uses is built first (bin/build) or the
test is skipped when its toolchain is missing (`--require-all`, defined in tests/conftest.py, makes that a failure).
"""

from __future__ import annotations

import pytest

from harness.backends import Backend, ServerHandle
from harness.backends.local import LocalBackend
from harness.plugins.repeat import repeats
from harness.plugins.session import SESSION_ID, implementations
from harness.proxy import CONDITIONS
from harness.registry import Implementation
from harness.vectors import load_vectors

# A test argument named after a role is parametrized over the implementations that provide the role
# (`implementation`: all of them); the id says the role. With a
# `vector` argument too, every combination meets every vector: ids read like java-client->csharp-server[sharp-s].
ROLE_IDS = {"client": "{}-client", "server": "{}-server", "implementation": "{}"}
VECTORS = load_vectors()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    roles = [role for role in ROLE_IDS if role in metafunc.fixturenames]
    combos: list[tuple[tuple, str]] = [((), "")]
    for role in roles:
        combos = [
            (values + (impl,), f"{label}->{ROLE_IDS[role].format(name)}" if label else ROLE_IDS[role].format(name))
            for values, label in combos
            for name, impl in implementations(role).items()
        ]
    if "vector" in metafunc.fixturenames:
        roles.append("vector")
        combos = [
            (values + (vector,), f"{label}[{vector.id}]" if label else vector.id)
            for values, label in combos
            for vector in VECTORS
        ]
    if "condition" in metafunc.fixturenames:  # the network conditions axis: java-client->[split-1]->csharp-server
        roles.append("condition")
        combos = [
            (values + (name,), label.replace("->", f"->[{name}]->", 1))
            for values, label in combos
            for name in CONDITIONS
        ]
    if not roles:
        return
    counts = [
        repeats(metafunc.config, timing="condition" in roles and CONDITIONS[values[-1]].timing) for values, _ in combos
    ]
    if all(count == 1 for count in counts):
        metafunc.parametrize(",".join(roles), [pytest.param(*values, id=label) for values, label in combos])
        return
    # Repeated cells (harness/plugins/repeat.py): each run its own item, id suffix -r{k}of{N}.
    metafunc.fixturenames.append("repeat_index")
    params = [
        pytest.param(*values, k, id=label if count == 1 else f"{label}-r{k}of{count}")
        for (values, label), count in zip(combos, counts, strict=True)
        for k in range(1, count + 1)
    ]
    metafunc.parametrize(",".join([*roles, "repeat_index"]), params, indirect=["repeat_index"])


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    # The parent of the basetemp is shared by all xdist workers: locks live there.
    shared_dir = tmp_path_factory.getbasetemp().parent
    if request.config.getoption("--backend") == "docker":
        from harness.backends.docker import DockerBackend

        return DockerBackend(
            session=request.config.stash[SESSION_ID],
            lock_dir=shared_dir,
            network=request.config.getoption("--docker-network"),
            compose_servers=request.config.getoption("--compose-servers"),
        )
    return LocalBackend(work_dir=tmp_path_factory.mktemp("logs"), lock_dir=shared_dir)


class Toolchains:
    """Builds each implementation once per worker; missing toolchains become skips."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.built: dict[str, Exception | None] = {}

    def prepare(self, implementation: Implementation) -> None:
        missing = self.backend.missing_tools(implementation)
        if missing:
            pytest.skip(f"{implementation.name}: toolchain missing ({', '.join(missing)} not on PATH)")
        if implementation.name not in self.built:
            try:
                self.backend.build(implementation)
                self.built[implementation.name] = None
            except Exception as failure:  # remembered, so every test of it fails the same way, fast
                self.built[implementation.name] = failure
        if self.built[implementation.name] is not None:
            pytest.fail(str(self.built[implementation.name]), pytrace=False)


@pytest.fixture(scope="session")
def toolchains(backend: Backend) -> Toolchains:
    return Toolchains(backend)


@pytest.fixture(autouse=True)
def _prepare_implementations(request: pytest.FixtureRequest, toolchains: Toolchains) -> None:
    callspec = getattr(request.node, "callspec", None)
    for value in callspec.params.values() if callspec else ():
        if isinstance(value, Implementation):
            toolchains.prepare(value)


class ServerPool:
    """One long-running default server per implementation (and locale) per worker, started on first use."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.running: dict[tuple[str, bool], ServerHandle] = {}

    def get(self, implementation: Implementation, turkish: bool = False) -> ServerHandle:
        key = (implementation.name, turkish)
        server = self.running.get(key)
        if server is None or not server.is_running():
            server = self.running[key] = self.backend.shared_server(implementation, turkish)
        return server

    def release_all(self) -> None:
        for server in self.running.values():
            server.release()


@pytest.fixture(scope="session")
def servers(backend):
    pool = ServerPool(backend)
    yield pool
    pool.release_all()


@pytest.fixture
def dedicated_server(backend):
    """Start a server with non-default flags for one test; it is stopped afterwards."""
    started: list[ServerHandle] = []

    def start(implementation: Implementation, *args: str, **options) -> ServerHandle:
        """start_server's keyword arguments too (env, nofile, ignoring)."""
        started.append(backend.start_server(implementation, *args, **options))
        return started[-1]

    yield start
    for server in started:
        server.kill()
