"""``overtonlite report RUN_DIR``: rebuild report.md / report.html from a run directory, without generating."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from overtonlite.cli.common import console


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--rescore", is_flag=True, help="Recompute metrics.jsonl / summary.json from the stored samples first."
)
@click.option("--no-plots", is_flag=True, help="Leave the plots out of report.html (no matplotlib needed).")
@click.option("--open", "open_browser", is_flag=True, help="Open report.html in the default web browser.")
def report(run_dir: Path, rescore: bool, no_plots: bool, open_browser: bool) -> None:
    """Write RUN_DIR/report.md and a self-contained RUN_DIR/report.html from the stored results, metrics and
    samples, then print the verdicts."""
    from overtonlite.report import build_report

    paths = build_report(run_dir, rescore=rescore, plots=not no_plots)
    console.print(f"[bold]report.md[/bold]   {escape(str(paths.md))}", highlight=False, soft_wrap=True)
    console.print(f"[bold]report.html[/bold] {escape(str(paths.html))}", highlight=False, soft_wrap=True)
    if paths.results is None:
        console.print("no results.json: metrics only, no verdicts", style="yellow")
    styles = {"supported": "green", "not supported": "red", "inconclusive": "yellow"}
    for line in paths.verdict_lines:
        if line.startswith("  "):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        else:
            name, _, verdict = line.partition(": ")
            style = styles.get(verdict, "bold")
            console.print(
                f"[bold]{escape(name)}[/bold]: [{style}]{escape(verdict)}[/{style}]", highlight=False
            )
    if open_browser:
        import webbrowser

        webbrowser.open(paths.html.resolve().as_uri())
