"""What the report says, in reading order: title, the cross-family banner, the verdicts, the settings, the metric
sections (:mod:`overtonlite.report.sections`), notes on the metrics, and the manifest signature as the last line."""

from __future__ import annotations

from typing import Any

from overtonlite.report import RunData, as_ci, as_float, as_stat
from overtonlite.report.judges import judge_section
from overtonlite.report.markdown import (
    MISSING,
    Block,
    Bullets,
    Heading,
    Para,
    Table,
    anchor,
    fmt_stat,
    short,
)
from overtonlite.report.sections import (
    coverage_section,
    diversity_section,
    health_section,
    paired_section,
    similarity_section,
    stance_section,
)
from overtonlite.report.sweep import sweep_section

# ----------------------------------------------------------------------------------------------- claims


def _claims(data: RunData) -> dict[str, dict[str, Any]]:
    claims = (data.results or {}).get("claims")
    return {str(k): v for k, v in claims.items() if isinstance(v, dict)} if isinstance(claims, dict) else {}


def _old_evidence_rows(evidence: dict[str, Any]) -> list[list[str]]:
    """Evidence of a results.json written before schema version 2: ``{metric: {system: {mean, ci}}}``."""
    rows: list[list[str]] = []
    for metric, per_system in evidence.items():
        for system, entry in (per_system if isinstance(per_system, dict) else {}).items():
            raw = entry.get("mean") if isinstance(entry, dict) else entry
            mean = as_float(raw)
            ci = as_ci(entry.get("ci")) if isinstance(entry, dict) else None
            if isinstance(raw, int) and not isinstance(raw, bool) and ci is None:
                rows.append([str(metric), str(system), str(raw)])  # a count, e.g. prompts over the context
            elif mean is not None:
                rows.append([str(metric), str(system), fmt_stat((mean, ci))])
    return rows


def _evidence_entries(evidence: Any) -> list[dict[str, Any]]:
    return [e for e in evidence if isinstance(e, dict)] if isinstance(evidence, list) else []


def _claim_lines(claim: dict[str, Any]) -> list[str]:
    lines = claim.get("lines")
    if isinstance(lines, list) and lines:
        return [str(line) for line in lines]
    evidence = claim.get("evidence")
    if isinstance(evidence, dict):
        return [f"{m} / {s}: {v}" for m, s, v in _old_evidence_rows(evidence)]
    return [
        f"{e.get('metric')} / {e.get('system')} ({e.get('set')}, n={e.get('n_prompts')}): "
        f"{fmt_stat(as_stat(e))}"
        for e in _evidence_entries(evidence)
    ]


def verdict_lines(data: RunData) -> list[str]:
    """One ``claim: verdict`` line per claim, each followed by its evidence lines (indented)."""
    out: list[str] = []
    for name, claim in _claims(data).items():
        out.append(f"{name}: {claim.get('verdict', 'no verdict')}")
        out.extend(f"  {line}" for line in _claim_lines(claim))
    return out


def banner_text(data: RunData) -> str | None:
    """The cross-family banner of results.json; written here when the pair is cross-family but has none."""
    results = data.results or {}
    banner = results.get("banner")
    if isinstance(banner, str) and banner.strip():
        text = banner.strip()
        return text[0].upper() + text[1:]
    pair = results.get("pair")
    if isinstance(pair, dict) and pair.get("same_family") is False:
        return (
            f"Cross-family pair: the base model {pair.get('base')} and the chat model {pair.get('chat')} come "
            "from different families, so alignment is confounded with the model family. Read the comparisons "
            "as a test of the method, not as a replication of the paper."
        )
    return None


def _verdicts(data: RunData) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Verdicts", "verdicts")]
    claims = _claims(data)
    if data.results is None:
        blocks.append(Para("No results.json in this run: the metrics are reported below, without verdicts."))
    elif not claims:
        blocks.append(Para("results.json holds no claims: no verdicts."))
    for name, claim in claims.items():
        verdict = str(claim.get("verdict", "no verdict"))
        blocks.append(Para(f"**{name}**: {verdict}", kind="verdict", verdict=verdict))
        if lines := _claim_lines(claim):
            blocks.append(Bullets(lines))
        if table := _findings_table(claim.get("findings"), f"findings-{anchor(name)}"):
            blocks.append(table)
        if table := _evidence_table(claim.get("evidence"), f"evidence-{anchor(name)}"):
            blocks.append(table)
    return blocks


def _findings_table(findings: Any, ident: str) -> Table | None:
    """One row per finding: the systems compared, the prompt set and its number of prompts, estimate [CI]."""
    rows = []
    for f in findings if isinstance(findings, list) else []:
        if not isinstance(f, dict) or "set" not in f:
            continue
        systems = f.get("systems") or []
        op = {"paired": " − ", "ratio": " / "}.get(str(f.get("kind")), ", ")
        rows.append(
            [
                str(f.get("name", "")),
                op.join(str(s) for s in systems) or MISSING,
                str(f.get("set") or MISSING),
                str(f.get("n_prompts") or MISSING),
                fmt_stat(as_stat({"mean": f.get("estimate"), "ci": f.get("ci")})),
                str(f.get("verdict", "")),
            ]
        )
    if not rows:
        return None
    return Table(["finding", "systems", "set", "prompts", "estimate [95% CI]", "verdict"], rows, id=ident)


def _evidence_table(evidence: Any, ident: str) -> Table | None:
    """The evidence entries, one row each: metric, system (or comparison), set, prompts, mean [95% CI]. Evidence
    of an earlier results.json (no sets) is one row per metric and one column per system."""
    if isinstance(evidence, dict):
        rows = _old_evidence_rows(evidence)
        if not rows:
            return None
        systems = list(dict.fromkeys(system for _, system, _ in rows))
        cells = {(metric, system): value for metric, system, value in rows}
        metrics = list(dict.fromkeys(metric for metric, _, _ in rows))
        body = [[m, *(cells.get((m, s), MISSING) for s in systems)] for m in metrics]
        return Table(["evidence", *systems], body, id=ident)
    body = [
        [
            str(e.get("metric")),
            str(e.get("system")),
            str(e.get("set")),
            str(e.get("n_prompts") if e.get("n_prompts") is not None else MISSING),
            fmt_stat(as_stat(e)),
        ]
        for e in _evidence_entries(evidence)
        if as_stat(e) is not None
    ]
    if not body:
        return None
    return Table(["evidence", "system", "set", "prompts", "mean [95% CI]"], body, id=ident)


# ----------------------------------------------------------------------------------------------- settings


def _lookup(data: RunData, *keys: str, scoring_first: bool = False) -> Any:
    """The first non-empty value of ``keys`` in results.json's settings, summary.json's settings, summary.json
    and manifest.json (summary.json first with ``scoring_first``: it knows what scoring used)."""
    settings = (data.results or {}).get("settings") or {}
    scoring = (data.summary or {}).get("settings") or {}
    manifest = data.manifest or {}
    sources = [settings, scoring, data.summary or {}, manifest, manifest.get("scoring") or {}]
    if scoring_first:
        sources.insert(0, scoring)
    for source in sources:
        for key in keys:
            if isinstance(source, dict) and source.get(key) not in (None, "", {}):
                return source[key]
    return None


def _from_systems(data: RunData, key: str) -> Any:
    systems = (data.manifest or {}).get("systems") or {}
    values = {short(cfg.get(key)) for cfg in systems.values() if isinstance(cfg, dict) and key in cfg}
    return ", ".join(sorted(values)) if values else None


def _sampler(data: RunData) -> str | None:
    found = _lookup(data, "sampling", "sampler")
    if found is not None:
        return short(found)
    seen: dict[str, list[str]] = {}
    for system, cfg in ((data.manifest or {}).get("systems") or {}).items():
        conf = (cfg or {}).get("config") if isinstance(cfg, dict) else None
        if isinstance(conf, dict):
            conf = conf.get("sampling", conf)
            keys = ("temperature", "repetition_penalty", "top_p", "top_k", "min_p", "max_tokens")
            seen.setdefault(short({k: conf[k] for k in keys if k in conf}), []).append(system)
    if len(seen) == 1:
        return next(iter(seen))
    return "; ".join(f"{', '.join(names)}: {desc}" for desc, names in seen.items()) or None


def _settings(data: RunData) -> list[Block]:
    rows: list[list[str]] = []
    pair = (data.results or {}).get("pair")
    if isinstance(pair, dict):
        family = {True: "same family", False: "cross-family"}.get(
            pair.get("same_family"), "family not recorded"
        )
        rows.append(["pair", f"base {pair.get('base')}, chat {pair.get('chat')} ({family})"])
    models: dict[tuple[str, str], list[str]] = {}
    for system, cfg in ((data.manifest or {}).get("systems") or {}).items():
        if isinstance(cfg, dict):
            sha = str(cfg.get("model_sha256") or "")
            desc = f"sha256 {sha[:12]}" if sha else "sha256 not recorded"
            backend = cfg.get("backend")
            if isinstance(backend, dict) and backend.get("n_ctx"):
                desc += f", n_ctx {backend['n_ctx']}"
            models.setdefault((str(cfg.get("model", system)), desc), []).append(system)
    for (model, desc), names in models.items():
        rows.append([f"model {model}", f"{desc}; systems: {', '.join(names)}"])
    for label, keys in (
        ("prompts", ("prompts",)),
        ("n (samples per prompt)", ("n",)),
        ("max_tokens", ("max_tokens",)),
        ("seed", ("seed",)),
    ):
        value = _lookup(data, *keys)
        rows.append([label, short(value) if value is not None else (_from_systems(data, keys[0]) or MISSING)])
    rows.append(["sampler", _sampler(data) or MISSING])
    for label, keys in (
        ("lexical tokenizer", ("lexical_tokenizer", "tokenizer", "tokenization")),
        ("embedder", ("embedder", "embedding_model")),
        ("BERTScore-style F1", ("bertscore",)),
        ("coverage threshold τ", ("tau",)),
        ("quality threshold", ("quality_threshold",)),
    ):
        value = _lookup(data, *keys, scoring_first=True)
        if value is not None or label in ("lexical tokenizer", "embedder"):
            rows.append([label, short(value)])
    shown = {
        "prompts",
        "n",
        "max_tokens",
        "seed",
        "sampling",
        "sampler",
        "tokenizer",
        "lexical_tokenizer",
        "tokenization",
        "embedder",
        "bertscore",
        "tau",
        "quality_threshold",
        "embedding_model",
    }
    settings = (data.results or {}).get("settings")
    for key, value in settings.items() if isinstance(settings, dict) else ():
        if key not in shown:
            rows.append([str(key), short(value)])
    manifest = data.manifest or {}
    versions = {
        "overtonlite": manifest.get("overtonlite_version"),
        "python": manifest.get("python"),
        "git": manifest.get("git_revision"),
    }
    versions.update(manifest.get("packages") or {})
    if any(v for v in versions.values()):
        rows.append(["versions", short({k: v for k, v in versions.items() if v})])
    blocks: list[Block] = [
        Heading(2, "Settings", "settings"),
        Table(["setting", "value"], rows, id="table-settings", numeric=False),
    ]
    if data.manifest is None:
        blocks.append(Para("No manifest.json: model hashes and versions are not recorded.", kind="note"))
    return blocks


def _notes(data: RunData) -> list[Block]:
    n = _lookup(data, "n") or _from_systems(data, "n") or "N"
    return [
        Heading(2, "What the metrics mean", "notes"),
        Bullets(
            [
                "Lexical similarity J: Jaccard overlap of the content-word sets of two samples (word tokens without "
                "punctuation and stop words), averaged over all pairs of a prompt's samples; lexical diversity is 1 − J.",
                "Semantic similarity: cosine of sentence embeddings of two samples (embedder in Settings). Embedding "
                "cosines sit in a compressed range (most pairs 0.6–0.9), so compare systems with each other and with the "
                "self-baseline, never in absolute terms.",
                f"Vendi score: the effective number of distinct samples, between 1 (all alike) and n = {n}.",
                "BERTScore-style F1: greedy token matching on MiniLM token embeddings, not roberta-large layer 17 as in "
                "the paper; its values are not comparable with published BERTScore numbers. When marked rescaled, it is rescaled against the F1 of unrelated pairs (baseline in Settings), so 0 means no closer than an unrelated answer.",
                "Lexical and semantic diversity can disagree: rewording the same content is lexically diverse but "
                "semantically alike, so both are reported.",
                "Quality filter, coverage, missing information and stance use local stand-ins for the paper's GPT-4 "
                "judges; treat them as proxies.",
                "Length is an outcome: the share of samples cut at the max_tokens cap is reported above, where the "
                "samples record why they ended (imported generations may not).",
                "CIs are 95% percentile bootstrap intervals over the prompts of a set "
                f"({_lookup(data, 'n_boot', scoring_first=True) or 'N'} resamples); every number comes from "
                "summary.json or results.json, and each table names its prompt set and number of prompts.",
            ]
        ),
    ]


def _title(data: RunData) -> str:
    pair = (data.results or {}).get("pair")
    if isinstance(pair, dict) and pair.get("base") and pair.get("chat"):
        return f"overtonlite report: {pair['base']} (base) vs {pair['chat']} (chat)"
    return f"overtonlite report: {data.run_dir.name}"


def signature(data: RunData) -> str | None:
    """The manifest signature (results.json's as a fallback)."""
    for source in (data.manifest, data.results):
        sig = (source or {}).get("signature")
        if isinstance(sig, str) and sig.strip():
            return sig.strip()
    return None


def build_document(data: RunData) -> list[Block]:
    """The report's blocks in reading order; the signature paragraph is always the last block."""
    systems = data.systems
    doc: list[Block] = [Heading(1, _title(data), "title")]
    if banner := banner_text(data):
        doc.append(Para(banner, kind="callout"))
    doc += (
        _verdicts(data) + _settings(data) + diversity_section(data, systems) + coverage_section(data, systems)
    )
    doc += stance_section(data, systems) + judge_section(data, systems)
    doc += similarity_section(data, systems) + paired_section(data, systems)
    doc += sweep_section(data, systems)
    doc += health_section(data, systems) + _notes(data)
    sig = signature(data)
    doc.append(
        Para(f"Signature: `{sig}`" if sig else "Signature: not recorded (no manifest.json)", kind="signature")
    )
    return doc
