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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite.config import SamplingConfig
from overtonlite.errors import UsageError
from overtonlite.experiments import evidence as ev
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
from overtonlite.experiments.diversity import generate_diversity, overton_claim, prompt_sets
from overtonlite.experiments.icl import (
    DEFAULT_CONDITIONS,
    check_pool,
    generate_icl,
    overflow_counts,
    parse_conditions,
    recoverability_claim,
)
from overtonlite.experiments.truncation import cap_note, gate_claim, run_shares


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


QUICK = Preset(open_ended=6, contested=6, n=4, max_tokens=80, conditions=("urial", "knn+summary"),
               answer_cap_words=60)
FULL = Preset(open_ended=20, contested=20, n=5, max_tokens=512, conditions=DEFAULT_CONDITIONS, answer_cap_words=120)


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


def settings_for(*, quick: bool, n: int | None, max_tokens: int | None, limit: int | None, seed: int,
                 conditions: Sequence[str] | str | None = None, k: int | None = None) -> dict[str, Any]:
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
        "sets": {"diversity": ["open-ended", "contested"], "coverage": ["open-ended"], "stance": ["contested"],
                 "icl": ["open-ended"]},
    }


def compute_claims(
    run_dir: str | Path,
    *,
    conditions: Sequence[str],
    seed: int = 0,
    which: Sequence[str] = ("overton", "recoverability"),
    icl_prompt_ids: Sequence[str] | None = None,
    max_tokens: int | None = None,
    hinted: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The claims named in ``which`` from what the run directory stores (metrics.jsonl, samples.jsonl).

    Nothing is generated. ICL prompts default to the open-ended prompt ids of the run. Findings comparing a system
    with more than 20 % of its samples cut at max_tokens are inconclusive (:mod:`overtonlite.experiments.truncation`);
    ``max_tokens`` only names the cap in the note that says so. ``hinted`` names the hinted ICL conditions
    (default: the condition names with a ``+``).
    """
    path = Path(run_dir)
    metrics = ev.read_jsonl(path / "metrics.jsonl")
    sets = prompt_sets(path)
    cut = run_shares(path)
    claims: dict[str, dict[str, Any]] = {}
    if "overton" in which:
        claim = gate_claim(overton_claim(metrics, sets, seed=seed), cut)
        if note := cap_note(claim, cut, max_tokens):
            claim.notes.append(note)
        claims["overton"] = claim.to_dict()
    if "recoverability" in which:
        ids = list(icl_prompt_ids) if icl_prompt_ids is not None else sets["open-ended"]
        claims["recoverability"] = gate_claim(recoverability_claim(
            metrics, ids, list(conditions), overflow=overflow_counts(path), seed=seed, hinted=hinted
        ), cut).to_dict()
    return claims


def recompute_results(run_dir: str | Path) -> dict[str, Any] | None:
    """Refresh the claims of ``run_dir/results.json`` from the stored metrics (used by ``overtonlite report``).

    Only the claims already in results.json are recomputed. Does nothing (returns None) when the directory has no
    results.json with claims, or no metrics.jsonl.
    """
    path = Path(run_dir)
    old = read_results(path)
    settings = old.get("settings") or {}
    if not old.get("claims") or not (path / "metrics.jsonl").is_file():
        return None
    claims = compute_claims(path, conditions=settings.get("conditions") or (), seed=int(settings.get("seed", 0)),
                            which=list(old.get("claims") or ()), icl_prompt_ids=settings.get("icl_prompt_ids"),
                            max_tokens=settings.get("max_tokens"), hinted=settings.get("hinted"))
    # pair, banner and the other stored facts are kept as they are; only the claims (and truncation) are recomputed
    return write_results(path, pair=None, settings=settings, claims=claims,
                         extra={"truncation": run_shares(path)})


def _build_report(out: Path) -> Any:
    try:
        from overtonlite.report import build_report
    except ImportError:
        return None
    return build_report(out, refresh_results=False)


class _Session:
    """Opens (or adopts) the pair and the embedder; closes what it opened."""

    def __init__(self, pair: Any, *, models: PairModels | None, embedder: Any, registry: Any,
                 threads: int | None) -> None:
        self.own = models is None
        if models is None:
            models = open_pair(pair, registry=registry, threads=threads)
        else:
            check_pair(models.base, models.chat, base_name=models.info.base, chat_name=models.info.chat)
        self.models = models
        if embedder is None:
            try:
                from overtonlite.backends.onnx import open_default_embedder

                embedder = open_default_embedder()
            except BaseException:
                self.close()
                raise
        self.embedder = embedder

    def close(self) -> None:
        if self.own:
            self.models.close()


def _finish(outdir: Path, session: _Session, settings: dict[str, Any], *, which: Sequence[str], stance: bool | None,
            report: bool, t0: float, timings: dict[str, float], icl_ids: Sequence[str] | None = None,
            ) -> ReplicateResult:
    from overtonlite.scoring import score_input

    t = time.perf_counter()
    if stance is None:  # score stance whenever the directory holds contested prompts (from this run or another)
        stance = True if prompt_sets(outdir)["contested"] else None
    score_input(outdir, out=outdir, reference_system=CHAT, stance=stance, embedder=session.embedder,
                seed=settings["seed"])
    timings["score"] = time.perf_counter() - t
    # metrics.jsonl was rewritten for every system: refresh the claims an earlier command left in results.json too
    old = read_results(outdir)
    which = list(dict.fromkeys([*(old.get("claims") or {}), *which]))
    old_settings = old.get("settings") or {}
    conditions = settings.get("conditions") or old_settings.get("conditions") or ()
    icl_ids = icl_ids if icl_ids is not None else old_settings.get("icl_prompt_ids")
    claims = compute_claims(outdir, conditions=conditions, seed=settings["seed"], which=which,
                            icl_prompt_ids=icl_ids, max_tokens=settings.get("max_tokens"))
    timings["total_before_report"] = time.perf_counter() - t0
    results = write_results(outdir, pair=session.models.info, settings=settings, claims=claims,
                            extra={"timings": {k: round(v, 1) for k, v in timings.items()},
                                   "truncation": run_shares(outdir)})
    paths = None
    if report:
        t = time.perf_counter()
        paths = _build_report(outdir)
        timings["report"] = time.perf_counter() - t
    return ReplicateResult(out=outdir, results=results, report=paths, seconds=time.perf_counter() - t0,
                           timings=timings)


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
    report: bool = True,
    progress: Callable[[Any], None] | None = None,
) -> ReplicateResult:
    """Run both claims on the built-in sets with ``pair`` and write ``out/results.json`` (+ the report).

    ``models`` and ``embedder`` replace the registry's models and the default embedder (tests pass fakes).
    Raises UsageError for a wrongly typed pair (chat side without chat template, base side with one), too few
    prompts for kNN, unknown conditions, or an unwritable ``out``.
    """
    from overtonlite.datasets import load_prompts

    t0 = time.perf_counter()
    settings = settings_for(quick=quick, n=n, max_tokens=max_tokens, limit=limit, seed=seed,
                            conditions=conditions, k=k)
    outdir = ensure_writable(out)
    oe = load_prompts("builtin:open-ended", limit=settings["prompts"]["open-ended"])
    cq = load_prompts("builtin:contested", limit=settings["prompts"]["contested"])
    settings["prompts"] = {"open-ended": len(oe), "contested": len(cq)}
    conds = parse_conditions(settings["conditions"])
    check_pool(oe, conds, settings["k"])
    sampling = SamplingConfig(max_tokens=settings["max_tokens"])
    timings: dict[str, float] = {}
    t = time.perf_counter()
    session = _Session(pair, models=models, embedder=embedder, registry=registry, threads=threads)
    timings["load"] = time.perf_counter() - t
    try:
        settings["embedder"] = getattr(session.embedder, "name", None)
        t = time.perf_counter()
        generate_diversity(session.models.base, session.models.chat, [*oe, *cq], out=outdir, n=settings["n"],
                           sampling=sampling, seed=seed, answer_cap_words=settings["answer_cap_words"],
                           progress=progress)
        timings["diversity_generate"] = time.perf_counter() - t
        t = time.perf_counter()
        generate_icl(session.models.base, session.models.chat, oe, conds, out=outdir, n=settings["n"],
                     sampling=sampling, seed=seed, k=settings["k"], answer_cap_words=settings["answer_cap_words"],
                     embedder=session.embedder, progress=progress)
        timings["icl_generate"] = time.perf_counter() - t
    finally:
        session.close()
    return _finish(outdir, session, settings, which=("overton", "recoverability"), stance=None, report=report,
                   t0=t0, timings=timings)


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
        "n": n, "max_tokens": max_tokens, "seed": seed, "answer_cap_words": answer_cap_words,
        "reference_system": CHAT,
    }
    session = _Session(pair, models=models, embedder=embedder, registry=registry, threads=threads)
    timings: dict[str, float] = {}
    try:
        settings["embedder"] = getattr(session.embedder, "name", None)
        generate_diversity(session.models.base, session.models.chat, plist, out=outdir, n=n,
                           sampling=SamplingConfig(max_tokens=max_tokens), seed=seed,
                           answer_cap_words=answer_cap_words, progress=progress)
        timings["generate"] = time.perf_counter() - t0
    finally:
        session.close()
    return _finish(outdir, session, settings, which=("overton",), stance=None, report=report, t0=t0,
                   timings=timings)


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
        "prompts": {str(prompts): len(plist)}, "n": n, "max_tokens": max_tokens, "seed": seed, "k": k,
        "conditions": [c.name for c in conds], "answer_cap_words": answer_cap_words, "reference_system": CHAT,
        "icl_prompt_ids": [p.id for p in plist],
    }
    session = _Session(pair, models=models, embedder=embedder, registry=registry, threads=threads)
    timings: dict[str, float] = {}
    try:
        settings["embedder"] = getattr(session.embedder, "name", None)
        generate_icl(session.models.base, session.models.chat, plist, conds, out=outdir, n=n,
                     sampling=SamplingConfig(max_tokens=max_tokens), seed=seed, k=k,
                     answer_cap_words=answer_cap_words, embedder=session.embedder, progress=progress)
        timings["generate"] = time.perf_counter() - t0
    finally:
        session.close()
    return _finish(outdir, session, settings, which=("recoverability",), stance=None, report=report, t0=t0,
                   timings=timings, icl_ids=[p.id for p in plist])


def fake_pair_info(base: str, chat: str, *, same_family: bool = False) -> PairInfo:
    """A PairInfo for models that are not in the registry (tests, custom generators)."""
    return PairInfo(name=f"{base}+{chat}", base=base, chat=chat, same_family=same_family)


__all__ = [
    "FULL",
    "QUICK",
    "Preset",
    "ReplicateResult",
    "compute_claims",
    "fake_pair_info",
    "pair_info",
    "recompute_results",
    "replicate",
    "run_diversity",
    "run_icl",
    "settings_for",
]
