"""Claim 1, distributional -> Overton pluralism (paper-protocol.md §3.1-3.5).

Three systems sample N answers per prompt into one run directory:

* ``base``: the base model on the zero-shot Query/Answer prompt (:func:`overtonlite.prompts.render_base`);
* ``chat``: the chat model with its own chat template;
* ``urial``: the base model with the instructions paragraph and the three human-written examples.

``overtonlite score`` then measures them with ``chat`` as the reference system, and :func:`overton_claim` judges
the paper's expected directions on summary.json's entries (open-ended findings on the ``open-ended`` set, stance
findings on the set stance was scored on, ``contested``):

1. the apparent diversity drop: chat samples are lexically more alike than base samples (paired Jaccard, open-ended);
2. chat answers are longer (paired mean words, open-ended);
3. on contested yes/no questions chat answers present both sides more often ("both" share, paired);
4. base samples split between yes and no across samples more often than chat samples (paired split rate);
5. most base samples say little that the chat answer lacks: the share of base samples whose missing-information
   proxy (1-5, calibrated on the authors' GPT-4 judgments) is at most 2 is above one half, as in the paper's data
   (GPT-4: 0.66; the proxy on the same data: 0.65). The coverage of the union of the base samples' sentences by
   chat sample 0 is reported beside it.

Semantic diversity, diversity after the quality filter and the URIAL numbers are reported alongside, unjudged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from overtonlite.backends.base import Generator
from overtonlite.config import SamplingConfig
from overtonlite.datasets import Prompt
from overtonlite.experiments import evidence as ev
from overtonlite.experiments.common import BASE, CHAT, URIAL, only_active
from overtonlite.experiments.truncation import pick_metric
from overtonlite.experiments.verdicts import Claim, Finding, fmt, fmt_ci
from overtonlite.prompts import HUMAN_EXAMPLES, STOP, render_base, render_urial

SYSTEMS = (BASE, CHAT, URIAL)
DEFAULT_ANSWER_CAP = 120
EVIDENCE_METRICS = (
    "jaccard",
    "cosine",
    "vendi",
    "words_mean",
    "jaccard_filtered",
    "cosine_filtered",
    "quality_pass_rate",
    "coverage_union",
    "missing_le2_share",
    "stance_both_share",
    "yes_no_split",
    "truncation_rate",
    "list_rate",
    "stance_both_share_corrected",
    "yes_no_split_corrected",
)
STANCE_EVIDENCE = (
    "stance_both_share",
    "yes_no_split",
    "stance_both_share_corrected",
    "yes_no_split_corrected",
)


def base_render(prompt: Prompt) -> str:
    """The ``base`` system's prompt."""
    return render_base(prompt.text)


def urial_render(answer_cap_words: int | None) -> Callable[[Prompt], str]:
    """The ``urial`` system's prompt builder (human examples, answers capped at ``answer_cap_words``)."""

    def render(prompt: Prompt) -> str:
        return render_urial(prompt.text, HUMAN_EXAMPLES, answer_cap_words=answer_cap_words)

    return render


def raw_sampling(sampling: SamplingConfig) -> SamplingConfig:
    """``sampling`` with the fence stops of base-model prompts added."""
    stops = tuple(dict.fromkeys((*sampling.stop, *STOP)))
    return sampling.replace(stop=stops)


def generate_diversity(
    base: Generator,
    chat: Generator,
    prompts: Sequence[Prompt],
    *,
    out: str | Path,
    n: int = 5,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    answer_cap_words: int | None = DEFAULT_ANSWER_CAP,
    systems: Sequence[str] = SYSTEMS,
    progress: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Sample the base, chat and urial systems into ``out`` (resuming); returns each system's run summary."""
    from overtonlite.sampling import sample_run

    sampling = sampling or SamplingConfig()
    done: dict[str, Any] = {}
    for system in systems:
        only_active(chat if system == CHAT else base, base, chat)
        if system == BASE:
            done[system] = sample_run(
                base,
                prompts,
                out=out,
                system=BASE,
                n=n,
                sampling=raw_sampling(sampling),
                seed=seed,
                render=base_render,
                progress=progress,
            )
        elif system == URIAL:
            done[system] = sample_run(
                base,
                prompts,
                out=out,
                system=URIAL,
                n=n,
                sampling=raw_sampling(sampling),
                seed=seed,
                render=urial_render(answer_cap_words),
                progress=progress,
            )
        elif system == CHAT:
            done[system] = sample_run(
                chat,
                prompts,
                out=out,
                system=CHAT,
                n=n,
                sampling=sampling,
                seed=seed,
                mode="chat",
                progress=progress,
            )
        else:
            raise ValueError(f"unknown diversity system {system!r}")
    return done


CLAIM_PAIRS: tuple[tuple[str, str], ...] = ((CHAT, BASE),)
"""Paired differences the findings read besides each system against the reference (``base - chat`` etc.)."""


def _entry_value(entry: dict[str, Any] | None) -> str:
    return fmt((entry or {}).get("mean"))


def overton_claim(summary: dict[str, Any]) -> Claim:
    """Judge claim 1 from summary.json (see the module docstring). The open-ended findings use the
    ``open-ended`` set, the stance findings the set stance was scored on (``contested``); every estimate and every
    evidence entry is the summary.json entry it names."""
    oe = ev.choose_set(summary, ev.OPEN_ENDED, exclude=(ev.CONTESTED,))
    cq = ev.stance_set(summary)
    evidence: list[dict[str, Any]] = []
    for metric in EVIDENCE_METRICS:
        set_name = cq if metric in STANCE_EVIDENCE else oe
        for system in SYSTEMS:
            entry = ev.mean_entry(summary, system, set_name, metric)
            if entry is not None:
                evidence.append(entry)

    def val(metric: str, system: str, set_name: str | None) -> str:
        return _entry_value(ev.mean_entry(summary, system, set_name, metric))

    def corrected(metric: str, first: str, second: str) -> str:
        """The stance value corrected for the classifier's confusion, with a CI that includes it (summary.json)."""
        a, b = (ev.mean_entry(summary, s, cq, f"{metric}_corrected") for s in (first, second))
        if a is None or b is None:
            return ""
        return (
            f"; corrected for the stance classifier's confusion: {first} {fmt(a.get('mean'))} "
            f"({fmt_ci(a.get('ci'))}) vs {second} {fmt(b.get('mean'))} ({fmt_ci(b.get('ci'))})"
        )

    def paired(a: str, b: str, set_name: str | None, metric: str) -> dict[str, Any] | None:
        entry = ev.paired_entry(summary, a, b, set_name, metric)
        if entry is not None:
            evidence.append(entry)
        return entry

    no_oe = "" if oe else "the input has no open-ended prompts"
    no_cq = "" if cq else "the input has no contested prompts with stance scored"
    # length and aggregation on finished samples when the samples record finish reasons (truncation module)
    words, words_used = pick_metric(summary, "words_mean", (CHAT, BASE), oe)
    le2, le2_used = pick_metric(summary, "missing_le2_share", (BASE,), oe)
    union = "coverage_union_finished" if le2.endswith("_finished") else "coverage_union"
    findings = [
        Finding.from_entry(
            "lexical_similarity",
            f"Apparent diversity drop: chat minus base within-prompt Jaccard ({oe or ev.OPEN_ENDED})",
            "greater",
            paired(CHAT, BASE, oe, "jaccard"),
            systems=(CHAT, BASE),
            set_name=oe,
            metric="jaccard",
            unmeasured=no_oe,
            detail=f"chat {val('jaccard', CHAT, oe)} vs base {val('jaccard', BASE, oe)}",
        ),
        Finding.from_entry(
            "length",
            f"Chat answers are longer: chat minus base mean words ({oe or ev.OPEN_ENDED})",
            "greater",
            paired(CHAT, BASE, oe, words),
            systems=(CHAT, BASE),
            set_name=oe,
            metric=words,
            unmeasured=no_oe,
            samples=words_used,
            detail=f"on all samples chat {val('words_mean', CHAT, oe)} vs base {val('words_mean', BASE, oe)} words",
        ),
        Finding.from_entry(
            "both_share",
            f"Overton answers: chat minus base share of 'both' stances ({cq or ev.CONTESTED})",
            "greater",
            paired(CHAT, BASE, cq, "stance_both_share"),
            systems=(CHAT, BASE),
            set_name=cq,
            metric="stance_both_share",
            unmeasured=no_cq,
            detail=f"chat {val('stance_both_share', CHAT, cq)} vs base {val('stance_both_share', BASE, cq)}"
            + corrected("stance_both_share", CHAT, BASE),
        ),
        Finding.from_entry(
            "yes_no_split",
            "Distributional pluralism: base minus chat rate of prompts whose samples say both yes "
            f"and no ({cq or ev.CONTESTED})",
            "greater",
            paired(BASE, CHAT, cq, "yes_no_split"),
            systems=(BASE, CHAT),
            set_name=cq,
            metric="yes_no_split",
            unmeasured=no_cq,
            detail=f"base {val('yes_no_split', BASE, cq)} vs chat {val('yes_no_split', CHAT, cq)}"
            + corrected("yes_no_split", BASE, CHAT),
        ),
        Finding.from_entry(
            "coverage",
            "Aggregation: share of base samples whose information is mostly in the chat answer "
            f"(missing-information proxy <= 2, {oe or ev.OPEN_ENDED}; expected above 0.5)",
            "greater",
            ev.mean_entry(summary, BASE, oe, le2),
            systems=(BASE, CHAT),
            set_name=oe,
            metric=le2,
            kind="mean",
            threshold=0.5,
            unmeasured=no_oe,
            samples=le2_used,
            detail=f"share of base sentences covered {val(union, BASE, oe)}",
        ),
    ]

    notes = []
    sem = paired(CHAT, BASE, oe, "cosine")
    if sem is not None:
        notes.append(
            f"Semantic similarity within prompts, chat minus base (embedding cosine): {fmt(sem['mean'])} "
            f"({fmt_ci(sem['ci'])}); lexical and semantic diversity are reported separately."
        )
    filt = paired(CHAT, BASE, oe, "jaccard_filtered")
    if filt is not None:
        notes.append(
            f"After the quality filter the chat-minus-base Jaccard gap is {fmt(filt['mean'])} "
            f"({fmt_ci(filt['ci'])}), against {fmt(findings[0].estimate)} before it."
        )
    if ev.has_system(summary, URIAL):
        notes.append(
            f"URIAL (base model + 3 human examples): Jaccard {val('jaccard', URIAL, oe)}, "
            f"{val('words_mean', URIAL, oe)} words, 'both' share {val('stance_both_share', URIAL, cq)}."
        )
    return Claim("overton", findings, evidence, notes)
