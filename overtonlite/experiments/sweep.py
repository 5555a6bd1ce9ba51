"""``overtonlite sweep``: the claim-1 measurements over several pairs, temperatures and token budgets.

Every model of the given pairs samples the same prompts at every temperature (and max_tokens) into one run
directory, as one system per setting: ``base@T0.5`` (the base model on the zero-shot Query/Answer prompt; named
``base:MODEL@T0.5`` when the pairs have several base models), ``chat:MODEL@T1.0`` (a chat model with its chat
template), with ``/M128`` appended when several max_tokens are swept. A model shared by several pairs is sampled
once. Sampling resumes: a group whose cache key (model sha256, rendered prompt, sampling settings, seed, N) is
already in ``samples.jsonl`` is not generated again, so rerunning with more temperatures only samples the new ones;
``reuse`` copies matching groups from other run directories (e.g. a ``replicate`` run's ``base`` and ``chat`` at
T 0.5 when N, max_tokens, seed and prompts agree).

Then ``score`` measures every system (no reference system: coverage needs one aligned reference per pair and is
left to ``diversity``), writing per-system distinct@N, the lexical suite, diversity, length and stance to
``summary.json`` with the inter-system similarity matrix and similarity histograms. ``results.json["sweep"]``
records each system's model, role, size, temperature and max_tokens, which the report uses for its scaling plots.

:data:`QUICK`: both offline pairs (gemma-3-270m base; smollm2-135m-instruct and qwen2.5-coder-0.5b-instruct chat) at
temperatures 0.5 and 1.0, 4 open-ended + 2 contested prompts, N=4, 48 new tokens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from overtonlite.backends.base import Generator
from overtonlite.config import SamplingConfig
from overtonlite.errors import UsageError
from overtonlite.experiments.common import ensure_writable, open_model, pair_info, write_results
from overtonlite.experiments.diversity import base_render, raw_sampling
from overtonlite.rundir.manifest import portable_path, recorded_layout, recorded_schedule

TABLE_METRICS: tuple[str, ...] = (
    "distinct_at_n",
    "distinct_at_n_filtered",
    "distinct_at_n_lexical",
    "cosine",
    "jaccard",
    "homogenization_rougel",
    "compression_ratio",
    "ngram_diversity",
    "self_repetition",
    "words_mean",
    "quality_pass_rate",
    "stance_both_share",
    "yes_no_split",
)
STANCE_METRICS = ("stance_both_share", "yes_no_split")


@dataclass(frozen=True)
class SweepPreset:
    """The sizes of one sweep."""

    pairs: tuple[str, ...]
    temperatures: tuple[float, ...]
    max_tokens: tuple[int, ...]
    n: int
    open_ended: int
    contested: int


QUICK = SweepPreset(
    pairs=("default", "gemma-coder"),
    temperatures=(0.5, 1.0),
    max_tokens=(48,),
    n=4,
    open_ended=4,
    contested=2,
)
FULL = SweepPreset(
    pairs=("default", "gemma-coder"),
    temperatures=(0.3, 0.5, 1.0),
    max_tokens=(128,),
    n=5,
    open_ended=10,
    contested=10,
)


@dataclass(frozen=True)
class SweepSystem:
    """One sampled system of the sweep."""

    name: str
    model: str
    role: str  # "base" or "chat"
    temperature: float
    max_tokens: int
    params: str | None = None
    params_count: float | None = None
    family: str | None = None


@dataclass
class SweepResult:
    """What :func:`sweep` wrote: the run directory, results.json content, the table, report paths, timings."""

    out: Path
    results: dict[str, Any]
    table: list[dict[str, Any]]
    report: Any = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def params_count(text: str | None) -> float | None:
    """ "270M" -> 2.7e8, "0.5B" -> 5e8; None when the size is not written that way."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMB])\s*", text or "", re.IGNORECASE)
    if not m:
        return None
    return float(m.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9}[m.group(2).upper()]


def parse_list(text: str | Sequence[Any] | None, kind: type, what: str) -> tuple[Any, ...] | None:
    """ "0.3,0.5" -> (0.3, 0.5); UsageError naming ``what`` for an empty or malformed list."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    try:
        values = tuple(kind(v) for v in items if v != "")
    except (TypeError, ValueError):
        raise UsageError(
            f"{what}: expected a comma-separated list of {kind.__name__} values, got {text!r}"
        ) from None
    if not values:
        raise UsageError(f"{what}: the list is empty")
    if len(set(values)) != len(values):
        raise UsageError(f"{what}: a value is repeated in {text!r}")
    return values


def temperature_label(t: float) -> str:
    """0.5 -> "0.5", 1 -> "1.0", 0.25 -> "0.25"."""
    text = f"{t:g}"
    return text if ("." in text or "e" in text) else text + ".0"


def _label(t: float, m: int, many_m: bool) -> str:
    return f"@T{temperature_label(t)}" + (f"/M{m}" if many_m else "")


def plan_systems(
    pairs: Sequence[str], temperatures: Sequence[float], max_tokens: Sequence[int], *, registry: Any = None
) -> tuple[list[SweepSystem], list[Any]]:
    """The systems of a sweep (base models first, then chat models, each over max_tokens x temperatures) and the
    pairs' :class:`~overtonlite.experiments.common.PairInfo`."""
    from overtonlite.registry import load_registry

    reg = registry or load_registry()
    infos = [pair_info(p, registry=reg) for p in pairs]
    bases = list(dict.fromkeys(i.base for i in infos))
    chats = list(dict.fromkeys(i.chat for i in infos))
    many_m = len(max_tokens) > 1
    systems: list[SweepSystem] = []
    for role, models in (("base", bases), ("chat", chats)):
        for model in models:
            spec = reg.model(model)
            prefix = "base" if role == "base" and len(bases) == 1 else f"{role}:{model}"
            for m in max_tokens:
                for t in temperatures:
                    systems.append(
                        SweepSystem(
                            f"{prefix}{_label(t, m, many_m)}",
                            model,
                            role,
                            float(t),
                            int(m),
                            spec.params,
                            params_count(spec.params),
                            spec.family,
                        )
                    )
    return systems, infos


def settings_for(
    *,
    quick: bool,
    pairs: Sequence[str] | str | None,
    temperatures: Sequence[float] | str | None,
    max_tokens: Sequence[int] | str | None,
    n: int | None,
    limit: int | None,
    seed: int,
) -> dict[str, Any]:
    """The effective settings: the preset, overridden by the given options."""
    preset = QUICK if quick else FULL
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    n = preset.n if n is None else n
    if n < 2:
        raise UsageError(f"--n must be >= 2 for a sweep (diversity needs two samples), got {n}")
    temps = parse_list(temperatures, float, "--temperatures") or preset.temperatures
    if any(t < 0 for t in temps):
        raise UsageError(f"--temperatures must be >= 0, got {','.join(f'{t:g}' for t in temps)}")
    toks = parse_list(max_tokens, int, "--max-tokens") or preset.max_tokens
    if any(m < 1 for m in toks):
        raise UsageError(f"--max-tokens must be >= 1, got {','.join(map(str, toks))}")
    return {
        "preset": "quick" if quick else "full",
        "pairs": list(parse_list(pairs, str, "--pairs") or preset.pairs),
        "temperatures": list(temps),
        "max_tokens": list(toks),
        "n": n,
        "seed": seed,
        "prompts": {"open-ended": limit or preset.open_ended, "contested": limit or preset.contested},
        "sampling": {"repetition_penalty": 1.1, "top_p": "off", "top_k": "off"},
        "reference_system": None,
    }


def _sampling(s: SweepSystem) -> SamplingConfig:
    sampling = SamplingConfig(temperature=s.temperature, max_tokens=s.max_tokens)
    return raw_sampling(sampling) if s.role == "base" else sampling


def reuse_groups(
    gen: Generator,
    systems: list[SweepSystem],
    prompts: list[Any],
    *,
    out: Path,
    n: int,
    seed: int,
    sources: Sequence[str | Path],
) -> int:
    """Copy into ``out`` the groups of other run directories whose cache key is one this sweep would generate
    (same model file, rendered prompt, sampling settings, seed and N), under the sweep's system name, with
    ``reused_from`` naming the source. Groups with an error are not copied. Returns the number copied."""
    from overtonlite.rundir.records import RunDir, read_groups
    from overtonlite.sampling import SampleSpec, sha256_text

    wanted: dict[str, tuple[str, str]] = {}
    for s in systems:
        mode = "custom" if s.role == "base" else "chat"
        spec = SampleSpec(
            system=s.name,
            model=s.model,
            model_sha256=gen.model_sha256 or "",
            n=n,
            sampling=_sampling(s),
            seed=seed,
            mode=mode,
        )
        for p in prompts:
            rendered = base_render(p) if s.role == "base" else gen.render_chat(p.chat_messages())
            wanted[spec.cache_key(sha256_text(rendered))] = (s.name, p.id)
    run = RunDir(out)
    copied = 0
    with run.lock():
        have = {(r.get("system"), r.get("key")) for r in run.read_groups()}
        for src in sources:
            path = Path(src) / "samples.jsonl" if Path(src).is_dir() else Path(src)
            if not path.is_file():
                raise UsageError(f"--reuse {src}: no samples.jsonl there")
            for rec in read_groups(path):
                hit = wanted.get(str(rec.get("key")))
                if hit is None or rec.get("error") is not None or str(rec.get("prompt_id")) != hit[1]:
                    continue
                if (hit[0], rec["key"]) in have:
                    continue
                run.append_group({**rec, "system": hit[0], "reused_from": portable_path(src)})
                have.add((hit[0], rec["key"]))
                copied += 1
    return copied


def _sample_model(
    gen: Generator,
    systems: list[SweepSystem],
    prompts: list[Any],
    *,
    out: Path,
    n: int,
    seed: int,
    progress: Callable[[Any], None] | None,
) -> None:
    from overtonlite.sampling import sample_run

    for s in systems:
        if s.role == "base":
            sample_run(
                gen,
                prompts,
                out=out,
                system=s.name,
                n=n,
                sampling=_sampling(s),
                seed=seed,
                render=base_render,
                progress=progress,
                model_name=s.model,
            )
        else:
            sample_run(
                gen,
                prompts,
                out=out,
                system=s.name,
                n=n,
                sampling=_sampling(s),
                seed=seed,
                mode="chat",
                progress=progress,
                model_name=s.model,
            )


def _check_role(gen: Generator, role: str, model: str) -> None:
    if role == "chat" and not gen.has_chat_template():
        raise UsageError(f"the chat model '{model}' has no chat template")
    if role == "base" and gen.has_chat_template():
        raise UsageError(f"the base model '{model}' has a chat template, so it looks aligned")


def sweep_table(summary: dict[str, Any], systems: Sequence[SweepSystem]) -> list[dict[str, Any]]:
    """One row per system: its settings and, per metric of :data:`TABLE_METRICS`, ``{mean, ci, n}`` as stored in
    summary.json (the open-ended set for diversity metrics and the contested set for stance when summary.json is
    split by prompt set)."""
    from overtonlite.report.sweep import metric_entry

    rows = []
    for s in systems:
        row: dict[str, Any] = asdict(s)
        for metric in TABLE_METRICS:
            prompt_set = "contested" if metric in STANCE_METRICS else "open-ended"
            row[metric] = metric_entry(summary, s.name, metric, prompt_set)
        rows.append(row)
    return rows


def sweep(
    pairs: Sequence[str] | str | None = None,
    *,
    out: str | Path,
    temperatures: Sequence[float] | str | None = None,
    max_tokens: Sequence[int] | str | None = None,
    n: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    quick: bool = False,
    reuse: Sequence[str | Path] = (),
    generators: dict[str, Generator] | None = None,
    embedder: Any = None,
    registry: Any = None,
    threads: int | None = None,
    kv_layout: str | None = None,
    report: bool = True,
    progress: Callable[[Any], None] | None = None,
) -> SweepResult:
    """Sample, score and report a sweep into ``out`` (resuming); see the module docstring.

    ``reuse``: other run directories whose matching groups are copied instead of generated (see
    :func:`reuse_groups`). ``kv_layout``: the llama.cpp KV layout of the local models (None: the layout ``out``
    recorded, else unified). ``generators`` maps model names to already opened generators (tests pass fakes); the others are opened from
    the registry, one at a time. Raises UsageError for bad lists, unknown pairs, wrongly typed models or an
    unwritable ``out``.
    """
    from overtonlite import schema
    from overtonlite.datasets import load_prompts
    from overtonlite.scoring import score_input

    t0 = time.perf_counter()
    settings = settings_for(
        quick=quick,
        pairs=pairs,
        temperatures=temperatures,
        max_tokens=max_tokens,
        n=n,
        limit=limit,
        seed=seed,
    )
    systems, infos = plan_systems(
        settings["pairs"], settings["temperatures"], settings["max_tokens"], registry=registry
    )
    outdir = ensure_writable(out)
    oe = load_prompts("builtin:open-ended", limit=settings["prompts"]["open-ended"])
    cq = load_prompts("builtin:contested", limit=settings["prompts"]["contested"])
    settings["prompts"] = {"open-ended": len(oe), "contested": len(cq)}
    timings: dict[str, float] = {}
    reused: dict[str, int] = {}
    layout = kv_layout or recorded_layout(outdir)  # a resumed sweep keeps its layout (it decides the texts)
    schedule = recorded_schedule(outdir)  # ... and the engine's schedule version
    for model in dict.fromkeys(s.model for s in systems):
        t = time.perf_counter()
        own = generators is None or model not in generators
        gen = (
            open_model(model, registry=registry, threads=threads, kv_layout=layout, schedule=schedule)
            if own
            else generators[model]  # type: ignore[index]
        )
        try:
            mine = [s for s in systems if s.model == model]
            _check_role(gen, mine[0].role, model)
            if reuse:
                reused[model] = reuse_groups(
                    gen, mine, [*oe, *cq], out=outdir, n=settings["n"], seed=seed, sources=reuse
                )
            _sample_model(gen, mine, [*oe, *cq], out=outdir, n=settings["n"], seed=seed, progress=progress)
        finally:
            if own:
                gen.close()
        timings[f"generate {model}"] = time.perf_counter() - t
    t = time.perf_counter()
    if embedder is None:
        from overtonlite.backends import open_embedder

        embedder = open_embedder(registry=registry)
    settings["embedder"] = getattr(embedder, "name", None)
    score_input(outdir, out=outdir, stance=None, embedder=embedder, seed=seed)
    timings["score"] = time.perf_counter() - t
    summary = schema.read_summary(outdir) or {}
    table = sweep_table(summary, systems)
    banners = [i.banner for i in infos if i.banner]
    extra = {
        "sweep": {
            "systems": [asdict(s) for s in systems],
            "pairs": [i.to_dict() for i in infos],
            "metrics": list(TABLE_METRICS),
            "reused_groups": reused,
        },
        "banner": " / ".join(dict.fromkeys(banners)) or None,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    results = write_results(outdir, pair=None, settings={"sweep": settings}, claims={}, extra=extra)
    paths = None
    if report:
        t = time.perf_counter()
        from overtonlite.report import build_report

        paths = build_report(outdir)
        timings["report"] = time.perf_counter() - t
    return SweepResult(
        out=outdir,
        results=results,
        table=table,
        report=paths,
        seconds=time.perf_counter() - t0,
        timings=timings,
    )


__all__ = [
    "FULL",
    "QUICK",
    "SweepPreset",
    "SweepResult",
    "SweepSystem",
    "plan_systems",
    "settings_for",
    "sweep",
    "sweep_table",
]
