"""Reports of a run directory: ``report.md`` and a self-contained ``report.html`` with embedded plots.

The report is rebuilt from what the run directory already holds (``results.json``, ``summary.json``,
``metrics.jsonl``, ``manifest.json``, ``samples.jsonl``); nothing is generated. Every piece except the run directory
itself is optional: whatever is absent is reported as "not measured".

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

from overtonlite.errors import DataError, OvertonliteError
from overtonlite.rundir.records import read_groups, read_json_object, read_jsonl_objects

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


@dataclass
class RunData:
    """Everything the report reads from a run directory; absent pieces are None or empty."""

    run_dir: Path
    results: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, GenerationHealth] | None = None

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

    def records(self, system: str) -> list[dict[str, Any]]:
        """The metrics.jsonl records of one system."""
        return [r for r in self.metrics if r.get("system") == system]

    def stat(self, system: str, *keys: str) -> Stat | None:
        """(mean, ci) of a metric for one system: summary.json first (trying each alias in ``keys``), else the mean
        over prompts of the metrics.jsonl records with a 95% bootstrap CI computed here."""
        for key in keys:
            found = self.summary_stat(system, key)
            if found is not None:
                return found
        for key in keys:
            values = [v for v in (record_value(r, key) for r in self.records(system)) if v is not None]
            if values:
                return sum(values) / len(values), bootstrap_ci(values)
        return None

    def summary_stat(self, system: str, metric: str) -> Stat | None:
        """(mean, ci) from summary.json, or None when summary.json does not have it."""
        entry = (((self.summary or {}).get("systems") or {}).get(system) or {}).get(metric)
        if not isinstance(entry, dict):
            return None
        mean = as_float(entry.get("mean"))
        if mean is None:
            return None
        return mean, as_ci(entry.get("ci"))


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


def record_value(record: dict[str, Any], key: str) -> float | None:
    """A per-prompt number from a metrics record: a scalar, the mean of a list of numbers, or the share of True in
    a list of booleans."""
    value = record.get(key)
    if isinstance(value, bool):
        return float(value)
    number = as_float(value)
    if number is not None:
        return number
    if isinstance(value, list) and value:
        if all(isinstance(v, bool) for v in value):
            return sum(value) / len(value)
        nums = [f for f in (as_float(v) for v in value) if f is not None]
        if nums:
            return sum(nums) / len(nums)
    return None


def bootstrap_ci(values: list[float], *, seed: int = 0, resamples: int = 1000) -> tuple[float, float] | None:
    """95% percentile bootstrap CI of the mean over prompts (only used when summary.json lacks a metric)."""
    if len(values) < 2:
        return None
    import numpy as np

    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


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
            if isinstance(sample, dict) and sample.get("finish_reason") == "length":
                h.truncated += 1
    return out


_OBJECT_FIELDS = {
    "results.json": ("pair", "settings", "claims"),
    "summary.json": ("systems", "paired", "settings"),
    "manifest.json": ("systems", "packages"),
}


def _check_fields(path: Path, data: dict[str, Any] | None) -> dict[str, Any] | None:
    """DataError when a field the report reads as an object holds something else (null is fine)."""
    for key in _OBJECT_FIELDS.get(path.name, ()):
        if data is not None and data.get(key) is not None and not isinstance(data[key], dict):
            raise DataError(f"{path}:1: '{key}' must be a JSON object, got {type(data[key]).__name__}")
    return data


def load_run(run_dir: str | os.PathLike[str], *, require_content: bool = True) -> RunData:
    """Read a run directory. Raises DataError when the directory is missing, a file is not valid JSON, or (with
    ``require_content``) there is nothing to report: none of results.json, summary.json, metrics.jsonl."""
    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"{path}: run directory not found")
    data = RunData(
        run_dir=path,
        results=_check_fields(path / "results.json", read_json_object(path / "results.json")),
        summary=_check_fields(path / "summary.json", read_json_object(path / "summary.json")),
        manifest=_check_fields(path / "manifest.json", read_json_object(path / "manifest.json")),
        metrics=read_jsonl_objects(path / "metrics.jsonl") or [],
    )
    samples = path / "samples.jsonl"
    groups = read_groups(samples) if samples.is_file() else None
    data.health = _health(groups) if groups is not None else None
    if require_content and data.results is None and data.summary is None and not data.metrics:
        raise DataError(f"{path}: nothing to report (no results.json, summary.json or metrics.jsonl)")
    return data


def _refresh_results(path: Path) -> None:
    """Let the experiments module recompute results.json from the stored metrics, when it offers that."""
    try:
        from overtonlite.experiments.replicate import recompute_results
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name not in (
            "overtonlite.experiments",
            "overtonlite.experiments.replicate",
        ):
            raise
        return
    recompute_results(path)


def _rescore(path: Path) -> None:
    """Recompute metrics.jsonl / summary.json from the stored samples (the aligned system as reference)."""
    if not (path / "samples.jsonl").is_file():
        raise DataError(f"{path / 'samples.jsonl'}: cannot rescore, the run has no stored samples")
    try:
        from overtonlite.scoring import score_input
    except ModuleNotFoundError as exc:
        raise OvertonliteError(f"cannot rescore: the scoring module is unavailable ({exc.name})") from None
    from overtonlite.report.sections import reference_system

    data = load_run(path, require_content=False)
    systems = sorted(data.health or {})
    settings = (data.results or {}).get("settings")
    seed = settings.get("seed", 0) if isinstance(settings, dict) else 0
    score_input(path, out=path, reference_system=reference_system(data, systems), seed=int(seed or 0))


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and a rename (the file gets the usual umask mode)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_report(
    run_dir: str | os.PathLike[str],
    *,
    rescore: bool = False,
    refresh_results: bool = True,
    plots: bool = True,
) -> ReportPaths:
    """Write ``report.md`` and ``report.html`` into ``run_dir`` from the files it already holds.

    ``rescore`` first recomputes metrics.jsonl / summary.json from the stored samples (nothing is generated).
    ``refresh_results`` lets ``overtonlite.experiments.replicate.recompute_results`` refresh results.json from the
    stored metrics when that function exists. ``plots=False`` leaves the plots out of the HTML (no matplotlib).
    Raises DataError for a missing run directory or unreadable JSON.
    """
    from overtonlite.report.document import build_document, verdict_lines
    from overtonlite.report.html import render_html
    from overtonlite.report.markdown import render_markdown

    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"{path}: run directory not found")
    if rescore:
        _rescore(path)
    if refresh_results and (path / "metrics.jsonl").is_file():
        _refresh_results(path)
    data = load_run(path)
    doc = build_document(data)
    md_path, html_path = path / "report.md", path / "report.html"
    markdown, page = render_markdown(doc), render_html(doc, data, plots=plots)
    try:
        _write_atomic(md_path, markdown)
        _write_atomic(html_path, page)
    except OSError as exc:
        raise OvertonliteError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    results = path / "results.json"
    return ReportPaths(
        md=md_path,
        html=html_path,
        results=results if data.results is not None else None,
        verdict_lines=tuple(verdict_lines(data)),
    )
