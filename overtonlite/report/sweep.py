"""The report's sweep section: a table per system, scaling plots (metric vs temperature, metric vs model size, with
95% CIs), intra-system similarity histograms and the inter-system similarity heatmap.

Everything is read from files: ``results.json["sweep"]`` (each system's model, role, size, temperature,
max_tokens) and ``summary.json`` (per-system means and CIs, and ``similarity``: the matrix and the histograms).
Nothing is computed here but the arrangement of stored numbers into plot payloads.
"""

from __future__ import annotations

from typing import Any

from overtonlite import schema
from overtonlite.report import RunData, as_ci, as_float
from overtonlite.report.markdown import Block, Heading, Para, PlotSlot, Table, fmt_stat

LABELS = {
    "distinct_at_n": "distinct@N (cosine)",
    "distinct_at_n_filtered": "distinct@N, quality-filtered",
    "distinct_at_n_lexical": "distinct@N (ROUGE-1)",
    "cosine": "within-prompt cosine",
    "jaccard": "within-prompt Jaccard",
    "homogenization_rougel": "homogenization (ROUGE-L)",
    "compression_ratio": "compression ratio",
    "ngram_diversity": "n-gram diversity (sum n=1..4)",
    "self_repetition": "self-repetition",
    "words_mean": "mean words",
    "quality_pass_rate": "quality pass rate",
    "stance_both_share": "'both' stance share",
    "yes_no_split": "yes/no split rate",
}
PLOTTED = ("distinct_at_n", "cosine", "homogenization_rougel", "compression_ratio")
STANCE = ("stance_both_share", "yes_no_split")


def metric_entry(
    summary: dict[str, Any] | None, system: str, metric: str, prompt_set: str | None = None
) -> dict[str, Any] | None:
    """``{"mean", "ci", "n", "set"}`` of ``summary.systems[system].sets[SET][metric]``, or None when absent.

    SET is ``prompt_set`` when the system has values for it, else ``all`` (every prompt of the run)."""
    sets = ((((summary or {}).get("systems") or {}).get(system) or {}).get("sets")) or {}
    chosen = prompt_set if prompt_set in sets else schema.ALL
    value = schema.summary_stat(summary, system, chosen, metric)
    if not isinstance(value, dict) or as_float(value.get("mean")) is None:
        return None
    ci = as_ci(value.get("ci"))
    return {
        "mean": as_float(value["mean"]),
        "ci": list(ci) if ci else None,
        "n": value.get("n_prompts"),
        "set": chosen,
    }


def _stat(
    summary: dict[str, Any] | None, system: str, metric: str
) -> tuple[float, tuple[float, float] | None] | None:
    e = metric_entry(summary, system, metric, "contested" if metric in STANCE else "open-ended")
    if e is None:
        return None
    return e["mean"], (tuple(e["ci"]) if e["ci"] else None)  # type: ignore[return-value]


def _systems(data: RunData) -> list[dict[str, Any]]:
    sweep = (data.results or {}).get("sweep")
    rows = sweep.get("systems") if isinstance(sweep, dict) else None
    return [r for r in rows or [] if isinstance(r, dict) and isinstance(r.get("name"), str)]


def _lines(
    systems: list[dict[str, Any]], summary: Any, metric: str, x_key: str, group_key: Any
) -> list[dict[str, Any]]:
    lines: dict[str, list[Any]] = {}
    for s in systems:
        stat = _stat(summary, s["name"], metric)
        x = as_float(s.get(x_key))
        if stat is None or x is None:
            continue
        lines.setdefault(group_key(s), []).append((x, stat[0], list(stat[1]) if stat[1] else None))
    return [{"name": k, "points": sorted(v)} for k, v in lines.items()]


def _similarity(summary: Any) -> tuple[str, dict[str, Any], list[float]] | None:
    sim = (summary or {}).get("similarity")
    sets = sim.get("sets") if isinstance(sim, dict) else None
    if not isinstance(sets, dict) or not sets:
        return None
    name = "open-ended" if "open-ended" in sets else next(iter(sets))
    entry = sets[name]
    if not isinstance(entry, dict) or not entry.get("systems"):
        return None
    return name, entry, list(sim.get("histogram_edges") or [])


def sweep_section(data: RunData, systems_order: list[str]) -> list[Block]:
    """The sweep blocks, or [] when results.json has no sweep."""
    systems = _systems(data)
    if not systems:
        return []
    summary = data.summary
    metrics = [m for m in ((data.results or {}).get("sweep") or {}).get("metrics") or LABELS if m in LABELS]
    blocks: list[Block] = [Heading(2, "Sweep: temperature and model size", "sweep")]
    stored = ((summary or {}).get("systems") or {}).values()
    split = any(set((e or {}).get("sets") or {}) - {schema.ALL} for e in stored)
    blocks.append(
        Para(
            "One system per model and setting, all on the same prompts and seeds; mean over prompts with the 95% "
            "bootstrap CI over prompts, from summary.json. "
            + (
                "Diversity metrics on the open-ended set, stance on the contested set."
                if split
                else "Every metric is the mean over all prompts of the run (open-ended and contested)."
            )
            + " Models of different sizes also differ in family and training data, so a line across sizes is a "
            "comparison of these models, not a scaling law.",
            kind="note",
        )
    )
    headers = ["system", "model", "params", "T", "max tokens"] + [LABELS[m] for m in metrics]
    rows = []
    for s in systems:
        cells = [
            s["name"],
            str(s.get("model")),
            str(s.get("params") or "—"),
            str(s.get("temperature")),
            str(s.get("max_tokens")),
        ]
        cells += [fmt_stat(_stat(summary, s["name"], m)) for m in metrics]
        rows.append(cells)
    blocks.append(Table(headers, rows, id="sweep-table"))
    panels_t = [
        {
            "label": LABELS[m],
            "lines": _lines(
                systems, summary, m, "temperature", lambda s: f"{s['role']}: {s['model']} ({s.get('params')})"
            ),
        }
        for m in PLOTTED
    ]
    panels_t = [p for p in panels_t if p["lines"]]
    if panels_t:
        blocks.append(
            PlotSlot(
                "plot-sweep-temperature",
                "sweep_lines",
                "Metrics against sampling temperature, one line per model, 95% CIs over prompts",
                "Scaling with temperature",
                {"panels": panels_t, "xlabel": "temperature", "log_x": False},
            )
        )
    panels_s = [
        {
            "label": LABELS[m],
            "lines": _lines(
                systems, summary, m, "params_count", lambda s: f"{s['role']} @T{s.get('temperature')}"
            ),
        }
        for m in PLOTTED
    ]
    panels_s = [p for p in panels_s if p["lines"]]
    if panels_s:
        ticks = {
            as_float(s.get("params_count")): str(s.get("params"))
            for s in systems
            if as_float(s.get("params_count")) is not None
        }
        blocks.append(
            PlotSlot(
                "plot-sweep-size",
                "sweep_lines",
                "Metrics against model size (parameters), one "
                "line per role and temperature, 95% CIs over prompts",
                "Scaling with model size",
                {"panels": panels_s, "xlabel": "parameters", "log_x": True, "xticks": sorted(ticks.items())},
            )
        )
    sim = _similarity(summary)
    if sim is not None:
        set_name, entry, edges = sim
        blocks.append(Heading(3, "Do different systems answer alike?", "sweep-similarity"))
        blocks.append(
            Para(
                f"Mean cosine between the sentence embeddings of two systems' samples for the same prompt, averaged over "
                f"the {set_name} prompts; the diagonal is each system's own within-prompt similarity.",
                kind="note",
            )
        )
        blocks.append(
            PlotSlot(
                "plot-sweep-heatmap",
                "sweep_heatmap",
                "Inter-system similarity matrix (mean cross-system cosine per prompt)",
                "Inter-system similarity",
                {"systems": entry["systems"], "matrix": entry["matrix"]},
            )
        )
        hists = entry.get("histograms") or {}
        if edges and hists:
            blocks.append(
                PlotSlot(
                    "plot-sweep-histograms",
                    "sweep_histograms",
                    "Intra-system similarity "
                    "histograms (cosine of every pair of samples for the same prompt)",
                    "Intra-system similarity",
                    {"edges": edges, "counts": {k: v.get("counts") for k, v in hists.items()}},
                )
            )
    return blocks
