"""``overtonlite sample``: N samples per prompt into a run directory, with rich progress; resumable."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from overtonlite.cli.common import console, print_json
from overtonlite.errors import UsageError

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
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Run seed; per-sample seeds derive from it."
)
@click.option("--temperature", type=float, default=0.5, show_default=True)
@click.option("--repetition-penalty", type=float, default=1.1, show_default=True)
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
@click.option("--threads", type=int, default=None, help="CPU threads (default: physical cores).")
@click.option("--ctx", "ctx", type=int, default=None, help="Context length (default: the backend's).")
@click.option("--max-seqs", type=int, default=16, show_default=True, help="Sequences decoded together.")
@click.option(
    "--retry-errors", is_flag=True, help="Regenerate groups recorded with an error (e.g. prompt too long)."
)
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory."
)
@click.option(
    "--backend",
    type=_BackendChoice(),
    default="llamacpp",
    show_default=True,
    help="llamacpp (local GGUF) or openai (an OpenAI-compatible server: vLLM, TGI, llama-server).",
)
@click.option(
    "--base-url", default=None, help="Server URL for --backend openai, e.g. http://localhost:8080/v1."
)
@click.option("--api-key", default=None, envvar="OPENAI_API_KEY", help="API key for --backend openai.")
@click.option(
    "--concurrency", type=int, default=4, show_default=True, help="Requests in flight (--backend openai)."
)
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Seconds per request (--backend openai)."
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
    max_seqs: int,
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

    Rerunning the same command resumes: only groups missing from samples.jsonl are generated. A prompt that does
    not fit the context is recorded with error "prompt_too_long" and no samples (see --retry-errors).
    """
    from overtonlite.config import SamplingConfig
    from overtonlite.datasets import load_prompts
    from overtonlite.manifest import read_manifest
    from overtonlite.sampling import SampleInterrupted, sample_run

    prompts = load_prompts(prompts_spec, limit=limit)
    extra_stop: tuple[str, ...] = ()
    generator: Any
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
        model_name, path, sha, extra_stop = _local_model(model)
        from overtonlite.backends.llamacpp import LlamaCppGenerator

        kwargs: dict[str, Any] = {"name": model_name, "model_sha256": sha, "max_seqs": max_seqs}
        if ctx is not None:
            kwargs["n_ctx"] = ctx
        if threads is not None:
            kwargs["n_threads"] = threads
        generator = LlamaCppGenerator(path, **kwargs)
    sampling = SamplingConfig(
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        top_p=top_p,
        top_k=top_k,
        max_tokens=max_tokens,
        stop=tuple(dict.fromkeys((*stop, *extra_stop))),
    )
    display = None if as_json else _ProgressDisplay()
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
    _print_summary(summary, manifest.get("signature"))


def _local_model(model: str) -> tuple[str, Path, str, tuple[str, ...]]:
    """(name, path, sha256, extra stop strings) for a registry name or a .gguf path."""
    path = Path(model).expanduser()
    if model.lower().endswith(".gguf") or path.is_file():
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        return path.stem, path, file_sha256(path), ()
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_model

    spec = load_registry().model(model)
    local = _pull_with_progress(spec, ensure_model)
    return spec.name, local, spec.file.sha256 or file_sha256(local), tuple(spec.stop)


def _pull_with_progress(spec: Any, ensure: Any) -> Path:
    """ensure_model with a transient rich bar (shown only while a file is fetched or verified)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task(spec.name, total=None)

        def progress(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"{spec.name}: {stage}", completed=done, total=total)

        return ensure(spec, pull=True, progress=progress)


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
        "model_sha256": hashlib.sha256(f"openai:{model}".encode()).hexdigest(),
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


class _ProgressDisplay:
    """Rich progress: groups done/total, tokens/s and ETA."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("groups"),
            TextColumn("{task.fields[tps]:>7.1f} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: Any = None
        self._started = False

    def __call__(self, event: Any) -> None:
        if event.kind == "start":
            self._progress.start()
            self._started = True
            done = event.groups_total - event.groups_todo
            self._task = self._progress.add_task(
                event.system, total=event.groups_total, completed=done, tps=0.0
            )
            if done:
                console.print(f"resuming: {done} of {event.groups_total} groups already in the run")
            return
        if self._task is None:
            return
        tps = event.tokens / event.seconds if event.seconds > 0 else 0.0
        if event.kind == "group":
            self._progress.update(self._task, advance=1, tps=tps)
        elif event.kind == "tokens":
            self._progress.update(self._task, tps=tps)
        elif event.kind == "stopping":
            console.print("[yellow]stopping after the current group (Ctrl-C again to stop now)[/]")

    def stop(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False


def _print_summary(summary: Any, signature: str | None) -> None:
    from rich.table import Table

    table = Table(title=f"sample: {summary.system}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    rows: Sequence[tuple[str, str]] = (
        ("groups", f"{summary.groups_total} total"),
        ("new", str(summary.groups_done)),
        ("already there", str(summary.groups_skipped)),
        ("failed", str(summary.groups_failed)),
        ("tokens", str(summary.tokens)),
        ("time", f"{summary.seconds:.1f} s"),
        ("tokens/s", f"{summary.tokens_per_second:.1f}"),
        ("run", str(summary.out)),
        ("signature", signature or "-"),
    )
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if not summary.complete:
        missing = summary.groups_total - summary.groups_done - summary.groups_failed - summary.groups_skipped
        console.print(
            f"[yellow]{missing} group(s) were not returned by the backend; rerun to generate them.[/]"
        )
    if summary.groups_failed:
        console.print(
            f"[yellow]{summary.groups_failed} group(s) recorded with an error (e.g. prompt_too_long); "
            "they keep no samples. Rerun with --retry-errors after changing --ctx to regenerate them.[/]"
        )


__all__ = ["file_sha256", "sample"]
