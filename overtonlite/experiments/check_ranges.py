"""The ranges every stored value must lie in, for ``overtonlite check`` (pure functions, no I/O).

A value outside its range means a broken pipeline, not an unusual model: Jaccard, distinct-n, shares and rates lie
in [0, 1]; cosines and BERTScore-style F1 in [-1, 1]; the Vendi score of N samples in [1, N]; the missing-information
proxy in [1, 5]; every other ``*_rate`` and ``*_share`` in [0, 1]; word and token counts are >= 0 and token counts at most ``max_tokens``. Every number must be
finite. Floating-point rounding is allowed :data:`TOL` (a cosine of unit vectors may come out as 1.0000001).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

TOL = 1e-6
UNIT = (0.0, 1.0)
COS = (-1.0, 1.0)

# metric (metrics.jsonl key or summary.json name) -> (low, high); None = unbounded on that side
RANGES: dict[str, tuple[float | None, float | None]] = {
    **dict.fromkeys(
        (
            "jaccard",
            "jaccard_filtered",
            "jaccard_to_ref",
            "distinct_1",
            "distinct_2",
            "quality_pass_rate",
            "quality_pass",
            "list_rate",
            "refusal_rate",
            "truncation_rate",
            "empty_rate",
            "stance_both_share",
            "stance_yes_share",
            "stance_no_share",
            "stance_other_share",
            "missing_le2_share",
            "coverage",
            "coverage_union",
            "yes_no_split",
        ),
        UNIT,
    ),
    **dict.fromkeys(
        ("cosine", "cosine_filtered", "cosine_to_ref", "relevance", "relevance_mean", "bertscore_f1_to_ref"),
        COS,
    ),
    "missing": (1.0, 5.0),
    "missing_mean": (1.0, 5.0),
    "words": (0.0, None),
    "words_mean": (0.0, None),
    "tokens_mean": (0.0, None),
    "bertscore_f1_to_ref_rescaled": (None, 1.0),
    "vendi": (1.0, None),  # and at most N: see metric_range
}
STANCE_LABELS = ("yes", "no", "both", "other")


def metric_range(
    name: str, *, n: int | None = None, max_tokens: int | None = None
) -> tuple[float | None, float | None]:
    """The range of ``name``; ``n`` bounds the Vendi score, ``max_tokens`` the token counts. Unknown: unbounded."""
    lo, hi = RANGES.get(name, (None, None))
    if name == "vendi" and n is not None:
        hi = float(n)
    if name == "tokens_mean" and max_tokens is not None:
        hi = float(max_tokens)
    if name not in RANGES and name.endswith(("_rate", "_share")):  # style rates, stance label shares
        lo, hi = UNIT
    return lo, hi


def difference_range(name: str, **kw: Any) -> tuple[float | None, float | None]:
    """The range of a paired difference of ``name`` between two systems (both ends widened by the width)."""
    lo, hi = metric_range(name, **kw)
    if lo is None or hi is None:
        return None, None
    return lo - hi, hi - lo


def _fmt_range(lo: float | None, hi: float | None) -> str:
    return f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"


def out_of_range(name: str, value: Any, lo: float | None, hi: float | None) -> str | None:
    """A one-line problem with ``value`` (None when it is fine). Bools count as 0/1; None is "not measured"."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float):
        return f"{name} = {value!r} is not a number"
    if not math.isfinite(float(value)):
        return f"{name} = {value} is not finite"
    if (lo is not None and value < lo - TOL) or (hi is not None and value > hi + TOL):
        return f"{name} = {value:.6g} outside {_fmt_range(lo, hi)}"
    return None


def record_problems(rec: Mapping[str, Any], *, max_tokens: int | None = None) -> Iterator[str]:
    """Every out-of-range value of one metrics.jsonl record (lists are checked item by item)."""
    n = rec.get("n") if isinstance(rec.get("n"), int) else None
    for key, value in rec.items():
        if key in ("system", "prompt_id", "n"):
            continue
        if key == "stance":
            for lab in value or []:
                if lab not in STANCE_LABELS:
                    yield f"stance label {lab!r} not in {list(STANCE_LABELS)}"
            continue
        lo, hi = metric_range(key, n=n, max_tokens=max_tokens)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, list | dict | str):
                continue  # nested extras are not metrics
            problem = out_of_range(key, item, lo, hi)
            if problem:
                yield problem
                break


def summary_problems(
    node: Any, *, n: int | None = None, max_tokens: int | None = None, path: tuple[str, ...] = ()
) -> Iterator[str]:
    """Every out-of-range ``{"mean", "ci"}`` entry anywhere in summary.json (whatever its nesting), and every
    CI whose low end is above its high end. Entries under a ``paired`` key are differences between systems, and
    entries under a ``ratios`` key ratios of means (checked only for being finite)."""
    if isinstance(node, Mapping):
        if "mean" in node and "ci" in node:
            yield from _entry_problems(node, n=n, max_tokens=max_tokens, path=path)
            return
        for key, child in node.items():
            if key == "settings":
                continue
            yield from summary_problems(child, n=n, max_tokens=max_tokens, path=(*path, str(key)))


def _entry_problems(
    entry: Mapping[str, Any], *, n: int | None, max_tokens: int | None, path: tuple[str, ...]
) -> Iterator[str]:
    name = path[-1] if path else "?"
    where = "/".join(path)
    paired = any("paired" in p or " - " in p for p in path)
    lo, hi = (difference_range if paired else metric_range)(name, n=n, max_tokens=max_tokens)
    if any(
        "ratio" in p for p in path
    ):  # ratios of means (share of the self-similarity): only finite, CI ordered
        lo = hi = None
    values = [("mean", entry.get("mean"))]
    ci = entry.get("ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        values += [("ci low", ci[0]), ("ci high", ci[1])]
        if all(isinstance(c, int | float) for c in ci) and ci[0] > ci[1] + TOL:
            yield f"{where}: CI [{ci[0]:.6g}, {ci[1]:.6g}] has its low end above its high end"
    for label, value in values:
        problem = out_of_range(f"{where} {label}", value, lo, hi)
        if problem:
            yield problem
