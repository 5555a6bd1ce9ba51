"""The run files, defined once: their fields, ``schema_version``, one reader and one writer each, and the one function
that turns a stored value into a per-prompt number.

A run directory holds:

* ``samples.jsonl``: one :data:`GROUP_KEYS` record per (system, prompt) group of N samples (append-only);
* ``metrics.jsonl``: one :data:`METRIC_KEYS` record per scored group (``null`` where a metric does not apply);
* ``summary.json``: ``systems.SYSTEM.sets.SET.METRIC = {"mean", "ci", "n_prompts"}`` for every prompt set SET
  (``open-ended``, ``contested``, a user file's set name) and ``all``; ``paired."A - B".sets.SET.METRIC`` and
  ``ratios."A / B".sets.SET.METRIC`` in the same shape; the settings; the groups that failed;
* ``results.json``: the pair, the settings and the claims; each claim's ``evidence`` is a list of
  :func:`evidence` entries, each equal to the summary.json entry it names;
* ``manifest.json``: versions, model hashes, every system's sampling config and the signature.

Every file written by this version carries ``schema_version`` (:data:`SCHEMA_VERSION`). Files of the previous,
unversioned layout are still read: an old summary.json's per-system metrics become its ``all`` set.

JSONL files hold one flat JSON object per line, so ``pandas.read_json(path, lines=True)`` loads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from overtonlite.errors import DataError
from overtonlite.rundir.records import read_groups as _read_groups
from overtonlite.rundir.records import read_json_object, read_jsonl_objects
from overtonlite.util import write_json_atomic, write_text_atomic

SCHEMA_VERSION = 2
"""Version of the run files' layout. 1 (implicit, no field): summary.json had one level per system, no sets."""

ALL = "all"
"""The set name that stands for every scored prompt."""
N_BOOT = 2000
"""Bootstrap resamples behind every CI of summary.json (and so of results.json, which copies them)."""
CI_LEVEL = 0.95

SAMPLES_FILE, METRICS_FILE, SUMMARY_FILE = "samples.jsonl", "metrics.jsonl", "summary.json"
RESULTS_FILE, MANIFEST_FILE = "results.json", "manifest.json"

# ----------------------------------------------------------------------------------------------- samples.jsonl
GROUP_KEYS: tuple[str, ...] = (
    "schema_version",
    "system",
    "model",
    "model_sha256",
    "prompt_id",
    "prompt",
    "set",
    "rendered_prompt_sha256",
    "config_hash",
    "key",
    "n",
    "seed",
    "mode",
    "sampling",
    "prompt_tokens",
    "prompt_tokens_evaluated",
    "seconds",
    "error",
    "backend_extra",
    "samples",
)
"""One samples.jsonl line: a group of N samples (``samples`` is a list of ``{"text", "n_tokens",
"finish_reason", ...}``); ``error`` is set (and ``samples`` empty) when the group could not be generated."""


def group_record(**fields: Any) -> dict[str, Any]:
    """A samples.jsonl record with the keys of :data:`GROUP_KEYS` in order (absent keys are ``null``)."""
    unknown = set(fields) - set(GROUP_KEYS)
    if unknown:
        raise TypeError(f"unknown group record field(s): {', '.join(sorted(unknown))}")
    rec = {k: fields.get(k) for k in GROUP_KEYS}
    rec["schema_version"] = SCHEMA_VERSION
    return rec


def read_groups(path: str | Path) -> list[dict[str, Any]]:
    """The validated group records of a samples.jsonl (or of a run directory); the last record of a repeated
    (system, prompt_id) wins and a torn last line is ignored. DataError names the file and line."""
    return _read_groups(path)


def write_group(run: Any, record: dict[str, Any]) -> None:
    """Append one group record to a :class:`~overtonlite.rundir.records.RunDir` (flushed and fsynced)."""
    run.append_group(record)


# ----------------------------------------------------------------------------------------------- metrics.jsonl
METRIC_KEYS: tuple[str, ...] = (
    "schema_version",
    "system",
    "prompt_id",
    "set",
    "n",
    "jaccard",
    "cosine",
    "vendi",
    "words_mean",
    "tokens_mean",
    "words",
    "relevance",
    "stance",
    "coverage",
    "missing",
    "stance_both_share",
    "yes_no_split",
    "distinct_1",
    "distinct_2",
    "bertscore_f1_to_ref",
    "bertscore_f1_to_ref_rescaled",
    "cosine_to_ref",
    "jaccard_to_ref",
    "coverage_union",
    "missing_mean",
    "missing_le2_share",
    "quality_pass",
    "quality_pass_rate",
    "jaccard_filtered",
    "cosine_filtered",
    "relevance_mean",
    "list_rate",
    "refusal_rate",
    "truncation_rate",
    "empty_rate",
)
"""Every metrics.jsonl record has these keys (``null`` when absent); per-sample lists are ``words``,
``relevance``, ``stance``, ``coverage``, ``missing`` and ``quality_pass``. Further numeric keys (style rates,
``stance_LABEL_share``) follow them."""


def metrics_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics.jsonl record: :data:`METRIC_KEYS` in order, then any extra keys of ``rec``."""
    out = {k: rec.get(k) for k in METRIC_KEYS}
    out["schema_version"] = SCHEMA_VERSION
    out.update({k: v for k, v in rec.items() if k not in out})
    return out


def write_metrics(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write metrics.jsonl atomically, one :func:`metrics_record` per line."""
    import json

    lines = [json.dumps(metrics_record(r), ensure_ascii=False) + "\n" for r in records]
    write_text_atomic(path, "".join(lines))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (or of a run directory's); ``[]`` when there is none."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    return read_jsonl_objects(p) or []


# ----------------------------------------------------------------------------------------------- per-prompt value
def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def per_prompt_value(value: Any) -> float | None:
    """The one number a stored metric value gives for its prompt.

    A finite number is itself; a bool is 1.0 / 0.0; a list (per-sample values) is the mean of its finite numbers
    and bools (so a list of booleans gives the share of True), ``None`` when it has none; anything else (``None``,
    NaN, strings such as stance labels) is ``None``.
    """
    if isinstance(value, bool):
        return float(value)
    if _finite(value):
        return float(value)
    if isinstance(value, list | tuple):
        vals = [float(v) for v in value if isinstance(v, bool) or _finite(v)]
        return sum(vals) / len(vals) if vals else None
    return None


# ----------------------------------------------------------------------------------------------- summary.json
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
    "coverage": "coverage",
    "coverage_union": "coverage_union",
    "missing": "missing_mean",
    "missing_le2_share": "missing_le2_share",
    "cosine_to_ref": "cosine_to_ref",
    "jaccard_to_ref": "jaccard_to_ref",
    "bertscore_f1_to_ref": "bertscore_f1_to_ref",
    "bertscore_f1_to_ref_rescaled": "bertscore_f1_to_ref_rescaled",
    # on the samples not cut at max_tokens (overtonlite.experiments.truncation)
    "words_mean_finished": "words_mean_finished",
    "missing_le2_share_finished": "missing_le2_share_finished",
    "coverage_union_finished": "coverage_union_finished",
    # an LLM judge's values beside the proxy's (``score --judge``; overtonlite.judges.apply)
    "stance_judge_both_share": "stance_judge_both_share",
    "yes_no_split_judge": "yes_no_split_judge",
    "missing_judge_mean": "missing_judge_mean",
    "missing_judge_le2_share": "missing_judge_le2_share",
    "quality_judge_mean": "quality_judge_mean",
}
"""summary.json metric name -> metrics.jsonl key. Other numeric per-group keys (style rates, stance label shares)
are summarised under their own name."""
PAIRED_METRICS: tuple[str, ...] = (
    "jaccard",
    "cosine",
    "vendi",
    "words_mean",
    "relevance",
    "quality_pass_rate",
    "jaccard_filtered",
    "cosine_filtered",
    "stance_both_share",
    "yes_no_split",
    "coverage",
    "coverage_union",
    "missing",
    "missing_le2_share",
    "cosine_to_ref",
    "jaccard_to_ref",
    "bertscore_f1_to_ref",
    "bertscore_f1_to_ref_rescaled",
    "words_mean_finished",
)
"""Metrics with paired differences ``A - B`` (mean of per-prompt differences on the prompts both systems have)."""
RATIO_METRICS: tuple[str, ...] = ("cosine_to_ref", "bertscore_f1_to_ref_rescaled", "jaccard_to_ref")
"""Metrics with paired ratios of means ``A / B`` against the reference system (share of its self-similarity)."""


def is_stance_metric(name: str) -> bool:
    """Metrics that exist only where stance was scored (the contested set, or what the user asked for)."""
    return name.startswith(("yes_no_split", "stance_"))


def stat(mean: float | None, ci: tuple[float, float] | list[float] | None, n_prompts: int) -> dict[str, Any]:
    """One summary.json value: ``{"mean", "ci": [lo, hi] or null, "n_prompts"}``."""
    return {"mean": mean, "ci": list(ci) if ci is not None else None, "n_prompts": int(n_prompts)}


def paired_key(a: str, b: str) -> str:
    """The summary.json key of the paired difference ``a - b``."""
    return f"{a} - {b}"


def ratio_key(a: str, b: str) -> str:
    """The summary.json key of the paired ratio of means ``a / b``."""
    return f"{a} / {b}"


def summary_stat(
    summary: Mapping[str, Any] | None, system: str, set_name: str, metric: str
) -> dict[str, Any] | None:
    """``summary.systems[system].sets[set_name][metric]``, or None."""
    return _dig(summary, "systems", system, set_name, metric)


def paired_stat(
    summary: Mapping[str, Any] | None, a: str, b: str, set_name: str, metric: str
) -> dict[str, Any] | None:
    """``summary.paired["a - b"].sets[set_name][metric]``, or None."""
    return _dig(summary, "paired", paired_key(a, b), set_name, metric)


def ratio_stat(
    summary: Mapping[str, Any] | None, a: str, b: str, set_name: str, metric: str
) -> dict[str, Any] | None:
    """``summary.ratios["a / b"].sets[set_name][metric]``, or None."""
    return _dig(summary, "ratios", ratio_key(a, b), set_name, metric)


def _dig(summary: Mapping[str, Any] | None, section: str, name: str, set_name: str, metric: str) -> Any:
    node: Any = (summary or {}).get(section)
    for key in (name, "sets", set_name, metric):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node if isinstance(node, Mapping) and node.get("mean") is not None else None


def set_names(summary: Mapping[str, Any] | None) -> list[str]:
    """The prompt sets of a summary, in first-seen order (``all`` last)."""
    names: dict[str, None] = {}
    for entry in ((summary or {}).get("systems") or {}).values():
        for name in (entry or {}).get("sets") or {}:
            names[name] = None
    out = [n for n in names if n != ALL]
    return out + ([ALL] if ALL in names else [])


def write_summary(path: str | Path, summary: Mapping[str, Any]) -> None:
    """Write summary.json atomically, ``schema_version`` first."""
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in summary.items() if k != "schema_version"}}
    write_json_atomic(path, data)


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """summary.json of a run directory (or the file itself); None when absent. A summary of the previous layout
    (per-system metrics with ``n``) is read as the ``all`` set with ``n_prompts``."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    data = read_json_object(p)
    if data is None:
        return None
    _check_objects(p, data, ("systems", "paired", "ratios", "settings"))
    if data.get("schema_version") is None:
        data = upgrade_summary(data)
    return data


def upgrade_summary(old: Mapping[str, Any]) -> dict[str, Any]:
    """A summary.json of the unversioned layout in the current layout (its values under the ``all`` set)."""

    def conv(block: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, metrics in (block or {}).items() if isinstance(block, Mapping) else ():
            if not isinstance(metrics, Mapping):
                continue
            sets = {
                ALL: {
                    m: stat(e.get("mean"), e.get("ci"), e.get("n", 0))
                    for m, e in metrics.items()
                    if isinstance(e, Mapping)
                }
            }
            out[name] = {"sets": sets}
        return out

    data = dict(old)
    data["systems"], data["paired"] = conv(old.get("systems")), conv(old.get("paired"))
    data["schema_version"] = 1
    return data


# ----------------------------------------------------------------------------------------------- results.json
RESULTS_KEYS: tuple[str, ...] = ("schema_version", "pair", "settings", "claims", "signature", "banner")
"""results.json's fields in order (others, e.g. ``timings``, follow)."""
EVIDENCE_KEYS: tuple[str, ...] = ("system", "set", "metric", "kind", "mean", "ci", "n_prompts")
"""One evidence entry: ``kind`` is ``mean`` (``system`` names a system), ``paired`` (``system`` is ``"A - B"``)
or ``ratio`` (``"A / B"``)."""


def evidence(
    summary: Mapping[str, Any] | None, *, system: str, set_name: str, metric: str, kind: str = "mean"
) -> dict[str, Any] | None:
    """The evidence entry naming one summary.json value (None when summary.json does not have it)."""
    entry = _dig(
        summary, {"mean": "systems", "paired": "paired", "ratio": "ratios"}[kind], system, set_name, metric
    )
    if entry is None:
        return None
    return {
        "system": system,
        "set": set_name,
        "metric": metric,
        "kind": kind,
        "mean": entry["mean"],
        "ci": entry.get("ci"),
        "n_prompts": entry.get("n_prompts"),
    }


def resolve(summary: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary.json value an evidence entry names."""
    section = {"mean": "systems", "paired": "paired", "ratio": "ratios"}.get(str(entry.get("kind", "mean")))
    if section is None:
        return None
    return _dig(summary, section, str(entry.get("system")), str(entry.get("set")), str(entry.get("metric")))


def write_results(path: str | Path, results: Mapping[str, Any]) -> dict[str, Any]:
    """Write results.json atomically with :data:`RESULTS_KEYS` first; returns what was written."""
    data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    data.update({k: results.get(k) for k in RESULTS_KEYS[1:]})
    data.update({k: v for k, v in results.items() if k not in data})
    write_json_atomic(path, data)
    return data


def read_results(path: str | Path) -> dict[str, Any] | None:
    """results.json of a run directory (or the file itself); None when absent."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    data = read_json_object(p, what="a results object")
    if data is not None:
        _check_objects(p, data, ("pair", "settings", "claims"))
    return data


# ----------------------------------------------------------------------------------------------- manifest.json
MANIFEST_KEYS: tuple[str, ...] = (
    "schema_version",
    "overtonlite_version",
    "created",
    "updated",
    "git_revision",
    "python",
    "platform",
    "packages",
    "systems",
    "signature",
)
"""manifest.json's fields in order; ``systems.SYSTEM`` holds model, model_sha256, config, seed, n, mode, backend."""


def write_manifest(path: str | Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Write manifest.json atomically with :data:`MANIFEST_KEYS` first; returns what was written."""
    data = {k: manifest[k] for k in MANIFEST_KEYS if k in manifest}
    data["schema_version"] = SCHEMA_VERSION
    data = {k: data[k] for k in MANIFEST_KEYS if k in data}
    data.update({k: v for k, v in manifest.items() if k not in data})
    write_json_atomic(path, data)
    return data


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """manifest.json of a run directory (or the file itself); None when absent."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_FILE
    data = read_json_object(p, what="a manifest (a JSON object)")
    if data is not None:
        _check_objects(p, data, ("systems", "packages"))
    return data


def _check_objects(path: Path, data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise DataError(f"{path}:1: '{key}' must be a JSON object, got {type(data[key]).__name__}")


__all__ = [
    "ALL",
    "CI_LEVEL",
    "EVIDENCE_KEYS",
    "GROUP_KEYS",
    "MANIFEST_KEYS",
    "METRIC_KEYS",
    "N_BOOT",
    "PAIRED_METRICS",
    "RATIO_METRICS",
    "RESULTS_KEYS",
    "SCHEMA_VERSION",
    "SUMMARY_METRICS",
    "evidence",
    "group_record",
    "is_stance_metric",
    "metrics_record",
    "paired_key",
    "paired_stat",
    "per_prompt_value",
    "ratio_key",
    "ratio_stat",
    "read_groups",
    "read_manifest",
    "read_metrics",
    "read_results",
    "read_summary",
    "resolve",
    "set_names",
    "stat",
    "summary_stat",
    "upgrade_summary",
    "write_group",
    "write_manifest",
    "write_metrics",
    "write_results",
    "write_summary",
]
