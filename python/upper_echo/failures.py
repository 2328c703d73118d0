"""Every way a command fails, and its exit code (spec X-1, X-6, S-9, C-6, C-8).

A module of its own so that cli.py can catch them all while importing only the command it runs: a client does not
load asyncio, which costs a quarter of its start-up.
"""

from __future__ import annotations


class Failure(Exception):
    """One `error: ` line on stderr, and exit_code."""

    exit_code: int


class StdoutFailed(Failure):
    """Writing to stdout failed (X-6)."""

    exit_code = 1


class StdinFailed(Failure):
    """Reading stdin failed: the client and transform never take that for end of input (C-8, X-6)."""

    exit_code = 1

    @classmethod
    def because(cls, failure: OSError) -> StdinFailed:
        return cls(f"cannot read stdin: {failure.strerror or failure}")


class CannotListen(Failure):
    """The server could not bind or listen (S-9)."""

    exit_code = 1


class UsageError(Failure):
    """A bad command line (X-1)."""

    exit_code = 2


class CannotConnect(Failure):
    """No connection: refused, unknown host, unreachable, connect timeout, an unspecified address (C-6)."""

    exit_code = 3


class ConnectionBroke(Failure):
    """The connection was reset, even at once after the connect, or the server was silent too long after the
    half-close (C-5, C-7, C-6)."""

    exit_code = 4
