"""``overtonlite sweep``: claim-1 measurements over pairs x temperatures x max_tokens, with scaling plots.

One library call (:func:`overtonlite.experiments.sweep.sweep`); the table goes to stdout (``--json``: the rows as
JSON), progress to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from overtonlite.cli.common import console, kv_layout_option, print_json
from overtonlite.cli.experiments_cmd import _Progress

_COLUMNS = (
    ("distinct_at_n", "distinct@N"),
    ("cosine", "cosine"),
    ("jaccard", "Jaccard"),
    ("homogenization_rougel", "ROUGE-L hom."),
    ("compression_ratio", "compr."),
    ("words_mean", "words"),
    ("stance_both_share", "both"),
)


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("mean") is None:
        return "-"
    ci = entry.get("ci")
    return f"{entry['mean']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _render(table: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(
        width=max(Console().width, 190)
    )  # the result table goes to stdout, wide enough for the names
    t = Table(title="sweep (mean over prompts [95% CI])", title_justify="left")
    t.add_column("system", no_wrap=True)
    t.add_column("params", justify="right")
    for _, label in _COLUMNS:
        t.add_column(label, justify="right")
    for row in table:
        t.add_row(row["name"], str(row.get("params") or "-"), *(_cell(row.get(k)) for k, _ in _COLUMNS))
    out.print(t)


@click.command("sweep")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (one for the whole sweep; rerunning resumes and reuses matching samples).",
)
@click.option(
    "--pairs",
    default=None,
    help="Comma-separated registry pairs (default: the preset's, default,gemma-coder).",
)
@click.option("--temperatures", default=None, help="Comma-separated temperatures, e.g. 0.3,0.5,1.0.")
@click.option("--max-tokens", "max_tokens", default=None, help="Comma-separated max new tokens, e.g. 64,128.")
@click.option("--n", "n", type=int, default=None, help="Samples per prompt (default: the preset's).")
@click.option("--limit", type=int, default=None, help="Use only the first K prompts of each set.")
@click.option(
    "--quick",
    is_flag=True,
    help="Small sizes: both offline pairs at T 0.5 and 1.0, 4 + 2 prompts, N=4, 48 tokens.",
)
@click.option(
    "--reuse",
    "reuse",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another run directory whose groups with the same cache key are copied instead of generated "
    "(repeatable).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: physical cores).")
@kv_layout_option("the local models", "sweep")
@click.option("--no-report", is_flag=True, help="Skip report.md / report.html.")
@click.option("--json", "as_json", is_flag=True, help="Print the table (one object per system) as JSON.")
def sweep(
    out: Path,
    pairs: str | None,
    temperatures: str | None,
    max_tokens: str | None,
    n: int | None,
    limit: int | None,
    quick: bool,
    reuse: tuple[Path, ...],
    seed: int,
    threads: int | None,
    kv_layout: str | None,
    no_report: bool,
    as_json: bool,
) -> None:
    """Claim-1 measurements over several pairs, temperatures and max_tokens in one run directory, with
    distinct@N, the lexical suite, an inter-system similarity matrix and scaling plots in the report."""
    from overtonlite.experiments.sweep import sweep as run_sweep

    with _Progress(not as_json) as progress:
        res = run_sweep(
            pairs,
            out=out,
            temperatures=temperatures,
            max_tokens=max_tokens,
            n=n,
            limit=limit,
            seed=seed,
            quick=quick,
            reuse=reuse,
            threads=threads,
            kv_layout=kv_layout,
            report=not no_report,
            progress=progress,
        )
    if as_json:
        print_json(res.table)
        return
    _render(res.table)
    if res.results.get("banner"):
        console.print(f"[yellow]warning:[/] {res.results['banner']}", highlight=False)
    console.print(f"wrote {res.out / 'summary.json'} in {res.seconds:.0f} s")
    if res.report is not None:
        console.print(f"report: {res.report.md}, {res.report.html}")
