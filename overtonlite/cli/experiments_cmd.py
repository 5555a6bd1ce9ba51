"""``overtonlite diversity | icl | replicate``: the paper's two claims, with verdicts (``check``: cli/check_cmd.py).

Each command makes one library call (:mod:`overtonlite.experiments.replicate`) and renders the result: the
cross-family banner, a compact table of the findings and the verdict lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from overtonlite.cli.ci import StatusCommand, check_output_paths, ci_options, finish
from overtonlite.cli.common import at_least, console, kv_layout_option, print_json, print_result
from overtonlite.errors import UsageError

_VERDICT_STYLE = {
    "supported": "green",
    "not supported": "red",
    "inconclusive": "yellow",
    "not measured": "dim",
}


def _common(func: Callable[..., Any], *, default_out: str | None = None) -> Callable[..., Any]:
    out_help = "Run directory (samples, metrics, results.json, report)."
    options = [
        click.option(
            "--out",
            "out",
            required=default_out is None,
            default=default_out,
            show_default=True,
            type=click.Path(file_okay=False, path_type=Path),
            help=out_help,
        ),
        click.option(
            "--pair", default="default", show_default=True, help="Registry pair (see `models list`)."
        ),
        click.option("--limit", type=int, default=None, help="Use only the first K prompts of each set."),
        click.option("--seed", type=int, default=0, show_default=True, help="Run seed."),
        click.option(
            "--threads",
            type=int,
            default=None,
            callback=at_least(1),
            help="CPU threads (default: physical cores).",
        ),
        click.option("--no-report", is_flag=True, help="Skip report.md / report.html."),
        kv_layout_option("both local models of the pair"),
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
        table = Table(
            title=f"claim: {name} -> [{_VERDICT_STYLE.get(verdict, 'white')}]{verdict}[/]",
            title_justify="left",
        )
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
            table.add_row(
                f.get("name", ""),
                " vs ".join(f.get("systems") or []) or "-",
                f.get("set") or "-",
                str(f.get("n_prompts") or "-"),
                f"{est:.3f}" if isinstance(est, int | float) else "-",
                ci_text,
                f"[{_VERDICT_STYLE.get(f.get('verdict'), 'white')}]{f.get('verdict')}[/]",
            )
        print_result(table)
        for line in claim.get("lines") or []:
            print_result(f"  - {line}", highlight=False, markup=False, soft_wrap=True)
    timings = results.get("timings") or {}
    if timings:
        console.print(
            "[dim]seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items()) + "[/]", highlight=False
        )
    if results.get("signature"):
        console.print(f"[dim]{results['signature']}[/]", highlight=False)
    if out is not None:
        tail = f" in {seconds:.0f} s" if seconds is not None else ""
        console.print(f"wrote {out / 'results.json'}{tail}")


@click.command("diversity")
@_common
@click.option(
    "--prompts",
    "prompt_specs",
    multiple=True,
    default=("builtin:open-ended", "builtin:contested"),
    show_default=True,
    help="Prompt set(s): builtin:NAME or a .jsonl / .csv file (repeatable).",
)
@click.option("--n", "n", type=int, default=5, show_default=True, help="Samples per prompt.")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option(
    "--answer-cap", type=int, default=120, show_default=True, help="Words per URIAL example answer."
)
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout.")
def diversity(
    out: Path,
    pair: str,
    limit: int | None,
    seed: int,
    threads: int | None,
    no_report: bool,
    kv_layout: str | None,
    prompt_specs: tuple[str, ...],
    n: int,
    max_tokens: int,
    answer_cap: int,
    as_json: bool,
) -> None:
    """Claim 1: base vs chat vs URIAL diversity, length, coverage and stance, with verdicts."""
    from overtonlite.experiments.replicate import run_diversity

    with _Progress(not as_json) as progress:
        res = run_diversity(
            pair,
            out=out,
            prompts=prompt_specs,
            n=n,
            max_tokens=max_tokens,
            limit=limit,
            seed=seed,
            answer_cap_words=answer_cap,
            threads=threads,
            kv_layout=kv_layout,
            report=not no_report,
            progress=progress,
        )
    if as_json:
        _banner(res.results)
        print_json(res.results)
    else:
        _render(res.results, seconds=res.seconds, out=res.out)


@click.command("icl")
@_common
@click.option(
    "--prompts",
    "prompt_spec",
    default="builtin:open-ended",
    show_default=True,
    help="Prompt set: builtin:NAME or a .jsonl / .csv file.",
)
@click.option(
    "--conditions",
    default=None,
    help="Comma-separated conditions, e.g. urial,knn+summary (default: the full grid).",
)
@click.option("--k", "k", type=int, default=3, show_default=True, help="Examples for random / kNN selection.")
@click.option("--n", "n", type=int, default=5, show_default=True, help="Samples per prompt.")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option(
    "--answer-cap",
    type=int,
    default=120,
    show_default=True,
    help="Words per example answer (the same cap in every condition).",
)
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout.")
def icl(
    out: Path,
    pair: str,
    limit: int | None,
    seed: int,
    threads: int | None,
    no_report: bool,
    kv_layout: str | None,
    prompt_spec: str,
    conditions: str | None,
    k: int,
    n: int,
    max_tokens: int,
    answer_cap: int,
    as_json: bool,
) -> None:
    """Claim 2: in-context alignment conditions scored against the chat model's own self-similarity."""
    from overtonlite.experiments.icl import DEFAULT_CONDITIONS
    from overtonlite.experiments.replicate import run_icl

    with _Progress(not as_json) as progress:
        res = run_icl(
            pair,
            out=out,
            prompts=prompt_spec,
            conditions=conditions or DEFAULT_CONDITIONS,
            k=k,
            n=n,
            max_tokens=max_tokens,
            limit=limit,
            seed=seed,
            answer_cap_words=answer_cap,
            threads=threads,
            kv_layout=kv_layout,
            report=not no_report,
            progress=progress,
        )
    if as_json:
        _banner(res.results)
        print_json(res.results)
    else:
        _render(res.results, seconds=res.seconds, out=res.out)


def _replicate(
    ctx: click.Context,
    *,
    out: Path,
    pair: str,
    limit: int | None,
    seed: int,
    threads: int | None,
    no_report: bool,
    kv_layout: str | None,
    quick: bool,
    n: int | None,
    max_tokens: int | None,
    assert_: bool,
    as_json: bool,
    claims_only: bool,
    judge: str | None = None,
    hint_model: str | None = None,
    ci: dict[str, Any] | None = None,
) -> None:
    from overtonlite.experiments.replicate import replicate as run_replicate

    ci = ci or {}
    if not assert_ and any(ci.get(k) for k in ("strict", "no_replay", "junit_xml", "summary_md")):
        raise UsageError("--strict, --no-replay, --junit-xml and --summary-md need --assert")
    check_output_paths(ci.get("junit_xml"), ci.get("summary_md"))

    with _Progress(not as_json) as progress:
        res = run_replicate(
            pair,
            out=out,
            n=n,
            max_tokens=max_tokens,
            limit=limit,
            seed=seed,
            quick=quick,
            threads=threads,
            kv_layout=kv_layout,
            report=not no_report,
            progress=progress,
            judge=judge,
            hint_model=hint_model,
        )
    if not as_json:
        _render(res.results, seconds=res.seconds, out=res.out)
        if res.report is not None:
            console.print(f"report: {res.report.md}, {res.report.html}", soft_wrap=True)
    else:
        _banner(res.results)
    if as_json and not assert_:
        print_json(res.claims if claims_only else res.results)
    if assert_:  # the same checks and exit semantics as `overtonlite check`
        from overtonlite.experiments.check import check_run

        with _Progress(not as_json) as progress:
            result = check_run(
                res.out,
                strict=ci.get("strict", False),
                replay=not ci.get("no_replay"),
                report=not no_report,
                threads=threads,
                command="replicate",
                progress=progress,
            )
        finish(ctx, result, junit_xml=ci.get("junit_xml"), summary_md=ci.get("summary_md"), as_json=as_json)


_REPLICATE_OPTIONS = [
    click.option("--quick", is_flag=True, help="Small sizes that finish in about 3 minutes on 2 cores."),
    click.option("--n", "n", type=int, default=None, help="Samples per prompt (default: the preset's)."),
    click.option("--max-tokens", type=int, default=None, help="Max new tokens (default: the preset's)."),
]


def _replicate_options(func: Callable[..., Any], *, default_out: str | None = None) -> Callable[..., Any]:
    for opt in reversed(_REPLICATE_OPTIONS):
        func = opt(func)
    return _common(func, default_out=default_out)


def _replicate_from(
    ctx: click.Context,
    *,
    source: Path,
    roles: tuple[str, ...],
    out: Path,
    limit: int | None,
    seed: int,
    no_report: bool,
    same_family: bool,
    embedder: str | None,
    assert_: bool,
    as_json: bool,
    ci: dict[str, Any],
) -> None:
    from overtonlite.experiments.from_generations import replicate_from

    res = replicate_from(
        source,
        roles=roles,
        out=out,
        embedder=embedder,
        seed=seed,
        limit=limit,
        same_family=same_family,
        report=not no_report,
    )
    if as_json and not assert_:
        print_json(res.results)
    elif not as_json:
        _render(res.results, seconds=res.seconds, out=res.out)
        if res.report is not None:
            console.print(f"report: {res.report.md}, {res.report.html}", soft_wrap=True)
    if assert_:  # the checks of `overtonlite check`; nothing to replay, since no model generated these texts
        from overtonlite.experiments.check import check_run

        result = check_run(
            res.out, strict=ci.get("strict", False), replay=False, report=not no_report, command="replicate"
        )
        finish(ctx, result, junit_xml=ci.get("junit_xml"), summary_md=ci.get("summary_md"), as_json=as_json)


class _ReplicateCommand(StatusCommand):
    wants_status = staticmethod(lambda params: bool(params.get("assert_")))  # type: ignore[assignment]


@click.command("replicate", cls=_ReplicateCommand)
@_replicate_options
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Judge existing generations instead of sampling: a responses JSONL in the `score` input format "
    "or a run directory. Needs --role base=NAME and --role chat=NAME; loads no model.",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE=SYSTEM",
    help="With --from: which input system plays base, chat, urial or hinted (repeatable; hinted may repeat).",
)
@click.option(
    "--same-family", is_flag=True, help="With --from: base and chat come from one pretrained model."
)
@click.option("--embedder", default=None, help="With --from: registry embedder name (default: the default).")
@click.option(
    "--assert",
    "assert_",
    is_flag=True,
    help="Then run the checks of `overtonlite check` on the run, with its exit codes "
    "(--strict, --no-replay, --junit-xml and --summary-md apply only with it).",
)
@ci_options
@click.option(
    "--judge",
    default=None,
    help="Registry chat model (local or served) that also judges stance and missing information; labels "
    "go beside the proxy labels in metrics.jsonl. Off by default.",
)
@click.option(
    "--hint-model",
    default=None,
    help="Registry chat model (local or served) that writes the summary hints instead of the pair's chat "
    "model.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print results.json on stdout (with --assert: the check result)."
)
@click.pass_context
def replicate(
    ctx: click.Context,
    out: Path,
    pair: str,
    limit: int | None,
    seed: int,
    threads: int | None,
    no_report: bool,
    kv_layout: str | None,
    quick: bool,
    n: int | None,
    max_tokens: int | None,
    source: Path | None,
    roles: tuple[str, ...],
    same_family: bool,
    embedder: str | None,
    assert_: bool,
    strict: bool,
    no_replay: bool,
    junit_xml: Path | None,
    summary_md: Path | None,
    judge: str | None,
    hint_model: str | None,
    as_json: bool,
) -> None:
    """Both claims end to end on the built-in prompt sets: samples, metrics, verdicts, results.json, report.
    With --from, the same verdicts from existing generations, without loading a model."""
    ci = {"strict": strict, "no_replay": no_replay, "junit_xml": junit_xml, "summary_md": summary_md}
    if source is not None:
        unused = [
            flag
            for flag, given in (
                ("--quick", quick),
                ("--n", n is not None),
                ("--max-tokens", max_tokens is not None),
                ("--threads", threads is not None),
                ("--kv-layout", kv_layout is not None),
                ("--pair", pair != "default"),
                ("--hint-model", hint_model is not None),
            )
            if given
        ]
        if unused:
            raise UsageError(
                f"{', '.join(unused)} only apply to sampling; --from judges existing generations"
            )
        if judge is not None:
            raise UsageError(
                "--judge is not available with --from yet; run `overtonlite score DIR --judge MODEL` "
                "on the output directory instead"
            )
        if not assert_ and any(ci.values()):
            raise UsageError("--strict, --no-replay, --junit-xml and --summary-md need --assert")
        check_output_paths(junit_xml, summary_md)
        _replicate_from(
            ctx,
            source=source,
            roles=roles,
            out=out,
            limit=limit,
            seed=seed,
            no_report=no_report,
            same_family=same_family,
            embedder=embedder,
            assert_=assert_,
            as_json=as_json,
            ci=ci,
        )
        return
    if roles or same_family or embedder:
        raise UsageError("--role, --same-family and --embedder only apply with --from")
    _replicate(
        ctx,
        out=out,
        pair=pair,
        limit=limit,
        seed=seed,
        threads=threads,
        kv_layout=kv_layout,
        no_report=no_report,
        quick=quick,
        n=n,
        max_tokens=max_tokens,
        assert_=assert_,
        as_json=as_json,
        claims_only=False,
        judge=judge,
        hint_model=hint_model,
        ci=ci,
    )
