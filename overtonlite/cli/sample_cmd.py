"""``overtonlite sample``: N samples per prompt into a run directory, with rich progress; resumable."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from overtonlite.cli.common import at_least, console, print_json
from overtonlite.cli.sample_view import ProgressDisplay, print_summary
from overtonlite.errors import UsageError
from overtonlite.rundir.manifest import recorded_engine, recorded_schedule

_CHUNK = 1 << 20


class _BackendChoice(click.Choice):
    """llamacpp | openai, plus the undocumented ``fake`` backend used by the tests."""

    def __init__(self) -> None:
        super().__init__(["llamacpp", "openai"])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "fake":
            return value
        return super().convert(value, param, ctx)


@click.command("sample")
@click.option(
    "--model", "model", required=True, help="Registry name (see `models list`) or a path to a .gguf file."
)
@click.option(
    "--prompts",
    "prompts_spec",
    required=True,
    help="builtin:open-ended, builtin:contested, or a .jsonl / .csv file.",
)
@click.option("--limit", type=int, default=None, help="Use only the first K prompts.")
@click.option("--n", "n", type=int, default=5, show_default=True, help="Samples per prompt.")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Maximum new tokens per sample.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Run seed; per-sample seeds derive from it."
)
@click.option("--temperature", type=float, default=0.5, show_default=True, help="0 = greedy.")
@click.option(
    "--repetition-penalty",
    type=float,
    default=1.1,
    show_default=True,
    help="Over the whole context, as HF/TGI apply it; 1.0 = off.",
)
@click.option("--top-p", type=float, default=1.0, show_default=True, help="1.0 = off.")
@click.option("--top-k", type=int, default=0, show_default=True, help="0 = off.")
@click.option("--stop", "stop", multiple=True, help="Stop string (repeatable); not kept in the text.")
@click.option(
    "--mode",
    type=click.Choice(["auto", "raw", "chat"]),
    default="auto",
    show_default=True,
    help="auto: the model's chat template when it has one, else raw completion.",
)
@click.option(
    "--system", "system", default=None, help="Name of this system in the run (default: the model name)."
)
@click.option(
    "--threads", type=int, default=None, callback=at_least(1), help="CPU threads (default: physical cores)."
)
@click.option(
    "--ctx",
    "ctx",
    type=int,
    default=None,
    help="Tokens per sequence, prompt + sample (default: 2048 on llama.cpp; the server's for openai).",
)
@click.option(
    "--max-seqs",
    type=int,
    default=None,
    callback=at_least(1),
    help="Sequences decoded together (llama.cpp); about max-seqs / n groups are in flight. Default: the "
    "largest of 32/16/8/... whose KV cache takes at most 1/8 of the machine's memory (with --kv-layout "
    "streams: at most 1 GiB of streams); a resumed run reuses the value it recorded.",
)
@click.option(
    "--kv-layout",
    type=click.Choice(["unified", "streams"]),
    default=None,
    help="llama.cpp KV cache: one cache shared by all sequences (unified, the default), or a stream of --ctx "
    "cells per sequence (streams: no slowdown as answers grow, more memory, fewer sequences by default). A "
    "resumed run reuses the layout it recorded.",
)
@click.option(
    "--retry-errors", is_flag=True, help="Regenerate groups recorded with an error (e.g. prompt too long)."
)
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Run directory (created if needed)."
)
@click.option(
    "--backend",
    type=_BackendChoice(),
    default="llamacpp",
    show_default=True,
    help="llamacpp (a .gguf file or a registry model; a registry model served by an endpoint uses its server) "
    "or openai (an OpenAI-compatible server given by --base-url: vLLM, TGI, llama-server).",
)
@click.option(
    "--base-url", default=None, help="Server URL for --backend openai, e.g. http://localhost:8080/v1."
)
@click.option(
    "--api-key",
    default=None,
    envvar="OPENAI_API_KEY",
    help="API key for --backend openai (default: $OPENAI_API_KEY).",
)
@click.option(
    "--concurrency",
    type=int,
    default=4,
    show_default=True,
    callback=at_least(1),
    help="Requests in flight (--backend openai).",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    callback=at_least(0, exclusive=True),
    help="Seconds per request (--backend openai).",
)
@click.option("--fake-delay", type=float, default=0.0, hidden=True, help="Seconds per group (fake backend).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def sample(
    model: str,
    prompts_spec: str,
    limit: int | None,
    n: int,
    max_tokens: int,
    seed: int,
    temperature: float,
    repetition_penalty: float,
    top_p: float,
    top_k: int,
    stop: tuple[str, ...],
    mode: str,
    system: str | None,
    threads: int | None,
    ctx: int | None,
    max_seqs: int | None,
    kv_layout: str | None,
    retry_errors: bool,
    out: Path,
    backend: str,
    base_url: str | None,
    api_key: str | None,
    concurrency: int,
    timeout: float,
    fake_delay: float,
    as_json: bool,
) -> None:
    """Generate N samples per prompt into --out (samples.jsonl + manifest.json).

    Rerunning the same command resumes: only groups missing from samples.jsonl are written, with the texts an
    uninterrupted run gives (llama.cpp regenerates the batch of groups they belong to). A prompt that does
    not fit the context is recorded with error "prompt_too_long" and no samples (see --retry-errors). Ctrl-C stops
    once the next group is written, keeping groups that finish with it (press it twice to stop at once); what is
    written is kept.
    """
    from overtonlite.config import SamplingConfig
    from overtonlite.datasets import load_prompts
    from overtonlite.rundir.manifest import read_manifest
    from overtonlite.rundir.records import RunDir
    from overtonlite.sampling import SampleInterrupted, sample_run

    prompts = load_prompts(prompts_spec, limit=limit)
    RunDir.check_usable(out)  # before loading a model: an unusable or busy --out fails at once
    extra_stop: tuple[str, ...] = ()
    generator: Any
    if backend != "llamacpp" and (max_seqs is not None or kv_layout is not None):
        raise UsageError(
            f"--max-seqs and --kv-layout set the llama.cpp engine and do not apply to --backend {backend} "
            "(a server schedules its own batches; --concurrency sets the requests in flight)"
        )
    if backend == "openai":
        generator = _openai_generator(
            model,
            system=system,
            base_url=base_url,
            api_key=api_key,
            mode=mode,
            ctx=ctx,
            concurrency=concurrency,
            timeout=timeout,
        )
        model_name = model
    elif backend == "fake":
        generator = _fake_generator(model, ctx=ctx, delay=fake_delay, chat=mode != "raw")
        model_name = model
    else:
        # a resumed run keeps the sequence budget, KV layout and schedule it was sampled with (they decide the texts)
        label = system or _model_label(model)
        recorded_seqs, recorded_layout = recorded_engine(out, label)
        generator, model_name, extra_stop = _model_generator(
            model,
            ctx=ctx,
            threads=threads,
            max_seqs=recorded_seqs if max_seqs is None else max_seqs,
            max_tokens=max_tokens,
            kv_layout=kv_layout or recorded_layout,
            schedule=recorded_schedule(out, label),
        )
    sampling = SamplingConfig(
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        top_p=top_p,
        top_k=top_k,
        max_tokens=max_tokens,
        stop=tuple(dict.fromkeys((*stop, *extra_stop))),
    )
    display = None if as_json else ProgressDisplay(n=n, max_tokens=max_tokens)
    try:
        try:
            summary = sample_run(
                generator,
                prompts,
                out=out,
                system=system or model_name,
                n=n,
                sampling=sampling,
                seed=seed,
                mode=mode,
                progress=display,
                model_name=model_name,
                retry_errors=retry_errors,
            )
        finally:
            if display is not None:
                display.stop()
    except SampleInterrupted as exc:
        s = exc.summary
        console.print(
            f"[yellow]interrupted; rerun the same command to resume[/] "
            f"({s.groups_done + s.groups_failed} new groups kept in {s.out / 'samples.jsonl'})"
        )
        sys.exit(130)  # not click's Exit: main() runs click with standalone_mode=False
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; rerun the same command to resume[/]")
        sys.exit(130)  # not click's Exit: main() runs click with standalone_mode=False
    finally:
        generator.close()

    manifest = read_manifest(out) or {}
    if as_json:
        print_json({**summary.to_dict(), "signature": manifest.get("signature")})
        return
    print_summary(summary, manifest.get("signature"))


def _gguf_path(model: str) -> Path | None:
    """The GGUF file a --model argument names (a .gguf name or an existing file), None for a registry name."""
    path = Path(model).expanduser()
    return path if model.lower().endswith(".gguf") or path.is_file() else None


def _model_label(model: str) -> str:
    """The system name ``sample`` gives a model argument when --system is not set (see :func:`_model_generator`)."""
    path = _gguf_path(model)
    return path.stem if path is not None else model


def _model_generator(
    model: str,
    *,
    ctx: int | None,
    threads: int | None,
    max_seqs: int | None,
    max_tokens: int | None = None,
    kv_layout: str | None = None,
    schedule: int | None = None,
) -> tuple[Any, str, tuple[str, ...]]:
    """(generator, name, extra stop strings) for a .gguf path or a registry model, local or served (a local
    registry model is pulled with the progress display of ``models pull``)."""
    path = _gguf_path(model)
    if path is not None:
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        from overtonlite.backends.llamacpp import LlamaCppGenerator

        kwargs: dict[str, Any] = {
            "name": path.stem,
            "model_sha256": file_sha256(path),
            "max_seqs": max_seqs,
            "max_tokens": max_tokens,
            "kv_layout": kv_layout,
            "schedule": schedule,
        }
        if ctx is not None:
            kwargs["n_ctx"] = ctx
        if threads is not None:
            kwargs["n_threads"] = threads
        return LlamaCppGenerator(path, **kwargs), path.stem, ()
    from overtonlite.backends import open_generator
    from overtonlite.cli.models_cmd import PullProgress
    from overtonlite.registry import load_registry

    spec = load_registry().model(model)
    with PullProgress(log_after=2.0) as bar:
        generator = open_generator(
            spec,
            n_ctx=ctx,
            threads=threads,
            max_seqs=max_seqs,
            max_tokens=max_tokens,
            kv_layout=kv_layout,
            progress=bar.callback(spec.name),
            schedule=schedule,
        )
    return generator, spec.name, tuple(spec.stop)


def file_sha256(path: Path) -> str:
    """sha256 of a file (:func:`overtonlite.util.sha256_file`)."""
    from overtonlite.util import sha256_file

    return sha256_file(path)


def _openai_generator(
    model: str,
    *,
    system: str | None,
    base_url: str | None,
    api_key: str | None,
    mode: str,
    ctx: int | None,
    concurrency: int = 4,
    timeout: float = 600.0,
) -> Any:
    if not base_url:
        raise UsageError("--backend openai needs --base-url (e.g. http://localhost:8080/v1)")
    from overtonlite.backends import served_sha256
    from overtonlite.backends.openai import OpenAIGenerator

    chat = {"auto": None, "chat": True, "raw": False}[mode]
    kwargs: dict[str, Any] = {
        "model": model,
        "name": system or model,
        "api_key": api_key,
        "chat": chat,
        "max_concurrency": concurrency,
        "timeout": timeout,
        # a server does not expose its weights' hash; the served model name stands in for the cache key
        "model_sha256": served_sha256(model),
    }
    if ctx is not None:
        kwargs["n_ctx"] = ctx
    return OpenAIGenerator(base_url, **kwargs)


def _fake_generator(model: str, *, ctx: int | None, delay: float, chat: bool) -> Any:
    from overtonlite.backends.fake import FakeGenerator

    sha = hashlib.sha256(f"fake:{model}".encode()).hexdigest()
    fake = FakeGenerator(model, chat_template=chat, n_ctx=ctx or 2048, model_sha256=sha)
    return _SlowFake(fake, delay) if delay > 0 else fake


class _SlowFake:
    """The fake generator with a pause before each group (to exercise Ctrl-C and resume end to end)."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def generate(self, requests: Iterable[Any], *, on_tokens: Any = None) -> Iterator[Any]:
        for request in requests:
            time.sleep(self._delay)
            yield from self._inner.generate([request], on_tokens=on_tokens)


__all__ = ["file_sha256", "sample"]
