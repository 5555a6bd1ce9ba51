"""Reports of a run directory: ``report.md`` and a self-contained ``report.html`` with embedded plots.

The report reads, it never computes: every number on the page is an entry of ``summary.json`` (per system and
prompt set, with its number of prompts) or ``results.json`` (the claims, whose evidence entries name the
summary.json entries they copy); ``manifest.json`` gives the settings and ``samples.jsonl`` the generation counts.
Nothing is generated or rescored here (``overtonlite report DIR --rescore`` is a CLI step that calls the scoring
library first). Every piece except the run directory itself is optional: whatever is absent is reported as "not
measured".

    from overtonlite.report import build_report
    paths = build_report("runs/quick")
    print(paths.md, paths.html, paths.verdict_lines)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite import schema
from overtonlite.errors import DataError, OvertonliteError

__all__ = ["ReportPaths", "RunData", "Stat", "build_report", "load_run"]

PROMPT_TOO_LONG = "prompt_too_long"
Stat = tuple[float, tuple[float, float] | None]


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went. ``results`` is the results.json that was read, or None when the run has none."""

    md: Path
    html: Path
    results: Path | None
    verdict_lines: tuple[str, ...] = ()


@dataclass
class GenerationHealth:
    """Per-system counts from samples.jsonl: prompt groups, context overflows, other errors, truncations."""

    groups: int = 0
    overflowed: int = 0
    errors: int = 0
    samples: int = 0
    truncated: int = 0
    with_finish_reason: int = 0


@dataclass
class RunData:
    """Everything the report reads from a run directory; absent pieces are None or empty."""

    run_dir: Path
    results: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, GenerationHealth] | None = None
    stance_set: str | None = None

    @property
    def systems(self) -> list[str]:
        """System names in a stable order: manifest first, then summary.json, then metrics.jsonl."""
        names: list[str] = []
        sources: list[Any] = [
            (self.manifest or {}).get("systems") or {},
            (self.summary or {}).get("systems") or {},
            [r.get("system") for r in self.metrics],
        ]
        for source in sources:
            for name in source:
                if isinstance(name, str) and name not in names:
                    names.append(name)
        return names

    @property
    def sets(self) -> list[str]:
        """The prompt sets summary.json has values for (named sets first, ``all`` last)."""
        return schema.set_names(self.summary)

    @property
    def table_sets(self) -> list[str]:
        """The sets the tables show: every named set, or ``all`` when the input had no named sets."""
        named = [s for s in self.sets if s != schema.ALL]
        return named or ([schema.ALL] if schema.ALL in self.sets else [])

    @property
    def primary_set(self) -> str | None:
        """The set the plots show: ``open-ended`` when present, else the first set of the tables."""
        sets = self.table_sets
        return "open-ended" if "open-ended" in sets else (sets[0] if sets else None)

    def entry(self, system: str, set_name: str | None, *keys: str) -> dict[str, Any] | None:
        """The summary.json entry ``{"mean", "ci", "n_prompts"}`` of the first of ``keys`` it has."""
        if set_name is None:
            return None
        for key in keys:
            found = schema.summary_stat(self.summary, system, set_name, key)
            if found is not None:
                return found
        return None

    def stat(self, system: str, set_name: str | None, *keys: str) -> Stat | None:
        """(mean, ci) of a metric for one system and set, from summary.json only (None when it lacks it)."""
        return as_stat(self.entry(system, set_name, *keys))

    def n_prompts(self, system: str, set_name: str, *keys: str) -> int | None:
        """The number of prompts behind the first of ``keys`` that summary.json has."""
        found = self.entry(system, set_name, *keys)
        return int(found["n_prompts"]) if found and isinstance(found.get("n_prompts"), int) else None

    def records(self, system: str, set_name: str | None = None) -> list[dict[str, Any]]:
        """The metrics.jsonl records of one system (of one prompt set; ``all`` or None: every set)."""
        return [
            r
            for r in self.metrics
            if r.get("system") == system and (set_name in (None, schema.ALL) or r.get("set") == set_name)
        ]


def as_float(value: Any) -> float | None:
    """A finite float, or None (bools, strings, NaN and None are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_ci(value: Any) -> tuple[float, float] | None:
    """A ``[lo, hi]`` pair of finite floats, or None."""
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = as_float(value[0]), as_float(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def as_stat(entry: Any) -> Stat | None:
    """(mean, ci) of a stored ``{"mean", "ci", ...}`` entry, or None."""
    if not isinstance(entry, dict):
        return None
    mean = as_float(entry.get("mean"))
    return None if mean is None else (mean, as_ci(entry.get("ci")))


def _health(groups: list[dict[str, Any]]) -> dict[str, GenerationHealth]:
    out: dict[str, GenerationHealth] = {}
    for group in groups:
        h = out.setdefault(str(group.get("system")), GenerationHealth())
        h.groups += 1
        error = group.get("error")
        if error == PROMPT_TOO_LONG:
            h.overflowed += 1
        elif error:
            h.errors += 1
        for sample in group.get("samples") or []:
            h.samples += 1
            if isinstance(sample, dict) and sample.get("finish_reason"):
                h.with_finish_reason += 1
                h.truncated += sample.get("finish_reason") == "length"
    return out


def load_run(
    run_dir: str | os.PathLike[str], *, require_content: bool = True, stance_set: str | None = None
) -> RunData:
    """Read a run directory. Raises DataError when the directory is missing, a file is not valid JSON, or (with
    ``require_content``) there is nothing to report: none of results.json, summary.json, metrics.jsonl.

    ``stance_set``: the prompt set of the stance tables (default: the set stance was scored on, ``contested``).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"{path}: run directory not found")
    data = RunData(
        run_dir=path,
        results=schema.read_results(path),
        summary=schema.read_summary(path),
        manifest=schema.read_manifest(path),
        metrics=schema.read_metrics(path),
    )
    samples = path / schema.SAMPLES_FILE
    groups = schema.read_groups(samples) if samples.is_file() else None
    data.health = _health(groups) if groups is not None else None
    data.stance_set = stance_set or _default_stance_set(data)
    if require_content and data.results is None and data.summary is None and not data.metrics:
        raise DataError(f"{path}: nothing to report (no results.json, summary.json or metrics.jsonl)")
    return data


def _default_stance_set(data: RunData) -> str | None:
    scored = ((data.summary or {}).get("settings") or {}).get("stance_sets") or []
    if "contested" in scored or (not scored and "contested" in data.sets):
        return "contested"
    if scored:
        return str(scored[0])
    return schema.ALL if data.sets == [schema.ALL] else None


def build_report(
    run_dir: str | os.PathLike[str],
    *,
    plots: bool = True,
    stance_set: str | None = None,
) -> ReportPaths:
    """Write ``report.md`` and ``report.html`` into ``run_dir`` from the files it already holds.

    ``plots=False`` leaves the plots out of the HTML (no matplotlib). ``stance_set`` names the prompt set of the
    stance tables (default: ``contested``, or the set stance was scored on). Nothing is recomputed: to refresh a
    run's metrics and claims first, use ``overtonlite report DIR --rescore`` (or
    :func:`overtonlite.experiments.replicate.recompute_results`). Raises DataError for a missing run directory or
    unreadable JSON, and UsageError for a stance set the run does not have.
    """
    from overtonlite.errors import UsageError
    from overtonlite.report.document import build_document, verdict_lines
    from overtonlite.report.html import render_html
    from overtonlite.report.markdown import render_markdown
    from overtonlite.util import write_text_atomic

    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"{path}: run directory not found")
    data = load_run(path, stance_set=stance_set)
    if stance_set is not None and stance_set not in data.sets:
        known = ", ".join(data.sets) or "none"
        raise UsageError(f"{path}: no prompt set {stance_set!r} in summary.json (sets: {known})")
    doc = build_document(data)
    md_path, html_path = path / "report.md", path / "report.html"
    markdown, page = render_markdown(doc), render_html(doc, data, plots=plots)
    try:
        write_text_atomic(md_path, markdown)
        write_text_atomic(html_path, page)
    except OSError as exc:
        raise OvertonliteError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    results = path / "results.json"
    return ReportPaths(
        md=md_path,
        html=html_path,
        results=results if data.results is not None else None,
        verdict_lines=tuple(verdict_lines(data)),
    )
