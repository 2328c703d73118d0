"""Where implementations run. base: the Backend and ServerHandle protocols (the contract) and what both
backends share; local: processes on this machine; docker: containers (imports the Docker SDK, so only
imported when asked for)."""

from __future__ import annotations

from .base import (
    BASE_ENV,
    START_TIMEOUT,
    Backend,
    BuildFailed,
    Completed,
    ServerDidNotStart,
    ServerHandle,
    parse_cpu_seconds,
    parse_memory,
    parse_ready_line,
)

__all__ = [
    "BASE_ENV",
    "START_TIMEOUT",
    "Backend",
    "BuildFailed",
    "Completed",
    "ServerDidNotStart",
    "ServerHandle",
    "parse_cpu_seconds",
    "parse_memory",
    "parse_ready_line",
]
