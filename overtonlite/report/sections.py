"""The metric sections of the report: length and diversity, coverage, stance, similarity to the aligned answer,
paired differences, and context overflow / truncation. Each returns a list of blocks; a section without data says
"Not measured in this run".

Every number is a summary.json entry; each table row names its prompt set and the number of prompts behind it.
"""

from __future__ import annotations

from typing import Any

from overtonlite import schema
from overtonlite.report import RunData, Stat, as_float, as_stat
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
NO_SUMMARY = "no summary.json; run `overtonlite report DIR --rescore` to score the stored samples"


def _bars(key: str, title: str, ylabel: str, series: list[tuple[str, float, Any]]) -> PlotSlot:
    return PlotSlot(
        f"plot-{key}",
        "bars",
        f"{title} per system: mean with 95% CI error bars",
        title,
        {"series": series, "ylabel": ylabel},
    )


def _n(data: RunData, system: str, set_name: str, *keys: str) -> str:
    """The number of prompts behind the first of ``keys`` summary.json has, as a table cell."""
    for key in keys:
        n = data.n_prompts(system, set_name, key)
        if n is not None:
            return str(n)
    return MISSING


def _missing_summary(data: RunData, blocks: list[Block], why: str) -> list[Block]:
    return not_measured(blocks, NO_SUMMARY if data.summary is None else why)


def diversity_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Length and diversity", "diversity")]
    rows: list[list[str]] = []
    primary = data.primary_set
    series: dict[str, list[tuple[str, float, Any]]] = {"length": [], "lexical": [], "semantic": []}
    for set_name in data.table_sets:
        for system in systems:
            length = data.stat(system, set_name, "words_mean")
            jac, cos = data.stat(system, set_name, "jaccard"), data.stat(system, set_name, "cosine")
            vendi = data.stat(system, set_name, "vendi")
            if not any((length, jac, cos, vendi)):
                continue
            rows.append(
                [
                    system,
                    set_name,
                    _n(data, system, set_name, "jaccard", "words_mean", "cosine", "vendi"),
                    fmt_stat(length, 1),
                    fmt_stat(jac),
                    fmt_stat(one_minus(jac)),
                    fmt_stat(cos),
                    fmt_stat(one_minus(cos)),
                    fmt_stat(vendi, 2),
                ]
            )
            if set_name == primary:
                for name, s in (
                    ("length", length),
                    ("lexical", one_minus(jac)),
                    ("semantic", one_minus(cos)),
                ):
                    if s is not None:
                        series[name].append((system, s[0], s[1]))
    if not rows:
        return _missing_summary(data, blocks, "no diversity values in summary.json")
    blocks.append(
        Para(
            "Means over the prompts of each set (prompts = their number), 95% CIs in brackets, — = not measured. "
            "J and cosine are the mean pairwise similarities of one prompt's N samples; diversity is "
            "1 − similarity."
        )
    )
    blocks.append(
        Table(
            [
                "system",
                "set",
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
            blocks.append(_bars(key, f"{title} ({primary} set)", ylabel, series[key]))
    per_set = {(row[1], row[2]) for row in rows}
    if len({n for _, n in per_set}) > len({s for s, _ in per_set}):
        blocks.append(
            Para(
                "Within a set the systems were not all run on the same prompts (see the prompts column), so "
                "compare rows with care; the verdicts use matched prompts.",
                kind="note",
            )
        )
    common = {s for s, _, _ in series["lexical"]} & {s for s, _, _ in series["semantic"]}
    if len(common) >= 2:
        lex = [s for s, _, _ in sorted(series["lexical"], key=lambda t: t[1]) if s in common]
        sem = [s for s, _, _ in sorted(series["semantic"], key=lambda t: t[1]) if s in common]
        text = (
            f"Lexical and semantic diversity agree on the order on the {primary} set (least to most diverse: "
            f"{', '.join(lex)})."
            if lex == sem
            else f"Lexical and semantic diversity disagree on the {primary} set. Least to most diverse, "
            f"lexically: {', '.join(lex)}; semantically: {', '.join(sem)}."
        )
        blocks.append(Para(text, kind="note"))
    blocks.append(Heading(3, "After the quality filter", "filtered"))
    rows = []
    for set_name in data.table_sets:
        for system in systems:
            jf = data.stat(system, set_name, "jaccard_filtered")
            cf = data.stat(system, set_name, "cosine_filtered")
            qp = data.stat(system, set_name, "quality_pass_rate")
            if any((jf, cf, qp)):
                rows.append(
                    [
                        system,
                        set_name,
                        _n(data, system, set_name, "quality_pass_rate", "jaccard_filtered"),
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
        Table(
            ["system", "set", "prompts", "samples passing", "Jaccard J", "1−J", "cosine", "1−cos"],
            rows,
            id="table-filtered",
        )
    )
    return blocks


def coverage_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Coverage of base content by the aligned answer", "coverage")]
    rows, hist = [], {}
    primary = data.primary_set
    for set_name in data.table_sets:
        for system in systems:
            cov, miss = data.stat(system, set_name, "coverage"), data.stat(system, set_name, "missing")
            le2 = data.stat(system, set_name, "missing_le2_share")
            if not (cov or miss):
                continue
            rows.append(
                [
                    system,
                    set_name,
                    _n(data, system, set_name, "coverage", "missing"),
                    fmt_stat(cov),
                    fmt_stat(miss, 2),
                    fmt_stat(le2),
                ]
            )
            if set_name == primary:
                values = [
                    as_float(v) for r in data.records(system, set_name) for v in (r.get("coverage") or [])
                ]
                if values := [v for v in values if v is not None]:
                    hist[system] = values
    if not rows:
        return _missing_summary(data, blocks, "no coverage or missing-information scores")
    blocks.append(
        Para(
            "Coverage: share of a sample's content that the aligned answer also contains (0–1, higher = "
            "more covered). Missing: a 1–5 proxy of the paper's missing-information score (1 = nothing "
            "new, 5 = all new); share ≤ 2: the share of samples whose proxy is at most 2."
        )
    )
    blocks.append(
        Table(
            ["system", "set", "prompts", "coverage", "missing (1–5)", "share missing ≤ 2"],
            rows,
            id="table-coverage",
        )
    )
    if hist:
        blocks.append(
            PlotSlot(
                "plot-coverage",
                "coverage",
                f"Histogram of per-sample coverage by the aligned answer ({primary} set), one colour per system",
                f"Coverage by the aligned answer ({primary} set)",
                {"values": hist},
            )
        )
    return blocks


def stance_section(data: RunData, systems: list[str]) -> list[Block]:
    set_name = data.stance_set
    title = f"Stance on {set_name} prompts" if set_name not in (None, schema.ALL) else "Stance"
    blocks: list[Block] = [Heading(2, title, "stance")]
    rows, dist = [], {}
    for system in systems:
        shares = {k: data.stat(system, set_name, f"stance_{k}_share") for k in STANCE_ORDER}
        both, split = (
            data.stat(system, set_name, "stance_both_share"),
            data.stat(system, set_name, "yes_no_split"),
        )
        both_c = data.stat(system, set_name, "stance_both_share_corrected")
        split_c = data.stat(system, set_name, "yes_no_split_corrected")
        if both is None and split is None and not any(shares.values()):
            continue
        dist[system] = {k: s[0] for k, s in shares.items() if s is not None}
        rows.append(
            [
                system,
                str(set_name),
                _n(data, system, str(set_name), "stance_both_share", "yes_no_split"),
                *(fmt_pct(shares[k][0]) if shares[k] else MISSING for k in STANCE_ORDER),
                fmt_stat(both),
                fmt_stat(split),
                fmt_stat(both_c),
                fmt_stat(split_c),
            ]
        )
    if not rows:
        return _missing_summary(data, blocks, "no contested prompts or no stance labels")
    blocks.append(
        Para(
            f"On the {set_name} set only: the mean over prompts of the share of samples labelled yes / no / both "
            "sides / other; the split rate is the share of prompts whose N samples include both a yes and a no "
            '(distributional pluralism), while "both" inside one answer is Overton pluralism. The "corrected" '
            "columns undo the stance classifier's measured confusion (fitted with each system held out), and their "
            "CIs include that uncertainty as well as the resampling of prompts; the verdicts use the raw values."
        )
    )
    blocks.append(
        Table(
            [
                "system",
                "set",
                "prompts",
                "yes",
                "no",
                "both",
                "other",
                '"both" share',
                "yes/no split rate",
                '"both" share, corrected',
                "split rate, corrected",
            ],
            rows,
            id="table-stance",
        )
    )
    if any(sum(c.values()) for c in dist.values()):
        blocks.append(
            PlotSlot(
                "plot-stance",
                "stance",
                f"Stacked bars of the stance label shares per system ({set_name} set)",
                f"Stance distribution ({set_name} set)",
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
    rescaled = any(
        data.stat(s, set_name, "bertscore_f1_to_ref_rescaled") is not None
        for s in systems
        for set_name in data.table_sets
    )
    bert = ("bertscore_f1_to_ref_rescaled", "BERTScore-style F1 (rescaled)") if rescaled else SIMILARITY[1]
    return [SIMILARITY[0], bert, SIMILARITY[2]]


def _share(data: RunData, system: str, ref: str | None, set_name: str, key: str) -> str:
    """The stored paired ratio ``system / ref`` (summary.json ``ratios``) as a percentage with its CI."""
    if ref is None:
        return MISSING
    if system == ref:
        return "self"
    s = as_stat(schema.ratio_stat(data.summary, system, ref, set_name, key))
    if s is None:
        return MISSING
    ci = f" [{fmt_pct(s[1][0])}, {fmt_pct(s[1][1])}]" if s[1] else ""
    return fmt_pct(s[0]) + ci


def similarity_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Similarity to the aligned answer", "similarity")]
    ref = reference_system(data, systems)
    measures = _similarity_measures(data, systems)
    primary = data.primary_set
    rows: list[list[str]] = []
    panels: dict[str, list[tuple[str, float, Any]]] = {key: [] for key, _ in measures}
    for set_name in data.table_sets:
        for system in systems:
            stats: dict[str, Stat | None] = {key: data.stat(system, set_name, key) for key, _ in measures}
            if not any(stats.values()):
                continue
            row = [
                system + (" (self-baseline)" if system == ref else ""),
                set_name,
                _n(data, system, set_name, *(key for key, _ in measures)),
            ]
            for key, _ in measures:
                s = stats[key]
                row += [fmt_stat(s), _share(data, system, ref, set_name, key) if s else MISSING]
                if s is not None and system != ref and set_name == primary:
                    panels[key].append((system, s[0], s[1]))
            rows.append(row)
    if not rows:
        return _missing_summary(data, blocks, "no similarity-to-aligned scores")
    blocks.append(
        Para(
            f"Similarity of each system's samples to the aligned model's sample 0; the self-baseline is "
            f"the aligned model's samples 1..N−1 against its sample 0 (reference system: "
            f"{ref or 'not identified'}). Share of self = the paired ratio of means over the set's prompts "
            "(summary.json ratios) with its 95% CI; 100% means as close to the aligned answer as the aligned "
            "model is to itself."
        )
    )
    headers = ["system", "set", "prompts"]
    for _, label in measures:
        headers += [label, "share of self"]
    blocks.append(Table(headers, rows, id="table-similarity"))
    baseline = {key: data.stat(ref, primary, key) if ref else None for key, _ in measures}
    plot_panels = [
        {"label": label, "series": panels[key], "baseline": baseline[key][0] if baseline[key] else None}
        for key, label in measures
        if panels[key]
    ]
    if plot_panels:
        blocks.append(
            PlotSlot(
                "plot-similarity",
                "similarity",
                f"Similarity to the aligned sample 0 per system ({primary} set), "
                "with the aligned self-baseline as a dashed line",
                f"Similarity to aligned ({primary} set)",
                {"panels": plot_panels},
            )
        )
    return blocks


def health_section(data: RunData, systems: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Context overflow and truncation", "health")]
    if data.health is None:
        return not_measured(blocks, "no samples.jsonl")
    rows = []
    stored = (data.results or {}).get("truncation")
    stored = stored if isinstance(stored, dict) else {}
    for system in [*systems, *(s for s in data.health if s not in systems)]:
        h = data.health.get(system)
        if h is not None:
            # the share results.json records (the one the verdicts used); else a count of the recorded finish
            # reasons; "not measured" where the samples carry none (imported generations)
            share = as_float(stored.get(system))
            if share is None and h.with_finish_reason:
                share = h.truncated / h.with_finish_reason
            cut = fmt_pct(share, 1) if share is not None else MISSING
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
    """summary.json's paired differences ``{"A - B": {"sets": {SET: {metric: {mean, ci, n_prompts}}}}}``, one row
    per comparison and set."""
    blocks: list[Block] = [Heading(2, "Paired differences", "paired")]
    paired = (data.summary or {}).get("paired")
    comparisons = (
        {str(k): v for k, v in paired.items() if isinstance(v, dict)} if isinstance(paired, dict) else {}
    )
    cells: list[tuple[str, str, dict[str, Any]]] = []
    for name, entry in comparisons.items():
        sets = entry.get("sets") if isinstance(entry.get("sets"), dict) else {}
        for set_name in data.table_sets:
            if isinstance(sets.get(set_name), dict):
                cells.append((name, set_name, sets[set_name]))
    columns = [
        (key, label, digits)
        for key, label, digits in PAIRED_COLUMNS
        if any(as_stat(values.get(key)) is not None for _, _, values in cells)
    ]
    if not columns:
        return _missing_summary(data, blocks, "no paired comparisons in summary.json")
    rows = []
    for name, set_name, values in cells:
        n = max((int(v.get("n_prompts") or 0) for k, v in values.items() if isinstance(v, dict)), default=0)
        row = [name, set_name, str(n) if n else MISSING]
        row += [fmt_stat(as_stat(values.get(key)), digits) for key, _, digits in columns]
        rows.append(row)
    blocks.append(
        Para(
            "Differences between two systems on the same prompts of a set (first − second), mean with a 95% "
            "paired bootstrap CI (prompts = the most prompts any column pairs); a CI that excludes 0 marks a "
            "clear difference."
        )
    )
    blocks.append(
        Table(["comparison", "set", "prompts", *(label for _, label, _ in columns)], rows, id="table-paired")
    )
    return blocks
