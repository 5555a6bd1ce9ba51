"""Verdicts: turn estimates with confidence intervals into "supported" / "not supported" / "inconclusive".

Each claim is a list of *findings*. A finding states one expected direction (for example "chat samples are
lexically more alike than base samples": the paired difference chat - base of within-prompt Jaccard is > 0) and
is judged on its 95% CI:

* ``supported``: the whole CI lies on the expected side of the threshold;
* ``not supported``: the whole CI lies on the opposite side;
* ``inconclusive``: the CI contains the threshold, or there was nothing to estimate.

"Reach" findings (the recoverability claim: a condition's similarity to the aligned reference reaches the aligned
self-similarity) are judged on the CI of the ratio against the target 1.0: ``supported`` when the CI includes or
exceeds 1 *and* its lower end is at least ``1 - REACH_MARGIN`` (so a CI too wide to tell, such as [0.1, 1.8], is not
taken as support); ``not supported`` when the whole CI lies below 1; ``inconclusive`` otherwise.

Two conditions override the CI (see :mod:`overtonlite.experiments.truncation`):

* ``not measured``: the input lacks what the finding needs (for example stance findings without contested
  prompts, or the recoverability claim without an in-context condition). Such findings are left out of the claim's
  combination, so the claim verdict rests on what was measured; a claim with no measured finding is itself
  ``not measured``.
* truncation: when a system the finding compares has more than :data:`~overtonlite.experiments.truncation.MAX_CUT`
  of its samples cut at max_tokens, the finding is ``inconclusive`` whatever its CI says, and its line says how many
  were cut and to raise ``--max-tokens``.

An inconclusive finding (not cut) also states how many prompts would make its CI half-width smaller than the
observed effect (``prompts_needed``, :mod:`overtonlite.experiments.power`).

A claim is ``not supported`` when any of its measured findings is, ``supported`` when all of them are, and
``inconclusive`` otherwise. ``overtonlite check`` fails (exit 1) only on ``not supported``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_MEASURED)

Expected = Literal["greater", "less", "reach"]

REACH_MARGIN = 0.2
"""A "reach" CI must exclude shares below ``1 - REACH_MARGIN`` (0.8) to count as support."""


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def _valid_ci(ci: Sequence[float] | None) -> bool:
    return ci is not None and len(ci) == 2 and _finite(ci[0]) and _finite(ci[1])


def judge(ci: Sequence[float] | None, *, expected: Expected, threshold: float = 0.0) -> str:
    """The verdict for one finding from its CI (see the module docstring); a missing CI is inconclusive."""
    if not _valid_ci(ci):
        return INCONCLUSIVE
    lo, hi = float(ci[0]), float(ci[1])  # type: ignore[index]
    if expected == "greater":
        return SUPPORTED if lo > threshold else NOT_SUPPORTED if hi < threshold else INCONCLUSIVE
    if expected == "less":
        return SUPPORTED if hi < threshold else NOT_SUPPORTED if lo > threshold else INCONCLUSIVE
    if expected == "reach":
        if hi < threshold:
            return NOT_SUPPORTED
        return SUPPORTED if lo >= threshold - REACH_MARGIN else INCONCLUSIVE
    raise ValueError(f"unknown expected direction {expected!r}")


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its findings' verdicts ("not measured" ones left out); no findings at all is
    inconclusive, only unmeasured ones "not measured"."""
    if not verdicts:
        return INCONCLUSIVE
    verdicts = [v for v in verdicts if v != NOT_MEASURED]
    if not verdicts:
        return NOT_MEASURED
    if NOT_SUPPORTED in verdicts:
        return NOT_SUPPORTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for verdict lines ("n/a" when missing)."""
    return f"{x:.{digits}f}" if _finite(x) else "n/a"


def fmt_ci(ci: Sequence[float] | None, digits: int = 3) -> str:
    """``95% CI [lo, hi]`` ("no CI" when missing)."""
    if not _valid_ci(ci):
        return "no CI"
    return f"95% CI [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"  # type: ignore[index]


@dataclass(frozen=True)
class Finding:
    """One judged expectation. ``estimate`` and ``ci`` are the tested quantity (a difference, a share, a ratio),
    read from the summary.json entry named by ``systems`` / ``set`` / ``metric`` / ``kind`` (see
    :func:`overtonlite.schema.evidence`)."""

    name: str
    statement: str
    expected: Expected
    estimate: float | None
    ci: tuple[float, float] | None
    threshold: float = 0.0
    detail: str = ""
    systems: tuple[str, ...] = ()
    set: str | None = None
    metric: str | None = None
    kind: str = "paired"
    n_prompts: int | None = None
    unmeasured: str = ""
    """Why the input cannot measure this finding ("" when it can); makes the verdict "not measured"."""
    cut: tuple[tuple[str, float], ...] = ()
    """(system, share) of the compared systems with more than MAX_CUT of their samples cut at max_tokens."""
    values: tuple[tuple[float, ...], ...] = field(default=(), compare=False, repr=False)
    """Per-prompt values behind the estimate, for the power statement (:mod:`overtonlite.experiments.power`):
    (a, b) for a paired difference, (x,) for a mean against the threshold, (numerator, denominator) for a ratio."""
    samples: str = ""
    """Which samples the estimate used when that is a choice (finished samples or all), with the prompts kept."""

    @classmethod
    def from_entry(
        cls,
        name: str,
        statement: str,
        expected: Expected,
        entry: dict[str, Any] | None,
        *,
        systems: Sequence[str],
        set_name: str | None,
        metric: str,
        kind: str = "paired",
        threshold: float = 0.0,
        detail: str = "",
        unmeasured: str = "",
        samples: str = "",
    ) -> Finding:
        """A finding whose estimate and CI are those of a summary.json entry (None: nothing was measured)."""
        entry = entry or {}
        ci = entry.get("ci")
        return cls(
            name,
            statement,
            expected,
            entry.get("mean"),
            tuple(ci) if _valid_ci(ci) else None,  # type: ignore[arg-type]
            threshold,
            detail,
            tuple(systems),
            set_name,
            metric,
            kind,
            entry.get("n_prompts"),
            unmeasured=unmeasured,
            samples=samples,
        )

    @property
    def verdict(self) -> str:
        if self.unmeasured:
            return NOT_MEASURED
        if self.cut:
            return INCONCLUSIVE
        return judge(self.ci, expected=self.expected, threshold=self.threshold)

    @property
    def prompts_needed(self) -> int | None:
        """For an inconclusive finding not decided by truncation: prompts for a CI half-width below the effect."""
        if self.verdict != INCONCLUSIVE or self.cut:
            return None
        from overtonlite.experiments.power import prompts_needed

        return prompts_needed(self)

    @property
    def line(self) -> str:
        """A plain sentence: statement, estimate with CI, extra detail, verdict (and why, when it is forced)."""
        if self.unmeasured:
            return f"{self.statement}: not measured ({self.unmeasured})."
        text = f"{self.statement}: {fmt(self.estimate)} ({fmt_ci(self.ci)})"
        if self.detail:
            text += f"; {self.detail}"
        if self.samples:
            text += f"; {self.samples}"
        if self.cut:
            from overtonlite.experiments.truncation import cut_text

            return f"{text}. Inconclusive: {cut_text(self.cut)}."
        tail = ""
        if self.verdict == INCONCLUSIVE:
            from overtonlite.experiments.power import power_text

            tail = power_text(self)
        return f"{text}. {self.verdict.capitalize()}{tail}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statement": self.statement,
            "systems": list(self.systems),
            "set": self.set,
            "metric": self.metric,
            "kind": self.kind,
            "expected": self.expected,
            "threshold": self.threshold,
            "estimate": self.estimate,
            "ci": list(self.ci) if self.ci is not None else None,
            "n_prompts": self.n_prompts,
            "verdict": self.verdict,
            "samples": self.samples or None,
            "truncated": {s: share for s, share in self.cut} or None,
            "not_measured": self.unmeasured or None,
            "prompts_needed": self.prompts_needed,
            "line": self.line,
        }


@dataclass
class Claim:
    """A claim's findings, its evidence (a list of :func:`overtonlite.schema.evidence` entries, each equal to the
    summary.json entry it names), notes (extra lines) and extra fields for results.json."""

    name: str
    findings: list[Finding]
    evidence: list[dict[str, Any]]
    notes: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return combine([f.verdict for f in self.findings])

    @property
    def lines(self) -> list[str]:
        return [f.line for f in self.findings] + list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "evidence": self.evidence,
            "lines": self.lines,
            "findings": [f.to_dict() for f in self.findings],
            **self.extra,
        }


def exit_code(claims: dict[str, dict[str, Any]]) -> int:
    """0 when no claim is "not supported", else 1 (the contract of ``overtonlite check``)."""
    return 1 if any(c.get("verdict") == NOT_SUPPORTED for c in claims.values()) else 0
