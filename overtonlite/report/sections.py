"""The metric sections of the report: length and diversity, coverage, stance, similarity to the aligned answer,
paired differences, and context overflow / truncation. Each returns a list of blocks; a section without data says
"Not measured in this run"."""

from __future__ import annotations

from typing import Any

from overtonlite.report import RunData, as_ci, as_float
from overtonlite.report.markdown import (
    MISSING,
    Block,
    Heading,
    Para,
    PlotSlot,
    Table,
    fmt_pct,
    fmt_stat,
    not_measured,
    one_minus,
)

STANCE_ORDER = ("yes", "no", "both", "other")
SIMILARITY = (
    ("cosine_to_ref", "cosine"),
    ("bertscore_f1_to_ref", "BERTScore-style F1"),
    ("jaccard_to_ref", "Jaccard"),
)


def _bars(key: str, title: str, ylabel: str, series: list[tuple[str, float, Any]]) -> PlotSlot:
    return PlotSlot(
        f"plot-{key}",
        "bars",
        f"{title} per system: mean with 95% CI error bars",
        title,
        {"series": series, "ylabel": ylabel},
    )


def diversity_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Length and diversity", "diversity")]
    rows: list[list[str]] = []
    series: dict[str, list[tuple[str, float, Any]]] = {"length": [], "lexical": [], "semantic": []}
    for system in systems:
        length, jac = data.stat(system, "words_mean", "words"), data.stat(system, "jaccard")
        cos, vendi = data.stat(system, "cosine"), data.stat(system, "vendi")
        if not any((length, jac, cos, vendi)):
            continue
        rows.append(
            [
                system,
                str(len(data.records(system)) or MISSING),
                fmt_stat(length, 1),
                fmt_stat(jac),
                fmt_stat(one_minus(jac)),
                fmt_stat(cos),
                fmt_stat(one_minus(cos)),
                fmt_stat(vendi, 2),
            ]
        )
        for name, s in (("length", length), ("lexical", one_minus(jac)), ("semantic", one_minus(cos))):
            if s is not None:
                series[name].append((system, s[0], s[1]))
    if not rows:
        return not_measured(blocks)
    blocks.append(
        Para(
            "Means over prompts, 95% CIs in brackets, — = not measured. J and cosine are the mean "
            "pairwise similarities of one prompt's N samples; diversity is 1 − similarity."
        )
    )
    blocks.append(
        Table(
            [
                "system",
                "prompts",
                "words",
                "Jaccard J",
                "lexical diversity 1−J",
                "cosine",
                "semantic diversity 1−cos",
                "Vendi",
            ],
            rows,
            id="table-diversity",
        )
    )
    for key, title, ylabel in (
        ("length", "Length", "words per sample"),
        ("lexical", "Lexical diversity", "1 − J"),
        ("semantic", "Semantic diversity", "1 − cosine"),
    ):
        if series[key]:
            blocks.append(_bars(key, title, ylabel, series[key]))
    if len({row[1] for row in rows}) > 1:
        blocks.append(
            Para(
                "The systems were not all run on the same prompts (see the prompts column), so compare rows "
                "with care; the verdicts use matched prompts.",
                kind="note",
            )
        )
    common = {s for s, _, _ in series["lexical"]} & {s for s, _, _ in series["semantic"]}
    if len(common) >= 2:
        lex = [s for s, _, _ in sorted(series["lexical"], key=lambda t: t[1]) if s in common]
        sem = [s for s, _, _ in sorted(series["semantic"], key=lambda t: t[1]) if s in common]
        text = (
            f"Lexical and semantic diversity agree on the order here (least to most diverse: {', '.join(lex)})."
            if lex == sem
            else "Lexical and semantic diversity disagree in this run. Least to most diverse, "
            f"lexically: {', '.join(lex)}; semantically: {', '.join(sem)}."
        )
        blocks.append(Para(text, kind="note"))
    blocks.append(Heading(3, "After the quality filter", "filtered"))
    rows = []
    for system in systems:
        jf, cf = data.stat(system, "jaccard_filtered"), data.stat(system, "cosine_filtered")
        qp = data.stat(system, "quality_pass_rate", "quality_pass")
        if any((jf, cf, qp)):
            rows.append(
                [
                    system,
                    fmt_pct(qp[0] if qp else None),
                    fmt_stat(jf),
                    fmt_stat(one_minus(jf)),
                    fmt_stat(cf),
                    fmt_stat(one_minus(cf)),
                ]
            )
    if not rows:
        return not_measured(blocks)
    blocks.append(Para("The same similarities over only the samples that pass the quality filter."))
    blocks.append(
        Table(["system", "samples passing", "Jaccard J", "1−J", "cosine", "1−cos"], rows, id="table-filtered")
    )
    return blocks


def coverage_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Coverage of base content by the aligned answer", "coverage")]
    rows, hist = [], {}
    for system in systems:
        cov, miss = data.stat(system, "coverage"), data.stat(system, "missing", "missing_mean")
        values = [as_float(v) for r in data.records(system) for v in (r.get("coverage") or [])]
        values = [v for v in values if v is not None]
        if values:
            hist[system] = values
        if cov or miss:
            rows.append([system, fmt_stat(cov), fmt_stat(miss, 2), str(len(values) or MISSING)])
    if not rows:
        return not_measured(blocks, "no coverage or missing-information scores")
    blocks.append(
        Para(
            "Coverage: share of a sample's content that the aligned answer also contains (0–1, higher = "
            "more covered). Missing: a 1–5 proxy of the paper's missing-information score (1 = nothing "
            "new, 5 = all new)."
        )
    )
    blocks.append(Table(["system", "coverage", "missing (1–5)", "samples"], rows, id="table-coverage"))
    if hist:
        blocks.append(
            PlotSlot(
                "plot-coverage",
                "coverage",
                "Histogram of per-sample coverage by the aligned answer, one colour per system",
                "Coverage by the aligned answer",
                {"values": hist},
            )
        )
    return blocks


def stance_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Stance on contested prompts", "stance")]
    rows, dist = [], {}
    for system in systems:
        labels = [str(v) for r in data.records(system) for v in (r.get("stance") or []) if v is not None]
        both, split = data.stat(system, "stance_both_share"), data.stat(system, "yes_no_split")
        if not labels and both is None and split is None:
            continue
        counts = {k: labels.count(k) for k in [*STANCE_ORDER, *sorted(set(labels) - set(STANCE_ORDER))]}
        dist[system] = counts
        shares = [fmt_pct(counts[k] / len(labels)) if labels else MISSING for k in STANCE_ORDER]
        rows.append([system, str(len(labels)), *shares, fmt_stat(both), fmt_stat(split)])
    if not rows:
        return not_measured(blocks, "no contested prompts or no stance labels")
    blocks.append(
        Para(
            "Share of samples labelled yes / no / both sides / other; the split rate is the share of "
            "prompts whose N samples include both a yes and a no (distributional pluralism), while "
            '"both" inside one answer is Overton pluralism.'
        )
    )
    blocks.append(
        Table(
            ["system", "labels", "yes", "no", "both", "other", '"both" share', "yes/no split rate"],
            rows,
            id="table-stance",
        )
    )
    if any(sum(c.values()) for c in dist.values()):
        blocks.append(
            PlotSlot(
                "plot-stance",
                "stance",
                "Stacked bars of the stance label shares per system",
                "Stance distribution",
                {"counts": dist},
            )
        )
    return blocks


def reference_system(data: RunData, systems: list[str]) -> str | None:
    """The aligned system whose self-similarity is the baseline for similarity-to-aligned."""
    results = data.results or {}
    settings = results.get("settings") if isinstance(results.get("settings"), dict) else {}
    pair = results.get("pair") if isinstance(results.get("pair"), dict) else {}
    for name in (results.get("reference_system"), settings.get("reference_system"), pair.get("chat"), "chat"):
        if name in systems:
            return str(name)
    manifest_systems = (data.manifest or {}).get("systems") or {}
    matches = [
        s
        for s, cfg in manifest_systems.items()
        if isinstance(cfg, dict) and pair.get("chat") and cfg.get("model") == pair.get("chat")
    ]
    return matches[0] if len(matches) == 1 else None


def _similarity_measures(data: RunData, systems: list[str]) -> list[tuple[str, str]]:
    """(metric key, label) of the similarity measures; the BERTScore-style F1 is the baseline-rescaled one when the
    run has it (as the verdicts use it), else the raw one."""
    rescaled = any(data.stat(s, "bertscore_f1_to_ref_rescaled") is not None for s in systems)
    bert = ("bertscore_f1_to_ref_rescaled", "BERTScore-style F1 (rescaled)") if rescaled else SIMILARITY[1]
    return [SIMILARITY[0], bert, SIMILARITY[2]]


def similarity_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Similarity to the aligned answer", "similarity")]
    ref = reference_system(data, systems)
    measures = _similarity_measures(data, systems)
    base = {key: (data.stat(ref, key) if ref else None) for key, _ in measures}
    rows, panels = [], {key: [] for key, _ in measures}
    for system in systems:
        stats = {key: data.stat(system, key) for key, _ in measures}
        if not any(stats.values()):
            continue
        row = [system + (" (self-baseline)" if system == ref else "")]
        for key, _ in measures:
            s, b = stats[key], base[key]
            row += [fmt_stat(s), fmt_pct(s[0] / b[0]) if s and b and b[0] else MISSING]
            if s is not None and system != ref:
                panels[key].append((system, s[0], s[1]))
        rows.append(row)
    if not rows:
        return not_measured(blocks, "no similarity-to-aligned scores")
    blocks.append(
        Para(
            f"Similarity of each system's samples to the aligned model's sample 0; the self-baseline is "
            f"the aligned model's samples 1..N−1 against its sample 0 (reference system: "
            f"{ref or 'not identified'}). Share = mean / self-baseline mean; 100% means as close to "
            "the aligned answer as the aligned model is to itself."
        )
    )
    headers = ["system"]
    for _, label in measures:
        headers += [label, "share of self"]
    blocks.append(Table(headers, rows, id="table-similarity"))
    plot_panels = [
        {"label": label, "series": panels[key], "baseline": base[key][0] if base[key] else None}
        for key, label in measures
        if panels[key]
    ]
    if plot_panels:
        blocks.append(
            PlotSlot(
                "plot-similarity",
                "similarity",
                "Similarity to the aligned sample 0 per system, "
                "with the aligned self-baseline as a dashed line",
                "Similarity to aligned",
                {"panels": plot_panels},
            )
        )
    return blocks


def health_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Context overflow and truncation", "health")]
    if data.health is None:
        return not_measured(blocks, "no samples.jsonl")
    rows = []
    for system in [*systems, *(s for s in data.health if s not in systems)]:
        h = data.health.get(system)
        if h is not None:
            cut = fmt_pct(h.truncated / h.samples, 1) if h.samples else MISSING
            rows.append([system, str(h.groups), str(h.overflowed), str(h.errors), str(h.samples), cut])
    groups = sum(h.groups for h in data.health.values())
    over = sum(h.overflowed for h in data.health.values())
    blocks.append(
        Para(
            f"Prompts that overflowed the context: {over} of {groups} prompt groups "
            f"({fmt_pct(over / groups, 1) if groups else MISSING}); they are recorded, not generated."
        )
    )
    blocks.append(
        Table(
            ["system", "prompt groups", "overflowed context", "other errors", "samples", "cut at max_tokens"],
            rows,
            id="table-health",
        )
    )
    return blocks


PAIRED_COLUMNS = (
    ("words_mean", "words", 1),
    ("jaccard", "Jaccard", 3),
    ("cosine", "cosine", 3),
    ("vendi", "Vendi", 2),
    ("coverage", "coverage", 3),
    ("stance_both_share", '"both" share', 3),
    ("yes_no_split", "yes/no split", 3),
    ("cosine_to_ref", "cosine to ref", 3),
    ("jaccard_to_ref", "Jaccard to ref", 3),
)


def paired_section(data: RunData, systems: list[str]) -> list[Block]:
    """summary.json's paired differences ``{"A - B": {metric: {mean, ci}}}``, one row per comparison."""
    blocks: list[Block] = [Heading(2, "Paired differences", "paired")]
    paired = (data.summary or {}).get("paired")
    comparisons = (
        {str(k): v for k, v in paired.items() if isinstance(v, dict)} if isinstance(paired, dict) else {}
    )
    if not comparisons:
        return not_measured(blocks, "no paired comparisons in summary.json")
    columns = [
        (key, label, digits)
        for key, label, digits in PAIRED_COLUMNS
        if any(as_float((entry.get(key) or {}).get("mean")) is not None for entry in comparisons.values())
    ]
    if not columns:
        return not_measured(blocks, "no paired comparisons in summary.json")
    rows = []
    for name, entry in comparisons.items():
        row = [name]
        for key, _, digits in columns:
            item = entry.get(key) if isinstance(entry.get(key), dict) else {}
            mean = as_float(item.get("mean"))
            row.append(fmt_stat(None if mean is None else (mean, as_ci(item.get("ci"))), digits))
        rows.append(row)
    blocks.append(
        Para(
            "Differences between two systems on the same prompts (first − second), mean with a 95% paired "
            "bootstrap CI; a CI that excludes 0 marks a clear difference."
        )
    )
    blocks.append(Table(["comparison", *(label for _, label, _ in columns)], rows, id="table-paired"))
    return blocks
