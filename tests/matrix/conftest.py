"""The matrix's pytest plumbing: options, parametrization from the registry, builds and shared servers.

Tests ask for `client` and/or `server` (an Implementation): they are parametrized over the registry with ids
like `java-client` and `python-server`, and every implementation a test uses is built first (bin/build) or the
test is skipped when its toolchain is missing (`--require-all`, defined in tests/conftest.py, makes that a failure).
"""
from __future__ import annotations

import resource

import pytest

from .backend_local import LocalBackend, ServerProcess
from .registry import Implementation, load_registry
from .vectors import load_vectors

IMPLEMENTATIONS = load_registry()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upper-echo matrix")
    group.addoption("--backend", choices=["local"], default="local",
                    help="where implementations run: 'local' processes (default)")


def pytest_configure(config: pytest.Config) -> None:
    # Hundreds of test connections at once (S-1) need more than a small default limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pytest_report_header(config: pytest.Config) -> list[str]:
    names = ", ".join(IMPLEMENTATIONS)
    return [f"upper-echo backend: {config.getoption('--backend')}; implementations: {names}"
            + ("; --require-all" if config.getoption("--require-all") else "")]


# A test argument named after a role is parametrized over the registry; the id says the role. With a
# `vector` argument too, every combination meets every vector: ids read like java-client->csharp-server[sharp-s].
ROLE_IDS = {"client": "{}-client", "server": "{}-server", "implementation": "{}"}
VECTORS = load_vectors()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    roles = [role for role in ROLE_IDS if role in metafunc.fixturenames]
    combos: list[tuple[tuple, str]] = [((), "")]
    for role in roles:
        combos = [(values + (impl,), f"{label}->{ROLE_IDS[role].format(name)}" if label else ROLE_IDS[role].format(name))
                  for values, label in combos for name, impl in IMPLEMENTATIONS.items()]
    if "vector" in metafunc.fixturenames:
        roles.append("vector")
        combos = [(values + (vector,), f"{label}[{vector.id}]" if label else vector.id)
                  for values, label in combos for vector in VECTORS]
    if roles:
        metafunc.parametrize(",".join(roles), [pytest.param(*values, id=label) for values, label in combos])


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> LocalBackend:
    # The parent of the basetemp is shared by all xdist workers: the build lock lives there.
    return LocalBackend(work_dir=tmp_path_factory.mktemp("logs"),
                        lock_dir=tmp_path_factory.getbasetemp().parent)


class Toolchains:
    """Builds each implementation once per worker; missing toolchains become skips."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.built: dict[str, Exception | None] = {}

    def prepare(self, implementation: Implementation) -> None:
        missing = implementation.missing_tools()
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
def toolchains(backend: LocalBackend) -> Toolchains:
    return Toolchains(backend)


@pytest.fixture(autouse=True)
def _prepare_implementations(request: pytest.FixtureRequest, toolchains: Toolchains) -> None:
    callspec = getattr(request.node, "callspec", None)
    for value in (callspec.params.values() if callspec else ()):
        if isinstance(value, Implementation):
            toolchains.prepare(value)


class ServerPool:
    """One long-running default server per implementation (and locale) per worker, started on first use."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.running: dict[tuple[str, bool], ServerProcess] = {}

    def get(self, implementation: Implementation, turkish: bool = False) -> ServerProcess:
        key = (implementation.name, turkish)
        server = self.running.get(key)
        if server is None or not server.is_running():
            env = implementation.turkish_environment() if turkish else None
            server = self.running[key] = self.backend.start_server(implementation, env=env)
        return server

    def release_all(self) -> None:
        for server in self.running.values():
            server.release()


@pytest.fixture(scope="session")
def servers(backend: LocalBackend):
    pool = ServerPool(backend)
    yield pool
    pool.release_all()


@pytest.fixture
def dedicated_server(backend: LocalBackend):
    """Start a server with non-default flags for one test; it is stopped afterwards."""
    started: list[ServerProcess] = []

    def start(implementation: Implementation, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        started.append(backend.start_server(implementation, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        server.kill()
