"""JUnit XML from results.json: one <testcase> per test (so per client x server x vector cell), one <testsuite>
per test module. The shape is the one CI systems read (Jenkins, GitLab, Azure, GitHub test reporters) and is
checked against harness/reports/junit.xsd by tests/unit/test_reports.py.

  known failure -> <skipped message="known failure: ...">   (does not fail the run)
  skipped       -> <skipped>
  failed        -> <failure>, error (setup/teardown) -> <error>
Every failing case's <system-out> holds its one-line repro command.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

# XML 1.0 forbids most control characters even as references: show them as \xNN instead.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def clean(text: str) -> str:
    return NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def first_line(text: str) -> str:
    return clean(next((line for line in text.splitlines() if line.strip()), "")[:300])


def suite_name(record: dict) -> str:
    return record["nodeid"].split("::", 1)[0].removesuffix(".py").replace("/", ".")


def write_junit(results: dict, path: Path) -> None:
    suites: dict[str, list[dict]] = defaultdict(list)
    for record in results["tests"]:
        suites[suite_name(record)].append(record)
    root = ET.Element("testsuites", name="upper-echo")
    totals = defaultdict(int)
    for name, records in sorted(suites.items()):
        counts = {
            "tests": len(records),
            "failures": sum(r["outcome"] == "failed" for r in records),
            "errors": sum(r["outcome"] == "error" for r in records),
            "skipped": sum(r["outcome"] in ("skipped", "known-failure") for r in records),
        }
        duration = sum(r["duration"] for r in records)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=name,
            **{k: str(v) for k, v in counts.items()},
            time=f"{duration:.3f}",
            timestamp=results["created"][:19],
            hostname=results.get("hostname", "localhost"),
        )
        for key, value in counts.items():
            totals[key] += value
        totals["time"] += duration
        for record in records:
            case_name = record["nodeid"].split("::", 1)[1]
            case = ET.SubElement(
                suite,
                "testcase",
                name=clean(case_name),
                classname=f"{name}.{record.get('test') or case_name.split('[')[0]}",
                time=f"{record['duration']:.3f}",
                file=record["nodeid"].split("::", 1)[0],
            )
            outcome, message = record["outcome"], record.get("message", "")
            if outcome == "failed":
                ET.SubElement(case, "failure", message=first_line(message), type="AssertionError").text = clean(message)
            elif outcome == "error":
                ET.SubElement(
                    case, "error", message=first_line(message), type=f"{record.get('when', 'setup')} error"
                ).text = clean(message)
            elif outcome == "known-failure":
                ET.SubElement(case, "skipped", message=first_line(record.get("known_failure", "known failure")))
            elif outcome == "skipped":
                ET.SubElement(case, "skipped", message=first_line(message) or "skipped")
            if outcome in ("failed", "error", "known-failure"):
                ET.SubElement(case, "system-out").text = clean(f"repro: {record['repro']}\n")
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
