"""The upper-echo test harness: the library the test suite, bench/run and scripts/ share.

registry        implementations.toml (spec I-2), its only reader; `python3 -m harness.registry --help`
backends        where implementations run: the Backend and ServerHandle protocols, local and docker
wire            a raw-socket client; fake_servers: scripted misbehaving servers for client tests
vectors         spec/vectors/; oracle: an independent, naive U; spec: the clause ids of spec/PROTOCOL.md
bytes_diff      readable byte comparisons; fuzz: the differential fuzzer's strategies
reports         known-failures ledger, JUnit XML, report.html and summary.md
plugins         the pytest plugins tests/conftest.py registers (session, reporting, fuzz)
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
