"""``overtonlite score``: metrics for a run directory or a responses JSONL."""

from __future__ import annotations

from typing import Any

import click

from overtonlite.cli.common import console, print_json

LEXICAL_COLUMNS = (("jaccard", "Jaccard"), ("distinct_2", "distinct-2"))
SEMANTIC_COLUMNS = (("cosine", "cosine"), ("vendi", "Vendi"))
OTHER_COLUMNS = (
    ("words_mean", "words"),
    ("tokens_mean", "tokens"),
    ("relevance", "relevance"),
    ("quality_pass_rate", "quality pass"),
    ("list_rate", "lists"),
    ("truncation_rate", "truncated"),
)
STANCE_COLUMNS = (("stance_both_share", "both"), ("yes_no_split", "yes/no split"))
REF_COLUMNS = (
    ("coverage", "coverage"),
    ("missing", "missing 1-5"),
    ("cosine_to_ref", "cos→ref"),
    ("bertscore_f1_to_ref_rescaled", "F1→ref (resc.)"),
    ("jaccard_to_ref", "Jaccard→ref"),
)


def _cell(entry: dict[str, Any] | None, digits: int) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    mean = entry["mean"]
    lo, hi = entry.get("ci") or (None, None)
    if lo is None or hi is None:
        return f"{mean:.{digits}f}"
    half = (hi - lo) / 2
    return f"{mean:.{digits}f}\n±{half:.{digits}f}"


def _table(
    title: str,
    systems: dict[str, dict[str, Any]],
    columns: tuple[tuple[str, str], ...],
    sets: list[str],
) -> Any:
    """One row per (system, prompt set) with the set's number of prompts beside the values."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("system", style="bold", overflow="fold", max_width=24)
    table.add_column("set", overflow="fold", max_width=16)
    table.add_column("prompts", justify="right")
    for _, label in columns:
        table.add_column(label, justify="right")
    for name, entry in systems.items():
        for set_name in sets:
            metrics = (entry.get("sets") or {}).get(set_name)
            if not metrics or not any(metrics.get(key) for key, _ in columns):
                continue
            n = max((m.get("n_prompts") or 0 for k, m in metrics.items() if k in dict(columns)), default=0)
            row = [name, set_name, str(n)]
            for key, _ in columns:
                digits = 1 if key in ("words_mean", "tokens_mean") else 3
                row.append(_cell(metrics.get(key), digits))
            table.add_row(*row)
    return table


def render_summary(summary: Any) -> None:
    """Rich tables on stdout (one row per system and prompt set): diversity (lexical and semantic side by side),
    then length and style, stance (on the sets it was scored on) and reference metrics; notes on stderr."""
    from overtonlite import schema
    from overtonlite.cli.common import print_result

    systems = summary.systems
    settings = summary.settings
    sets = schema.set_names({"systems": systems})
    print_result(
        _table(
            "Diversity within prompt groups: lexical (Jaccard, distinct-2) and semantic (cosine, Vendi), mean±half"
            " of the 95% CI over prompts; higher Jaccard / cosine and lower Vendi = less diverse",
            systems,
            LEXICAL_COLUMNS + SEMANTIC_COLUMNS,
            sets,
        )
    )
    print_result(_table("Length, quality and style", systems, OTHER_COLUMNS, sets))
    stance_sets = [s for s in settings.get("stance_sets") or [] if s in sets]
    if stance_sets:
        print_result(
            _table(
                "Stance (share of 'both'; share of prompts with both a yes and a no)",
                systems,
                STANCE_COLUMNS,
                stance_sets,
            )
        )
    ref = settings.get("reference_system")
    if ref:
        print_result(
            _table(
                f"Against {ref} sample 0 ({ref} itself: samples 1..N-1, the self-baseline); F1 = BERTScore-style F1"
                " (MiniLM token states), baseline-rescaled",
                systems,
                REF_COLUMNS,
                sets,
            )
        )
    jinfo = settings.get("judge")
    if jinfo:
        counts = ", ".join(f"{t} {c['judged']} ({c['errors']} errors)" for t, c in jinfo["counts"].items())
        console.print(
            f"judge {jinfo['name']} ({jinfo['backend']}): {counts}; labels in metrics.jsonl (*_judge)"
        )
    if summary.errors:
        console.print(
            f"[yellow]{len(summary.errors)} group(s) had generation errors and were not scored[/yellow]"
        )
    emb = settings.get("embedder") or {}
    from overtonlite.scoring import UNCALIBRATED

    if settings.get("calibration") == UNCALIBRATED:
        console.print(
            f"[yellow]embedder {emb.get('name', '?')} has no calibration in the registry: coverage tau, missing "
            "cut points and the quality threshold are all-minilm-l6-v2's and may not fit its cosine scale[/yellow]"
        )
    console.print(
        f"[dim]{summary.n_groups} groups scored in {summary.seconds:.1f}s · embedder {emb.get('name', '?')} · "
        f"lowercase={settings.get('lowercase')} · seed={settings.get('seed')} · "
        f"wrote {summary.metrics_path} and {summary.summary_path}[/dim]"
    )


@click.command("score")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=True))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for metrics.jsonl and summary.json.",
)
@click.option("--reference-system", default=None, help="Aligned system whose sample 0 is the reference.")
@click.option(
    "--stance/--no-stance", default=None, help="Force or skip stance scoring (default: contested prompts)."
)
@click.option(
    "--lowercase",
    is_flag=True,
    help="Lower-case words before the content-word sets (default: as the authors).",
)
@click.option(
    "--embedder",
    default=None,
    help="Registry embedder name (default: the registry's default). Coverage tau, missing-information cut points"
    " and the quality threshold come from that embedder's calibration in the registry.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the bootstraps and baseline pairs."
)
@click.option(
    "--judge",
    default=None,
    help="Registry chat model (local GGUF or served) that also judges stance / missing information / quality; its"
    " labels go beside the proxy labels in metrics.jsonl (cached in OUT/judgments.jsonl). Off by default.",
)
@click.option(
    "--judge-tasks",
    default="stance,missing",
    show_default=True,
    help="Comma-separated judge tasks: stance, missing, quality.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"systems": {...}} on stdout.')
def score(
    input_path: str,
    out: str,
    reference_system: str | None,
    stance: bool | None,
    lowercase: bool,
    embedder: str | None,
    seed: int,
    judge: str | None,
    judge_tasks: str,
    as_json: bool,
) -> None:
    """Score INPUT (a run directory or a responses JSONL) and write OUT/metrics.jsonl and OUT/summary.json."""
    from overtonlite.scoring import score_input

    with console.status("scoring…"):
        summary = score_input(
            input_path,
            out=out,
            reference_system=reference_system,
            stance=stance,
            lowercase=lowercase,
            embedder=embedder,
            seed=seed,
            judge=judge,
            judge_tasks=judge_tasks,
        )
    if as_json:
        print_json({"systems": summary.systems})
    else:
        render_summary(summary)
