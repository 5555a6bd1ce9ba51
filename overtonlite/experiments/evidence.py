"""What the claims read: summary.json entries by (system, set, metric), and the choice of prompt set for each
finding. Nothing here computes a statistic: every number a claim shows is a summary.json entry
(:mod:`overtonlite.schema`), so the verdicts, results.json and the report agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from overtonlite import schema

OPEN_ENDED, CONTESTED = "open-ended", "contested"


def sets_of(summary: Mapping[str, Any] | None) -> list[str]:
    """The prompt sets summary.json has values for (``all`` last)."""
    return schema.set_names(summary)


def choose_set(
    summary: Mapping[str, Any] | None, preferred: str, *, exclude: Sequence[str] = ()
) -> str | None:
    """The set a finding about ``preferred`` prompts uses: ``preferred`` when the summary has it; else the only
    other named set that is not excluded; else ``all`` when the summary has no named set besides excluded ones
    that hold prompts; else None (not measured)."""
    names = sets_of(summary)
    if preferred in names:
        return preferred
    named = [n for n in names if n != schema.ALL]
    others = [n for n in named if n not in exclude]
    if len(others) == 1:
        return others[0]
    if not named and schema.ALL in names:
        return schema.ALL
    return None


def stance_set(summary: Mapping[str, Any] | None) -> str | None:
    """The set stance was scored on: ``contested`` when stance was scored there, else the first set of
    ``settings.stance_sets``, else None."""
    scored = list(((summary or {}).get("settings") or {}).get("stance_sets") or [])
    if CONTESTED in scored:
        return CONTESTED
    if scored:
        return str(scored[0])
    return CONTESTED if CONTESTED in sets_of(summary) else None


def mean_entry(
    summary: Mapping[str, Any] | None, system: str, set_name: str | None, metric: str
) -> dict[str, Any] | None:
    """The evidence entry of one system's mean (None when not measured)."""
    if set_name is None:
        return None
    return schema.evidence(summary, system=system, set_name=set_name, metric=metric)


def paired_entry(
    summary: Mapping[str, Any] | None, a: str, b: str, set_name: str | None, metric: str
) -> dict[str, Any] | None:
    """The evidence entry of the paired difference ``a - b`` (None when not measured)."""
    if set_name is None:
        return None
    return schema.evidence(
        summary, system=schema.paired_key(a, b), set_name=set_name, metric=metric, kind="paired"
    )


def ratio_entry(
    summary: Mapping[str, Any] | None, a: str, b: str, set_name: str | None, metric: str
) -> dict[str, Any] | None:
    """The evidence entry of the paired ratio of means ``a / b`` (None when not measured)."""
    if set_name is None:
        return None
    return schema.evidence(
        summary, system=schema.ratio_key(a, b), set_name=set_name, metric=metric, kind="ratio"
    )


def has_system(summary: Mapping[str, Any] | None, system: str) -> bool:
    return system in ((summary or {}).get("systems") or {})


def read_samples(run_dir: str | Path) -> list[dict[str, Any]]:
    """The validated group records of ``run_dir/samples.jsonl`` ([] when there is none yet)."""
    path = Path(run_dir) / schema.SAMPLES_FILE
    return schema.read_groups(path) if path.is_file() else []
