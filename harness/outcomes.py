"""How the spec says a failed run of the command line ends (X-1, X-6): one judgement for every test and the
proxy's, so that they cannot drift apart."""

from __future__ import annotations


def is_one_error_line(stderr: bytes) -> bool:
    """Exactly one line on stderr, starting `error: ` and ended by its newline (X-1, X-6)."""
    return stderr.startswith(b"error: ") and stderr.endswith(b"\n") and stderr.count(b"\n") == 1


def assert_one_error_line(result, code: int, stdout: bytes | None = b"", why: str = "") -> None:
    """Exit `code`, one error line, and stdout exactly `stdout` (None: not checked here, as for a client that
    failed after part of its answer)."""
    assert result.returncode == code, f"{why}exit {result.returncode}, expected {code}; stderr {result.stderr!r}"
    assert stdout is None or result.stdout == stdout, f"{why}stdout {result.stdout[:300]!r}, expected {stdout!r}"
    assert is_one_error_line(result.stderr), f"{why}stderr {result.stderr!r} is not one error line"
