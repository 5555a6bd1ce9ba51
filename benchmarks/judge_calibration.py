"""Measure a judge (any registry chat model, local or served) against the paper's GPT-4 judge labels.

Reads, from the authors' reference data (validation only; nothing of it is stored in the repository):

* stance: ``conflictingqa/stance-calibration.jsonl`` (GPT-3.5 responses) and ``conflictingqa/stance-extra.jsonl``
  (Llama-2 URIAL-style responses), with the questions from ``conflictingqa/prompts.jsonl``;
* missing information: ``lima-oe/judge-missing-calibration.jsonl`` (reference = Llama-2-chat sample 0, alternative =
  a Llama-2 base sample), with the questions from ``lima-oe/prompts.jsonl``.

A seeded random subsample of each (sizes from the options) is judged through :class:`overtonlite.judges.Judge`,
cached in ``--out/judgments.jsonl`` (a rerun resumes). Printed: accuracy, Cohen's kappa and the share of failed
judgments (errors count as disagreements in accuracy and kappa, and are also shown apart); for stance the label
rates and the rule-based proxy on the same items; for missing information exact and within-1 agreement, Spearman's
rho, the mean score and the share <= 2.

    python benchmarks/judge_calibration.py --judge smollm2-135m-instruct --stance 40 --extra 20 --missing 20
    python benchmarks/judge_calibration.py --judge my-served-judge --stance 400 --missing 250 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from overtonlite.judges import MISSING, STANCE, JudgeItem, open_judge  # noqa: E402
from overtonlite.metrics.stance import classify_stance, cohen_kappa  # noqa: E402
from overtonlite.metrics.stats import spearman  # noqa: E402

ERR = "(error)"


def find_reference(arg: str | None) -> Path:
    candidates = [Path(arg)] if arg else []
    if os.environ.get("OVERTONLITE_REFERENCE"):
        candidates.append(Path(os.environ["OVERTONLITE_REFERENCE"]))
    candidates += [REPO.parent / "shared" / "reference", Path("/work/shared/reference")]
    for c in candidates:
        if (c / "conflictingqa" / "stance-calibration.jsonl").is_file():
            return c
    sys.exit("the authors' reference data was not found (pass --data or set OVERTONLITE_REFERENCE)")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _prompts(path: Path) -> dict[int, str]:
    return {int(r["id"]): r["prompt"] for r in _jsonl(path)}


def stance_rows(ref: Path, n_main: int, n_extra: int, seed: int) -> list[dict[str, Any]]:
    questions = _prompts(ref / "conflictingqa" / "prompts.jsonl")
    rng = random.Random(seed)
    rows = []
    for name, count in (("stance-calibration.jsonl", n_main), ("stance-extra.jsonl", n_extra)):
        path = ref / "conflictingqa" / name
        if count <= 0 or not path.is_file():
            continue
        data = _jsonl(path)
        for r in rng.sample(data, min(count, len(data))):
            rows.append(
                {**r, "system": r.get("system", "gpt-3.5-turbo"), "query": questions[int(r["prompt_id"])]}
            )
    return rows


def missing_rows(ref: Path, count: int, seed: int) -> list[dict[str, Any]]:
    questions = _prompts(ref / "lima-oe" / "prompts.jsonl")
    data = _jsonl(ref / "lima-oe" / "judge-missing-calibration.jsonl")
    rng = random.Random(seed + 1)
    return [{**r, "query": questions[int(r["prompt_id"])]} for r in rng.sample(data, min(count, len(data)))]


def _labels(results: list[dict[str, Any]]) -> list[Any]:
    return [ERR if r.get("error") is not None else r.get("label") for r in results]


def stance_report(rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    gold = [r["stance"] for r in rows]
    judge = [str(x) for x in _labels(results)]
    proxy = [classify_stance(r["query"], r["response"]) for r in rows]
    n = len(rows)

    def block(pred: list[str]) -> dict[str, Any]:
        ok = [i for i in range(n) if pred[i] != ERR]
        return {
            "accuracy": sum(p == g for p, g in zip(pred, gold, strict=True)) / n if n else None,
            "accuracy_answered": sum(pred[i] == gold[i] for i in ok) / len(ok) if ok else None,
            "kappa": cohen_kappa(gold, pred) if n else None,
            "error_share": (n - len(ok)) / n if n else None,
            "rates": {lab: pred.count(lab) / n for lab in ("yes", "no", "both", "other", ERR)} if n else {},
        }

    return {
        "n": n,
        "judge": block(judge),
        "proxy": block(proxy),
        "gpt4_rates": {lab: gold.count(lab) / n for lab in ("yes", "no", "both", "other")} if n else {},
    }


def missing_report(rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    gold = [int(r["score"]) for r in rows]
    pred = _labels(results)
    n = len(rows)
    ok = [i for i in range(n) if pred[i] != ERR]
    scores = [int(pred[i]) for i in ok]
    return {
        "n": n,
        "accuracy": sum(pred[i] == gold[i] for i in ok) / n if n else None,
        "within_1": sum(abs(int(pred[i]) - gold[i]) <= 1 for i in ok) / n if n else None,
        "kappa": cohen_kappa([str(g) for g in gold], [str(p) for p in pred]) if n else None,
        "spearman": spearman([float(gold[i]) for i in ok], [float(s) for s in scores])
        if len(ok) > 1
        else None,
        "error_share": (n - len(ok)) / n if n else None,
        "mean": {
            "judge": sum(scores) / len(scores) if scores else None,
            "gpt4": sum(gold) / n if n else None,
        },
        "share_le2": {
            "judge": sum(s <= 2 for s in scores) / len(scores) if scores else None,
            "gpt4": sum(g <= 2 for g in gold) / n if n else None,
        },
        "distribution": {str(k): scores.count(k) for k in range(1, 6)},
    }


def _f(x: Any) -> str:
    return "–" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def print_table(res: dict[str, Any]) -> None:
    ident = res["judge"]
    print(
        f"judge {ident['name']} ({ident['backend']}), reason={ident['with_reason']}, seed {res['seed']}, "
        f"{res['seconds']:.0f} s"
    )
    st = res.get("stance")
    if st and st["n"]:
        print(f"\nstance vs GPT-4 (n={st['n']})      accuracy  kappa   errors  yes    no     both   other")
        for who in ("judge", "proxy"):
            b = st[who]
            r = b["rates"]
            print(
                f"  {who:<31} {_f(b['accuracy'])}     {_f(b['kappa'])}  {_f(b['error_share'])}  "
                f"{_f(r.get('yes'))}  {_f(r.get('no'))}  {_f(r.get('both'))}  {_f(r.get('other'))}"
            )
        g = st["gpt4_rates"]
        print(
            f"  {'GPT-4 rates':<31}                           {_f(g['yes'])}  {_f(g['no'])}  {_f(g['both'])}  "
            f"{_f(g['other'])}"
        )
    mi = res.get("missing")
    if mi and mi["n"]:
        print(
            f"\nmissing information vs GPT-4 (n={mi['n']}): exact {_f(mi['accuracy'])}, within 1 "
            f"{_f(mi['within_1'])}, kappa {_f(mi['kappa'])}, Spearman {_f(mi['spearman'])}, errors "
            f"{_f(mi['error_share'])}; mean {_f(mi['mean']['judge'])} (GPT-4 {_f(mi['mean']['gpt4'])}), "
            f"share <= 2 {_f(mi['share_le2']['judge'])} (GPT-4 {_f(mi['share_le2']['gpt4'])}); "
            f"scores 1-5: {mi['distribution']}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", required=True, help="registry chat model (local GGUF or served)")
    ap.add_argument("--data", default=None, help="the authors' reference data folder")
    ap.add_argument("--stance", type=int, default=40, help="items from stance-calibration.jsonl")
    ap.add_argument("--extra", type=int, default=20, help="items from stance-extra.jsonl")
    ap.add_argument("--missing", type=int, default=20, help="items from judge-missing-calibration.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reason", action="store_true", help="ask for the label only (faster)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="runs/judge-calibration", help="cache folder (judgments.jsonl)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    ref = find_reference(args.data)
    srows = stance_rows(ref, args.stance, args.extra, args.seed)
    mrows = missing_rows(ref, args.missing, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge = open_judge(args.judge, threads=args.threads, with_reason=not args.no_reason)
    done = {"n": 0}

    def tick(task: str) -> None:
        done["n"] += 1
        print(f"\r{done['n']} judgments made", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        sres = judge.judge_many(
            [
                JudgeItem(
                    STANCE,
                    {"query": r["query"], "response": r["response"]},
                    {"system": r["system"], "prompt_id": r["prompt_id"], "sample_index": r["sample"]},
                )
                for r in srows
            ],
            cache_dir=out,
            progress=tick,
        )
        mres = judge.judge_many(
            [
                JudgeItem(
                    MISSING,
                    {"query": r["query"], "reference": r["reference"], "alternative": r["alternative"]},
                    {"prompt_id": r["prompt_id"], "sample_index": r["alt_sample"]},
                )
                for r in mrows
            ],
            cache_dir=out,
            progress=tick,
        )
        ident = judge.identity()
    finally:
        judge.close()
    print(file=sys.stderr)
    res = {
        "judge": ident,
        "seed": args.seed,
        "seconds": time.perf_counter() - t0,
        "made": done["n"],
        "stance": stance_report(srows, sres),
        "missing": missing_report(mrows, mres),
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return res


if __name__ == "__main__":
    main()
