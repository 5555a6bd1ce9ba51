"""Claim 2, recoverability by in-context alignment (paper-protocol.md §3.6, §4.7-4.9, §5).

Conditions (each a system in the run directory, named ``SELECTION[+HINT]``):

* ``base``: the zero-shot Query/Answer prompt; ``urial``: the three human-written examples;
* ``fixed-aligned``: the same three example queries answered by the chat model itself (greedy, generated once per
  run and cached in ``RUN/aux``);
* ``random`` / ``knn``: k other prompts of the set (seeded random, or nearest by prompt-embedding cosine, most
  similar first), each answered by the chat model's sample 0 (leave-one-out);
* ``+summary`` / ``+extractive`` / ``+keywords``: a ``# Summary:`` block for the test query (and for every
  example) holding a hint about chat sample 0 (see :mod:`overtonlite.prompts.hints`).

Scoring: ``overtonlite score`` with ``chat`` as the reference gives, per prompt and system, the mean similarity of
the samples to chat sample 0 (embedding cosine, rescaled BERTScore-style F1, Jaccard); for ``chat`` itself it is
s1..s(N-1) against s0, the aligned self-similarity. Each condition's share of the self-similarity is the paired
ratio of means over prompts, with a bootstrap CI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overtonlite.backends.base import Generator
from overtonlite.config import SamplingConfig
from overtonlite.datasets import Prompt
from overtonlite.errors import UsageError
from overtonlite.experiments import evidence as ev
from overtonlite.experiments.common import BASE, CHAT, URIAL, only_active
from overtonlite.experiments.diversity import raw_sampling
from overtonlite.experiments.verdicts import Claim, Finding, fmt, fmt_ci
from overtonlite.prompts import (
    EXAMPLE_QUERIES,
    HUMAN_EXAMPLES,
    Example,
    extractive_hint,
    keyword_hint,
    knn_neighbours,
    random_neighbours,
    render_base,
    render_urial,
    summarize_messages,
)
from overtonlite.scoring.inputs import clean_text

SELECTIONS = ("base", "urial", "fixed-aligned", "random", "knn")
HINTS = ("summary", "extractive", "keywords")
DEFAULT_CONDITIONS = (
    "base",
    "base+summary",
    "urial",
    "urial+summary",
    "fixed-aligned",
    "fixed-aligned+summary",
    "knn",
    "knn+summary",
)
MEASURES = {
    "cosine": "cosine_to_ref",
    "bertscore": "bertscore_f1_to_ref_rescaled",
    "jaccard": "jaccard_to_ref",
}
AUX_DIR = "aux"
SUMMARY_MAX_TOKENS = 96
PROMPT_TOO_LONG = "prompt_too_long"


@dataclass(frozen=True)
class Condition:
    """One ICL condition: an example selection and an optional hint kind."""

    selection: str
    hint: str | None = None

    @property
    def name(self) -> str:
        return self.selection + (f"+{self.hint}" if self.hint else "")


def valid_conditions() -> list[str]:
    """Every accepted condition name."""
    return [s + (f"+{h}" if h else "") for s in SELECTIONS for h in (None, *HINTS)]


def parse_conditions(spec: str | Sequence[str]) -> list[Condition]:
    """Parse ``"urial,knn+summary"`` (or a list of names); UsageError listing the valid names otherwise."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [s for s in names if s]
    if not names:
        raise UsageError("no ICL conditions given; valid: " + ", ".join(valid_conditions()))
    out: list[Condition] = []
    for name in names:
        sel, _, hint = name.partition("+")
        if sel not in SELECTIONS or (hint and hint not in HINTS) or (_ and not hint):
            raise UsageError(f"unknown ICL condition {name!r}; valid: " + ", ".join(valid_conditions()))
        cond = Condition(sel, hint or None)
        if cond not in out:
            out.append(cond)
    return out


def _needs_pool(conds: Sequence[Condition]) -> bool:
    return any(c.selection in ("random", "knn") for c in conds)


def check_pool(prompts: Sequence[Prompt], conds: Sequence[Condition], k: int) -> None:
    """UsageError when random/kNN selection cannot draw k other prompts."""
    if _needs_pool(conds) and len(prompts) <= k:
        raise UsageError(
            f"random/kNN example selection needs more than k={k} prompts (leave-one-out), got {len(prompts)}; "
            "use more prompts or a smaller --k"
        )


def _first_texts(run_dir: Path, system: str, ids: Sequence[str] | None = None) -> dict[str, str]:
    """Sample 0 (cleaned) of every successful group of ``system``."""
    from overtonlite.rundir.records import read_groups

    out: dict[str, str] = {}
    for rec in read_groups(run_dir):
        if rec.get("system") == system and not rec.get("error") and rec.get("samples"):
            if ids is None or rec["prompt_id"] in ids:
                out[str(rec["prompt_id"])] = clean_text(rec["samples"][0].get("text", ""))
    return out


class IclMaterial:
    """Everything the ICL prompts are built from: chat sample 0 per prompt, hints, aligned examples, neighbours."""

    def __init__(
        self,
        prompts: Sequence[Prompt],
        chat_s0: dict[str, str],
        *,
        k: int,
        seed: int,
        answer_cap_words: int | None,
        embedder: Any = None,
    ) -> None:
        self.prompts = [p for p in prompts if p.id in chat_s0]
        self.index = {p.id: i for i, p in enumerate(self.prompts)}
        self.chat_s0 = chat_s0
        self.k, self.seed, self.cap, self.embedder = k, seed, answer_cap_words, embedder
        self.summaries: dict[str, str] = {}
        self.aligned: list[Example] = []
        self.aligned_summaries: list[str] = []
        self._neighbours: dict[str, list[list[int]]] = {}
        self._hints: dict[tuple[str, str], str] = {}

    # -- hints ----------------------------------------------------------------------------------------------
    def hint_for_text(self, kind: str, text: str, key: str) -> str:
        """The hint of ``kind`` for one answer text (cached under ``key``)."""
        cache_key = (kind, key)
        if cache_key not in self._hints:
            if kind == "extractive":
                if self.embedder is None:
                    raise UsageError("extractive hints need a sentence embedder")
                self._hints[cache_key] = extractive_hint(text, self.embedder)
            elif kind == "keywords":
                corpus = [t for pid, t in self.chat_s0.items() if pid != key]
                self._hints[cache_key] = keyword_hint(text, corpus)
            else:
                raise ValueError(f"no text hint of kind {kind!r}")
        return self._hints[cache_key]

    def hint(self, kind: str, pid: str) -> str:
        """The hint of ``kind`` about chat sample 0 of prompt ``pid``."""
        if kind == "summary":
            return self.summaries.get(pid, "")
        return self.hint_for_text(kind, self.chat_s0[pid], pid)

    # -- examples -------------------------------------------------------------------------------------------
    def neighbours(self, selection: str) -> list[list[int]]:
        if selection not in self._neighbours:
            if selection == "knn":
                if self.embedder is None:
                    raise UsageError("kNN example selection needs a sentence embedder")
                emb = self.embedder.embed([p.text for p in self.prompts])
                self._neighbours[selection] = knn_neighbours(emb, k=self.k)
            else:
                self._neighbours[selection] = random_neighbours(
                    [p.id for p in self.prompts], k=self.k, seed=self.seed
                )
        return self._neighbours[selection]

    def examples(self, cond: Condition, pid: str) -> list[Example]:
        """The examples of ``cond`` for the test prompt ``pid``, with summaries set when the condition has a hint."""
        if cond.selection == "urial":
            exs = list(HUMAN_EXAMPLES)
            if cond.hint and cond.hint != "summary":
                exs = [
                    Example(
                        e.query, e.answer, self.hint_for_text(cond.hint, e.answer, f"human:{i}"), e.source
                    )
                    for i, e in enumerate(exs)
                ]
            return exs
        if cond.selection == "fixed-aligned":
            out = []
            for i, e in enumerate(self.aligned):
                summary = None
                if cond.hint == "summary":
                    summary = self.aligned_summaries[i]
                elif cond.hint:
                    summary = self.hint_for_text(cond.hint, e.answer, f"aligned:{i}")
                out.append(Example(e.query, e.answer, summary, "aligned"))
            return out
        rows = self.neighbours(cond.selection)[self.index[pid]]
        out = []
        for j in rows:
            other = self.prompts[j]
            summary = self.hint(cond.hint, other.id) if cond.hint else None
            out.append(Example(other.text, self.chat_s0[other.id], summary, "aligned"))
        return out

    def render(self, cond: Condition) -> Callable[[Prompt], str]:
        """The prompt builder of one condition."""

        def render(prompt: Prompt) -> str:
            hint = self.hint(cond.hint, prompt.id) if cond.hint else None
            if cond.selection == "base":
                return render_base(prompt.text, hint=hint)
            return render_urial(
                prompt.text, self.examples(cond, prompt.id), hint=hint, answer_cap_words=self.cap
            )

        return render


def _greedy(max_tokens: int) -> SamplingConfig:
    return SamplingConfig(temperature=0.0, repetition_penalty=1.1, max_tokens=max_tokens)


def prepare_material(
    chat: Generator,
    prompts: Sequence[Prompt],
    conds: Sequence[Condition],
    *,
    out: str | Path,
    k: int = 3,
    seed: int = 0,
    answer_cap_words: int | None = None,
    example_max_tokens: int = 256,
    embedder: Any = None,
    progress: Callable[[Any], None] | None = None,
    hint_model: Generator | None = None,
) -> IclMaterial:
    """Read chat sample 0 from ``out`` and generate (once, cached in ``out/aux``) what the conditions need: the chat
    model's answers to the three example queries and its summaries of its own answers (written by ``hint_model``
    instead, a chat model, when given: system ``summaries@NAME`` in ``out/aux``)."""
    from overtonlite.sampling import sample_run

    run = Path(out)
    ids = {p.id for p in prompts}
    chat_s0 = _first_texts(run, CHAT, ids)
    mat = IclMaterial(prompts, chat_s0, k=k, seed=seed, answer_cap_words=answer_cap_words, embedder=embedder)
    aux = run / AUX_DIR
    need_aligned = any(c.selection == "fixed-aligned" for c in conds)
    need_summary = any(c.hint == "summary" for c in conds)
    if need_aligned:
        ex_prompts = [Prompt(id=f"example-{i + 1}", text=q) for i, q in enumerate(EXAMPLE_QUERIES)]
        sample_run(
            chat,
            ex_prompts,
            out=aux,
            system="aligned-examples",
            n=1,
            sampling=_greedy(example_max_tokens),
            seed=seed,
            mode="chat",
            progress=progress,
        )
        answers = _first_texts(aux, "aligned-examples")
        mat.aligned = [Example(p.text, answers.get(p.id, ""), None, "aligned") for p in ex_prompts]
    if need_summary:
        targets = [(p.id, p.text, chat_s0[p.id]) for p in mat.prompts]
        if need_aligned:
            targets += [(f"example-{i + 1}", e.query, e.answer) for i, e in enumerate(mat.aligned)]
        sum_prompts = [
            Prompt(id=pid, text=text, messages=tuple(summarize_messages(text, answer)))
            for pid, text, answer in targets
        ]
        writer, sum_system = (
            (chat, "summaries") if hint_model is None else (hint_model, f"summaries@{hint_model.name}")
        )
        if sum_prompts:
            sample_run(
                writer,
                sum_prompts,
                out=aux,
                system=sum_system,
                n=1,
                sampling=_greedy(SUMMARY_MAX_TOKENS),
                seed=seed,
                mode="chat",
                progress=progress,
            )
        summaries = _first_texts(aux, sum_system)
        mat.summaries = {pid: summaries.get(pid, "") for pid in chat_s0}
        mat.aligned_summaries = [summaries.get(f"example-{i + 1}", "") for i in range(len(mat.aligned))]
    return mat


def generate_icl(
    base: Generator,
    chat: Generator,
    prompts: Sequence[Prompt],
    conditions: Sequence[Condition] | str,
    *,
    out: str | Path,
    n: int = 5,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    k: int = 3,
    answer_cap_words: int | None = 120,
    embedder: Any = None,
    progress: Callable[[Any], None] | None = None,
    hint_model: Generator | None = None,
) -> dict[str, Any]:
    """Sample chat (the reference, if not there yet) and every condition into ``out``; returns run summaries.
    ``hint_model`` (a chat generator) writes the summary hints instead of the chat model."""
    from overtonlite.sampling import sample_run

    conds = parse_conditions(conditions) if isinstance(conditions, str) else list(conditions)
    check_pool(prompts, conds, k)
    sampling = sampling or SamplingConfig()
    only_active(chat, base, hint_model)
    done: dict[str, Any] = {
        CHAT: sample_run(
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
    }
    mat = prepare_material(
        chat,
        prompts,
        conds,
        out=out,
        k=k,
        seed=seed,
        answer_cap_words=answer_cap_words,
        example_max_tokens=sampling.max_tokens,
        embedder=embedder,
        progress=progress,
        hint_model=hint_model,
    )
    if not mat.prompts:
        raise UsageError(
            "the chat model produced no answer for any prompt, so there is no reference to compare with"
        )
    check_pool(mat.prompts, conds, k)
    only_active(base, chat, hint_model)
    for cond in conds:
        done[cond.name] = sample_run(
            base,
            mat.prompts,
            out=out,
            system=cond.name,
            n=n,
            sampling=raw_sampling(sampling),
            seed=seed,
            render=mat.render(cond),
            progress=progress,
        )
    return done


def overflow_counts(run_dir: str | Path) -> dict[str, dict[str, int]]:
    """Per system: prompt groups and how many of them were over the context (error "prompt_too_long")."""
    out: dict[str, dict[str, int]] = {}
    for rec in ev.read_samples(run_dir):
        row = out.setdefault(str(rec.get("system")), {"groups": 0, "prompt_too_long": 0})
        row["groups"] += 1
        row["prompt_too_long"] += int(rec.get("error") == PROMPT_TOO_LONG)
    return out


def claim_pairs(conditions: Sequence[str]) -> list[tuple[str, str]]:
    """Paired differences the recoverability findings read: every condition against plain URIAL."""
    return [(c, URIAL) for c in conditions if c != URIAL]


def recoverability_claim(
    summary: dict[str, Any],
    conditions: Sequence[str],
    *,
    set_name: str | None = None,
    overflow: dict[str, dict[str, int]] | None = None,
    hinted: Sequence[str] | None = None,
) -> Claim:
    """Judge claim 2 from summary.json scored with ``chat`` as the reference (module docstring), on the prompt set
    ``set_name`` (default: ``open-ended``, or the only set there is).

    Findings: the best hinted condition (by its share of the chat self-similarity on embedding cosine) reaches the
    self-similarity on cosine and on Jaccard (a "reach" finding, see :mod:`overtonlite.experiments.verdicts`), and
    beats plain URIAL on cosine. Every estimate is a summary.json entry (``ratios["COND / chat"]``,
    ``paired["COND - urial"]``). ``hinted`` names the hinted conditions (default: the names with a ``+``, as
    ``knn+summary``); without any scored condition but base and URIAL the claim is "not measured".
    """
    sset = (
        set_name if set_name is not None else ev.choose_set(summary, ev.OPEN_ENDED, exclude=(ev.CONTESTED,))
    )
    evidence: list[dict[str, Any]] = []
    ratios: dict[str, dict[str, dict[str, Any] | None]] = {}
    for measure, key in MEASURES.items():
        if (own := ev.mean_entry(summary, CHAT, sset, key)) is not None:
            evidence.append(own)
        for cond in conditions:
            if not ev.has_system(summary, cond):
                continue
            if (sim := ev.mean_entry(summary, cond, sset, key)) is not None:
                evidence.append(sim)
            share = ev.ratio_entry(summary, cond, CHAT, sset, key)
            ratios.setdefault(cond, {})[measure] = share
            if share is not None:
                evidence.append(share)

    def mean(cond: str, measure: str) -> float:
        entry = ratios[cond].get(measure)
        return entry["mean"] if entry is not None else -1e9

    named = [c for c in conditions if "+" in c] if hinted is None else list(hinted)
    hinted = [c for c in named if c in ratios]
    pool = hinted or [c for c in conditions if c in ratios and c not in (BASE, URIAL)]
    findings: list[Finding] = []
    notes: list[str] = []
    if not pool:
        findings.append(
            Finding(
                "reaches_self_cosine",
                "Recoverability: an in-context condition reaches the chat self-similarity",
                "reach",
                None,
                None,
                threshold=1.0,
                set=sset,
                metric=MEASURES["cosine"],
                kind="ratio",
                unmeasured="no in-context condition other than base or URIAL was scored",
            )
        )
    else:
        best = max(pool, key=lambda c: mean(c, "cosine"))
        for measure in ("cosine", "jaccard"):
            findings.append(
                Finding.from_entry(
                    f"reaches_self_{measure}",
                    f"Best hinted condition '{best}' reaches the chat self-similarity ({measure} share of chat s1..s(N-1) "
                    f"vs s0, {sset}; expected: CI includes or exceeds 1 and excludes shares below 0.8)",
                    "reach",
                    ratios[best].get(measure),
                    systems=(best, CHAT),
                    set_name=sset,
                    metric=MEASURES[measure],
                    kind="ratio",
                    threshold=1.0,
                )
            )
        key = MEASURES["cosine"]
        if ev.has_system(summary, URIAL) and best != URIAL:
            diff = ev.paired_entry(summary, best, URIAL, sset, key)
            if diff is not None:
                evidence.append(diff)
            findings.append(
                Finding.from_entry(
                    "beats_urial",
                    f"'{best}' is closer to chat s0 than plain URIAL: cosine difference ({sset})",
                    "greater",
                    diff,
                    systems=(best, URIAL),
                    set_name=sset,
                    metric=key,
                )
            )
    for cond in conditions:
        if cond in ratios:
            r = {m: ratios[cond].get(m) or {} for m in MEASURES}
            notes.append(
                f"{cond}: {fmt(r['cosine'].get('mean'))} of the chat self-similarity on cosine "
                f"({fmt_ci(r['cosine'].get('ci'))}), {fmt(r['bertscore'].get('mean'))} on BERTScore-F1 "
                f"({fmt_ci(r['bertscore'].get('ci'))}), {fmt(r['jaccard'].get('mean'))} on Jaccard "
                f"({fmt_ci(r['jaccard'].get('ci'))})."
            )
    extra: dict[str, Any] = {}
    if overflow:
        over = {s: c for s, c in overflow.items() if s in conditions}
        extra["prompt_too_long"] = over
        hit = {s: c for s, c in over.items() if c["prompt_too_long"]}
        total = sum(c["prompt_too_long"] for c in hit.values())
        detail = ", ".join(f"{s} {c['prompt_too_long']}/{c['groups']}" for s, c in hit.items())
        notes.append(f"Prompts over the context: {total}" + (f" ({detail})" if detail else "") + ".")
    return Claim("recoverability", findings, evidence, notes, extra)
