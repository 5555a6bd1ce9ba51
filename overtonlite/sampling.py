"""Sample N responses per prompt into a run directory, resumably.

:func:`sample_run` renders each prompt (the model's chat template, raw completion, or a caller's ``render``
function), derives one seed per sample from (run seed, prompt id, sample index), and asks the generator for the
groups whose cache key is not yet in ``samples.jsonl`` for this system. Groups are appended as the generator
finishes them, one fsynced line each, so an interrupted run loses at most the groups in flight and the same call
resumes it.

Cache key: ``stable_hash({model_sha256, rendered_prompt_sha256, sampling, seed, n})``, plus the generator's
``schedule_settings()`` when it has them (llama.cpp: the settings that decide which tokens are decoded together).

Exact resume: a generator with ``cohort_groups(n)`` (llama.cpp) decodes the run plan in *cohorts*: consecutive
slices of the full prompt list (not of what is left to do), each decoded apart from the others from a cleared KV
cache. A resumed run regenerates every cohort that is missing a group, whole, and writes only the missing
groups, so the texts are the ones an uninterrupted run of the same command writes, whatever was in flight.

A prompt longer than the context is not fatal: its group is recorded with ``error="prompt_too_long"`` and no
samples, counted as failed, and not retried on resume unless ``retry_errors=True``.

Ctrl-C: the first one lets the next group finish and be written, then stops; groups in flight that finish right
with it (within a tenth of one group's token budget, ``n * max_tokens / 10`` more tokens) are written too, since
groups decoded together tend to finish together. A second Ctrl-C stops within a second: at the engine's next step
boundary (the token callback), or, when no step ends within :data:`overtonlite.interrupts.HARD_STOP_SECONDS`,
wherever the main thread is (the groups in flight are discarded); an engine inside a long native call is asked to
return early through :mod:`overtonlite.backends.stop`. Two presses that arrive while the main thread is inside one
native call are counted as two (see :mod:`overtonlite.interrupts`). Either way everything written is kept and
:class:`SampleInterrupted` (a ``KeyboardInterrupt``) is raised with the summary so far; if every group got written,
the run simply completes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from overtonlite.backends.base import Generator, GenRequest, GroupResult
from overtonlite.config import SamplingConfig, derive_seed, stable_hash
from overtonlite.datasets import Prompt
from overtonlite.errors import UsageError, warn
from overtonlite.interrupts import graceful_sigint
from overtonlite.rundir.manifest import record_pass, update_manifest, utc_now
from overtonlite.rundir.records import RunDir
from overtonlite.schema import group_record

Mode = Literal["auto", "raw", "chat"]
MODES = ("auto", "raw", "chat")


@dataclass(frozen=True)
class SampleSpec:
    """The settings that identify one system's samples in a run directory."""

    system: str
    model: str
    model_sha256: str
    n: int
    sampling: SamplingConfig
    seed: int
    mode: str  # resolved: "chat", "raw" or "custom"
    engine: dict[str, Any] | None = None  # the generator's schedule_settings(), when it has them

    def config_hash(self) -> str:
        """Hash of everything but the model: sampling config, seed, N and prompt mode."""
        return stable_hash(
            {"sampling": self.sampling.to_dict(), "seed": self.seed, "n": self.n, "mode": self.mode}
        )

    def cache_key(self, rendered_prompt_sha256: str) -> str:
        """The group cache key: model sha256, rendered prompt, sampling config, seed, N (and engine settings)."""
        fields: dict[str, Any] = {
            "model_sha256": self.model_sha256,
            "rendered_prompt_sha256": rendered_prompt_sha256,
            "sampling": self.sampling.to_dict(),
            "seed": self.seed,
            "n": self.n,
        }
        if self.engine is not None:
            fields["engine"] = self.engine
        return stable_hash(fields)

    def seeds(self, prompt_id: str) -> tuple[int, ...]:
        """Per-sample seeds derived from (run seed, prompt id, sample index)."""
        return tuple(derive_seed(self.seed, prompt_id, i) for i in range(self.n))

    def manifest_entry(self, backend: dict[str, Any]) -> dict[str, Any]:
        """This system's entry in manifest.json."""
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "config": self.sampling.to_dict(),
            "seed": self.seed,
            "n": self.n,
            "mode": self.mode,
            "config_hash": self.config_hash(),
            "engine": self.engine,
            "backend": backend,
        }


@dataclass
class SampleRunSummary:
    """What one :func:`sample_run` call did. ``groups_done`` and ``groups_failed`` count groups written now."""

    groups_total: int
    groups_done: int = 0
    groups_skipped: int = 0
    groups_failed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    out: Path = field(default_factory=Path)
    system: str = ""
    interrupted: bool = False
    engine: dict[str, int] = field(default_factory=dict)  # the generator's ``stats`` counted during this call

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.groups_done + self.groups_failed + self.groups_skipped >= self.groups_total

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["tokens_per_second"] = round(self.tokens_per_second, 2)
        d["complete"] = self.complete
        return d


@dataclass
class SampleProgress:
    """An event for progress displays. ``kind``: start, tokens, group, stopping or end."""

    kind: str
    system: str
    groups_total: int
    groups_todo: int
    groups_written: int
    tokens: int
    seconds: float
    new_tokens: int = 0
    record: dict[str, Any] | None = None


class SampleInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`sample_run`; ``summary`` tells what was written before stopping."""

    def __init__(self, summary: SampleRunSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_mode(generator: Generator, mode: str) -> str:
    """``auto`` -> ``chat`` when the generator has a chat template, else ``raw``; validates ``mode``."""
    if mode not in MODES:
        raise UsageError(f"unknown prompt mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "auto":
        return "chat" if generator.has_chat_template() else "raw"
    if mode == "chat" and not generator.has_chat_template():
        raise UsageError(f"model {generator.name!r} has no chat template; use --mode raw")
    return mode


def render_prompt(generator: Generator, prompt: Prompt, mode: str) -> str:
    """The text the model continues: the chat-template rendering, or the raw prompt text."""
    if mode == "chat":
        return generator.render_chat(prompt.chat_messages())
    return prompt.text


def sample_run(
    generator: Generator,
    prompts: Sequence[Prompt],
    *,
    out: str | Path,
    system: str | None = None,
    n: int = 5,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    mode: str = "auto",
    render: Callable[[Prompt], str] | None = None,
    progress: Callable[[SampleProgress], None] | None = None,
    model_name: str | None = None,
    retry_errors: bool = False,
) -> SampleRunSummary:
    """Generate ``n`` samples for every prompt into ``out/samples.jsonl`` (resuming what is already there)."""
    sampling = sampling or SamplingConfig()
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    if not prompts:
        raise UsageError("no prompts to sample")
    resolved = "custom" if render is not None else resolve_mode(generator, mode)
    spec = SampleSpec(
        system=system or model_name or generator.name,
        model=model_name or generator.name,
        model_sha256=generator.model_sha256 or "",
        n=n,
        sampling=sampling,
        seed=seed,
        mode=resolved,
        engine=_schedule_settings(generator),
    )
    jobs = _plan(generator, prompts, spec, render)
    run = RunDir(out)
    summary = SampleRunSummary(groups_total=len(jobs), out=run.path, system=spec.system)
    with run.lock():
        update_manifest(run.manifest_path, spec.system, spec.manifest_entry(generator.describe()))
        todo = _todo(run, spec, jobs, retry_errors=retry_errors)
        summary.groups_skipped = len(jobs) - len(todo)
        _warn_short_context(generator, todo, spec.sampling.max_tokens)
        requests = _requests(generator, spec, jobs, todo)
        before = _engine_stats(generator), _steps_by_batch(generator)
        try:
            _generate(generator, run, spec, todo, requests, summary, progress)
        except SampleInterrupted:
            _record_pass(generator, run, spec, summary, before)
            raise
        _record_pass(generator, run, spec, summary, before)
    return summary


def _engine_stats(generator: Generator) -> dict[str, int]:
    stats = getattr(generator, "stats", None)
    return {k: v for k, v in stats.items() if isinstance(v, int)} if isinstance(stats, dict) else {}


def _steps_by_batch(generator: Generator) -> dict[int, tuple[int, int]]:
    hist = getattr(generator, "steps_by_batch", None)
    return {int(b): (int(v[0]), int(v[1])) for b, v in hist.items()} if isinstance(hist, dict) else {}


def _record_pass(
    generator: Generator,
    run: RunDir,
    spec: SampleSpec,
    summary: SampleRunSummary,
    before: tuple[dict[str, int], dict[int, tuple[int, int]]],
) -> None:
    """Put what this call generated, and how fast, into the manifest (``systems.SYSTEM.passes``): the
    generator's counters over the call (llama.cpp: its step statistics) and, where it keeps them, its
    generation-only steps by batch size (``{"B": [steps, microseconds]}``)."""
    written = summary.groups_done + summary.groups_failed
    if not written and not summary.interrupted:
        return  # nothing to do (a finished system resumed): no pass
    stats0, hist0 = before
    summary.engine = {k: v - stats0.get(k, 0) for k, v in _engine_stats(generator).items()}
    record: dict[str, Any] = {
        "finished": utc_now(),
        "seconds": round(summary.seconds, 3),
        "groups": written,
        "tokens": summary.tokens,
        "interrupted": summary.interrupted,
        "engine": summary.engine,
    }
    hist = {}
    for b, (steps, us) in sorted(_steps_by_batch(generator).items()):
        steps0, us0 = hist0.get(b, (0, 0))
        if steps > steps0:
            hist[str(b)] = [steps - steps0, us - us0]
    if hist:
        record["steps_by_batch"] = hist
    record_pass(run.manifest_path, spec.system, record)


def _schedule_settings(generator: Generator) -> dict[str, Any] | None:
    settings = getattr(generator, "schedule_settings", None)
    return dict(settings()) if callable(settings) else None


def _requests(generator: Generator, spec: SampleSpec, jobs: list[_Job], todo: list[_Job]) -> list[GenRequest]:
    """The requests for ``todo``: with cohorts, every cohort of the full plan that misses a group, whole."""

    def request(job: _Job, cohort: int = -1) -> GenRequest:
        return GenRequest(job.key, job.rendered, spec.seeds(job.prompt.id), spec.sampling, cohort=cohort)

    cohort_groups = getattr(generator, "cohort_groups", None)
    if not callable(cohort_groups):
        return [request(job) for job in todo]
    size = max(1, int(cohort_groups(spec.n)))
    wanted = {job.key for job in todo}
    out: list[GenRequest] = []
    for start in range(0, len(jobs), size):
        cohort = jobs[start : start + size]
        if any(job.key in wanted for job in cohort):
            out += [request(job, start // size) for job in cohort]
    return out


@dataclass
class _Job:
    prompt: Prompt
    rendered: str
    rendered_sha256: str
    key: str


def _plan(
    generator: Generator, prompts: Sequence[Prompt], spec: SampleSpec, render: Callable[[Prompt], str] | None
) -> list[_Job]:
    jobs: list[_Job] = []
    by_key: dict[str, str] = {}
    ids: set[str] = set()
    for prompt in prompts:
        if prompt.id in ids:
            raise UsageError(f"duplicate prompt id {prompt.id!r} in the prompt set")
        ids.add(prompt.id)
        rendered = render(prompt) if render is not None else render_prompt(generator, prompt, spec.mode)
        if not isinstance(rendered, str) or not rendered:
            raise UsageError(f"prompt {prompt.id!r} rendered to an empty prompt")
        digest = sha256_text(rendered)
        key = spec.cache_key(digest)
        if key in by_key:
            raise UsageError(
                f"prompts {by_key[key]!r} and {prompt.id!r} render to the same text; remove one of them"
            )
        by_key[key] = prompt.id
        jobs.append(_Job(prompt, rendered, digest, key))
    return jobs


def _todo(run: RunDir, spec: SampleSpec, jobs: list[_Job], *, retry_errors: bool) -> list[_Job]:
    done: set[str] = set()
    recorded: dict[str, str] = {}
    for rec in run.read_groups():
        if rec.get("system") != spec.system:
            continue
        recorded[rec["prompt_id"]] = rec.get("key", "")
        if retry_errors and rec.get("error") is not None:
            continue
        done.add(rec.get("key", ""))
    for job in jobs:
        old = recorded.get(job.prompt.id)
        if old is not None and old != job.key:
            raise UsageError(
                f"prompt {job.prompt.id!r} of system {spec.system!r} in {run.path} was sampled from a different "
                "prompt text (or rendering); use another --out or --system"
            )
    return [job for job in jobs if job.key not in done]


def _warn_short_context(generator: Generator, todo: list[_Job], max_tokens: int) -> None:
    """One warning when prompts leave less room in the context than ``max_tokens`` (their samples would be cut
    by the context, not by ``max_tokens``). Prompts that do not fit at all are recorded as ``prompt_too_long``."""
    n_ctx = getattr(generator, "n_ctx", None)
    if not isinstance(n_ctx, int) or n_ctx <= 0 or not todo:
        return
    short: list[tuple[str, int]] = []
    for job in todo:
        try:
            used = int(generator.count_tokens(job.rendered))
        except Exception:  # noqa: BLE001 - a check only: the generator reports real failures itself
            return
        if 0 < n_ctx - used < max_tokens:
            short.append((job.prompt.id, used))
    if short:
        pid, used = min(short, key=lambda x: n_ctx - x[1])
        warn(
            f"{len(short)} prompt(s) leave less than --max-tokens {max_tokens} of the {n_ctx}-token context for "
            f"the samples, which will be cut short; e.g. prompt {pid!r} uses {used} tokens ({n_ctx - used} left); "
            "raise --ctx or shorten the prompts"
        )


def _record(spec: SampleSpec, job: _Job, result: GroupResult) -> dict[str, Any]:
    return group_record(
        system=spec.system,
        model=spec.model,
        model_sha256=spec.model_sha256,
        prompt_id=job.prompt.id,
        prompt=job.prompt.text,
        rendered_prompt_sha256=job.rendered_sha256,
        config_hash=spec.config_hash(),
        key=job.key,
        n=spec.n,
        seed=spec.seed,
        mode=spec.mode,
        sampling=spec.sampling.to_dict(),
        prompt_tokens=result.prompt_tokens,
        prompt_tokens_evaluated=result.prompt_tokens_evaluated,
        seconds=round(result.seconds, 4),
        error=result.error,
        set=job.prompt.meta.get("set"),
        backend_extra=result.extra or None,
        samples=[s.to_dict() for s in result.samples] if result.error is None else [],
    )


def _generate(
    generator: Generator,
    run: RunDir,
    spec: SampleSpec,
    todo: list[_Job],
    requests: list[GenRequest],
    summary: SampleRunSummary,
    progress: Callable[[SampleProgress], None] | None,
) -> None:
    t0 = time.perf_counter()
    live_tokens = 0
    # after the first Ctrl-C and one written group: tokens generated since, and how many more are allowed
    since_stop: int | None = None
    grace_tokens = max(spec.n, spec.n * spec.sampling.max_tokens // 10)
    reports_tokens = False  # a backend that never calls on_tokens stops right after the next group

    def emit(kind: str, *, new_tokens: int = 0, record: dict[str, Any] | None = None) -> None:
        if progress is None:
            return
        progress(
            SampleProgress(
                kind=kind,
                system=spec.system,
                groups_total=summary.groups_total,
                groups_todo=len(todo),
                groups_written=summary.groups_done + summary.groups_failed,
                tokens=live_tokens,
                seconds=time.perf_counter() - t0,
                new_tokens=new_tokens,
                record=record,
            )
        )

    def on_tokens(count: int) -> None:
        nonlocal live_tokens, since_stop, reports_tokens
        live_tokens += count
        reports_tokens = True
        if hard.is_set():
            raise KeyboardInterrupt  # second Ctrl-C: stop at this step boundary
        if since_stop is not None:
            since_stop += count
            if since_stop > grace_tokens:
                raise KeyboardInterrupt  # the groups still in flight are not about to finish
        emit("tokens", new_tokens=count)

    emit("start")
    if not todo:
        summary.seconds = time.perf_counter() - t0
        emit("end")
        return
    jobs = {job.key: job for job in todo}  # groups regenerated only to rebuild a cohort are not written again
    stop, hard = threading.Event(), threading.Event()
    stream: Iterator[GroupResult] | None = None
    try:
        with graceful_sigint(stop, hard, lambda: emit("stopping"), lambda: reports_tokens):
            stream = generator.generate(requests, on_tokens=on_tokens)
            for result in stream:
                job = jobs.pop(result.key, None)
                if job is None:
                    continue  # not ours (or a duplicate): never write it
                record = _record(spec, job, result)
                run.append_group(record)
                if result.error is None:
                    summary.groups_done += 1
                else:
                    summary.groups_failed += 1
                summary.tokens += sum(s.n_tokens for s in result.samples)
                summary.seconds = time.perf_counter() - t0
                live_tokens = max(live_tokens, summary.tokens)
                emit("group", record=record)
                if hard.is_set():
                    raise KeyboardInterrupt
                if stop.is_set() and since_stop is None:
                    if not reports_tokens:
                        raise KeyboardInterrupt
                    since_stop = 0  # from now on, only groups that finish (almost) at once are kept
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.seconds = time.perf_counter() - t0
        _close(stream)
        emit("end")
        raise SampleInterrupted(summary) from None
    except BaseException:
        _close(stream)
        raise
    summary.seconds = time.perf_counter() - t0
    emit("end")


def _close(stream: Iterator[GroupResult] | None) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing must not hide the original stop
            pass
