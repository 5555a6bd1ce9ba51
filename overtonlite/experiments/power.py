"""Power of an inconclusive finding: how many prompts would make its 95% CI half-width smaller than the effect.

From the per-prompt values behind the estimate (``Finding.values``, filled by :func:`attach_values` from
metrics.jsonl: the finding's systems, set and metric, on the prompts where every compared system has a value, as
summary.json pairs them), with the normal approximation
``n = ceil((1.96 * sd / |effect|) ** 2)``:

* a paired difference (two columns a, b): ``sd`` of the per-prompt differences a - b, effect = mean(a - b) - threshold;
* a share against a threshold (one column x): ``sd`` of x, effect = mean(x) - threshold;
* a ratio of means ("reach" findings, numerator x and denominator y): the delta method, ``sd`` of the linearised
  values ``(x_i - R * y_i) / mean(y)`` with ``R = mean(x) / mean(y)``; the "effect" is the distance from R to the
  nearest bound that decides the finding: ``R - (1 - REACH_MARGIN)`` when R >= 1 (supported once the CI's lower end
  clears it), otherwise the larger of ``1 - R`` (not supported once the CI's upper end falls below 1) and
  ``R - (1 - REACH_MARGIN)``.

An effect of exactly zero is reported as such: no number of prompts decides it. The estimate ignores the extra
width of the percentile bootstrap on small samples, so it is a lower bound of the order of magnitude.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

Z95 = 1.96


def finding_values(finding: Any, metrics: Sequence[Mapping[str, Any]]) -> tuple[tuple[float, ...], ...]:
    """The per-prompt columns behind a finding: (a, b) for ``kind`` "paired" and "ratio" (its first two systems),
    (x,) for "mean" (its first system); () when the finding names no metric or set."""
    from overtonlite import schema

    if not finding.metric or not finding.set or not finding.systems:
        return ()
    systems = list(finding.systems[:1] if finding.kind == "mean" else finding.systems[:2])
    key = schema.SUMMARY_METRICS.get(finding.metric, finding.metric)
    rows: dict[str, dict[str, float]] = {}
    order: list[str] = []
    for rec in metrics:
        if rec.get("system") not in systems:
            continue
        if finding.set != schema.ALL and rec.get("set") != finding.set:
            continue
        pid = str(rec.get("prompt_id"))
        value = schema.per_prompt_value(rec.get(key))
        if value is not None:
            if pid not in rows:
                order.append(pid)
            rows.setdefault(pid, {})[str(rec["system"])] = value
    kept = [pid for pid in order if all(s in rows[pid] for s in systems)]
    return tuple(tuple(rows[pid][s] for pid in kept) for s in systems)


def attach_values(claim: Any, metrics: Sequence[Mapping[str, Any]]) -> Any:
    """Fill ``values`` of every finding of ``claim`` from metrics.jsonl records (in place; returns the claim)."""
    claim.findings = [
        f if f.values else dataclasses.replace(f, values=finding_values(f, metrics)) for f in claim.findings
    ]
    return claim


def _sd(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def spread_and_effect(finding: Any) -> tuple[float, float, int] | None:
    """``(sd, effect, n_prompts)`` of a finding's per-prompt values (None when there are fewer than 2 prompts)."""
    from overtonlite.experiments.verdicts import REACH_MARGIN

    cols = [list(c) for c in finding.values]
    if not cols or len(cols[0]) < 2:
        return None
    n = len(cols[0])
    if finding.expected == "reach":
        xs, ys = cols
        my = sum(ys) / n
        if my == 0:
            return None
        r = (sum(xs) / n) / my
        z = [(x - r * y) / my for x, y in zip(xs, ys, strict=True)]
        low = 1.0 - REACH_MARGIN
        margin = r - low if r >= 1.0 else max(1.0 - r, r - low)
        return _sd(z), margin, n
    d = [a - b for a, b in zip(*cols, strict=True)] if len(cols) == 2 else cols[0]
    return _sd(d), sum(d) / n - finding.threshold, n


def prompts_needed(finding: Any) -> int | None:
    """``ceil((1.96 * sd / |effect|) ** 2)``; None when it cannot be computed or the effect is zero."""
    got = spread_and_effect(finding)
    if got is None:
        return None
    sd, effect, _ = got
    if effect == 0 or not math.isfinite(sd):
        return None
    return max(2, math.ceil((Z95 * sd / abs(effect)) ** 2))


def power_text(finding: Any) -> str:
    """``"; about 57 prompts (now 20) would make the CI half-width smaller than the effect"`` ("" when unknown)."""
    got = spread_and_effect(finding)
    if got is None:
        return ""
    _, effect, n = got
    if effect == 0:
        return "; effect is zero: no number of prompts decides it"
    need = prompts_needed(finding)
    if need is None:
        return ""
    return f"; about {need} prompts (now {n}) would make the CI half-width smaller than the effect"
