"""Aggregation of per-group records into ``summary.json`` (see :mod:`overtonlite.scoring`).

Each per-group value is one observation (per-sample lists are first averaged within the group); a system's value is
the mean over its prompts with a seeded percentile bootstrap 95% CI over prompts. Paired differences compare two
systems on the prompts where both have a value; with a reference system every other system is compared with it
(for the ``*_to_ref`` metrics that is the comparison with the reference's own self-baseline), otherwise every system
is compared with the first system of the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from overtonlite.metrics import stance_shares, stats

# per-group scalar metrics summarised per system (summary name -> record key)
SUMMARY_METRICS: dict[str, str] = {
    "jaccard": "jaccard",
    "cosine": "cosine",
    "vendi": "vendi",
    "distinct_1": "distinct_1",
    "distinct_2": "distinct_2",
    "words_mean": "words_mean",
    "tokens_mean": "tokens_mean",
    "relevance": "relevance_mean",
    "quality_pass_rate": "quality_pass_rate",
    "jaccard_filtered": "jaccard_filtered",
    "cosine_filtered": "cosine_filtered",
    "list_rate": "list_rate",
    "refusal_rate": "refusal_rate",
    "truncation_rate": "truncation_rate",
    "empty_rate": "empty_rate",
    "stance_both_share": "stance_both_share",
    "yes_no_split": "yes_no_split",
    "coverage": "coverage_mean",
    "coverage_union": "coverage_union",
    "missing": "missing_mean",
    "cosine_to_ref": "cosine_to_ref",
    "jaccard_to_ref": "jaccard_to_ref",
    "bertscore_f1_to_ref": "bertscore_f1_to_ref",
    "bertscore_f1_to_ref_rescaled": "bertscore_f1_to_ref_rescaled",
}
PAIRED_METRICS: tuple[str, ...] = (
    "jaccard",
    "cosine",
    "vendi",
    "words_mean",
    "relevance",
    "quality_pass_rate",
    "stance_both_share",
    "yes_no_split",
    "coverage",
    "missing",
    "cosine_to_ref",
    "jaccard_to_ref",
    "bertscore_f1_to_ref",
)


def _group_value(rec: dict[str, Any], key: str) -> float | None:
    if key == "coverage_mean":
        vals = [v for v in (rec.get("coverage") or []) if v is not None]
        return float(np.mean(vals)) if vals else None
    v = rec.get(key)
    if v is None or isinstance(v, list):
        return None
    return float(v)


def _extra_keys(records: list[dict[str, Any]]) -> list[str]:
    """Numeric per-group keys not listed above (style rates, stance label shares...), in first-seen order."""
    known = set(SUMMARY_METRICS.values()) | {"n"}
    out: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k not in known and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = None
    return list(out)


def _ci(values: list[float], seed: int, n_boot: int) -> dict[str, Any]:
    if not values:
        return {"mean": None, "ci": [None, None], "n": 0}
    if len(values) == 1:
        return {"mean": values[0], "ci": [values[0], values[0]], "n": 1}
    mean, lo, hi = stats.bootstrap_ci(values, n_boot=n_boot, alpha=0.05, seed=seed)
    return {"mean": float(mean), "ci": [float(lo), float(hi)], "n": len(values)}


def _stance_corrected(recs: Any, seed: int, n_boot: int) -> dict[str, dict[str, Any]]:
    """Confusion-corrected "both" share and yes/no split with CIs that include the classifier's uncertainty
    (:func:`overtonlite.metrics.stance_shares.summary_metrics`); ``{}`` for a system without stance labels."""
    return stance_shares.summary_metrics([r.get("stance") or [] for r in recs], seed=seed, n_boot=n_boot)


def build_summary(
    records: list[dict[str, Any]],
    *,
    systems: list[str],
    reference_system: str | None,
    seed: int,
    n_boot: int,
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, dict[str, Any]]]]:
    """``(summary["systems"], summary["paired"])``."""
    metrics = dict(SUMMARY_METRICS)
    for k in _extra_keys(records):
        metrics.setdefault(k, k)
    by_sys: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in systems}
    for rec in records:
        by_sys.setdefault(rec["system"], {})[rec["prompt_id"]] = rec
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for s, recs in by_sys.items():
        if not recs:
            continue
        out[s] = {}
        for name, key in metrics.items():
            vals = [v for r in recs.values() if (v := _group_value(r, key)) is not None]
            out[s][name] = _ci(vals, seed, n_boot)
        out[s].update(_stance_corrected(recs.values(), seed, n_boot))
    base = reference_system or next((s for s in systems if by_sys.get(s)), None)
    paired: dict[str, dict[str, dict[str, Any]]] = {}
    if base is None:
        return out, paired
    for s in systems:
        if s == base or not by_sys.get(s):
            continue
        entry: dict[str, dict[str, Any]] = {}
        for name in PAIRED_METRICS:
            key = SUMMARY_METRICS[name]
            a, b = [], []
            for pid, rec in by_sys[s].items():
                other = by_sys[base].get(pid)
                if other is None:
                    continue
                va, vb = _group_value(rec, key), _group_value(other, key)
                if va is not None and vb is not None:
                    a.append(va)
                    b.append(vb)
            if len(a) >= 2:
                mean, lo, hi = stats.paired_bootstrap_ci(a, b, n_boot=n_boot, alpha=0.05, seed=seed)
                entry[name] = {"mean": float(mean), "ci": [float(lo), float(hi)], "n": len(a)}
            elif len(a) == 1:
                d = a[0] - b[0]
                entry[name] = {"mean": d, "ci": [d, d], "n": 1}
        paired[f"{s} - {base}"] = entry
    return out, paired
