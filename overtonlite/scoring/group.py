"""Per-group metrics for ``overtonlite score`` (see :mod:`overtonlite.scoring`).

:class:`GroupContext` embeds every distinct text once, up front (samples with token states when a reference system
is given, prompts, and the sentences of samples for coverage), then :func:`score_group` computes one
``metrics.jsonl`` record from those vectors and the lexical, style and stance functions. The metrics that need
the texts only (:func:`text_part`) are computed on a worker thread while the samples are embedded.

BERTScore-style F1 (MiniLM token states) baseline ``b``: the mean F1 of 1,000 seeded random pairs of non-empty
samples answering *different* prompts, drawn from the whole input file (all systems). With fewer than 5 prompts
the pairwise F1 of built-in neutral sentences is used instead. Rescaled F1 = (F1 - b) / (1 - b).

Finished samples: when every sample of a group records its finish reason, ``words_mean_finished``,
``missing_le2_share_finished`` and ``coverage_union_finished`` repeat those metrics on the samples that were not
cut at max_tokens (finish reason other than ``"length"``), provided the group has at least :data:`FINISHED_MIN`
of them (else ``null``). They are extra keys of the record (see :mod:`overtonlite.experiments.truncation`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overtonlite.metrics import coverage as cov_mod
from overtonlite.metrics import lexical, semantic, stance, style
from overtonlite.metrics import sentences as sentences_mod
from overtonlite.metrics.sentences import split_sentences
from overtonlite.scoring.beyond import group_metrics as beyond_metrics
from overtonlite.scoring.beyond import text_metrics as beyond_text_metrics
from overtonlite.scoring.inputs import Group

FINISHED_MIN = 2
"""Finished samples a group needs for its ``*_finished`` metrics."""


def _mean(values: list[float | None] | None) -> float | None:
    vals = [float(v) for v in (values or []) if v is not None]
    return float(np.mean(vals)) if vals else None


def _jaccard_to_ref_values(texts: list[str], ref: str, lowercase: bool) -> list[float | None]:
    res = lexical.jaccard_to_reference(texts, ref, lowercase=lowercase)
    if isinstance(res, (int, float)) or res is None:
        # a scalar mean: spread it so the caller can average as usual
        return [None if res is None else float(res)] if texts else []
    return [None if v is None else float(v) for v in res]


def text_part(texts: list[str], lowercase: bool) -> dict[str, Any]:
    """The metrics of a group that need its texts only (no vectors): lexical, style and the lexical part of
    the beyond-the-paper keys. :func:`score_group` takes them from here."""
    return {
        "jaccard": lexical.mean_pairwise_jaccard(texts, lowercase=lowercase),
        "distinct_1": lexical.distinct_n(texts, 1),
        "distinct_2": lexical.distinct_n(texts, 2),
        "style": style.style_stats(texts),
        "nondegenerate": [bool(t) and not style.is_degenerate(t) for t in texts],
        "beyond": beyond_text_metrics(texts),
    }


def _text_worker(
    groups: list[Group], lowercase: bool, out: dict[int, dict[str, Any]], stop: threading.Event
) -> None:
    """Build the sentence splitter and the word tokenizer (importing NLTK takes about two seconds), then the
    :func:`text_part` of each group, while the main thread embeds: onnxruntime releases the GIL while it runs,
    and these pure-Python metrics would otherwise run after the embedding, on one core. ``out[id(group)]``; on
    any error the worker stops, and the main thread computes the rest itself (and reports the error); ``stop``
    ends it early (the embedding failed or was interrupted)."""
    try:
        sentences_mod.split_sentences("Warm up. Two sentences.")
        lexical.word_tokenize("Warm up.")
        for g in groups:
            if stop.is_set():
                return
            out[id(g)] = text_part(g.texts, lowercase)
    except Exception:  # noqa: BLE001 - see the docstring
        pass


@contextmanager
def _beside(worker: threading.Thread, stop: threading.Event) -> Iterator[None]:
    """Run the block (the embedding) beside :func:`_text_worker`, then wait for the worker: NLTK is used on this
    thread only once the worker is done (a second thread would see a half-imported module). A failing or
    interrupted block stops the worker before its next group."""
    try:
        yield
    except BaseException:
        stop.set()
        raise
    finally:
        worker.join()


@dataclass
class GroupContext:
    embedder: Any
    reference_system: str | None
    lowercase: bool
    stance: frozenset[tuple[str, str]]  # (system, prompt id) of the groups whose stance is scored
    seed: int
    quality_threshold: float
    tau: float
    missing_cuts: tuple[float, ...] = cov_mod.MISSING_CUTS
    vec: dict[str, np.ndarray] = field(default_factory=dict)
    tok: dict[str, np.ndarray] = field(default_factory=dict)
    sentences: dict[str, list[str]] = field(default_factory=dict)
    ref_text: dict[str, str] = field(default_factory=dict)  # prompt id -> reference sample 0
    token_counts: dict[str, int] = field(default_factory=dict)
    text_parts: dict[int, dict[str, Any]] = field(default_factory=dict)  # id(group) -> its text_part
    bert_baseline: float | None = None
    bert_baseline_source: str | None = None

    @classmethod
    def build(
        cls,
        groups: list[Group],
        embedder: Any,
        *,
        reference_system: str | None,
        lowercase: bool,
        stance: frozenset[tuple[str, str]],
        seed: int,
        quality_threshold: float,
        tau: float,
        missing_cuts: tuple[float, ...] = cov_mod.MISSING_CUTS,
        timings: dict[str, float] | None = None,
    ) -> GroupContext:
        ctx = cls(embedder, reference_system, lowercase, stance, seed, quality_threshold, tau, missing_cuts)
        t0 = time.perf_counter()
        stop = threading.Event()
        worker = threading.Thread(
            target=_text_worker,
            args=(groups, lowercase, ctx.text_parts, stop),
            name="overtonlite-text-metrics",
            daemon=True,
        )
        worker.start()
        samples = list(dict.fromkeys(t for g in groups for t in g.texts if t))
        prompts = list(dict.fromkeys(g.prompt for g in groups if g.prompt))
        extra: list[str] = list(prompts)
        if reference_system is not None:
            for g in groups:
                if g.system == reference_system and g.texts:
                    ctx.ref_text[g.pid] = g.texts[0]
            with _beside(worker, stop):  # first: the text metrics run meanwhile
                vecs, toks = embedder.embed_with_tokens(samples)
            for t in samples:
                ctx.sentences[t] = split_sentences(t)
            extra += [s for t in samples for s in ctx.sentences[t]]
            # one float32 copy of each text's token states at a time (normalised, the original dropped at once),
            # and none left in the embedder: on a full run these copies were the peak of the process's memory
            pending = list(toks)  # our own list: popping must not touch one an embedder keeps
            del toks
            for t in reversed(samples):  # lookups only: the dict's order does not matter
                ctx.tok[t] = semantic.unit_tokens(np.asarray(pending.pop(), dtype=np.float32))
            release = getattr(embedder, "release_token_states", None)
            if callable(release):
                release()
        else:
            with _beside(worker, stop):
                vecs = embedder.embed(samples) if samples else np.zeros((0, 1), np.float32)
        ctx.vec = dict(zip(samples, vecs, strict=True))
        extra = [t for t in dict.fromkeys(extra) if t not in ctx.vec]
        if extra:
            ctx.vec.update(zip(extra, embedder.embed(extra), strict=True))
        if timings is not None:
            timings["embed"] = time.perf_counter() - t0
        need_counts = [t for g in groups if g.n_tokens is None for t in g.texts]
        if need_counts and hasattr(embedder, "count_tokens"):
            uniq = list(dict.fromkeys(need_counts))
            ctx.token_counts = dict(zip(uniq, embedder.count_tokens(uniq), strict=True))
        if reference_system is not None:
            ctx._baseline(groups)
        return ctx

    def _baseline(self, groups: list[Group]) -> None:
        items = [(g.pid, t) for g in groups for t in g.texts if t]
        b = semantic.cross_prompt_baseline(
            [self.tok[t] for _, t in items], [p for p, _ in items], n_pairs=1000, seed=self.seed
        )
        if b is not None:
            self.bert_baseline, self.bert_baseline_source = b, "1000 random cross-prompt pairs of the input"
            return
        _, toks = self.embedder.embed_with_tokens(list(semantic.NEUTRAL_SENTENCES))
        toks = [semantic.unit_tokens(np.asarray(t, dtype=np.float32)) for t in toks]
        self.bert_baseline = semantic.neutral_baseline(toks)
        self.bert_baseline_source = "built-in neutral sentences (input has fewer than 5 prompts)"

    def bertscore_settings(self) -> dict[str, Any] | None:
        if self.reference_system is None:
            return None
        return {
            "name": "BERTScore-style F1 (MiniLM token states)",
            "matching": "greedy cosine, no idf, CLS/SEP excluded",
            "baseline": self.bert_baseline,
            "baseline_source": self.bert_baseline_source,
        }

    def sentence_vecs(self, texts: list[str]) -> np.ndarray:
        sents = [s for t in texts for s in self.sentences.get(t, [])]
        if not sents:
            return np.zeros((0, 1), np.float32)
        return np.stack([self.vec[s] for s in sents])


def _vectors(ctx: GroupContext, texts: list[str]) -> np.ndarray:
    return np.stack([ctx.vec[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)


def score_group(g: Group, ctx: GroupContext) -> dict[str, Any]:
    """One metrics.jsonl record (see :data:`overtonlite.scoring.RECORD_KEYS`)."""
    texts = g.texts
    n = len(texts)
    rec: dict[str, Any] = {"system": g.system, "prompt_id": g.pid, "set": g.prompt_set, "n": n}
    lc = ctx.lowercase
    part = ctx.text_parts.get(id(g))
    if part is None:
        part = text_part(texts, lc)
    rec["jaccard"] = part["jaccard"]
    rec["distinct_1"] = part["distinct_1"]
    rec["distinct_2"] = part["distinct_2"]
    words = [int(lexical.word_count(t)) for t in texts]
    rec["words"] = words
    rec["words_mean"] = _mean(words)
    if g.n_tokens is not None:
        rec["tokens_mean"] = _mean(g.n_tokens)
    elif ctx.token_counts:
        rec["tokens_mean"] = _mean([ctx.token_counts.get(t, 0) for t in texts])
    else:
        rec["tokens_mean"] = None
    rec["empty_rate"] = sum(1 for t in texts if not t) / n

    nonempty = [t for t in texts if t]
    vecs = _vectors(ctx, nonempty)
    rec["cosine"] = semantic.mean_pairwise_cosine(vecs) if len(nonempty) >= 2 else None
    rec["vendi"] = semantic.vendi_score(vecs) if nonempty else None

    relevance: list[float | None] | None = None
    if g.prompt:
        q = ctx.vec[g.prompt]
        relevance = [
            float(semantic.cosine_to_reference(ctx.vec[t][None, :], q)[0]) if t else None for t in texts
        ]
    rec["relevance"] = relevance
    rec["relevance_mean"] = _mean(relevance)

    st = part["style"]
    for key, val in (st or {}).items():
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            rec[key] = float(val)
    rec.setdefault("list_rate", None)
    rec.setdefault("refusal_rate", None)
    rec["truncation_rate"] = (
        sum(1 for f in g.finish_reasons if f == "length") / n if g.finish_reasons is not None else None
    )

    passing = [
        ok and (relevance is None or (relevance[i] or 0.0) >= ctx.quality_threshold)
        for i, ok in enumerate(part["nondegenerate"])
    ]
    rec["quality_pass"] = passing
    rec["quality_pass_rate"] = sum(passing) / n
    kept = [t for t, ok in zip(texts, passing, strict=True) if ok]
    rec["jaccard_filtered"] = lexical.mean_pairwise_jaccard(kept, lowercase=lc) if len(kept) >= 2 else None
    rec["cosine_filtered"] = semantic.mean_pairwise_cosine(_vectors(ctx, kept)) if len(kept) >= 2 else None
    rec.update(beyond_metrics(texts, ctx.vec, passing, part["beyond"]))

    rec["stance"] = rec["stance_both_share"] = rec["yes_no_split"] = None
    if (g.system, g.pid) in ctx.stance:
        labels = [stance.classify_stance(g.prompt or "", t) for t in texts]
        summ = stance.stance_summary(labels)
        rec["stance"] = labels
        rec["stance_both_share"] = summ.get("both_share")
        split = summ.get("yes_no_split")
        rec["yes_no_split"] = None if split is None else bool(split)
        for label, share in (summ.get("distribution") or {}).items():
            rec[f"stance_{label}_share"] = float(share)

    for key in (
        "coverage",
        "missing",
        "coverage_union",
        "missing_mean",
        "missing_le2_share",
        "cosine_to_ref",
        "jaccard_to_ref",
        "bertscore_f1_to_ref",
        "bertscore_f1_to_ref_rescaled",
    ):
        rec[key] = None
    if ctx.reference_system is not None and g.pid in ctx.ref_text:
        _reference_metrics(g, ctx, rec)
    if g.finish_reasons is not None:
        _finished_metrics(g, ctx, rec)
    return rec


def _finished_metrics(g: Group, ctx: GroupContext, rec: dict[str, Any]) -> None:
    """Length and coverage on the samples that were not cut at max_tokens (module docstring)."""
    done = [i for i, f in enumerate(g.finish_reasons or []) if f != "length"]
    ok = len(done) >= FINISHED_MIN
    rec["words_mean_finished"] = _mean([rec["words"][i] for i in done]) if ok else None
    rec["missing_le2_share_finished"] = rec["coverage_union_finished"] = None
    miss = rec.get("missing")
    if not ok or not isinstance(miss, list) or g.pid not in ctx.ref_text:
        return
    scored = [miss[i] for i in done if miss[i] is not None]
    if len(scored) >= FINISHED_MIN:
        rec["missing_le2_share_finished"] = sum(m <= 2 for m in scored) / len(scored)
    is_ref = g.system == ctx.reference_system
    compared = [g.texts[i] for i in done if not (is_ref and i == 0)]
    union = ctx.sentence_vecs(compared)
    ref = ctx.ref_text[g.pid]
    ref_sent = ctx.sentence_vecs([ref]) if ref else np.zeros((0, 1), np.float32)
    if len(union):
        rec["coverage_union_finished"] = cov_mod.coverage(
            union, ref_sent if len(ref_sent) else np.zeros((0, union.shape[1])), ctx.tau
        )


def _reference_metrics(g: Group, ctx: GroupContext, rec: dict[str, Any]) -> None:
    """Similarity and coverage of each sample against the reference system's sample 0 for the same prompt.

    For the reference system itself sample 0 is skipped (its entries are ``null``): s1..s(N-1) vs s0 is the
    self-baseline.
    """
    ref = ctx.ref_text[g.pid]
    is_ref = g.system == ctx.reference_system
    idx = [i for i in range(len(g.texts)) if not (is_ref and i == 0)]
    compared = [g.texts[i] for i in idx]
    cov: list[float | None] = [None] * len(g.texts)
    miss: list[int | None] = [None] * len(g.texts)
    rec["coverage"], rec["missing"] = cov, miss
    if not compared:
        return
    ref_sent = ctx.sentence_vecs([ref]) if ref else np.zeros((0, 1), np.float32)
    for i in idx:
        sv = ctx.sentence_vecs([g.texts[i]])
        c = (
            cov_mod.coverage(sv, ref_sent if len(ref_sent) else np.zeros((0, sv.shape[1])), ctx.tau)
            if len(sv)
            else None
        )
        cov[i], miss[i] = c, cov_mod.missing_proxy(c, ctx.missing_cuts)
    rec["coverage"], rec["missing"] = cov, miss
    union = ctx.sentence_vecs(compared)
    if len(union):
        rec["coverage_union"] = cov_mod.coverage(
            union, ref_sent if len(ref_sent) else np.zeros((0, union.shape[1])), ctx.tau
        )
    rec["missing_mean"] = _mean(miss)
    # the paper's headline reading of "missing information": most of the sample is already in the reference
    scored = [m for m in miss if m is not None]
    rec["missing_le2_share"] = sum(m <= 2 for m in scored) / len(scored) if scored else None
    rec["jaccard_to_ref"] = _mean(_jaccard_to_ref_values(compared, ref, ctx.lowercase))
    if not ref:
        return
    ref_vec = ctx.vec[ref]
    nonempty = [t for t in compared if t]
    if nonempty:
        rec["cosine_to_ref"] = float(semantic.cosine_to_reference(_vectors(ctx, nonempty), ref_vec).mean())
    f1 = [semantic.bertscore_f1(ctx.tok[t], ctx.tok[ref], normalized=True)[2] if t else 0.0 for t in compared]
    rec["bertscore_f1_to_ref"] = _mean(f1)
    if ctx.bert_baseline is not None and rec["bertscore_f1_to_ref"] is not None:
        rec["bertscore_f1_to_ref_rescaled"] = semantic.rescale(rec["bertscore_f1_to_ref"], ctx.bert_baseline)


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run the block with numpy's OpenBLAS limited to one thread, when that library can be found.

    The per-sample matrix products of scoring are small (a few hundred rows); multi-threaded OpenBLAS spends
    more time waking and spinning threads than computing on them, by an order of magnitude on a busy 2-core
    machine. Nothing changes when the library or its thread functions cannot be found.
    """
    lib = _openblas()
    setter = getter = None
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("64_", ""):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None) if lib is not None else None
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None) if lib is not None else None
            if setter is not None and getter is not None:
                break
        if setter is not None and getter is not None:
            break
    if setter is None or getter is None:
        yield
        return
    before = int(getter())
    setter(1)
    try:
        yield
    finally:
        setter(before)


def _openblas() -> Any:
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None
