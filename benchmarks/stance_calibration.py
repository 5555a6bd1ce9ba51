"""Leave-one-system-out validation of overtonlite's stance classifier against the paper's GPT-4 stance labels.

Reads the authors' ConflictingQA reference data (validation only; nothing from it is stored in the repository):
``conflictingqa/stance-calibration.jsonl`` (gpt-3.5-turbo) and ``conflictingqa/stance-extra.jsonl`` (three
URIAL-style Llama-2-7B systems), 8,680 GPT-4-labelled answers to 434 questions from four systems.

For every system S, the linear model (multinomial logistic regression, yes / no / both, plain numpy) is fitted on
the other three systems and tested on S, which it never saw. Printed per held-out system: accuracy and Cohen's
kappa against GPT-4; the "both" share and the yes/no split rate (share of prompts whose five answers include a yes
and a no) of GPT-4 and the error of ours, raw and corrected for the classifier's confusion
(:mod:`overtonlite.metrics.stance_shares`, with confusion matrices measured out-of-system on the three fitting
systems only: each of them predicted by a model fitted on the other two), and whether the corrected CI (prompt
bootstrap + confusion redraws) contains GPT-4's value.

    python benchmarks/stance_calibration.py --data ../shared/reference                 # cue model
    python benchmarks/stance_calibration.py --data ../shared/reference --embedding     # + MiniLM opening term
    python benchmarks/stance_calibration.py --data ../shared/reference --fit           # refit on all four systems
    python benchmarks/stance_calibration.py --data ../shared/reference --fit --embedding   # refit the .npz

``--fit`` fits the cue model on all four systems, prints the ``WEIGHTS`` table for
``overtonlite/metrics/stance.py`` and writes the out-of-system confusion counts of the leave-one-system-out run
(the shipped model's form, fitted without the system it labels) to ``overtonlite/metrics/stance_confusion.json``.
``--fit --embedding`` refits the opt-in embedding variant (``overtonlite/metrics/stance_weights.npz``) on all four
systems. ``--features-cache FILE.npz`` stores the feature matrix outside the repository so that reruns skip the cues.
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

from overtonlite.metrics import stance_shares  # noqa: E402
from overtonlite.metrics.stance import (  # noqa: E402
    FEATURES,
    _is_refusal,
    _short_label,
    cohen_kappa,
    stance_features,
)

LABELS = stance_shares.LABELS  # yes, no, both, other
SCORED = ("yes", "no", "both")
CONFUSION_FILE = REPO / "overtonlite" / "metrics" / "stance_confusion.json"


def find_reference(arg: str | None) -> Path:
    candidates = [Path(arg)] if arg else []
    if os.environ.get("OVERTONLITE_REFERENCE"):
        candidates.append(Path(os.environ["OVERTONLITE_REFERENCE"]))
    candidates += [REPO.parent / "shared" / "reference", Path("/work/shared/reference")]
    for c in candidates:
        if (c / "conflictingqa" / "stance-extra.jsonl").is_file():
            return c
    sys.exit("reference data not found; pass --data DIR (the folder holding conflictingqa/)")


def load(ref: Path) -> list[dict]:
    """All GPT-4-labelled answers: gpt-3.5-turbo first, then the three URIAL-style systems."""
    with open(ref / "conflictingqa" / "prompts.jsonl", encoding="utf-8") as fh:
        prompts = {(r := json.loads(line))["id"]: r["prompt"] for line in fh}
    rows = []
    with open(ref / "conflictingqa" / "stance-calibration.jsonl", encoding="utf-8") as fh:
        rows += [{**json.loads(line), "system": "gpt-3.5-turbo"} for line in fh]
    with open(ref / "conflictingqa" / "stance-extra.jsonl", encoding="utf-8") as fh:
        rows += [json.loads(line) for line in fh]
    for r in rows:
        r["question"] = prompts[r["prompt_id"]]
    return rows


def cue_matrix(rows: list[dict]) -> np.ndarray:
    names = [n for n, _ in FEATURES]
    feats = (stance_features(r["question"], r["response"]) for r in rows)
    return np.array([[float(f[n]) for n in names] for f in feats], dtype=np.float64).reshape(
        len(rows), len(names)
    )


def embedding_term(rows: list[dict], embedder) -> np.ndarray:
    """``embed(opening sentence) - embed(question)``, as in :mod:`overtonlite.metrics.stance_model`."""
    from overtonlite.metrics.stance_model import embedding_inputs

    return embedding_inputs([r["question"] for r in rows], [r["response"] for r in rows], embedder)[1]


def ruled(rows: list[dict]) -> np.ndarray:
    """Label index the short-answer / refusal rules give, -1 where the linear model decides."""
    out = []
    for r in rows:
        text = r["response"].strip()
        if len(text.split()) < 3:
            out.append(LABELS.index(_short_label(text)))
        elif _is_refusal(r["question"], text):
            out.append(LABELS.index("other"))
        else:
            out.append(-1)
    return np.array(out, dtype=int)


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
    w -= w.mean(axis=1, keepdims=True)  # softmax ignores a per-row shift
    b -= b.mean()
    return w, b


class Data:
    def __init__(self, rows: list[dict], x: np.ndarray, l2: float) -> None:
        self.rows, self.x, self.l2 = rows, x, l2
        self.gold = np.array([LABELS.index(r["stance"]) for r in rows])
        self.system = np.array([r["system"] for r in rows])
        self.systems = list(dict.fromkeys(self.system))
        self.pid = np.array([r["prompt_id"] for r in rows])
        self.rule = ruled(rows)

    def fit(self, train: np.ndarray):
        keep = train & (self.rule < 0)
        y = np.minimum(self.gold[keep], 2)  # GPT-4 "other" answers that pass the rules train as "both"
        return fit_adam(self.x[keep], y, l2=self.l2)

    def predict(self, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        w, b = self.fit(train)
        p = np.argmax(self.x[test] @ w + b, axis=1)
        return np.where(self.rule[test] >= 0, self.rule[test], p)

    def groups(self, mask: np.ndarray, labels: np.ndarray) -> list[list[str]]:
        pids = self.pid[mask]
        return [[LABELS[k] for k in labels[pids == q]] for q in np.unique(pids)]


def confusion_counts(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    c = np.zeros((len(LABELS), len(LABELS)))
    np.add.at(c, (gold, pred), 1)
    return c


def split_rate(groups: list[list[str]]) -> float:
    return float(np.mean([("yes" in g) and ("no" in g) for g in groups]))


def split_counts(gold_groups: list[list[str]], pred_groups: list[list[str]]) -> np.ndarray:
    """Prompt-level 2x2: rows GPT-4's labels split (1) or not, columns ours."""
    c = np.zeros((2, 2))
    for g, p in zip(gold_groups, pred_groups, strict=True):
        c[int("yes" in g and "no" in g), int("yes" in p and "no" in p)] += 1
    return c


def loso(d: Data, *, n_boot: int, inner: bool = True) -> tuple[list[dict], dict[str, np.ndarray], dict]:
    """Per held-out system: metrics dict; each system's out-of-system confusion counts and split counts."""
    results, outer_counts, outer_split = [], {}, {}
    for s in d.systems:
        test, train = d.system == s, d.system != s
        pred = d.predict(train, test)
        gold = d.gold[test]
        outer_counts[s] = confusion_counts(gold, pred)
        g_groups, p_groups = d.groups(test, gold), d.groups(test, pred)
        outer_split[s] = split_counts(g_groups, p_groups)
        res = {
            "system": s,
            "n": int(test.sum()),
            "accuracy": float((gold == pred).mean()),
            "kappa": float(cohen_kappa([LABELS[k] for k in gold], [LABELS[k] for k in pred])),
            "both_gpt4": float(np.mean([g.count("both") / len(g) for g in g_groups])),
            "split_gpt4": split_rate(g_groups),
            "both_raw": float(np.mean([g.count("both") / len(g) for g in p_groups])),
            "split_raw": split_rate(p_groups),
        }
        if inner:  # confusion of the three fitting systems, each predicted by a model fitted on the other two
            counts, splits = [], []
            for s2 in d.systems:
                if s2 == s:
                    continue
                t2 = d.system == s2
                p2 = d.predict(train & ~t2, t2)
                counts.append(confusion_counts(d.gold[t2], p2))
                splits.append(split_counts(d.groups(t2, d.gold[t2]), d.groups(t2, p2)))
            est = stance_shares.stance_share_estimates(
                p_groups, np.stack(counts), np.stack(splits), n_boot=n_boot, seed=0
            )
            res["both_corrected"], res["both_ci"] = est["both_share"]["mean"], est["both_share"]["ci"]
            res["split_corrected"], res["split_ci"] = est["yes_no_split"]["mean"], est["yes_no_split"]["ci"]
        results.append(res)
    return results, outer_counts, outer_split


def print_loso(title: str, results: list[dict]) -> None:
    print(f"\n{title}")
    print(
        "| held-out system | n | accuracy | κ | both GPT-4 | Δ raw | Δ corrected | corrected CI has GPT-4 | split GPT-4 |"
        " Δ raw |"
        " Δ corrected | corrected CI has GPT-4 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cells = [r["system"], f"{r['n']:,}", f"{r['accuracy']:.1%}", f"{r['kappa']:.3f}"]
        for key in ("both", "split"):
            gpt4 = r[f"{key}_gpt4"]
            cells += [f"{gpt4:.3f}", f"{r[f'{key}_raw'] - gpt4:+.3f}"]
            if f"{key}_corrected" in r:
                lo, hi = r[f"{key}_ci"]
                has = "yes" if lo <= gpt4 <= hi else "no"
                cells += [f"{r[f'{key}_corrected'] - gpt4:+.3f}", f"{has} [{lo:.2f}, {hi:.2f}]"]
            else:
                cells += ["–", "–"]
        print("| " + " | ".join(cells) + " |")
    acc = np.mean([r["accuracy"] for r in results])
    kap = np.mean([r["kappa"] for r in results])
    print(f"mean over held-out systems: accuracy {acc:.1%}, κ {kap:.3f}")


def print_weights(w: np.ndarray, b: np.ndarray) -> None:
    names = [n for n, _ in FEATURES]
    print("WEIGHTS: dict[str, tuple[float, float, float]] = {")
    for n, row in zip(names, w, strict=True):
        print(f'    "{n}": ({row[0]:.2f}, {row[1]:.2f}, {row[2]:.2f}),')
    print("}")
    print(f"BIAS: tuple[float, float, float] = ({b[0]:.2f}, {b[1]:.2f}, {b[2]:.2f})")


def features(rows: list[dict], cache: Path | None, use_embedding: bool) -> np.ndarray:
    stored = dict(np.load(cache)) if cache and cache.is_file() else {}
    if "cues" not in stored or len(stored["cues"]) != len(rows):
        t0 = time.perf_counter()
        stored["cues"] = cue_matrix(rows)
        print(f"cue features: {time.perf_counter() - t0:.1f} s for {len(rows)} answers", file=sys.stderr)
    x = stored["cues"]
    if use_embedding:
        if "emb" not in stored or len(stored["emb"]) != len(rows):
            from overtonlite.backends.onnx import open_default_embedder

            stored["emb"] = embedding_term(rows, open_default_embedder(cache=True))
        x = np.hstack([x, stored["emb"]])
    if cache:
        np.savez(cache, **stored)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="reference folder (holds conflictingqa/)")
    ap.add_argument("--fit", action="store_true", help="refit the cue model on all four systems")
    ap.add_argument("--embedding", action="store_true", help="add the MiniLM opening-sentence term")
    ap.add_argument("--features-cache", type=Path, help="npz file (outside the repository) for the features")
    ap.add_argument("--l2", type=float, default=5.0)
    ap.add_argument("--n-boot", type=int, default=300)
    args = ap.parse_args()
    rows = load(find_reference(args.data))
    x = features(rows, args.features_cache, args.embedding)
    d = Data(rows, x, args.l2)
    counts = {s: int((d.system == s).sum()) for s in d.systems}
    print(f"stance, leave one system out: {len(rows)} GPT-4-labelled answers from {counts}")
    what = "cues + MiniLM opening term" if args.embedding else "cue model (34 cues)"
    results, outer, outer_split = loso(
        d, n_boot=args.n_boot, inner=not args.fit
    )  # --fit: no inner confusion (faster)
    print_loso(f"{what}, fitted on three systems, tested on the fourth (l2 {args.l2})", results)
    pooled = sum(outer.values())
    print("\nout-of-system confusion, pooled (rows GPT-4, columns ours):")
    print(" " * 8 + "".join(f"{lab:>8}" for lab in LABELS))
    for i, g in enumerate(LABELS):
        print(f"{g:<8}" + "".join(f"{int(v):>8}" for v in pooled[i]))
    if args.fit and args.embedding:
        from overtonlite.metrics.stance_model import WEIGHTS_FILE

        w, b = d.fit(np.ones(len(rows), dtype=bool))
        n_cue = len(FEATURES)
        np.savez(WEIGHTS_FILE, w_cue=w[:n_cue], w_emb=w[n_cue:], bias=b)
        print(f"wrote {WEIGHTS_FILE} (fitted on all four systems)")
    if args.fit and not args.embedding:
        w, b = d.fit(np.ones(len(rows), dtype=bool))
        print_weights(w, b)
        payload = {
            "labels": list(LABELS),
            "rows": "GPT-4 label",
            "columns": "overtonlite cue classifier, fitted without the system it labels (leave one system out)",
            "counts": {s: c.astype(int).tolist() for s, c in outer.items()},
            "split_rows": "GPT-4's five labels of a prompt include a yes and a no (row 1) or not (row 0)",
            "split_counts": {s: c.astype(int).tolist() for s, c in outer_split.items()},
        }
        CONFUSION_FILE.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {CONFUSION_FILE}")


if __name__ == "__main__":
    main()
