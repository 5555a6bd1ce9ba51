"""Aggregation of per-group records into ``summary.json`` (see :mod:`overtonlite.scoring` and
:mod:`overtonlite.schema`).

Each per-group value is one observation (:func:`overtonlite.schema.per_prompt_value`: per-sample lists are first
averaged within the group). For every system and every prompt set (each named set of the input, and ``all``) a
metric's value is the mean over the set's prompts with a seeded percentile bootstrap 95% CI over prompts
(:data:`overtonlite.schema.N_BOOT` resamples). Stance metrics are summarised only for the sets whose groups all had
stance scored.

Paired differences ``A - B`` compare two systems on the prompts of a set where both have a value: every system
against the reference system (or, without one, against the first system of the input), plus any extra pairs asked
for. With a reference system, paired ratios of means ``A / B`` of the similarity-to-reference metrics give each
system's share of the reference's self-similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from overtonlite import schema
from overtonlite.metrics import stance_shares, stats


def _extra_keys(records: list[dict[str, Any]]) -> list[str]:
    """Numeric per-group keys not in the schema's summary metrics (style rates, stance label shares...)."""
    known = set(schema.SUMMARY_METRICS.values()) | set(schema.SUMMARY_METRICS)
    known |= {"n", "schema_version", "prompt_id", "judge_errors"}
    out: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k not in known and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = None
    return list(out)


def _ci(values: list[float], seed: int, n_boot: int) -> dict[str, Any]:
    if len(values) < 2:
        return schema.stat(values[0] if values else None, None, len(values))
    mean, lo, hi = stats.bootstrap_ci(values, n_boot=n_boot, alpha=0.05, seed=seed)
    return schema.stat(float(mean), (float(lo), float(hi)), len(values))


def _paired(a: list[float], b: list[float], seed: int, n_boot: int) -> dict[str, Any]:
    if len(a) < 2:
        return schema.stat(a[0] - b[0], None, 1)
    mean, lo, hi = stats.paired_bootstrap_ci(a, b, n_boot=n_boot, alpha=0.05, seed=seed)
    return schema.stat(float(mean), (float(lo), float(hi)), len(a))


def _ratio(a: list[float], b: list[float], seed: int, n_boot: int) -> dict[str, Any] | None:
    mean, lo, hi = stats.ratio_bootstrap_ci(a, b, n_boot=n_boot, alpha=0.05, seed=seed)
    if mean != mean:  # nan: no pair, or a zero denominator
        return None
    ci = (float(lo), float(hi)) if len(a) >= 2 and lo == lo and hi == hi else None
    return schema.stat(float(mean), ci, len(a))


def _stance_corrected(rows: list[dict[str, Any]], seed: int, n_boot: int) -> dict[str, Any]:
    """Confusion-corrected "both" share and yes/no split with CIs that include the classifier's uncertainty
    (:func:`overtonlite.metrics.stance_shares.summary_metrics`); ``{}`` when no group has stance labels."""
    return stance_shares.summary_metrics([r.get("stance") or [] for r in rows], seed=seed, n_boot=n_boot)


def set_members(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Prompt ids per set name (records' ``set``), plus ``all``; in first-seen order."""
    sets: dict[str, dict[str, None]] = {}
    for rec in records:
        pid = str(rec["prompt_id"])
        if isinstance(rec.get("set"), str) and rec["set"] and rec["set"] != schema.ALL:
            sets.setdefault(rec["set"], {})[pid] = None
        sets.setdefault(schema.ALL, {})[pid] = None
    return {k: list(v) for k, v in sets.items()}


def build_summary(
    records: list[dict[str, Any]],
    *,
    systems: list[str],
    reference_system: str | None,
    seed: int,
    n_boot: int = schema.N_BOOT,
    stance_groups: set[tuple[str, str]] | frozenset[tuple[str, str]] | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``{"systems", "paired", "ratios", "sets"}`` of summary.json from metrics.jsonl records.

    ``stance_groups``: the (system, prompt id) groups whose stance was scored (None: the groups whose records
    carry a stance value). ``pairs``: extra ``(A, B)`` paired differences besides each system against the
    reference.
    """
    metrics = dict(schema.SUMMARY_METRICS)
    for k in _extra_keys(records):
        metrics.setdefault(k, k)
    by_sys: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in systems}
    for rec in records:
        by_sys.setdefault(rec["system"], {})[str(rec["prompt_id"])] = rec
    members = set_members(records)
    if stance_groups is None:
        stance_groups = {(r["system"], str(r["prompt_id"])) for r in records if r.get("stance") is not None}

    def stance_ok(system: str, ids: list[str]) -> bool:
        present = [pid for pid in ids if pid in by_sys[system]]
        return bool(present) and all((system, pid) in stance_groups for pid in present)

    out: dict[str, Any] = {}
    for s, recs in by_sys.items():
        if not recs:
            continue
        sets: dict[str, Any] = {}
        for set_name, ids in members.items():
            rows = [recs[pid] for pid in ids if pid in recs]
            if not rows:
                continue
            entry: dict[str, Any] = {}
            for name, key in metrics.items():
                if schema.is_stance_metric(name) and not stance_ok(s, ids):
                    continue
                vals = [v for r in rows if (v := schema.per_prompt_value(r.get(key))) is not None]
                if vals:
                    entry[name] = _ci(vals, seed, n_boot)
            if stance_ok(s, ids):
                entry.update(_stance_corrected(rows, seed, n_boot))
            sets[set_name] = entry
        out[s] = {"sets": sets}

    base = reference_system or next((s for s in systems if by_sys.get(s)), None)
    wanted: list[tuple[str, str]] = [(s, base) for s in systems if base is not None and s != base]
    wanted += [p for p in pairs if p not in wanted and p[0] != p[1]]
    paired: dict[str, Any] = {}
    for a, b in wanted:
        if not by_sys.get(a) or not by_sys.get(b):
            continue
        sets = {}
        for set_name, ids in members.items():
            entry = {}
            for name in schema.PAIRED_METRICS:
                if schema.is_stance_metric(name) and not (stance_ok(a, ids) and stance_ok(b, ids)):
                    continue
                key = schema.SUMMARY_METRICS[name]
                xa, xb = _aligned(by_sys[a], by_sys[b], ids, key)
                if xa:
                    entry[name] = _paired(xa, xb, seed, n_boot)
            if entry:
                sets[set_name] = entry
        paired[schema.paired_key(a, b)] = {"a": a, "b": b, "sets": sets}

    ratios: dict[str, Any] = {}
    if reference_system is not None and by_sys.get(reference_system):
        for s in systems:
            if not by_sys.get(s) or s == reference_system:
                continue
            sets = {}
            for set_name, ids in members.items():
                entry = {}
                for name in schema.RATIO_METRICS:
                    key = schema.SUMMARY_METRICS[name]
                    xa, xb = _aligned(by_sys[s], by_sys[reference_system], ids, key)
                    if xa and (r := _ratio(xa, xb, seed, n_boot)) is not None:
                        entry[name] = r
                if entry:
                    sets[set_name] = entry
            ratios[schema.ratio_key(s, reference_system)] = {"a": s, "b": reference_system, "sets": sets}
    return {
        "systems": out,
        "paired": paired,
        "ratios": ratios,
        "sets": {name: {"prompts": len(ids)} for name, ids in members.items()},
    }


def _aligned(
    ra: dict[str, dict[str, Any]], rb: dict[str, dict[str, Any]], ids: list[str], key: str
) -> tuple[list[float], list[float]]:
    xa: list[float] = []
    xb: list[float] = []
    for pid in ids:
        if pid in ra and pid in rb:
            va, vb = schema.per_prompt_value(ra[pid].get(key)), schema.per_prompt_value(rb[pid].get(key))
            if va is not None and vb is not None:
                xa.append(va)
                xb.append(vb)
    return xa, xb
