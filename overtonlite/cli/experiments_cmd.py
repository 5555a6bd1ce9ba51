"""``overtonlite diversity | icl | replicate | check``: the paper's two claims, with verdicts.

Each command makes one library call (:mod:`overtonlite.experiments.replicate`) and renders the result: the
cross-family banner, a compact table of the findings and the verdict lines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from overtonlite.cli.common import at_least, console, print_json, print_result

_VERDICT_STYLE = {"supported": "green", "not supported": "red", "inconclusive": "yellow"}


def _common(func: Callable[..., Any], *, default_out: str | None = None) -> Callable[..., Any]:
    out_help = "Run directory (samples, metrics, results.json, report)."
    options = [
        click.option("--out", "out", required=default_out is None, default=default_out, show_default=True,
                     type=click.Path(file_okay=False, path_type=Path), help=out_help),
        click.option("--pair", default="default", show_default=True, help="Registry pair (see `models list`)."),
        click.option("--limit", type=int, default=None, help="Use only the first K prompts of each set."),
        click.option("--seed", type=int, default=0, show_default=True, help="Run seed."),
        click.option("--threads", type=int, default=None, callback=at_least(1),
                     help="CPU threads (default: physical cores)."),
        click.option("--no-report", is_flag=True, help="Skip report.md / report.html."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


class _Progress:
    """A one-line rich status fed by sample_run progress events."""

    def __init__(self, enabled: bool) -> None:
        self.status = console.status("starting", spinner="dots") if enabled else None

    def __enter__(self) -> _Progress:
        if self.status is not None:
            self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def __call__(self, event: Any) -> None:
        if self.status is None:
            return
        rate = event.tokens / event.seconds if getattr(event, "seconds", 0) else 0.0
        self.status.update(
            f"[bold]{event.system}[/]: {event.groups_written}/{event.groups_todo} groups to generate, "
            f"{event.tokens} tokens, {rate:.0f} tok/s"
        )


def _banner(results: dict[str, Any]) -> None:
    """The cross-family warning, on stderr."""
    from rich.panel import Panel

    if results.get("banner"):
        console.print(Panel(results["banner"], title="warning", border_style="yellow"))


def _render(results: dict[str, Any], *, seconds: float | None = None, out: Path | None = None) -> None:
    """The banner and notes on stderr; the findings table of each claim and its verdict lines on stdout."""
    from rich.table import Table

    _banner(results)
    pair = results.get("pair") or {}
    print_result(f"pair: base [bold]{pair.get('base')}[/], chat [bold]{pair.get('chat')}[/]")
    for name, claim in (results.get("claims") or {}).items():
        verdict = claim.get("verdict", "?")
        table = Table(title=f"claim: {name} -> [{_VERDICT_STYLE.get(verdict, 'white')}]{verdict}[/]",
                      title_justify="left")
        table.add_column("finding")
        table.add_column("systems")
        table.add_column("set")
        table.add_column("prompts", justify="right")
        table.add_column("estimate", justify="right")
        table.add_column("95% CI", justify="right")
        table.add_column("verdict")
        for f in claim.get("findings") or []:
            ci = f.get("ci")
            ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
            est = f.get("estimate")
            table.add_row(f.get("name", ""), " vs ".join(f.get("systems") or []) or "-", f.get("set") or "-",
                          str(f.get("n_prompts") or "-"), f"{est:.3f}" if isinstance(est, int | float) else "-",
                          ci_text, f"[{_VERDICT_STYLE.get(f.get('verdict'), 'white')}]{f.get('verdict')}[/]")
        print_result(table)
        for line in claim.get("lines") or []:
            print_result(f"  - {line}", highlight=False, markup=False, soft_wrap=True)
    timings = results.get("timings") or {}
    if timings:
        console.print("[dim]seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items()) + "[/]", highlight=False)
    if results.get("signature"):
        console.print(f"[dim]{results['signature']}[/]", highlight=False)
    if out is not None:
        tail = f" in {seconds:.0f} s" if seconds is not None else ""
        console.print(f"wrote {out / 'results.json'}{tail}")


@click.command("diversity")
@_common
@click.option("--prompts", "prompt_specs", multiple=True, default=("builtin:open-ended", "builtin:contested"),
              show_default=True, help="Prompt set(s): builtin:NAME or a .jsonl / .csv file (repeatable).")
@click.option("--n", "n", type=int, default=5, show_default=True, help="Samples per prompt.")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option("--answer-cap", type=int, default=120, show_default=True, help="Words per URIAL example answer.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout.")
def diversity(out: Path, pair: str, limit: int | None, seed: int, threads: int | None, no_report: bool,
              prompt_specs: tuple[str, ...], n: int, max_tokens: int, answer_cap: int, as_json: bool) -> None:
    """Claim 1: base vs chat vs URIAL diversity, length, coverage and stance, with verdicts."""
    from overtonlite.experiments.replicate import run_diversity

    with _Progress(not as_json) as progress:
        res = run_diversity(pair, out=out, prompts=prompt_specs, n=n, max_tokens=max_tokens, limit=limit,
                            seed=seed, answer_cap_words=answer_cap, threads=threads, report=not no_report,
                            progress=progress)
    if as_json:
        _banner(res.results)
        print_json(res.results)
    else:
        _render(res.results, seconds=res.seconds, out=res.out)


@click.command("icl")
@_common
@click.option("--prompts", "prompt_spec", default="builtin:open-ended", show_default=True,
              help="Prompt set: builtin:NAME or a .jsonl / .csv file.")
@click.option("--conditions", default=None,
              help="Comma-separated conditions, e.g. urial,knn+summary (default: the full grid).")
@click.option("--k", "k", type=int, default=3, show_default=True, help="Examples for random / kNN selection.")
@click.option("--n", "n", type=int, default=5, show_default=True, help="Samples per prompt.")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option("--answer-cap", type=int, default=120, show_default=True,
              help="Words per example answer (the same cap in every condition).")
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout.")
def icl(out: Path, pair: str, limit: int | None, seed: int, threads: int | None, no_report: bool, prompt_spec: str,
        conditions: str | None, k: int, n: int, max_tokens: int, answer_cap: int, as_json: bool) -> None:
    """Claim 2: in-context alignment conditions scored against the chat model's own self-similarity."""
    from overtonlite.experiments.icl import DEFAULT_CONDITIONS
    from overtonlite.experiments.replicate import run_icl

    with _Progress(not as_json) as progress:
        res = run_icl(pair, out=out, prompts=prompt_spec, conditions=conditions or DEFAULT_CONDITIONS, k=k, n=n,
                      max_tokens=max_tokens, limit=limit, seed=seed, answer_cap_words=answer_cap, threads=threads,
                      report=not no_report, progress=progress)
    if as_json:
        _banner(res.results)
        print_json(res.results)
    else:
        _render(res.results, seconds=res.seconds, out=res.out)


def _replicate(ctx: click.Context, *, out: Path, pair: str, limit: int | None, seed: int, threads: int | None,
               no_report: bool, quick: bool, n: int | None, max_tokens: int | None, assert_: bool, as_json: bool,
               claims_only: bool) -> None:
    from overtonlite.experiments.replicate import replicate as run_replicate
    from overtonlite.experiments.verdicts import exit_code

    with _Progress(not as_json) as progress:
        res = run_replicate(pair, out=out, n=n, max_tokens=max_tokens, limit=limit, seed=seed, quick=quick,
                            threads=threads, report=not no_report, progress=progress)
    if not as_json:
        _render(res.results, seconds=res.seconds, out=res.out)
        if res.report is not None:
            console.print(f"report: {res.report.md}, {res.report.html}", soft_wrap=True)
    else:
        _banner(res.results)
        print_json(res.claims if claims_only else res.results)
    if assert_:
        ctx.exit(exit_code(res.claims))


_REPLICATE_OPTIONS = [
    click.option("--quick", is_flag=True, help="Small sizes that finish in about 3 minutes on 2 cores."),
    click.option("--n", "n", type=int, default=None, help="Samples per prompt (default: the preset's)."),
    click.option("--max-tokens", type=int, default=None, help="Max new tokens (default: the preset's)."),
]


def _replicate_options(func: Callable[..., Any], *, default_out: str | None = None) -> Callable[..., Any]:
    for opt in reversed(_REPLICATE_OPTIONS):
        func = opt(func)
    return _common(func, default_out=default_out)


@click.command("replicate")
@_replicate_options
@click.option("--assert", "assert_", is_flag=True,
              help="Exit 1 when a claim's expected direction fails beyond its CI (as `check`).")
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout.")
@click.pass_context
def replicate(ctx: click.Context, out: Path, pair: str, limit: int | None, seed: int, threads: int | None,
              no_report: bool, quick: bool, n: int | None, max_tokens: int | None, assert_: bool,
              as_json: bool) -> None:
    """Both claims end to end on the built-in prompt sets: samples, metrics, verdicts, results.json, report."""
    _replicate(ctx, out=out, pair=pair, limit=limit, seed=seed, threads=threads, no_report=no_report, quick=quick,
               n=n, max_tokens=max_tokens, assert_=assert_, as_json=as_json, claims_only=False)


@click.command("check")
@functools.partial(_replicate_options, default_out="runs/check")
@click.option("--json", "as_json", is_flag=True, help="Print the claims block of results.json on stdout.")
@click.pass_context
def check(ctx: click.Context, out: Path, pair: str, limit: int | None, seed: int, threads: int | None,
          no_report: bool, quick: bool, n: int | None, max_tokens: int | None, as_json: bool) -> None:
    """CI smoke test: `replicate --assert`. Exit 0 when no claim fails beyond its CI, 1 when one does, 2 on a
    usage or input error."""
    _replicate(ctx, out=out, pair=pair, limit=limit, seed=seed, threads=threads, no_report=no_report, quick=quick,
               n=n, max_tokens=max_tokens, assert_=True, as_json=as_json, claims_only=True)
