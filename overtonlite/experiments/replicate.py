"""``overtonlite replicate``: both claims end to end on the built-in prompt sets, with verdicts and a report.

One run directory holds everything: the ``base``, ``chat`` and ``urial`` systems on the open-ended and contested
sets (claim 1), the ICL conditions on the open-ended set (claim 2), ``metrics.jsonl`` / ``summary.json`` from
``overtonlite score`` with ``chat`` as the reference, ``results.json`` (pair, settings, claims with verdicts and
evidence, signature, banner) and, when the report module is installed, ``report.md`` / ``report.html``.

Sizes (recorded in ``results.json["settings"]``):

* :data:`QUICK`: 6 open-ended + 6 contested prompts, N=4, 80 new tokens, ICL grid {urial, knn+summary} on the 6
  open-ended prompts, example answers capped at 60 words. Sized for <= 180 s on an otherwise idle 2-core machine
  with the default pair cached (about 10k generated base-model tokens, 4k chat tokens, ~5k prompt tokens).
  Its 80-token cap cuts most answers (on the default pair all chat answers), so its length finding is
  inconclusive by construction and says so in a note line (:mod:`overtonlite.experiments.truncation`).
* :data:`FULL`: 20 + 20 prompts, N=5, 512 new tokens, the full grid {base, urial, fixed-aligned, knn} x {no hint,
  summary}, example answers capped at 120 words. The cap is sized on the default pair's natural answer lengths
  (measured with a 768-token cap on 6 + 6 prompts, N=2: SmolLM2-135M-Instruct answers in a median of 322 tokens
  on open-ended and 258 on contested prompts, so the former 192-token cap cut 88 % of them; at 512, 1 of 24
  chat samples is cut). About a fifth of the gemma-3-270m base samples never end (repetition loops, endless
  lists) and are cut at any cap; estimated 30-40 minutes on an idle 2-core machine.

``--n``, ``--max-tokens`` and ``--limit`` override the preset.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite import schema
from overtonlite.config import SamplingConfig
from overtonlite.errors import DataError, UsageError
from overtonlite.experiments.common import (
    CHAT,
    PairInfo,
    PairModels,
    check_pair,
    ensure_writable,
    open_pair,
    pair_info,
    read_results,
    write_results,
)
from overtonlite.experiments.diversity import CLAIM_PAIRS as DIVERSITY_PAIRS
from overtonlite.experiments.diversity import generate_diversity, overton_claim
from overtonlite.experiments.icl import (
    DEFAULT_CONDITIONS,
    check_pool,
    generate_icl,
    overflow_counts,
    parse_conditions,
    recoverability_claim,
)
from overtonlite.experiments.icl import claim_pairs as icl_pairs
from overtonlite.experiments.power import attach_values
from overtonlite.experiments.truncation import cap_note, gate_claim, run_shares
from overtonlite.rundir.manifest import recorded_layout, recorded_schedule


@dataclass(frozen=True)
class Preset:
    """The sizes of one replicate run."""

    open_ended: int
    contested: int
    n: int
    max_tokens: int
    conditions: tuple[str, ...]
    answer_cap_words: int
    k: int = 3


QUICK = Preset(
    open_ended=6, contested=6, n=4, max_tokens=80, conditions=("urial", "knn+summary"), answer_cap_words=60
)
FULL = Preset(
    open_ended=20, contested=20, n=5, max_tokens=512, conditions=DEFAULT_CONDITIONS, answer_cap_words=120
)


@dataclass
class ReplicateResult:
    """What :func:`replicate` wrote: the run directory, results.json content, report paths, timings."""

    out: Path
    results: dict[str, Any]
    report: Any = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def claims(self) -> dict[str, dict[str, Any]]:
        return self.results.get("claims") or {}


def settings_for(
    *,
    quick: bool,
    n: int | None,
    max_tokens: int | None,
    limit: int | None,
    seed: int,
    conditions: Sequence[str] | str | None = None,
    k: int | None = None,
) -> dict[str, Any]:
    """The effective settings: the preset, overridden by the given options."""
    preset = QUICK if quick else FULL
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    conds = [c.name for c in parse_conditions(conditions)] if conditions else list(preset.conditions)
    k = preset.k if k is None else k
    return {
        "preset": "quick" if quick else "full",
        "prompts": {"open-ended": limit or preset.open_ended, "contested": limit or preset.contested},
        "n": preset.n if n is None else n,
        "max_tokens": preset.max_tokens if max_tokens is None else max_tokens,
        "seed": seed,
        "conditions": conds,
        "k": k,
        "answer_cap_words": preset.answer_cap_words,
        "reference_system": CHAT,
        "sampling": {"temperature": 0.5, "repetition_penalty": 1.1, "top_p": "off", "top_k": "off"},
        "stops_base_prompts": ["```", "# Query"],
        "sets": {
            "diversity": ["open-ended", "contested"],
            "coverage": ["open-ended"],
            "stance": ["contested"],
            "icl": ["open-ended"],
        },
        "icl_set": "open-ended",
        "n_boot": schema.N_BOOT,
    }


def claim_pairs(conditions: Sequence[str]) -> list[tuple[str, str]]:
    """The paired differences the claims read from summary.json besides every system against ``chat``."""
    return [*DIVERSITY_PAIRS, *icl_pairs(conditions)]


def compute_claims(
    run_dir: str | Path,
    *,
    conditions: Sequence[str],
    which: Sequence[str] = ("overton", "recoverability"),
    icl_set: str | None = None,
    max_tokens: int | None = None,
    hinted: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The claims named in ``which`` from the run directory's summary.json (nothing is generated or recomputed:
    every estimate is a summary.json entry). The recoverability claim uses the prompt set ``icl_set`` (default:
    ``open-ended``).

    Findings comparing a system with more than 20 % of its samples cut at max_tokens are inconclusive
    (:mod:`overtonlite.experiments.truncation`; ``max_tokens`` only names the cap in the note that says so), and
    inconclusive findings state the prompts that would decide them, from the per-prompt values of metrics.jsonl
    (:mod:`overtonlite.experiments.power`). ``hinted`` names the hinted ICL conditions (default: names with a ``+``).
    """
    path = Path(run_dir)
    summary = schema.read_summary(path) or {}
    metrics = schema.read_metrics(path)
    cut = run_shares(path)
    claims: dict[str, dict[str, Any]] = {}
    if "overton" in which:
        claim = attach_values(gate_claim(overton_claim(summary), cut), metrics)
        if note := cap_note(claim, cut, max_tokens):
            claim.notes.append(note)
        claims["overton"] = claim.to_dict()
    if "recoverability" in which:
        claim = recoverability_claim(
            summary, list(conditions), set_name=icl_set, overflow=overflow_counts(path), hinted=hinted
        )
        claims["recoverability"] = attach_values(gate_claim(claim, cut), metrics).to_dict()
    return claims


def score_run(run_dir: str | Path, *, embedder: Any = None, seed: int | None = None) -> Any:
    """Recompute metrics.jsonl / summary.json of a run directory from its stored samples (nothing is generated),
    with ``chat`` as the reference when the run has it and the paired differences the claims read."""
    from overtonlite.scoring import score_input

    path = Path(run_dir)
    if not (path / schema.SAMPLES_FILE).is_file():
        raise DataError(f"{path / schema.SAMPLES_FILE}: cannot rescore, the run has no stored samples")
    old = read_results(path)
    settings = old.get("settings") or {}
    systems = {str(g.get("system")) for g in schema.read_groups(path)}
    reference = settings.get("reference_system") or CHAT
    if reference not in systems:
        reference = (
            (old.get("pair") or {}).get("chat") if (old.get("pair") or {}).get("chat") in systems else None
        )
    seed = int(settings.get("seed", 0) or 0) if seed is None else seed
    pairs = [p for p in claim_pairs(settings.get("conditions") or ()) if p[0] in systems and p[1] in systems]
    return score_input(
        path, out=path, reference_system=reference, stance=None, embedder=embedder, seed=seed, pairs=pairs
    )


def recompute_results(
    run_dir: str | Path, *, rescore: bool = False, embedder: Any = None
) -> dict[str, Any] | None:
    """Refresh the claims of ``run_dir/results.json`` from summary.json (``overtonlite report --rescore`` first
    rescores the stored samples with :func:`score_run`).

    Only the claims already in results.json are recomputed. Does nothing (returns None) when the directory has no
    results.json with claims, or no summary.json.
    """
    path = Path(run_dir)
    if rescore:
        score_run(path, embedder=embedder)
    old = read_results(path)
    settings = old.get("settings") or {}
    if not old.get("claims") or not (path / schema.SUMMARY_FILE).is_file():
        return None
    claims = compute_claims(
        path,
        conditions=settings.get("conditions") or (),
        which=list(old.get("claims") or ()),
        icl_set=settings.get("icl_set"),
        max_tokens=settings.get("max_tokens"),
        hinted=settings.get("hinted"),
    )
    # pair, banner and the other stored facts are kept as they are; only the claims are recomputed
    return write_results(
        path, pair=None, settings=settings, claims=claims, extra={"truncation": run_shares(path)}
    )


@contextlib.contextmanager
def _hint_writer(name: str | None, *, registry: Any, threads: int | None) -> Iterator[Any]:
    """The generator of ``--hint-model`` (None when not given), closed afterwards."""
    if not name:
        yield None
        return
    from overtonlite.backends import open_generator

    gen = open_generator(name, registry=registry, threads=threads)
    try:
        if not gen.has_chat_template():
            raise UsageError(f"the hint model '{name}' has no chat template; summaries need a chat model")
        yield gen
    finally:
        gen.close()


def _build_report(out: Path) -> Any:
    try:
        from overtonlite.report import build_report
    except ImportError:
        return None
    return build_report(out)


class _Session:
    """Opens (or adopts) the pair and the embedder; closes what it opened."""

    def __init__(
        self,
        pair: Any,
        *,
        models: PairModels | None,
        embedder: Any,
        registry: Any,
        threads: int | None,
        max_tokens: int | None = None,
        kv_layout: str | None = None,
        out: Path | None = None,
    ) -> None:
        self.own = models is None
        if models is None:  # max_tokens sizes the KV cache (see LlamaCppGenerator)
            # a resumed run keeps the KV layout it was sampled with (the layout decides the texts)
            layout = kv_layout or (recorded_layout(out) if out is not None else None)
            models = open_pair(
                pair,
                registry=registry,
                threads=threads,
                max_tokens=max_tokens,
                kv_layout=layout,
                schedule=recorded_schedule(out) if out is not None else None,  # ... and the engine's schedule
            )
        else:
            check_pair(models.base, models.chat, base_name=models.info.base, chat_name=models.info.chat)
        self.models = models
        if embedder is None:
            try:
                from overtonlite.backends import open_embedder

                embedder = open_embedder(registry=registry)
            except BaseException:
                self.close()
                raise
        self.embedder = embedder

    def close(self) -> None:
        if self.own:
            self.models.close()


def _finish(
    outdir: Path,
    session: _Session,
    settings: dict[str, Any],
    *,
    which: Sequence[str],
    stance: bool | None,
    report: bool,
    t0: float,
    timings: dict[str, float],
    judge: Any = None,
) -> ReplicateResult:
    from overtonlite.scoring import score_input

    t = time.perf_counter()
    old = read_results(outdir)
    old_settings = old.get("settings") or {}
    conditions = settings.get("conditions") or old_settings.get("conditions") or ()
    icl_set = settings.get("icl_set") or old_settings.get("icl_set")
    # stance=None: stance labels for the groups of the contested set only (never for open-ended answers)
    scored = score_input(
        outdir,
        out=outdir,
        reference_system=CHAT,
        stance=stance,
        embedder=session.embedder,
        seed=settings["seed"],
        pairs=claim_pairs(conditions),
        judge=judge,
    )
    if judge is not None:  # who judged, beside the proxy labels (metrics.jsonl *_judge keys)
        settings["judge"] = scored.settings.get("judge")
    timings["score"] = time.perf_counter() - t
    # metrics.jsonl was rewritten for every system: refresh the claims an earlier command left in results.json too
    which = list(dict.fromkeys([*(old.get("claims") or {}), *which]))
    claims = compute_claims(
        outdir, conditions=conditions, which=which, icl_set=icl_set, max_tokens=settings.get("max_tokens")
    )
    timings["total_before_report"] = time.perf_counter() - t0
    results = write_results(
        outdir,
        pair=session.models.info,
        settings=settings,
        claims=claims,
        extra={"timings": {k: round(v, 1) for k, v in timings.items()}, "truncation": run_shares(outdir)},
    )
    paths = None
    if report:
        t = time.perf_counter()
        paths = _build_report(outdir)
        timings["report"] = time.perf_counter() - t
    return ReplicateResult(
        out=outdir, results=results, report=paths, seconds=time.perf_counter() - t0, timings=timings
    )


def replicate(
    pair: str | Any = "default",
    *,
    out: str | Path,
    n: int | None = None,
    max_tokens: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    quick: bool = False,
    conditions: Sequence[str] | str | None = None,
    k: int | None = None,
    models: PairModels | None = None,
    embedder: Any = None,
    registry: Any = None,
    threads: int | None = None,
    kv_layout: str | None = None,
    report: bool = True,
    progress: Callable[[Any], None] | None = None,
    judge: Any = None,
    hint_model: str | None = None,
) -> ReplicateResult:
    """Run both claims on the built-in sets with ``pair`` and write ``out/results.json`` (+ the report).

    ``judge``: a registry chat model (local or served) that also judges stance and missing information while
    scoring (``score --judge``); off by default. ``hint_model``: a registry chat model (local or served) that writes
    the summary hints instead of the pair's chat model.

    ``kv_layout``: the llama.cpp KV layout of both local models ("unified" or "streams", see
    :class:`~overtonlite.backends.llamacpp.LlamaCppGenerator`); None keeps the layout ``out`` was sampled with,
    else the default (unified).

    ``models`` and ``embedder`` replace the registry's models and the default embedder (tests pass fakes).
    Raises UsageError for a wrongly typed pair (chat side without chat template, base side with one), too few
    prompts for kNN, unknown conditions, or an unwritable ``out``.
    """
    from overtonlite.datasets import load_prompts

    t0 = time.perf_counter()
    settings = settings_for(
        quick=quick, n=n, max_tokens=max_tokens, limit=limit, seed=seed, conditions=conditions, k=k
    )
    outdir = ensure_writable(out)
    oe = load_prompts("builtin:open-ended", limit=settings["prompts"]["open-ended"])
    cq = load_prompts("builtin:contested", limit=settings["prompts"]["contested"])
    settings["prompts"] = {"open-ended": len(oe), "contested": len(cq)}
    conds = parse_conditions(settings["conditions"])
    check_pool(oe, conds, settings["k"])
    sampling = SamplingConfig(max_tokens=settings["max_tokens"])
    timings: dict[str, float] = {}
    t = time.perf_counter()
    session = _Session(
        pair,
        models=models,
        embedder=embedder,
        registry=registry,
        threads=threads,
        max_tokens=settings["max_tokens"],
        kv_layout=kv_layout,
        out=outdir,
    )
    timings["load"] = time.perf_counter() - t
    try:
        settings["embedder"] = getattr(session.embedder, "name", None)
        t = time.perf_counter()
        generate_diversity(
            session.models.base,
            session.models.chat,
            [*oe, *cq],
            out=outdir,
            n=settings["n"],
            sampling=sampling,
            seed=seed,
            answer_cap_words=settings["answer_cap_words"],
            progress=progress,
        )
        timings["diversity_generate"] = time.perf_counter() - t
        t = time.perf_counter()
        with _hint_writer(hint_model, registry=registry, threads=threads) as hint_gen:
            generate_icl(
                session.models.base,
                session.models.chat,
                oe,
                conds,
                out=outdir,
                n=settings["n"],
                sampling=sampling,
                seed=seed,
                k=settings["k"],
                answer_cap_words=settings["answer_cap_words"],
                embedder=session.embedder,
                progress=progress,
                hint_model=hint_gen,
            )
        if hint_model:
            settings["hint_model"] = hint_model
        timings["icl_generate"] = time.perf_counter() - t
    finally:
        session.close()
    return _finish(
        outdir,
        session,
        settings,
        which=("overton", "recoverability"),
        stance=None,
        report=report,
        t0=t0,
        timings=timings,
        judge=judge,
    )


def run_diversity(
    pair: str | Any = "default",
    *,
    out: str | Path,
    prompts: Sequence[str] = ("builtin:open-ended", "builtin:contested"),
    n: int = 5,
    max_tokens: int = 256,
    limit: int | None = None,
    seed: int = 0,
    answer_cap_words: int = 120,
    models: PairModels | None = None,
    embedder: Any = None,
    registry: Any = None,
    threads: int | None = None,
    kv_layout: str | None = None,
    report: bool = True,
    progress: Callable[[Any], None] | None = None,
) -> ReplicateResult:
    """Claim 1 alone: sample base / chat / urial on ``prompts`` (prompt set specs), score, judge, write results."""
    from overtonlite.datasets import load_prompts

    t0 = time.perf_counter()
    outdir = ensure_writable(out)
    plist = [p for spec in prompts for p in load_prompts(spec, limit=limit)]
    settings: dict[str, Any] = {
        "prompts": {str(spec): min(limit or 10**9, len(load_prompts(spec))) for spec in prompts},
        "n": n,
        "max_tokens": max_tokens,
        "seed": seed,
        "answer_cap_words": answer_cap_words,
        "reference_system": CHAT,
    }
    session = _Session(
        pair,
        models=models,
        embedder=embedder,
        registry=registry,
        threads=threads,
        max_tokens=settings["max_tokens"],
        kv_layout=kv_layout,
        out=outdir,
    )
    timings: dict[str, float] = {}
    try:
        settings["embedder"] = getattr(session.embedder, "name", None)
        generate_diversity(
            session.models.base,
            session.models.chat,
            plist,
            out=outdir,
            n=n,
            sampling=SamplingConfig(max_tokens=max_tokens),
            seed=seed,
            answer_cap_words=answer_cap_words,
            progress=progress,
        )
        timings["generate"] = time.perf_counter() - t0
    finally:
        session.close()
    return _finish(
        outdir, session, settings, which=("overton",), stance=None, report=report, t0=t0, timings=timings
    )


def run_icl(
    pair: str | Any = "default",
    *,
    out: str | Path,
    prompts: str = "builtin:open-ended",
    conditions: Sequence[str] | str = DEFAULT_CONDITIONS,
    k: int = 3,
    n: int = 5,
    max_tokens: int = 256,
    limit: int | None = None,
    seed: int = 0,
    answer_cap_words: int = 120,
    models: PairModels | None = None,
    embedder: Any = None,
    registry: Any = None,
    threads: int | None = None,
    kv_layout: str | None = None,
    report: bool = True,
    progress: Callable[[Any], None] | None = None,
) -> ReplicateResult:
    """Claim 2 alone: the chat reference and the ICL conditions on ``prompts``, scored against chat sample 0."""
    from overtonlite.datasets import load_prompts

    t0 = time.perf_counter()
    conds = parse_conditions(conditions)
    plist = load_prompts(prompts, limit=limit)
    check_pool(plist, conds, k)
    outdir = ensure_writable(out)
    settings: dict[str, Any] = {
        "prompts": {str(prompts): len(plist)},
        "n": n,
        "max_tokens": max_tokens,
        "seed": seed,
        "k": k,
        "conditions": [c.name for c in conds],
        "answer_cap_words": answer_cap_words,
        "reference_system": CHAT,
        "icl_prompt_ids": [p.id for p in plist],
        "icl_set": _set_of(plist),
    }
    session = _Session(
        pair,
        models=models,
        embedder=embedder,
        registry=registry,
        threads=threads,
        max_tokens=settings["max_tokens"],
        kv_layout=kv_layout,
        out=outdir,
    )
    timings: dict[str, float] = {}
    try:
        settings["embedder"] = getattr(session.embedder, "name", None)
        generate_icl(
            session.models.base,
            session.models.chat,
            plist,
            conds,
            out=outdir,
            n=n,
            sampling=SamplingConfig(max_tokens=max_tokens),
            seed=seed,
            k=k,
            answer_cap_words=answer_cap_words,
            embedder=session.embedder,
            progress=progress,
        )
        timings["generate"] = time.perf_counter() - t0
    finally:
        session.close()
    return _finish(
        outdir,
        session,
        settings,
        which=("recoverability",),
        stance=None,
        report=report,
        t0=t0,
        timings=timings,
    )


def _set_of(prompts: Sequence[Any]) -> str:
    """The prompt set the ICL prompts form: their common ``set`` name, else ``all``."""
    names = {p.meta.get("set") for p in prompts}
    return str(next(iter(names))) if len(names) == 1 and None not in names else schema.ALL


def fake_pair_info(base: str, chat: str, *, same_family: bool = False) -> PairInfo:
    """A PairInfo for models that are not in the registry (tests, custom generators)."""
    return PairInfo(name=f"{base}+{chat}", base=base, chat=chat, same_family=same_family)


__all__ = [
    "FULL",
    "QUICK",
    "Preset",
    "ReplicateResult",
    "claim_pairs",
    "compute_claims",
    "fake_pair_info",
    "pair_info",
    "recompute_results",
    "replicate",
    "score_run",
    "run_diversity",
    "run_icl",
    "settings_for",
]
