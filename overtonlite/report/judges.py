"""The report's judge section: an LLM judge's labels next to the proxy labels, where both ran.

``score --judge MODEL`` stores the judge's per-group values beside the proxy's in metrics.jsonl, and summary.json
summarises both per system and prompt set. This section names the judge (``summary.json`` settings) and puts the
two columns side by side. Like every section, it reads summary.json and computes nothing.
"""

from __future__ import annotations

from typing import Any

from overtonlite.report import RunData
from overtonlite.report.markdown import MISSING, Block, Heading, Para, Table, fmt_stat

# (label, proxy metric, judge metric): both are summary.json metric names
PAIRS: tuple[tuple[str, str, str], ...] = (
    ('"both" share', "stance_both_share", "stance_judge_both_share"),
    ("yes/no split rate", "yes_no_split", "yes_no_split_judge"),
    ("missing information, mean 1-5", "missing", "missing_judge_mean"),
    ("share with missing information <= 2", "missing_le2_share", "missing_judge_le2_share"),
)
QUALITY = ("quality (1-5, mean of five aspects)", "quality_judge_mean")


def judge_identity(data: RunData) -> dict[str, Any] | None:
    """``summary.json["settings"]["judge"]`` when a judge ran, else None."""
    settings = (data.summary or {}).get("settings")
    judge = settings.get("judge") if isinstance(settings, dict) else None
    return judge if isinstance(judge, dict) else None


def _describe(judge: dict[str, Any]) -> str:
    name = judge.get("name") or judge.get("model") or "?"
    backend = judge.get("backend") or "?"
    tasks = ", ".join(str(t) for t in judge.get("tasks") or []) or "?"
    parts = [f"`{name}` ({backend})", f"tasks: {tasks}"]
    if judge.get("id"):
        parts.append(f"judge id `{judge['id']}`")
    counts = judge.get("counts")
    if isinstance(counts, dict):
        failed = sum(int(c.get("errors") or 0) for c in counts.values() if isinstance(c, dict))
        done = sum(int(c.get("judged") or 0) for c in counts.values() if isinstance(c, dict))
        parts.append(f"{done} judgments, {failed} failed (failed ones are left out, never guessed)")
    return "; ".join(parts)


def judge_section(data: RunData, systems: list[str]) -> list[Block]:
    """Proxy and judge values per system and set; empty when no judge ran."""
    judge = judge_identity(data)
    if judge is None:
        return []
    rows: list[list[str]] = []
    for set_name in data.table_sets:
        for system in systems:
            for label, proxy, judged in PAIRS:
                j = data.stat(system, set_name, judged)
                if j is None:
                    continue
                p = data.stat(system, set_name, proxy)
                n = data.n_prompts(system, set_name, judged)
                rows.append(
                    [
                        system,
                        set_name,
                        str(n) if n is not None else MISSING,
                        label,
                        fmt_stat(p) if p is not None else MISSING,
                        fmt_stat(j),
                    ]
                )
            q = data.stat(system, set_name, QUALITY[1])
            if q is not None:
                n = data.n_prompts(system, set_name, QUALITY[1])
                rows.append(
                    [system, set_name, str(n) if n is not None else MISSING, QUALITY[0], MISSING, fmt_stat(q)]
                )
    blocks: list[Block] = [
        Heading(2, "Judge and proxy", "judge"),
        Para(
            f"Judge: {_describe(judge)}. Each row shows the proxy (rules and embeddings) "
            "and the judge on the same groups; the verdicts use the proxy."
        ),
    ]
    if not rows:
        blocks.append(Para("The judge ran, but summary.json has no judge values (every judgment failed?)."))
        return blocks
    blocks.append(Table(["system", "set", "prompts", "measure", "proxy", "judge"], rows, id="table-judge"))
    return blocks
