"""Claim 1, distributional -> Overton pluralism (paper-protocol.md §3.1-3.5).

Three systems sample N answers per prompt into one run directory:

* ``base``: the base model on the zero-shot Query/Answer prompt (:func:`overtonlite.prompts.render_base`);
* ``chat``: the chat model with its own chat template;
* ``urial``: the base model with the instructions paragraph and the three human-written examples.

``overtonlite score`` then measures them with ``chat`` as the reference system, and :func:`overton_claim` judges
the paper's expected directions on the stored metrics:

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
from overtonlite.experiments.common import BASE, CHAT, URIAL
from overtonlite.experiments.truncation import pick_metric
from overtonlite.experiments.verdicts import Claim, Finding, fmt, fmt_ci
from overtonlite.prompts import HUMAN_EXAMPLES, STOP, render_base, render_urial

SYSTEMS = (BASE, CHAT, URIAL)
DEFAULT_ANSWER_CAP = 120
EVIDENCE_METRICS = (
    "jaccard", "cosine", "vendi", "words_mean", "jaccard_filtered", "cosine_filtered", "quality_pass_rate",
    "coverage_union", "missing_le2_share", "stance_both_share", "yes_no_split", "truncation_rate", "list_rate",
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
        if system == BASE:
            done[system] = sample_run(base, prompts, out=out, system=BASE, n=n, sampling=raw_sampling(sampling),
                                      seed=seed, render=base_render, progress=progress)
        elif system == URIAL:
            done[system] = sample_run(base, prompts, out=out, system=URIAL, n=n, sampling=raw_sampling(sampling),
                                      seed=seed, render=urial_render(answer_cap_words), progress=progress)
        elif system == CHAT:
            done[system] = sample_run(chat, prompts, out=out, system=CHAT, n=n, sampling=sampling, seed=seed,
                                      mode="chat", progress=progress)
        else:
            raise ValueError(f"unknown diversity system {system!r}")
    return done


def prompt_sets(run_dir: str | Path) -> dict[str, list[str]]:
    """Prompt ids per prompt set ("open-ended" / "contested") from samples.jsonl, in file order.

    Groups without a set count as open-ended.
    """
    ids: dict[str, list[str]] = {"open-ended": [], "contested": []}
    for rec in ev.read_samples(run_dir):
        kind = "contested" if rec.get("set") == "contested" else "open-ended"
        pid = str(rec.get("prompt_id"))
        if pid not in ids[kind]:
            ids[kind].append(pid)
    return ids


def _paired(recs: dict[str, dict[str, Any]], metric: str, a: str, b: str, ids: Sequence[str], seed: int) -> ev.Estimate:
    return ev.paired_diff_ci(ev.column(recs.get(a, {}), metric, ids), ev.column(recs.get(b, {}), metric, ids),
                             seed=seed)


def _mean(recs: dict[str, dict[str, Any]], metric: str, system: str, ids: Sequence[str], seed: int) -> ev.Estimate:
    return ev.mean_ci([v for v in ev.column(recs.get(system, {}), metric, ids) if v is not None], seed=seed)


def _cols(recs: dict[str, dict[str, Any]], metric: str, systems: Sequence[str],
          ids: Sequence[str]) -> tuple[tuple[float, ...], ...]:
    """Per-prompt values of ``metric`` for each system, on the prompts where every system has one (for power)."""
    cols = [ev.column(recs.get(s, {}), metric, ids) for s in systems]
    rows = [r for r in zip(*cols, strict=True) if all(v is not None for v in r)]
    return tuple(tuple(float(r[j]) for r in rows) for j in range(len(systems)))


def overton_claim(metrics: Sequence[dict[str, Any]], sets: dict[str, list[str]], *, seed: int = 0) -> Claim:
    """Judge claim 1 from metrics.jsonl records and the prompt ids of each set (see the module docstring)."""
    recs = ev.by_system(metrics)
    oe, cq = sets.get("open-ended", []), sets.get("contested", [])
    evidence: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in EVIDENCE_METRICS:
        ids = cq if metric in ("stance_both_share", "yes_no_split") else oe
        row = {}
        for system in SYSTEMS:
            if system in recs:
                est = _mean(recs, metric, system, ids, seed)
                if est[0] is not None:
                    row[system] = ev.entry(est)
        if row:
            evidence[metric] = row

    def val(metric: str, system: str) -> str:
        return fmt((evidence.get(metric, {}).get(system) or {}).get("mean"))

    findings = []
    no_cq = "" if cq else "the input has no contested prompts"
    no_oe = "" if oe else "the input has no open-ended prompts"
    est = _paired(recs, "jaccard", CHAT, BASE, oe, seed)
    findings.append(Finding(
        "lexical_similarity", "Apparent diversity drop: chat minus base within-prompt Jaccard (open-ended)", "greater",
        *est, detail=f"chat {val('jaccard', CHAT)} vs base {val('jaccard', BASE)}", systems=(CHAT, BASE),
        unmeasured=no_oe, values=_cols(recs, "jaccard", (CHAT, BASE), oe)))
    metric, ids, used = pick_metric(recs, "words_mean", (CHAT, BASE), oe)
    est = _paired(recs, metric, CHAT, BASE, ids, seed)
    findings.append(Finding(
        "length", "Chat answers are longer: chat minus base mean words (open-ended)", "greater", *est,
        detail=f"chat {val('words_mean', CHAT)} vs base {val('words_mean', BASE)} words on all samples",
        systems=(CHAT, BASE), unmeasured=no_oe, values=_cols(recs, metric, (CHAT, BASE), ids), samples=used))
    est = _paired(recs, "stance_both_share", CHAT, BASE, cq, seed)
    findings.append(Finding(
        "both_share", "Overton answers: chat minus base share of 'both' stances (contested)", "greater", *est,
        detail=f"chat {val('stance_both_share', CHAT)} vs base {val('stance_both_share', BASE)}",
        systems=(CHAT, BASE), unmeasured=no_cq, values=_cols(recs, "stance_both_share", (CHAT, BASE), cq)))
    est = _paired(recs, "yes_no_split", BASE, CHAT, cq, seed)
    findings.append(Finding(
        "yes_no_split", "Distributional pluralism: base minus chat rate of prompts whose samples say both yes and no "
        "(contested)", "greater", *est,
        detail=f"base {val('yes_no_split', BASE)} vs chat {val('yes_no_split', CHAT)}",
        systems=(BASE, CHAT), unmeasured=no_cq, values=_cols(recs, "yes_no_split", (BASE, CHAT), cq)))
    # the chat answer (sample 0) is the reference, so its truncation matters as much as the base samples'
    metric, ids, used = pick_metric(recs, "missing_le2_share", (BASE,), oe)
    union = "coverage_union_finished" if metric.endswith("_finished") else "coverage_union"
    est = _mean(recs, metric, BASE, ids, seed)
    union_est = _mean(recs, union, BASE, ids, seed)
    findings.append(Finding(
        "coverage", "Aggregation: share of base samples whose information is mostly in the chat answer "
        "(missing-information proxy <= 2, open-ended; expected above 0.5)", "greater", *est, threshold=0.5,
        detail=f"share of base sentences covered {fmt(union_est[0])}", systems=(BASE, CHAT),
        unmeasured=no_oe, values=_cols(recs, metric, (BASE,), ids), samples=used))

    notes = []
    sem = _paired(recs, "cosine", CHAT, BASE, oe, seed)
    if sem[0] is not None:
        notes.append(f"Semantic similarity within prompts, chat minus base (embedding cosine): {fmt(sem[0])} "
                     f"({fmt_ci(sem[1])}); lexical and semantic diversity are reported separately.")
    filt = _paired(recs, "jaccard_filtered", CHAT, BASE, oe, seed)
    if filt[0] is not None:
        notes.append(f"After the quality filter the chat-minus-base Jaccard gap is {fmt(filt[0])} ({fmt_ci(filt[1])}), "
                     f"against {fmt(findings[0].estimate)} before it.")
    if URIAL in recs:
        notes.append(f"URIAL (base model + 3 human examples): Jaccard {val('jaccard', URIAL)}, "
                     f"{val('words_mean', URIAL)} words, 'both' share {val('stance_both_share', URIAL)}.")
    return Claim("overton", findings, evidence, notes)
