"""Calibrate overtonlite's rule-feature stance classifier against the paper's GPT-4 stance labels.

Reads ``conflictingqa/stance-calibration.jsonl`` and ``conflictingqa/prompts.jsonl`` from the authors' reference
data (validation only; nothing from it is stored in the repository) and prints accuracy and Cohen's kappa on the
development half (even prompt ids), the held-out half (odd prompt ids) and all responses, the confusion matrix and
the "both" rate against GPT-4's.

    python benchmarks/stance_calibration.py --data ../shared/reference
    python benchmarks/stance_calibration.py --data ../shared/reference --fit   # refit WEIGHTS on even ids
    python benchmarks/stance_calibration.py --data ../shared/reference --fit-embedding   # refit the .npz
    python benchmarks/stance_calibration.py --data ../shared/reference --no-embedding    # cue-only, no model

``--fit`` runs L2-regularised multinomial logistic regression (plain numpy, full-batch gradient descent) on the
even prompt ids only and prints the weight table to paste into ``overtonlite/metrics/stance.py``.
``--fit-embedding`` fits the embedding variant of ``overtonlite/metrics/stance_model.py`` (34 cues + opening
sentence minus question embedding, plain numpy, full-batch Adam) on the even prompt ids and writes
``overtonlite/metrics/stance_weights.npz``. Both variants are also scored by 5-fold cross-validation by prompt
(fold = prompt id mod 5; refitted per fold), and timed.
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
    _is_refusal,
    _sentences,
    _short_label,
    classify_stance,
    cohen_kappa,
    confusion,
    stance_features,
    stance_summary,
)
from overtonlite.metrics.stance_model import (  # noqa: E402
    WEIGHTS_FILE,
    classify_stances,
    embedding_inputs,
    load_weights,
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


def fit_weights_matrix(x: np.ndarray, y: np.ndarray, *, l2: float = 5.0, iters: int = 4000, lr: float = 0.5):
    """Multinomial logistic regression (yes/no/both), L2 on the weights, full-batch gradient descent from zeros."""
    onehot = np.eye(3)[y]
    n = len(y)
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
    return w, b


def fit_weights(rows: list[dict], *, l2: float = 5.0, iters: int = 4000, lr: float = 0.5):
    """The cue WEIGHTS table fitted on ``rows`` (row-centred: softmax ignores a per-row shift)."""
    names = [n for n, _ in FEATURES]
    w, b = fit_weights_matrix(cue_matrix(rows), labels_of(rows), l2=l2, iters=iters, lr=lr)
    w -= w.mean(axis=1, keepdims=True)
    b -= b.mean()
    return names, w, b


def fit_adam(x: np.ndarray, y: np.ndarray, *, l2: float = 5.0, iters: int = 400, lr: float = 0.05):
    """Multinomial logistic regression (yes/no/both), L2 on the weights, full-batch Adam from zeros."""
    n, d = x.shape
    onehot = np.eye(3)[y]
    w, b = np.zeros((d, 3)), np.zeros(3)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros(3), np.zeros(3)
    for t in range(1, iters + 1):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = p - onehot
        g_w, g_b = x.T @ g / n + l2 * w / n, g.mean(axis=0)
        m_w, v_w = 0.9 * m_w + 0.1 * g_w, 0.999 * v_w + 0.001 * g_w * g_w
        m_b, v_b = 0.9 * m_b + 0.1 * g_b, 0.999 * v_b + 0.001 * g_b * g_b
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        w -= lr * (m_w / c1) / (np.sqrt(v_w / c2) + 1e-8)
        b -= lr * (m_b / c1) / (np.sqrt(v_b / c2) + 1e-8)
    return w, b


def labels_of(rows: list[dict]) -> np.ndarray:
    return np.array(
        [SCORED.index(r["stance"]) if r["stance"] in SCORED else SCORED.index("both") for r in rows]
    )


def ruled(rows: list[dict]) -> list[str | None]:
    """The label the short-answer / refusal rules give (None: the linear model decides)."""
    out: list[str | None] = []
    for r in rows:
        text = r["response"].strip()
        if len(text.split()) < 3:
            out.append(_short_label(text))
        elif _is_refusal(r["question"], text):
            out.append("other")
        else:
            out.append(None)
    return out


def cross_validate(x: np.ndarray, rows: list[dict], fitter, k: int = 5) -> list[str]:
    """Predictions of k-fold cross-validation by prompt (fold = prompt_id mod k), rules applied first."""
    pids = np.array([r["prompt_id"] for r in rows])
    y = labels_of(rows)
    pred = np.zeros(len(rows), dtype=int)
    for fold in range(k):
        train, test = pids % k != fold, pids % k == fold
        w, b = fitter(x[train], y[train])
        pred[test] = np.argmax(x[test] @ w + b, axis=1)
    rule = ruled(rows)
    return [r if r is not None else SCORED[int(p)] for r, p in zip(rule, pred, strict=True)]


def cue_matrix(rows: list[dict]) -> np.ndarray:
    names = [n for n, _ in FEATURES]
    return np.array(
        [[float(stance_features(r["question"], r["response"])[n]) for n in names] for r in rows],
        dtype=np.float64,
    )


def report(name: str, gold: list[str], pred: list[str]) -> str:
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    kappa = cohen_kappa(gold, pred)
    both_ours = pred.count("both") / len(pred)
    both_gpt4 = gold.count("both") / len(gold)
    return f"{name:<26} {len(gold):>5} {acc:>8.1%} {kappa:>7.3f} {both_ours:>9.1%} {both_gpt4:>9.1%}"


def print_table(title: str, rows: list[dict], preds: list[str], cv: list[str]) -> None:
    print(f"\n{title}")
    print(f"{'subset':<26} {'n':>5} {'accuracy':>8} {'kappa':>7} {'both ours':>9} {'both GPT4':>9}")
    for name, keep in (
        ("even ids (fit)", lambda r: r["prompt_id"] % 2 == 0),
        ("odd ids (held out)", lambda r: r["prompt_id"] % 2 == 1),
        ("all", lambda r: True),
    ):
        idx = [i for i, r in enumerate(rows) if keep(r)]
        print(report(name, [rows[i]["stance"] for i in idx], [preds[i] for i in idx]))
    print(report("5-fold CV by prompt (all)", [r["stance"] for r in rows], cv))


def judge_consistency(rows: list[dict]) -> None:
    """How consistent GPT-4's labels are with themselves: a rough ceiling for any text classifier.

    Pairs of answers to the same prompt are compared; when two answers are nearly the same text, a label that is a
    function of the text gives both the same label, so their agreement rate bounds what any classifier can reach.
    """
    import difflib

    by_prompt: dict[int, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    buckets: dict[str, list[bool]] = {
        "all pairs": [],
        "same opening sentence": [],
        "text similarity >= 0.9": [],
    }
    for group in by_prompt.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                same = a["stance"] == b["stance"]
                buckets["all pairs"].append(same)
                if _sentences(a["response"].strip())[:1] == _sentences(b["response"].strip())[:1]:
                    buckets["same opening sentence"].append(same)
                ratio = difflib.SequenceMatcher(None, a["response"], b["response"]).ratio()
                if ratio >= 0.9:
                    buckets["text similarity >= 0.9"].append(same)
    print("\nGPT-4 label agreement between two answers to the same prompt (a ceiling for text classifiers):")
    for name, vals in buckets.items():
        print(f"  {name:<24} {len(vals):>5} pairs  {sum(vals) / max(1, len(vals)):.1%} same label")


def by_opening(rows: list[dict], preds: list[str]) -> None:
    """Accuracy split by the answer's first word, beside the accuracy of always giving that subset's top label."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        words = r["response"].split()
        first = words[0].strip(",.!").lower() if words else ""
        groups.setdefault(first if first in ("yes", "no") else "other opening", []).append(i)
    print("\naccuracy by opening word (majority = always the subset's most common GPT-4 label):")
    for name, idx in sorted(groups.items()):
        gold = [rows[i]["stance"] for i in idx]
        acc = sum(gold[j] == preds[i] for j, i in enumerate(idx)) / len(idx)
        top = max(set(gold), key=gold.count)
        print(
            f"  {name:<14} {len(idx):>5}  ours {acc:.1%}  majority ({top}) {gold.count(top) / len(idx):.1%}"
        )


def open_embedder(cache: bool):
    from overtonlite.backends.onnx import open_default_embedder

    return open_default_embedder(cache=cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="reference folder (holds conflictingqa/)")
    ap.add_argument(
        "--fit", action="store_true", help="refit the cue WEIGHTS on even prompt ids and print them"
    )
    ap.add_argument(
        "--fit-embedding",
        action="store_true",
        help="refit the embedding variant on even ids and write its .npz",
    )
    ap.add_argument("--no-embedding", action="store_true", help="cue-only numbers (no embedder needed)")
    ap.add_argument("--cache", action="store_true", help="use the on-disk embedding cache (timings then lie)")
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

    gold = [r["stance"] for r in rows]
    questions = [r["question"] for r in rows]
    responses = [r["response"] for r in rows]
    y = labels_of(rows)
    is_even = np.array([r["prompt_id"] % 2 == 0 for r in rows])
    print(f"stance calibration: {len(rows)} GPT-3.5 answers to ConflictingQA, GPT-4 labels as reference")

    t0 = time.perf_counter()
    preds = [classify_stance(q, t) for q, t in zip(questions, responses, strict=True)]
    secs_cue = time.perf_counter() - t0
    cues = cue_matrix(rows)
    cv_cue = cross_validate(cues, rows, lambda x, yy: fit_weights_matrix(x, yy, l2=args.l2))
    print_table("cue-only (classify_stance; frozen WEIGHTS fitted on even ids)", rows, preds, cv_cue)
    print(f"time: {secs_cue:.2f} s for {len(rows)} answers")

    if not args.no_embedding:
        emb_model = open_embedder(args.cache)
        if args.fit_embedding:
            _, emb = embedding_inputs(questions, responses, emb_model)
            x = np.hstack([cues, emb])
            w, b = fit_adam(x[is_even], y[is_even], l2=args.l2)
            w -= w.mean(axis=1, keepdims=True)
            b -= b.mean()
            n_cue = cues.shape[1]
            np.savez(WEIGHTS_FILE, w_cue=w[:n_cue], w_emb=w[n_cue:], bias=b)
            load_weights.cache_clear()
            print(f"wrote {WEIGHTS_FILE}")
        t0 = time.perf_counter()
        preds_emb = classify_stances(questions, responses, embedder=emb_model)
        secs_emb = time.perf_counter() - t0
        _, emb = embedding_inputs(questions, responses, emb_model)  # cached in the embedder now
        x = np.hstack([cues, emb])
        cv_emb = cross_validate(x, rows, lambda xx, yy: fit_adam(xx, yy, l2=args.l2))
        print_table(
            "embedding variant (classify_stances with all-MiniLM-L6-v2; frozen weights fitted on even ids)",
            rows,
            preds_emb,
            cv_emb,
        )
        print(f"time: {secs_emb:.2f} s for {len(rows)} answers, embedding included (cache: {args.cache})")
        changed = sum(a != b for a, b in zip(preds, preds_emb, strict=True))
        print(f"labels that differ from cue-only: {changed}")
        preds = preds_emb

    table = confusion(gold, preds)
    labels = list(table)
    print("\nconfusion (rows GPT-4, columns overtonlite, last variant above), all responses:")
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
    by_opening(rows, preds)
    judge_consistency(rows)
    print(f"\nlabels: {', '.join(STANCE_LABELS)}")


if __name__ == "__main__":
    main()
