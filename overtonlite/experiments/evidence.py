"""Estimates with CIs for the verdicts, over per-prompt values, and the metrics.jsonl / samples.jsonl readers the
claims are built from. The bootstrap itself is :mod:`overtonlite.metrics.stats` (seeded, percentile, 95%)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Estimate = tuple[float | None, tuple[float, float] | None]


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def as_value(x: Any) -> float | None:
    """A per-prompt value: numbers and bools as floats, lists as their mean of finite items, else None."""
    if isinstance(x, bool):
        return float(x)
    if _finite(x):
        return float(x)
    if isinstance(x, list):
        vals = [float(v) for v in x if _finite(v) or isinstance(v, bool)]
        return sum(vals) / len(vals) if vals else None
    return None


def _ci(result: Any) -> Estimate:
    """Normalise what a stats function returns: a dict, an object with mean/ci or lo/hi, or a tuple."""
    if result is None:
        return None, None
    if isinstance(result, Mapping):
        mean = result.get("mean", result.get("estimate", result.get("ratio")))
        ci = result.get("ci")
        if ci is None and "lo" in result:
            ci = (result["lo"], result["hi"])
    elif hasattr(result, "ci") or hasattr(result, "lo"):
        mean = getattr(result, "mean", getattr(result, "estimate", getattr(result, "ratio", None)))
        ci = getattr(result, "ci", None) or (getattr(result, "lo", None), getattr(result, "hi", None))
    else:
        seq = list(result)
        if len(seq) == 3:
            mean, ci = seq[0], (seq[1], seq[2])
        elif len(seq) == 2 and isinstance(seq[1], list | tuple):
            mean, ci = seq[0], seq[1]
        else:
            raise TypeError(f"unexpected bootstrap result {result!r}")
    mean_f = float(mean) if _finite(mean) else None
    if ci is None or len(ci) != 2 or not all(_finite(c) for c in ci):
        return mean_f, None
    return mean_f, (float(ci[0]), float(ci[1]))


def mean_ci(values: Sequence[float], *, seed: int = 0) -> Estimate:
    """Mean over prompts with a seeded bootstrap 95% CI; (None, None) for no values."""
    vals = [float(v) for v in values if _finite(v)]
    if not vals:
        return None, None
    if len(vals) == 1:
        return vals[0], None
    from overtonlite.metrics.stats import bootstrap_ci

    return _ci(bootstrap_ci(vals, seed=seed))


def paired_diff_ci(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> Estimate:
    """Mean of a - b over paired prompts with a seeded bootstrap 95% CI."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b, strict=True) if _finite(x) and _finite(y)]
    if not pairs:
        return None, None
    if len(pairs) == 1:
        return pairs[0][0] - pairs[0][1], None
    from overtonlite.metrics.stats import paired_bootstrap_ci

    xs, ys = zip(*pairs, strict=True)
    return _ci(paired_bootstrap_ci(list(xs), list(ys), seed=seed))


def ratio_ci(num: Sequence[float], den: Sequence[float], *, seed: int = 0) -> Estimate:
    """mean(num) / mean(den) over paired prompts with a seeded paired bootstrap 95% CI."""
    pairs = [(float(x), float(y)) for x, y in zip(num, den, strict=True) if _finite(x) and _finite(y)]
    if not pairs:
        return None, None
    xs, ys = zip(*pairs, strict=True)
    if len(pairs) == 1:
        return (xs[0] / ys[0] if ys[0] else None), None
    from overtonlite.metrics.stats import ratio_bootstrap_ci

    return _ci(ratio_bootstrap_ci(list(xs), list(ys), seed=seed))


def entry(est: Estimate, **extra: Any) -> dict[str, Any]:
    """``{"mean", "ci"}`` for results.json evidence tables."""
    mean, ci = est
    out: dict[str, Any] = {"mean": mean, "ci": list(ci) if ci is not None else None}
    out.update(extra)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All JSON objects of a JSONL file ([] when it does not exist); DataError names file and line."""
    from overtonlite.rundir.records import read_jsonl_objects

    return read_jsonl_objects(path) or []


def read_samples(run_dir: str | Path) -> list[dict[str, Any]]:
    """The validated group records of ``run_dir/samples.jsonl`` ([] when there is none yet)."""
    from overtonlite.rundir.records import read_groups

    path = Path(run_dir) / "samples.jsonl"
    return read_groups(path) if path.is_file() else []


def by_system(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """``{system: {prompt_id: record}}`` (prompt ids as strings; the last record wins)."""
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for rec in records:
        out.setdefault(str(rec.get("system")), {})[str(rec.get("prompt_id"))] = rec
    return out


def column(recs: Mapping[str, Mapping[str, Any]], metric: str, ids: Sequence[str]) -> list[float | None]:
    """Per-prompt values of ``metric`` for ``ids`` (None where the prompt or the value is missing)."""
    return [as_value(recs[i].get(metric)) if i in recs else None for i in ids]
