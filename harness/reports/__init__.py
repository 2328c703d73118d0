"""The run's reports: the known-failures ledger, JUnit XML (checked against junit.xsd), report.html and
summary.md (render.py, also `python3 -m harness.reports.render DIR`)."""
