"""The suite's pytest plugins, registered by tests/conftest.py (so their options work whichever folder pytest
is pointed at): session (registry, backend, session id), reporting (table, reports, ledger), fuzz (budget)."""
