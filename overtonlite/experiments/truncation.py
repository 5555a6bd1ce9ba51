"""Truncation-aware findings: how many samples stopped at max_tokens, and what that does to a finding.

A sample whose ``finish_reason`` is ``"length"`` was cut at the token cap, so its length, its coverage and the
information it carries are those of a prefix. Two rules follow:

* **the gate**: a finding whose compared systems include one with more than :data:`MAX_CUT` (20 %) of its samples
  cut cannot be "supported" or "not supported"; it is "inconclusive", and its line says how many were cut and that
  ``--max-tokens`` should be raised (:func:`gate_claim`);
* **finished samples**: length and the aggregation (coverage) finding are estimated on the samples that finished
  by themselves, on the prompts where every compared system has at least
  :data:`overtonlite.scoring.group.FINISHED_MIN` of them (the ``*_finished`` per-group metrics of
  ``overtonlite score``, summarised in summary.json like any metric). When the input records no finish reasons,
  all samples are used; the finding's ``samples`` field says which (:func:`pick_metric`).

The per-system share is stored in ``results.json["truncation"]`` as ``{system: share}``; systems whose samples
record no finish reason are left out (their truncation is unknown, so nothing is gated for them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_CUT = 0.20
"""A compared system with a larger share of samples cut at max_tokens makes a finding inconclusive."""
LENGTH = "length"


def shares(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """``{system: share of samples with finish_reason "length"}`` over the samples that record a finish reason.

    ``records`` are group records (``samples.jsonl`` or any input of ``overtonlite score``); failed groups and
    samples without a finish reason are left out, and so is a system with none.
    """
    counts: dict[str, list[int]] = {}
    for rec in records:
        if rec.get("error"):
            continue
        for s in rec.get("samples") or []:
            reason = s.get("finish_reason") if isinstance(s, Mapping) else None
            if isinstance(reason, str):
                row = counts.setdefault(str(rec.get("system")), [0, 0])
                row[0] += reason == LENGTH
                row[1] += 1
    return {system: cut / total for system, (cut, total) in counts.items() if total}


def run_shares(run_dir: str | Path) -> dict[str, float]:
    """:func:`shares` of ``run_dir/samples.jsonl`` ({} when there is none)."""
    from overtonlite.experiments.evidence import read_samples

    return shares(read_samples(run_dir))


def pct(share: float) -> str:
    """``0.54`` -> ``"54 %"``."""
    return f"{round(100 * share)} %"


def cut_text(cut: Sequence[tuple[str, float]]) -> str:
    """``"100 % of chat and 54 % of base samples cut at max_tokens; raise --max-tokens ..."``."""
    parts = [f"{pct(share)} of {system}" for system, share in cut]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{joined} samples cut at max_tokens; raise --max-tokens until at most {pct(MAX_CUT)} are cut"


def gate(finding: Any, truncation: Mapping[str, float]) -> Any:
    """``finding`` with ``cut`` set to its compared systems over :data:`MAX_CUT` (unchanged when none is)."""
    cut = tuple((s, float(truncation[s])) for s in finding.systems if truncation.get(s, 0.0) > MAX_CUT)
    return dataclasses.replace(finding, cut=cut) if cut else finding


def gate_claim(claim: Any, truncation: Mapping[str, float]) -> Any:
    """Apply :func:`gate` to every finding of ``claim`` (in place; returns the claim)."""
    claim.findings = [gate(f, truncation) for f in claim.findings]
    return claim


def finished_name(metric: str) -> str:
    """The per-group metric computed on finished samples only (``words_mean`` -> ``words_mean_finished``)."""
    return f"{metric}_finished"


def pick_metric(
    summary: Mapping[str, Any] | None, metric: str, systems: Sequence[str], set_name: str | None
) -> tuple[str, str]:
    """Which summary.json metric a finding on ``metric`` reads, and a sentence saying which samples that is.

    When every compared system has a ``truncation_rate`` on the set (its samples record finish reasons), the
    ``*_finished`` variant, whose entries cover the prompts where every system has at least FINISHED_MIN finished
    samples; otherwise ``metric`` on all samples.
    """
    from overtonlite import schema
    from overtonlite.scoring.group import FINISHED_MIN

    if set_name is None:
        return metric, ""
    recorded = all(schema.summary_stat(summary, s, set_name, "truncation_rate") is not None for s in systems)
    if not recorded:
        return metric, "all samples (the input records no finish reasons)"
    name = finished_name(metric)
    if len(systems) > 1:
        entry = schema.paired_stat(summary, systems[0], systems[1], set_name, name)
    else:
        entry = schema.summary_stat(summary, systems[0], set_name, name)
    kept = (entry or {}).get("n_prompts") or 0
    total = (((summary or {}).get("sets") or {}).get(set_name) or {}).get("prompts", "?")
    who = " and ".join(systems)
    return name, (
        f"finished samples only: {kept} of {total} prompts have at least {FINISHED_MIN} finished samples "
        f"in {who}"
    )


def cap_note(claim: Any, truncation: Mapping[str, float], max_tokens: int | None) -> str | None:
    """A note for a claim whose length finding is gated: what the cap does to the length comparison."""
    length = next((f for f in claim.findings if f.name == "length" and f.cut), None)
    if length is None:
        return None
    cap = f"the {max_tokens}-token cap" if max_tokens else "the token cap"
    cut = ", ".join(f"{pct(truncation[s])} of {s}" for s in length.systems if s in truncation)
    return (
        f"Length under {cap}: {cut} samples stop at the cap, so their lengths are the cap, not the answers' "
        "lengths, and the length finding cannot say which system writes longer answers; a larger --max-tokens "
        "(the full preset) measures it."
    )
