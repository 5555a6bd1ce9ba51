"""``overtonlite score``: turn groups of samples into the paper's measurements.

Input: a run directory (its ``samples.jsonl``) or any responses JSONL (see :mod:`overtonlite.scoring.inputs`).
Output: ``OUT/metrics.jsonl`` (one record per (system, prompt_id) with every key of :data:`RECORD_KEYS`, ``null``
when absent) and ``OUT/summary.json`` (per system and prompt set, means with seeded bootstrap 95% CIs over prompts;
paired differences and ratios per set; the settings; the inter-system similarity of
:mod:`overtonlite.scoring.crosssys`; layout in :mod:`overtonlite.schema`). Scoring never generates text, and it is idempotent: the same input and options give
byte-identical files. Every distinct text (samples, prompts, and the sentences of samples when coverage is
computed) goes through the embedder once; the embedder caches by text hash.

Quality filter: a sample passes when it is not degenerate (:func:`overtonlite.metrics.style.is_degenerate`) and its
relevance cos(query, answer) is at least the threshold (no relevance test when the prompt text is unknown). The
default threshold, :data:`DEFAULT_QUALITY_THRESHOLD`, is the 95th percentile of cross-prompt relevance (an answer to
another LIMA-OE prompt scored against the query) on the authors' reference data with all-MiniLM-L6-v2: an answer
below it is no closer to its own question than 95% of answers to unrelated questions. The threshold, the coverage
threshold tau and the missing-information cut points come from the embedder's registry calibration when it has one
(the same measurement made with that embedder), else from these defaults; ``summary.json`` records the source.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite import schema
from overtonlite.errors import UsageError
from overtonlite.metrics import coverage as cov_mod
from overtonlite.rundir.atomic import holding_run_lock, storage_errors
from overtonlite.rundir.manifest import portable_path
from overtonlite.scoring.agg import build_summary
from overtonlite.scoring.beyond import settings as beyond_settings
from overtonlite.scoring.crosssys import similarity_summary
from overtonlite.scoring.group import GroupContext, score_group, single_thread_blas
from overtonlite.scoring.inputs import Group, read_input
from overtonlite.util import sha256_file

# cross-prompt 95th percentile 0.237 (module docstring); benchmarks/reference_check.py recomputes it
DEFAULT_QUALITY_THRESHOLD = 0.24
UNCALIBRATED = "defaults (all-minilm-l6-v2); this embedder has no calibration"
"""``settings["calibration"]`` when the embedder has no registry calibration and the defaults above are used."""

RECORD_KEYS: tuple[str, ...] = schema.METRIC_KEYS
"""Every metrics.jsonl record has these keys (see :data:`overtonlite.schema.METRIC_KEYS`)."""

_AUX = (
    "is",
    "are",
    "was",
    "were",
    "am",
    "do",
    "does",
    "did",
    "can",
    "could",
    "should",
    "would",
    "will",
    "shall",
    "may",
    "might",
    "must",
    "has",
    "have",
    "had",
    "isn't",
    "aren't",
    "doesn't",
    "don't",
    "didn't",
    "can't",
    "won't",
    "shouldn't",
    "wouldn't",
)
_YESNO = re.compile(
    r"^\s*(?:" + "|".join(re.escape(a) for a in _AUX) + r")\b.*\?\s*$", re.IGNORECASE | re.DOTALL
)


@dataclass
class ScoreSummary:
    """What :func:`score_input` computed: ``systems``, ``paired`` and ``ratios`` are those blocks of summary.json
    (``systems[SYSTEM]["sets"][SET][METRIC] = {"mean", "ci", "n_prompts"}``)."""

    systems: dict[str, dict[str, Any]]
    paired: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    errors: list[dict[str, Any]]
    n_groups: int
    metrics_path: Path
    summary_path: Path
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, dict[str, Any]] = field(default_factory=dict)
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)


def is_yes_no_question(text: str | None) -> bool:
    """A prompt that starts with an auxiliary verb and ends with a question mark."""
    return bool(text) and bool(_YESNO.match(text or ""))


def should_score_stance(groups: list[Group]) -> bool:
    """Auto rule: every group is from the contested set, or every prompt text is a yes/no question."""
    if not groups:
        return False
    if all(g.prompt_set == "contested" for g in groups):
        return True
    return all(is_yes_no_question(g.prompt) for g in groups)


def _open_embedder(embedder: Any) -> Any:
    if embedder is None or isinstance(embedder, str):
        from overtonlite.backends import open_embedder

        return open_embedder(embedder)
    return embedder


@holding_run_lock
def score_input(
    input_path: str | Path,
    *,
    out: str | Path,
    reference_system: str | None = None,
    stance: bool | None = None,
    lowercase: bool = False,
    embedder: Any = None,
    seed: int = 0,
    quality_threshold: float | None = None,
    tau: float | None = None,
    n_boot: int = schema.N_BOOT,
    pairs: Sequence[tuple[str, str]] = (),
    judge: Any = None,
    judge_tasks: Any = "stance,missing",
) -> ScoreSummary:
    """Score INPUT and write ``out/metrics.jsonl`` and ``out/summary.json``.

    ``embedder``: an Embedder, a registry embedder name, or ``None`` for the registry default. ``stance``: ``None``
    scores stance when the prompts are yes/no questions (see :func:`should_score_stance`), ``True`` forces it,
    ``False`` skips it. ``reference_system`` names the aligned system whose sample 0 is the reference for coverage,
    the missing-information proxy and similarity-to-reference. ``tau`` overrides the calibrated coverage threshold.
    ``pairs``: extra ``(A, B)`` paired differences for summary.json besides every system against the reference.
    Summary values are per prompt set (each ``set`` of the input, and ``all``); stance metrics only exist for the
    sets whose groups had stance scored.
    ``judge`` (a registry chat model name or a :class:`~overtonlite.judges.Judge`) adds judge labels beside the
    proxy labels for ``judge_tasks`` (see :mod:`overtonlite.judges.apply`); off by default.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if isinstance(judge, str):  # a wrong judge name or task fails before any work
        from overtonlite.judges.apply import check_judge

        check_judge(judge, judge_tasks)
    path, groups = read_input(input_path)
    errors = [
        {"system": g.system, "prompt_id": g.pid, "error": g.error} for g in groups if g.error is not None
    ]
    scored = [g for g in groups if g.error is None]
    systems = list(dict.fromkeys(g.system for g in groups))
    if reference_system is not None and reference_system not in systems:
        raise UsageError(
            f"reference system {reference_system!r} is not in {path} (systems: {', '.join(systems)})"
        )
    if stance is None:  # auto: the whole input is contested, or per group: groups of the contested set
        whole = should_score_stance(scored)
        stance_groups = {(g.system, g.pid) for g in scored if whole or g.prompt_set == "contested"}
    else:
        stance_groups = {(g.system, g.pid) for g in scored} if stance else set()
    do_stance = bool(stance_groups)
    emb = _open_embedder(embedder)
    calib = getattr(emb, "calibration", None)
    if calib is not None:
        cal_source = f"embedder {getattr(emb, 'name', '?')}"
        d_threshold, d_tau, cuts = calib.quality_threshold, calib.coverage_tau, tuple(calib.missing_cuts)
    else:
        cal_source = UNCALIBRATED
        d_threshold, d_tau, cuts = DEFAULT_QUALITY_THRESHOLD, cov_mod.DEFAULT_TAU, cov_mod.MISSING_CUTS
    threshold = d_threshold if quality_threshold is None else float(quality_threshold)
    tau_v = d_tau if tau is None else float(tau)
    timings["read"] = time.perf_counter() - t0

    with single_thread_blas():  # small matrix products: threaded BLAS only adds overhead here
        ctx = GroupContext.build(
            scored,
            emb,
            reference_system=reference_system,
            lowercase=lowercase,
            stance=frozenset(stance_groups),
            seed=seed,
            quality_threshold=threshold,
            tau=tau_v,
            missing_cuts=cuts,
            timings=timings,
        )
        t1 = time.perf_counter()
        records = [score_group(g, ctx) for g in scored]
        timings["metrics"] = time.perf_counter() - t1

    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    judge_info = None
    if judge is not None:
        from overtonlite.judges.apply import run_judge

        t3 = time.perf_counter()
        judge_info = run_judge(
            records, scored, judge, tasks=judge_tasks, reference_system=reference_system, out=outdir
        )
        timings["judge"] = time.perf_counter() - t3
    metrics_path = outdir / "metrics.jsonl"
    summary_path = outdir / "summary.json"
    with storage_errors(metrics_path):  # disk full / read-only: one line naming the file; no temp file left
        schema.write_metrics(metrics_path, records)

    t2 = time.perf_counter()
    blocks = build_summary(
        records,
        systems=systems,
        reference_system=reference_system,
        seed=seed,
        n_boot=n_boot,
        stance_groups={(s, str(p)) for s, p in stance_groups},
        pairs=pairs,
    )
    timings["bootstrap"] = time.perf_counter() - t2
    settings = {
        "input": portable_path(path),  # no home paths in output files
        "input_sha256": sha256_file(path),
        "embedder": emb.describe() if hasattr(emb, "describe") else {"name": getattr(emb, "name", "?")},
        "lexical_tokenizer": _lexical_identity(),
        "lowercase": lowercase,
        "seed": seed,
        "n_boot": n_boot,
        "ci": 0.95,
        "tau": tau_v,
        "missing_cuts": list(cuts),
        "calibration": cal_source,
        "quality_threshold": threshold,
        "stance_scored": do_stance,
        "stance_sets": [
            name
            for name in schema.set_names({"systems": blocks["systems"]})
            if any("stance_both_share" in (e["sets"].get(name) or {}) for e in blocks["systems"].values())
        ],
        "pairs": [list(p) for p in pairs],
        "reference_system": reference_system,
        "bertscore": ctx.bertscore_settings(),
        "distinct": beyond_settings(getattr(emb, "name", None)),
        "n_groups_scored": len(scored),
        "n_groups_failed": len(errors),
    }
    if judge_info is not None:
        settings["judge"] = judge_info
    summary = {
        "systems": blocks["systems"],
        "paired": blocks["paired"],
        "ratios": blocks["ratios"],
        "sets": blocks["sets"],
        "settings": settings,
        "errors": errors,
        "similarity": similarity_summary(scored, ctx.vec, systems),  # inter-system matrix, histograms
    }
    with storage_errors(summary_path):
        schema.write_summary(summary_path, summary)
    return ScoreSummary(
        systems=blocks["systems"],
        paired=blocks["paired"],
        ratios=blocks["ratios"],
        sets=blocks["sets"],
        settings=settings,
        errors=errors,
        n_groups=len(scored),
        metrics_path=metrics_path,
        summary_path=summary_path,
        seconds=time.perf_counter() - t0,
        timings=timings,
    )


def _lexical_identity() -> str:
    from overtonlite.metrics import lexical

    for attr in ("TOKENIZER_DESCRIPTION", "TOKENIZER", "DESCRIPTION"):
        val = getattr(lexical, attr, None)
        if isinstance(val, str):
            return val
    return "NLTK Punkt (default parameters) + NLTKWordTokenizer; punctuation-only tokens and NLTK stop words dropped"
