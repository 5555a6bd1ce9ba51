"""overtonlite: a CPU-first toolkit for measuring what alignment does to an LLM's output distribution.

It replicates, at laptop scale, Lake, Choi & Durrett, "From Distributional to Overton Pluralism:
Investigating Large Language Model Alignment" (arXiv 2406.17692).

The Python API is this module's functions; each is the library call behind a CLI command::

    import overtonlite as ol

    chat = ol.load_model("smollm2-135m-instruct")
    ol.sample(chat, "builtin:contested", out="runs/demo", n=5, limit=5, max_tokens=128)
    summary = ol.score("runs/demo")
    run = ol.read_run("runs/demo")
    print(run.value("smollm2-135m-instruct", "contested", "stance_both_share"))

Importing the package is cheap: every function imports what it needs when it is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from overtonlite.backends.base import Embedder, Generator
    from overtonlite.datasets import Prompt
    from overtonlite.experiments.common import PairModels
    from overtonlite.experiments.replicate import ReplicateResult
    from overtonlite.report import ReportPaths
    from overtonlite.sampling import SampleRunSummary
    from overtonlite.scoring import ScoreSummary

__all__ = [
    "Run",
    "__version__",
    "load_embedder",
    "load_model",
    "load_pair",
    "read_run",
    "replicate",
    "write_report",
    "sample",
    "score",
]

PathLike = str | os.PathLike[str]


def load_model(
    name: str, *, n_ctx: int = 2048, threads: int | None = None, max_tokens: int | None = None
) -> Generator:
    """Open a registry model (``overtonlite models list``) with the llama.cpp engine, pulling it into the cache
    first if needed. ``max_tokens`` (the longest sample you will ask for) sizes its KV cache, as ``replicate``
    does. Close it with ``.close()``."""
    from overtonlite.experiments.common import open_model

    return open_model(name, n_ctx=n_ctx, threads=threads, max_tokens=max_tokens)


def load_pair(
    pair: str = "default", *, n_ctx: int = 2048, threads: int | None = None, max_tokens: int | None = None
) -> PairModels:
    """Open both models of a registry pair and check their roles (the base model has no chat template, the chat
    model has one). ``.info`` describes the pair, ``.base`` / ``.chat`` are the generators; ``.close()``.
    ``max_tokens`` sizes the KV caches (see :func:`load_model`)."""
    from overtonlite.experiments.common import open_pair

    return open_pair(pair, n_ctx=n_ctx, threads=threads, max_tokens=max_tokens)


def load_embedder(name: str | None = None) -> Embedder:
    """Open a registry sentence embedder (default: the registry's default): local ONNX with its on-disk cache, or
    served over ``/v1/embeddings``."""
    from overtonlite.backends import open_embedder

    return open_embedder(name)


def sample(
    generator: Generator,
    prompts: str | Sequence[str | Prompt],
    *,
    out: PathLike,
    n: int = 5,
    limit: int | None = None,
    system: str | None = None,
    mode: str = "auto",
    seed: int = 0,
    temperature: float = 0.5,
    repetition_penalty: float = 1.1,
    max_tokens: int = 256,
    progress: Callable[[Any], None] | None = None,
) -> SampleRunSummary:
    """Generate ``n`` samples per prompt into ``out/samples.jsonl`` (resuming what is already there).

    ``prompts``: a prompt-set spec (``"builtin:open-ended"``, ``"builtin:contested"``, a ``.jsonl`` / ``.csv``
    path) or a list of prompt texts / :class:`~overtonlite.datasets.Prompt`; ``limit`` keeps the first prompts.
    ``mode``: ``"chat"`` (the model's chat template), ``"raw"``, or ``"auto"`` (chat when the model has a
    template). The sampling settings default to the paper's (temperature 0.5, repetition penalty 1.1, no top-p /
    top-k).
    """
    from overtonlite.config import SamplingConfig
    from overtonlite.datasets import Prompt, load_prompts
    from overtonlite.sampling import sample_run

    if isinstance(prompts, str):
        plist = load_prompts(prompts, limit=limit)
    else:
        plist = [
            p if isinstance(p, Prompt) else Prompt(id=str(i), text=str(p)) for i, p in enumerate(prompts)
        ]
        plist = plist[:limit] if limit is not None else plist
    cfg = SamplingConfig(
        temperature=temperature, repetition_penalty=repetition_penalty, max_tokens=max_tokens
    )
    return sample_run(
        generator, plist, out=out, system=system, n=n, sampling=cfg, seed=seed, mode=mode, progress=progress
    )


def score(
    input_path: PathLike,
    *,
    out: PathLike | None = None,
    reference_system: str | None = None,
    stance: bool | None = None,
    embedder: Any = None,
    seed: int = 0,
) -> ScoreSummary:
    """Score a run directory or a responses JSONL into ``out/metrics.jsonl`` and ``out/summary.json`` (``out``
    defaults to the run directory itself, or the JSONL's folder). ``reference_system`` names the aligned system
    whose sample 0 is the reference for coverage and similarity; ``stance=None`` scores stance on the contested
    prompts only. See :mod:`overtonlite.schema` for the files' layout."""
    from overtonlite.scoring import score_input

    src = Path(input_path)
    target = out if out is not None else (src if src.is_dir() else src.parent)
    return score_input(
        src, out=target, reference_system=reference_system, stance=stance, embedder=embedder, seed=seed
    )


def replicate(
    pair: str = "default",
    *,
    out: PathLike,
    quick: bool = False,
    n: int | None = None,
    max_tokens: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    report: bool = True,
    progress: Callable[[Any], None] | None = None,
) -> ReplicateResult:
    """Both claims of the paper end to end on the built-in prompt sets with a registry pair: samples, metrics,
    verdicts (``out/results.json``) and, with ``report``, ``report.md`` / ``report.html``. ``quick`` is the small
    preset of ``overtonlite replicate --quick``."""
    from overtonlite.experiments.replicate import replicate as run_replicate

    return run_replicate(
        pair,
        out=out,
        quick=quick,
        n=n,
        max_tokens=max_tokens,
        limit=limit,
        seed=seed,
        report=report,
        progress=progress,
    )


def write_report(run_dir: PathLike, *, plots: bool = True, stance_set: str | None = None) -> ReportPaths:
    """Write ``report.md`` and ``report.html`` of a run directory from the files it holds (nothing is
    recomputed). (Not named ``report``: that is the subpackage :mod:`overtonlite.report`.)"""
    from overtonlite.report import build_report

    return build_report(run_dir, plots=plots, stance_set=stance_set)


@dataclass
class Run:
    """A run directory's files as read by :func:`read_run` (absent files are None or empty); the layout is
    :mod:`overtonlite.schema`."""

    path: Path
    manifest: dict[str, Any] | None
    summary: dict[str, Any] | None
    results: dict[str, Any] | None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def systems(self) -> list[str]:
        """The systems of the run (manifest order, then summary.json's)."""
        names = [*((self.manifest or {}).get("systems") or {}), *((self.summary or {}).get("systems") or {})]
        return list(dict.fromkeys(names))

    @property
    def sets(self) -> list[str]:
        """The prompt sets summary.json has values for (``all`` last)."""
        from overtonlite.schema import set_names

        return set_names(self.summary)

    @property
    def claims(self) -> dict[str, Any]:
        """results.json's claims (``{}`` when there are none)."""
        return (self.results or {}).get("claims") or {}

    def value(self, system: str, set_name: str, metric: str) -> dict[str, Any] | None:
        """summary.json's ``{"mean", "ci", "n_prompts"}`` of one metric for one system and prompt set."""
        from overtonlite.schema import summary_stat

        return summary_stat(self.summary, system, set_name, metric)

    def paired(self, a: str, b: str, set_name: str, metric: str) -> dict[str, Any] | None:
        """summary.json's paired difference ``a - b`` on one prompt set."""
        from overtonlite.schema import paired_stat

        return paired_stat(self.summary, a, b, set_name, metric)


def read_run(run_dir: PathLike) -> Run:
    """Read a run directory: manifest.json, summary.json, results.json, metrics.jsonl and samples.jsonl."""
    from overtonlite import schema
    from overtonlite.errors import DataError

    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"{path}: run directory not found")
    samples = path / schema.SAMPLES_FILE
    return Run(
        path=path,
        manifest=schema.read_manifest(path),
        summary=schema.read_summary(path),
        results=schema.read_results(path),
        metrics=schema.read_metrics(path),
        groups=schema.read_groups(samples) if samples.is_file() else [],
    )
