"""The matrix's pytest plumbing: options, parametrization from the registry, builds and shared servers.

Tests ask for `client` and/or `server` (an Implementation): they are parametrized over the registry with ids
like `java-client` and `python-server`, and every implementation a test uses is built first (bin/build) or the
test is skipped when its toolchain is missing (`--require-all`, defined in tests/conftest.py, makes that a failure).
"""
from __future__ import annotations

import resource
import uuid
from pathlib import Path

import pytest

from .backend_local import LocalBackend, ServerProcess
from .registry import Implementation, load_registry
from .vectors import load_vectors

IMPLEMENTATIONS = load_registry()
SESSION_ID = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upper-echo matrix")
    group.addoption("--backend", choices=["local", "docker"], default="local",
                    help="where implementations run: 'local' processes (default: needs no Docker) or 'docker' "
                         "containers on a private network made for the session")
    group.addoption("--docker-network", metavar="NAME",
                    help="docker backend: use this existing network instead of making one for the session")
    group.addoption("--compose-servers", action="store_true",
                    help="docker backend: test the servers of the compose services (implementations.toml "
                         "`service`) running on --docker-network instead of starting them")
    group.addoption("--registry", action="append", type=Path, metavar="PATH",
                    help="read implementations from this registry instead of implementations.toml; repeat to "
                         "combine several (tests/mutants/mutants.toml registers the deliberately broken ones)")


def pytest_configure(config: pytest.Config) -> None:
    global IMPLEMENTATIONS
    if config.getoption("--registry"):
        IMPLEMENTATIONS = {name: impl for path in config.getoption("--registry")
                           for name, impl in load_registry(path.resolve()).items()}
    # Hundreds of test connections at once (S-1) need more than a small default limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # One id per run, made by the controller and handed to xdist workers: shared containers are named by it.
    workerinput = getattr(config, "workerinput", None)
    # (`pytest tests` does not load this conftest on the controller, so no upper_echo_session: xdist's run id is
    # shared by the workers too. --backend docker is only accepted when it is loaded, so cleanup is unaffected.)
    config.stash[SESSION_ID] = (workerinput.get("upper_echo_session") or workerinput["testrunuid"][:10]) \
        if workerinput else uuid.uuid4().hex[:10]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput["upper_echo_session"] = node.config.stash[SESSION_ID]


def pytest_unconfigure(config: pytest.Config) -> None:
    # The controller (or a run without xdist) removes the session's containers, whatever the outcome.
    if config.getoption("--backend") == "docker" and not hasattr(config, "workerinput"):
        from .backend_docker import remove_session
        remove_session(config.stash[SESSION_ID])


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
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    # The parent of the basetemp is shared by all xdist workers: locks live there.
    shared_dir = tmp_path_factory.getbasetemp().parent
    if request.config.getoption("--backend") == "docker":
        from .backend_docker import DockerBackend
        return DockerBackend(session=request.config.stash[SESSION_ID], lock_dir=shared_dir,
                             network=request.config.getoption("--docker-network"),
                             compose_servers=request.config.getoption("--compose-servers"))
    return LocalBackend(work_dir=tmp_path_factory.mktemp("logs"), lock_dir=shared_dir)


class Toolchains:
    """Builds each implementation once per worker; missing toolchains become skips."""

    def __init__(self, backend) -> None:
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
def toolchains(backend) -> Toolchains:
    return Toolchains(backend)


@pytest.fixture(autouse=True)
def _prepare_implementations(request: pytest.FixtureRequest, toolchains: Toolchains) -> None:
    callspec = getattr(request.node, "callspec", None)
    for value in (callspec.params.values() if callspec else ()):
        if isinstance(value, Implementation):
            toolchains.prepare(value)


class ServerPool:
    """One long-running default server per implementation (and locale) per worker, started on first use."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.running: dict[tuple[str, bool], ServerProcess] = {}

    def get(self, implementation: Implementation, turkish: bool = False) -> ServerProcess:
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
    started: list[ServerProcess] = []

    def start(implementation: Implementation, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        started.append(backend.start_server(implementation, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        server.kill()
