"""Judge labels beside the proxy labels in ``metrics.jsonl`` records (``score --judge``).

The judge runs where the proxy ran, so the two can be compared group by group:

* ``stance``: every sample of the groups whose proxy stance was scored -> ``stance_judge`` (one label per sample,
  null for a judgment that failed), ``stance_judge_both_share``, ``yes_no_split_judge``;
* ``missing``: every sample of the groups with a proxy missing-information score, against the reference system's
  sample 0 of the same prompt (the reference's own sample 0 is skipped, as by the proxy: its samples 1..N-1 are
  the self-baseline) -> ``missing_judge`` (1-5 per sample), ``missing_judge_mean``, ``missing_judge_le2_share``;
* ``quality``: every sample of every group -> ``quality_judge`` (the five aspect scores per sample),
  ``quality_judge_mean`` (mean over samples of the aspect mean).

``judge_errors`` counts the group's failed judgments. Shares and means are over the judgments that succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from overtonlite.judges import Judge, JudgeItem
from overtonlite.judges.tasks import MISSING, QUALITY, STANCE, Task

JUDGE_KEYS = (
    "stance_judge",
    "stance_judge_both_share",
    "yes_no_split_judge",
    "missing_judge",
    "missing_judge_mean",
    "missing_judge_le2_share",
    "quality_judge",
    "quality_judge_mean",
    "judge_errors",
)


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def judge_records(
    records: list[dict[str, Any]],
    groups: Sequence[Any],
    judge: Judge,
    *,
    tasks: Sequence[Task],
    reference_system: str | None,
    out: str | Path,
    retry_errors: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Add the judge keys to ``records`` (one per group, same order as ``groups``); returns counts per task."""
    names = {t.name for t in tasks}
    ref = {g.pid: g.texts[0] for g in groups if g.system == reference_system and g.texts}
    items: list[JudgeItem] = []
    slots: list[tuple[int, str, int]] = []  # (record index, task, sample index) of each item
    for gi, (g, rec) in enumerate(zip(groups, records, strict=True)):
        query = g.prompt or ""
        for si, text in enumerate(g.texts):
            meta = {"system": g.system, "prompt_id": g.pid, "sample_index": si}
            if not text.strip():
                continue
            if "stance" in names and rec.get("stance") is not None:
                items.append(JudgeItem(STANCE, {"query": query, "response": text}, meta))
                slots.append((gi, "stance", si))
            self_ref = (
                g.system == reference_system and si == 0
            )  # the reference itself: no judgment, as the proxy
            if "missing" in names and rec.get("missing") is not None and g.pid in ref and not self_ref:
                items.append(
                    JudgeItem(MISSING, {"query": query, "reference": ref[g.pid], "alternative": text}, meta)
                )
                slots.append((gi, "missing", si))
            if "quality" in names:
                items.append(JudgeItem(QUALITY, {"query": query, "response": text}, meta))
                slots.append((gi, "quality", si))
    results = judge.judge_many(items, cache_dir=out, retry_errors=retry_errors, progress=progress)
    per: dict[tuple[int, str], list[Any]] = {}
    errors: dict[int, int] = {}
    counts = {t: {"judged": 0, "errors": 0} for t in names}
    for (gi, task, si), res in zip(slots, results, strict=True):
        labels = per.setdefault((gi, task), [None] * len(groups[gi].texts))
        labels[si] = res.get("label")
        bad = res.get("error") is not None
        counts[task]["judged"] += 1
        counts[task]["errors"] += int(bad)
        errors[gi] = errors.get(gi, 0) + int(bad)
    for gi, rec in enumerate(records):
        for key in JUDGE_KEYS:
            rec.setdefault(key, None)
        st = per.get((gi, "stance"))
        if st is not None:
            ok = [x for x in st if x is not None]
            rec["stance_judge"] = st
            rec["stance_judge_both_share"] = ok.count("both") / len(ok) if ok else None
            rec["yes_no_split_judge"] = ("yes" in ok and "no" in ok) if ok else None
        mi = per.get((gi, "missing"))
        if mi is not None:
            ok = [x for x in mi if x is not None]
            rec["missing_judge"] = mi
            rec["missing_judge_mean"] = _mean(ok)
            rec["missing_judge_le2_share"] = sum(x <= 2 for x in ok) / len(ok) if ok else None
        qu = per.get((gi, "quality"))
        if qu is not None:
            rec["quality_judge"] = qu
            rec["quality_judge_mean"] = _mean([sum(q.values()) / len(q) for q in qu if q is not None])
        if any((gi, t) in per for t in names):
            rec["judge_errors"] = errors.get(gi, 0)
    return counts


def run_judge(
    records: list[dict[str, Any]],
    groups: Sequence[Any],
    judge: Any,
    *,
    tasks: Any = "stance,missing",
    reference_system: str | None,
    out: str | Path,
    retry_errors: bool = False,
) -> dict[str, Any]:
    """:func:`judge_records` with ``judge`` a :class:`Judge` or a registry model name (opened and closed here);
    returns what ``summary.json["settings"]["judge"]`` records: identity, tasks, counts, cache file."""
    from overtonlite.errors import UsageError
    from overtonlite.judges import open_judge, parse_tasks
    from overtonlite.rundir.manifest import portable_path

    try:
        task_list = parse_tasks(tasks)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    own = isinstance(judge, str)
    j = open_judge(judge) if own else judge
    try:
        counts = judge_records(
            records,
            groups,
            j,
            tasks=task_list,
            reference_system=reference_system,
            out=out,
            retry_errors=retry_errors,
        )
        return {
            **j.identity(),
            "tasks": [t.name for t in task_list],
            "counts": counts,
            "cache": portable_path(Path(out) / "judgments.jsonl"),
        }
    finally:
        if own:
            j.close()


def check_judge(name: str, tasks: Any) -> None:
    """UsageError/RegistryError now for an unknown judge model, a base model, or an unknown task."""
    from overtonlite.errors import UsageError
    from overtonlite.judges import parse_tasks
    from overtonlite.registry import load_registry

    spec = load_registry().model(name)
    if spec.role != "chat":
        raise UsageError(f"the judge '{name}' is a {spec.role} model; a judge must be a chat model")
    try:
        parse_tasks(tasks)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
