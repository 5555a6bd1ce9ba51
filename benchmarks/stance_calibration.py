"""Calibrate overtonlite's rule-feature stance classifier against the paper's GPT-4 stance labels.

Reads ``conflictingqa/stance-calibration.jsonl`` and ``conflictingqa/prompts.jsonl`` from the authors' reference
data (validation only; nothing from it is stored in the repository) and prints accuracy and Cohen's kappa on the
development half (even prompt ids), the held-out half (odd prompt ids) and all responses, the confusion matrix and
the "both" rate against GPT-4's.

    python benchmarks/stance_calibration.py --data ../shared/reference
    python benchmarks/stance_calibration.py --data ../shared/reference --fit   # refit WEIGHTS on even ids

``--fit`` runs L2-regularised multinomial logistic regression (plain numpy, full-batch gradient descent) on the
even prompt ids only and prints the weight table to paste into ``overtonlite/metrics/stance.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from overtonlite.metrics.stance import (  # noqa: E402
    FEATURES,
    STANCE_LABELS,
    classify_stance,
    cohen_kappa,
    confusion,
    stance_features,
    stance_summary,
)

SCORED = ("yes", "no", "both")


def find_reference(arg: str | None) -> Path:
    candidates = [Path(arg)] if arg else []
    if os.environ.get("OVERTONLITE_REFERENCE"):
        candidates.append(Path(os.environ["OVERTONLITE_REFERENCE"]))
    candidates += [REPO.parent / "shared" / "reference", Path("/work/shared/reference")]
    for c in candidates:
        if (c / "conflictingqa" / "stance-calibration.jsonl").is_file():
            return c
    sys.exit("reference data not found; pass --data DIR (the folder holding conflictingqa/)")


def load(ref: Path) -> list[dict]:
    prompts = {}
    with open(ref / "conflictingqa" / "prompts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            prompts[rec["id"]] = rec["prompt"]
    rows = []
    with open(ref / "conflictingqa" / "stance-calibration.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            rec["question"] = prompts[rec["prompt_id"]]
            rows.append(rec)
    return rows


def fit_weights(rows: list[dict], *, l2: float = 5.0, iters: int = 4000, lr: float = 0.5):
    names = [n for n, _ in FEATURES]
    x = np.array(
        [[float(stance_features(r["question"], r["response"])[n]) for n in names] for r in rows],
        dtype=np.float64,
    )
    y = np.array([SCORED.index(r["stance"]) if r["stance"] in SCORED else SCORED.index("both") for r in rows])
    onehot = np.eye(3)[y]
    n = len(rows)
    w = np.zeros((x.shape[1], 3))
    b = np.zeros(3)
    for _ in range(iters):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = p - onehot
        w -= lr * (x.T @ g / n + l2 * w / n)
        b -= lr * g.mean(axis=0)
    # centre each row (softmax is invariant to a per-row shift), so the table reads as relative preferences
    w -= w.mean(axis=1, keepdims=True)
    b -= b.mean()
    return names, w, b


def report(name: str, gold: list[str], pred: list[str]) -> str:
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    kappa = cohen_kappa(gold, pred)
    both_ours = pred.count("both") / len(pred)
    both_gpt4 = gold.count("both") / len(gold)
    return f"{name:<22} {len(gold):>5} {acc:>8.1%} {kappa:>7.3f} {both_ours:>9.1%} {both_gpt4:>9.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="reference folder (holds conflictingqa/)")
    ap.add_argument("--fit", action="store_true", help="refit the weights on even prompt ids and print them")
    ap.add_argument("--l2", type=float, default=5.0)
    args = ap.parse_args()
    rows = load(find_reference(args.data))
    even = [r for r in rows if r["prompt_id"] % 2 == 0]

    if args.fit:
        names, w, b = fit_weights(even, l2=args.l2)
        print("WEIGHTS: dict[str, tuple[float, float, float]] = {")
        for n, row in zip(names, w, strict=True):
            print(f'    "{n}": ({row[0]:.2f}, {row[1]:.2f}, {row[2]:.2f}),')
        print("}")
        print(f"BIAS: tuple[float, float, float] = ({b[0]:.2f}, {b[1]:.2f}, {b[2]:.2f})")
        return

    t0 = time.perf_counter()
    preds = [classify_stance(r["question"], r["response"]) for r in rows]
    secs = time.perf_counter() - t0
    print(f"stance calibration: {len(rows)} GPT-3.5 answers to ConflictingQA, GPT-4 labels as reference")
    print(f"{'subset':<22} {'n':>5} {'accuracy':>8} {'kappa':>7} {'both ours':>9} {'both GPT4':>9}")
    for name, keep in (
        ("even ids (dev)", lambda r: r["prompt_id"] % 2 == 0),
        ("odd ids (held out)", lambda r: r["prompt_id"] % 2 == 1),
        ("all", lambda r: True),
    ):
        idx = [i for i, r in enumerate(rows) if keep(r)]
        print(report(name, [rows[i]["stance"] for i in idx], [preds[i] for i in idx]))
    gold = [r["stance"] for r in rows]
    table = confusion(gold, preds)
    labels = list(table)
    print("\nconfusion (rows GPT-4, columns overtonlite), all responses:")
    print(" " * 8 + "".join(f"{lab:>8}" for lab in labels))
    for g in labels:
        print(f"{g:<8}" + "".join(f"{table[g][p]:>8}" for p in labels))
    print("\nper-prompt aggregates (paper-protocol E3, gpt-3.5-turbo row), ours vs GPT-4's labels:")
    for who, labels in (("overtonlite", preds), ("GPT-4", gold)):
        groups: dict[int, list[str]] = {}
        for r, lab in zip(rows, labels, strict=True):
            groups.setdefault(r["prompt_id"], []).append(lab)
        summaries = [stance_summary(g) for g in groups.values()]
        k = len(summaries)
        split = sum(s["yes_no_split"] for s in summaries) / k
        same = sum(max(s["distribution"].values()) == 1.0 for s in summaries) / k
        entropy = sum(s["entropy_bits"] for s in summaries) / k
        both = sum(s["both_share"] for s in summaries) / k
        print(
            f"  {who:<12} both {both:.3f}  yes+no split {split:.3f}  all 5 equal {same:.3f}  entropy {entropy:.3f} bits"
        )
    print(f"\nlabels: {', '.join(STANCE_LABELS)}; {len(rows)} responses classified in {secs:.2f} s")


if __name__ == "__main__":
    main()
