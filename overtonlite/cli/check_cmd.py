"""``overtonlite check``: one library call (:func:`overtonlite.experiments.check.check`), the claims and a table of
the checks and findings on stderr, optional JUnit XML and Markdown files, and a closing status line."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from overtonlite.cli.ci import StatusCommand, check_output_paths, ci_options, finish
from overtonlite.cli.experiments_cmd import _banner, _Progress, _render, _replicate_options


@click.command("check", cls=StatusCommand)
@functools.partial(_replicate_options, default_out="runs/check")
@ci_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print the check result (checks and findings) on stdout."
)
@click.pass_context
def check(
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
    strict: bool,
    no_replay: bool,
    junit_xml: Path | None,
    summary_md: Path | None,
    as_json: bool,
) -> None:
    """CI smoke test: `replicate`, then check that the pipeline is healthy.

    \b
    Checks: sample counts and token caps, every metric in its range, summary CIs, results.json, the chat
    self-baseline above the cross-prompt baseline, determinism (the chat groups generated again must be
    identical), and the report. Claim findings are reported; a direction that fails beyond its CI fails the
    check on a same-family pair or with --strict.
    Exit 0 healthy, 1 a failed check or enforced claim direction, 2 a usage or input error; the last line on
    stderr says which.
    """
    from overtonlite.experiments.check import check as run_check

    check_output_paths(junit_xml, summary_md)
    with _Progress(not as_json) as progress:
        result = run_check(
            pair,
            out=out,
            strict=strict,
            replay=not no_replay,
            report=not no_report,
            progress=progress,
            n=n,
            max_tokens=max_tokens,
            limit=limit,
            seed=seed,
            quick=quick,
            threads=threads,
            kv_layout=kv_layout,
        )
    if as_json:
        _banner(result.results)
    else:
        _render(result.results, seconds=result.seconds, out=result.out)
    finish(ctx, result, junit_xml=junit_xml, summary_md=summary_md, as_json=as_json)
