"""``overtonlite report RUN_DIR``: rebuild report.md / report.html from a run directory, without generating."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from overtonlite.cli.common import console, print_json, print_result


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--rescore",
    is_flag=True,
    help="First recompute metrics.jsonl / summary.json from the stored samples and refresh the claims of "
    "results.json from them (nothing is generated).",
)
@click.option(
    "--stance-set",
    default=None,
    metavar="SET",
    help="Prompt set of the stance tables (default: the set stance was scored on, contested).",
)
@click.option("--no-plots", is_flag=True, help="Leave the plots out of report.html (no matplotlib needed).")
@click.option("--open", "open_browser", is_flag=True, help="Open report.html in the default web browser.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report paths and the verdicts as JSON on stdout."
)
def report(
    run_dir: Path, rescore: bool, stance_set: str | None, no_plots: bool, open_browser: bool, as_json: bool
) -> None:
    """Write RUN_DIR/report.md and a self-contained RUN_DIR/report.html from the stored results, summary and
    samples, then print the verdicts. The report only reads: every number is an entry of summary.json or
    results.json."""
    from overtonlite.report import build_report

    if rescore:
        from overtonlite.experiments.replicate import recompute_results

        with console.status("rescoring the stored samples…"):
            recompute_results(run_dir, rescore=True)
    paths = build_report(run_dir, plots=not no_plots, stance_set=stance_set)
    if as_json:
        verdicts = [line for line in paths.verdict_lines if not line.startswith("  ")]
        print_json(
            {
                "report_md": str(paths.md),
                "report_html": str(paths.html),
                "results": str(paths.results) if paths.results else None,
                "verdicts": dict(line.split(": ", 1) for line in verdicts if ": " in line),
            }
        )
    else:
        console.print(f"[bold]report.md[/bold]   {escape(str(paths.md))}", highlight=False, soft_wrap=True)
        console.print(f"[bold]report.html[/bold] {escape(str(paths.html))}", highlight=False, soft_wrap=True)
        if paths.results is None:
            console.print("no results.json: metrics only, no verdicts", style="yellow")
        styles = {"supported": "green", "not supported": "red", "inconclusive": "yellow"}
        for line in paths.verdict_lines:
            if line.startswith("  "):
                print_result(line, highlight=False, markup=False, soft_wrap=True)
            else:
                name, _, verdict = line.partition(": ")
                style = styles.get(verdict, "bold")
                print_result(
                    f"[bold]{escape(name)}[/bold]: [{style}]{escape(verdict)}[/{style}]", highlight=False
                )
    if open_browser:
        import webbrowser

        webbrowser.open(paths.html.resolve().as_uri())
