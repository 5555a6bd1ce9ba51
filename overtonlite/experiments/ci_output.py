"""What CI systems read from a :class:`~overtonlite.experiments.check.CheckResult`: JUnit XML and a Markdown
step summary. Both are renderings of the check's items; nothing is computed here.

JUnit XML (the layout Jenkins, GitLab, GitHub test-report actions and pytest's ``--junitxml`` share): one
``<testsuites>`` with a ``<testsuite>`` for the pipeline checks and one per claim; one ``<testcase>`` per check
and per finding. A failed item has a ``<failure message=...>`` whose body is the finding line (with its CI) or the
full list of problems; a skipped item has ``<skipped message=...>`` with the reason; every finding's line is also
in its ``<system-out>``. ``tests``, ``failures``, ``errors`` (always 0: an error stops the command before a report
exists), ``skipped`` and ``time`` are counted per suite and in total.

The Markdown summary is meant for ``$GITHUB_STEP_SUMMARY`` (or any CI that shows Markdown): a status heading,
the pair and whether claim directions are enforced, a table of the checks and a table of the findings.
"""

from __future__ import annotations

import os
import platform
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overtonlite.experiments.check import CheckItem, CheckResult

SUITE_PREFIX = "overtonlite"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    """Text XML 1.0 can hold (control characters other than tab and newlines dropped)."""
    return _XML_INVALID.sub("", str(text))


def _suites(result: CheckResult) -> dict[str, list[CheckItem]]:
    out: dict[str, list[CheckItem]] = {}
    for item in result.items:
        out.setdefault(item.suite, []).append(item)
    return out


def _counts(items: list[CheckItem]) -> dict[str, str]:
    return {
        "tests": str(len(items)),
        "failures": str(sum(i.status == "failed" for i in items)),
        "errors": "0",
        "skipped": str(sum(i.status == "skipped" for i in items)),
        "time": f"{sum(i.seconds for i in items):.3f}",
    }


def junit_xml(result: CheckResult) -> str:
    """The JUnit XML document (a string with an XML declaration)."""
    stamp = datetime.now(timezone.utc).replace(microsecond=0).isoformat()  # noqa: UP017 - py3.10 support
    root = ET.Element("testsuites", {"name": f"{SUITE_PREFIX} {result.command}", **_counts(result.items)})
    root.set("time", f"{result.seconds:.3f}")
    for suite, items in _suites(result).items():
        name = f"{SUITE_PREFIX}.{suite}"
        ts = ET.SubElement(
            root,
            "testsuite",
            {"name": name, **_counts(items), "timestamp": stamp, "hostname": platform.node() or "localhost"},
        )
        props = ET.SubElement(ts, "properties")
        for key, value in (
            ("pair", str(result.pair.get("name", ""))),
            ("base", str(result.pair.get("base", ""))),
            ("chat", str(result.pair.get("chat", ""))),
            ("enforcement", result.enforcement),
            ("run_dir", str(result.out)),
            ("status", result.status_line),
        ):
            ET.SubElement(props, "property", {"name": key, "value": _x(value)})
        for item in items:
            case = ET.SubElement(
                ts, "testcase", {"classname": name, "name": _x(item.name), "time": f"{item.seconds:.3f}"}
            )
            if item.status == "failed":
                kind = "ClaimNotSupported" if item.kind == "finding" else "CheckFailed"
                fail = ET.SubElement(case, "failure", {"message": _x(item.message), "type": kind})
                fail.text = _x(item.detail or item.message)
            elif item.status == "skipped":
                ET.SubElement(case, "skipped", {"message": _x(item.message)})
            if item.kind == "finding" or item.status == "passed":
                out = ET.SubElement(case, "system-out")
                out.text = _x(item.detail or item.message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_MARK = {"passed": "passed", "failed": "**FAILED**", "skipped": "skipped"}


def summary_markdown(result: CheckResult) -> str:
    """The Markdown step summary: heading with the status line, the checks table and the findings table."""
    lines = [f"## overtonlite {_cell(result.status_line)}", ""]
    pair = result.pair
    if pair:
        fam = "same-family" if pair.get("same_family") else "cross-family"
        lines.append(
            f"Pair `{pair.get('name', '?')}`: base `{pair.get('base')}`, chat `{pair.get('chat')}` "
            f"({fam}); {result.enforcement}."
        )
        lines.append("")
    lines += ["| check | status | detail |", "|---|---|---|"]
    lines += [f"| {_cell(i.name)} | {_MARK[i.status]} | {_cell(i.message)} |" for i in result.checks]
    if result.findings:
        lines += [
            "",
            "| claim | finding | estimate | 95% CI | verdict | status |",
            "|---|---|---|---|---|---|",
        ]
        for i in result.findings:
            est = f"{i.estimate:.3f}" if i.estimate is not None else "-"
            ci = f"[{i.ci[0]:.3f}, {i.ci[1]:.3f}]" if i.ci else "-"
            lines.append(
                f"| {_cell(i.suite.removeprefix('claims.'))} | {_cell(i.name)} | {est} | {ci} | "
                f"{_cell(i.verdict)} | {_MARK[i.status]} |"
            )
        lines += ["", "<details><summary>Finding lines</summary>", ""]
        lines += [f"- {_cell(i.detail or i.message)}" for i in result.findings]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _write(path: str | os.PathLike[str], text: str) -> Path:
    p = Path(path)  # written in place, so that special files (/dev/stdout, a CI's summary file) work too
    p.write_text(text, encoding="utf-8")
    return p


def write_junit(result: CheckResult, path: str | os.PathLike[str]) -> Path:
    """Write :func:`junit_xml` to ``path``."""
    return _write(path, junit_xml(result))


def write_summary_md(result: CheckResult, path: str | os.PathLike[str]) -> Path:
    """Write :func:`summary_markdown` to ``path``."""
    return _write(path, summary_markdown(result))
