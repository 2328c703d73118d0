"""The command line shared by every language (X-1 to X-6, S-7, C-1): cases generated from spec/cli.toml.

Three kinds of case, each run against every implementation:
- the table's values: for every flag, malformed and out-of-range values must be usage errors, and the bounds
  and both spellings (`--flag V`, `--flag=V`) must be accepted;
- the table's pinned rows ([[cases]]), inputs on which languages once answered differently;
- the hand-written usage errors and --help checks below.
"""

from __future__ import annotations

import socket
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from harness.bytes_diff import assert_same_bytes
from harness.fake_servers import FakeServer, echo_unchanged
from harness.fuzz import dense_stream
from harness.oracle import expected_u
from harness.outcomes import assert_one_error_line

CLI_TABLE = tomllib.loads((Path(__file__).resolve().parents[2] / "spec" / "cli.toml").read_text(encoding="utf-8"))
COMMANDS: dict[str, dict] = CLI_TABLE["commands"]

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
    "top": ([], list(COMMANDS)),
    **{
        name: (
            [name],
            [f"--{flag}" for flag in command["options"]] + ([command["operands"]] if command["operands"] else []),
        )
        for name, command in COMMANDS.items()
    },
}

# Values every language's own number parser would take but X-4 forbids; hosts X-5 forbids. Each list runs once
# per subcommand, on its first flag of that type; the range and spelling checks run on every flag.
MALFORMED = {
    "integer": ["-1", "+1", "1_0", "1e3", "0x10", " 1", "1.5", "\u0661", "9" * 40],
    "seconds": ["-1", "1_0", "1e3", "inf", "nan", "1.", ".5", "1.2345", "\u0661", "9" * 40],
    # IPv4 forms other than dotted decimal that every runtime reads as loopback, if at all
    "host": ["", "::1%lo", "[::1%lo]", "[127.0.0.1]", "127.1", "2130706433", "127.0.0.01", "127.0.0.1."]
    # printable ASCII only, and a host with a ':' is an IPv6 address, bracketed or not, its IPv4 part dotted decimal
    + ["127。0。0。1", "１２７.０.０.１", "ｌｏｃａｌｈｏｓｔ", "localhost "]
    + ["::ffff:127.0.0.01", "[::ffff:127.0.0.01]", "1::2::3"],
}
# A well-formed value per type, for the abbreviated spelling: were it taken, a server would take a free port and
# nothing would leave loopback.
WELL_FORMED = {
    "integer": lambda option: str(option["min"]),
    "seconds": lambda option: "1",
    "host": lambda option: "127.0.0.1",
}


def _number(value: float | int, kind: str) -> str:
    return str(int(value)) if kind == "integer" else format(Decimal(str(value)).normalize(), "f")


def _out_of_range(option: dict) -> list[str]:
    if "min" not in option:
        return []
    step = Decimal(1) if option["type"] == "integer" else Decimal("0.001")
    low, high = Decimal(str(option["min"])), Decimal(str(option["max"]))
    return [_number(high + step, option["type"])] + ([_number(low - step, option["type"])] if low > 0 else [])


def _argv(command: str, *flags: str, operand: bool = True) -> list[str]:
    """A complete command around the flags under test: a server on a free port, a client with a message."""
    prefix = ["--port", "0"] if command == "server" and not any(f.startswith("--port") for f in flags) else []
    return [command, *prefix, *flags, *(["x"] if command == "client" and operand else [])]


def _label(args: list[str]) -> str:
    words = (repr(arg) if arg == "" or not arg.isprintable() or " " in arg else arg for arg in args)
    return f"`{' '.join(words)}`"


def rejected_cases() -> list:
    cases = []
    for command, spec in COMMANDS.items():
        types_seen: set[str] = set()
        for flag, option in spec["options"].items():
            kind = option["type"]
            values = _out_of_range(option) + (MALFORMED[kind] if kind not in types_seen else [])
            types_seen.add(kind)
            forms = [_argv(command, f"--{flag}", value) for value in values]
            forms += [
                _argv(command, f"--{flag}="),
                _argv(command, f"--{flag}", operand=False),  # the value is missing
                _argv(command, f"--{flag[:-1]}", WELL_FORMED[kind](option)),  # no abbreviations
            ]
            cases += [pytest.param(form, id=_label(form)) for form in forms]
    return cases


def accepted_cases() -> list:
    cases = []
    for command, spec in COMMANDS.items():
        for flag, option in spec["options"].items():
            if option["type"] == "host" or (command == "server" and flag == "port"):
                continue  # hosts: the pinned rows; a server port other than 0 could be taken
            bounds = {_number(option["min"], option["type"]), _number(option["max"], option["type"])}
            if command == "client" and flag == "port":
                continue  # the client's port is where it connects: test_client_accepts_the_port_forms
            for value in sorted(bounds):
                for form in ([f"--{flag}", value], [f"--{flag}={value}"]):
                    cases.append(pytest.param(command, form, id=_label([command, *form])))
    return cases


def pinned_cases() -> list:
    return [pytest.param(case, id=_label(case["args"])) for case in CLI_TABLE["cases"]]


@pytest.mark.clause("X-1", "S-7", "S-9", "C-1", "C-6")
@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_error_exits_2_with_one_error_line(backend, implementation, args) -> None:
    assert_one_error_line(backend.run(implementation, *args, timeout=30), 2)


@pytest.mark.clause("X-1")
@pytest.mark.parametrize("args,mentions", HELP.values(), ids=HELP.keys())
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_goes_to_stdout_and_exits_0(backend, implementation, args, mentions, flag) -> None:
    result = backend.run(implementation, *args, flag, timeout=30)
    assert result.returncode == 0, result.stderr
    missing = [word for word in mentions if word.encode() not in result.stdout]
    assert not missing, f"--help does not mention {missing}:\n{result.stdout.decode(errors='replace')}"


@pytest.mark.clause("X-3", "X-4", "X-5")
@pytest.mark.parametrize("args", rejected_cases())
def test_table_rejects_malformed_values(backend, implementation, args) -> None:
    assert_one_error_line(backend.run(implementation, *args, timeout=30), 2)


@pytest.mark.clause("X-3", "X-4")
@pytest.mark.parametrize("command,flags", accepted_cases())
def test_table_accepts_its_bounds_in_both_spellings(backend, implementation, dedicated_server, command, flags) -> None:
    if command == "server":
        dedicated_server(implementation, *flags)  # fails unless it prints its readiness line
    elif command == "client":
        with socket.socket() as reserved:  # bound, not listening: an accepted command line then cannot connect
            reserved.bind((backend.harness_host, 0))
            port = str(reserved.getsockname()[1])
            result = backend.run(
                implementation, "client", "--host", backend.harness_host, "--port", port, *flags, "x", timeout=30
            )
        assert result.returncode == 3, f"exit {result.returncode}; stderr {result.stderr!r}"
    else:
        result = backend.run(implementation, command, *flags, stdin=b"abc", timeout=30)
        assert (result.returncode, result.stdout) == (0, b"ABC"), result.stderr


@pytest.mark.clause("X-3", "C-1")
@pytest.mark.parametrize("spelling", ["separate", "equals", "leading-zeros", "repeated"])
def test_client_accepts_the_port_forms(backend, implementation, spelling) -> None:
    with socket.socket() as reserved:
        reserved.bind((backend.harness_host, 0))
        port = str(reserved.getsockname()[1])
        flags = {
            "separate": ["--port", port],
            "equals": [f"--port={port}"],
            "leading-zeros": ["--port", f"00{port}"],
            "repeated": ["--port", "1", "--port", port],
        }[spelling]
        result = backend.run(implementation, "client", "--host", backend.harness_host, *flags, "x", timeout=30)
    assert_one_error_line(result, 3)


@pytest.mark.clause("X-3", "X-4", "X-5", "S-8", "S-9", "C-6")
@pytest.mark.parametrize("case", pinned_cases())
def test_pinned_row(backend, implementation, dedicated_server, case) -> None:
    command, *flags = case["args"]
    if "listens" in case:
        server = dedicated_server(implementation, *flags)
        assert server.ready_line.startswith(f"listening on {case['listens']}:".encode()), (
            case["why"],
            server.ready_line,
        )
        return
    result = backend.run(implementation, *case["args"], timeout=30)
    if case["exit"] == 2:
        assert_one_error_line(result, 2)
        return
    if case["exit"] == 0:  # --help
        assert (result.returncode, result.stderr) == (0, b""), (case["why"], result.returncode, result.stderr)
        assert f"--{next(iter(COMMANDS[command]['options']))}".encode() in result.stdout, result.stdout
        return
    assert_one_error_line(result, case["exit"], why=f"{case['why']}: ")


@pytest.mark.clause("X-6", "X-7", "C-6", "S-9")
@pytest.mark.parametrize("redirect", [">/dev/full", ">&-"], ids=["stdout-full", "stdout-not-open"])
@pytest.mark.parametrize("command", ["client", "server", "transform"])
def test_stdout_write_failure_exits_1_with_one_error_line(backend, implementation, command, redirect) -> None:
    with FakeServer(backend.harness_host, echo_unchanged) as fake:
        args = {
            "client": ["client", "--host", backend.harness_host, "--port", str(fake.port), "hello"],
            "server": ["server", "--port", "0"],  # the readiness line is its first write
            "transform": ["transform"],
        }[command]
        result = backend.run(implementation, *args, stdin=b"hello", redirect=redirect, timeout=30)
    assert_one_error_line(result, 1)


@pytest.mark.clause("X-6", "X-7", "C-8")
@pytest.mark.parametrize("redirect", ["</", "<&-"], ids=["stdin-a-directory", "stdin-not-open"])
def test_transform_stdin_read_failure_exits_1_with_one_error_line(backend, implementation, redirect) -> None:
    assert_one_error_line(backend.run(implementation, "transform", redirect=redirect, timeout=30), 1)


@pytest.mark.clause("X-8", "X-2")
@pytest.mark.slow
def test_transform_waits_on_nonblocking_stdin_and_stdout(backend, implementation) -> None:
    """stdin and stdout are non-blocking pipes, the input late and in two pieces, the output read late: a read
    that would block comes at the start and mid-input, a write that would block once stdout's pipe is full.
    (The client's cell is in test_client.py.)"""
    data = dense_stream(256 * 1024, seed=8)  # 4x a pipe's 64 KiB, characters and broken sequences throughout
    result = backend.run(implementation, "transform", stdin=data, streams="nonblocking", timeout=60)
    assert (result.returncode, result.stderr) == (0, b""), f"exit {result.returncode}; stderr {result.stderr!r}"
    assert_same_bytes(result.stdout, expected_u(data))


@pytest.mark.clause("C-9")
@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["INT", "TERM", "HUP"])
def test_a_signal_ends_transform_silently_with_its_status(backend, implementation, signal_name) -> None:
    """Sent while transform waits for more of a stdin that never ends (as test_client's cells for the client)."""
    result = backend.run(
        implementation, "transform", stdin=b"abc", stdin_stays_open=True, signal_after=signal_name, timeout=30
    )
    expected = backend.killed_status(signal_name)
    assert result.returncode == expected, f"exit {result.returncode}; stderr {result.stderr!r}"
    assert result.stderr == b""


@pytest.mark.clause("X-3", "C-2")
def test_messages_intermix_with_flags_and_follow_double_dash(backend, implementation) -> None:
    with FakeServer(backend.harness_host, echo_unchanged) as fake:
        result = backend.run(
            implementation, "client", "a", "--host", backend.harness_host, "b", "--port", str(fake.port),
            "--", "-x", "--port", timeout=30,
        )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"a\nb\n-x\n--port\n"), result.stderr
