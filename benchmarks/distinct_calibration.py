"""Calibrate the distinct@k equivalence thresholds on the paper authors' LIMA-OE data (validation only).

    python benchmarks/distinct_calibration.py --data ../shared/reference [--embedder NAME] [--json OUT]

A new answer should join an existing class when it adds little that the class's first member does not already say.
The authors' GPT-4 "missing information" judgments label exactly that for 250 (llama-2-chat sample 0,
llama-2-base sample) pairs: score <= 2 = the base answer adds little or nothing, >= 3 = it adds a fair amount or
more. For the embedding cosine and for ROUGE-1 F of each pair, the threshold that best separates the two groups
(maximum balanced accuracy) is printed, with the 99th percentile of cross-prompt values (2,000 random pairs of
answers to different prompts). At the constants of overtonlite/metrics/distinct.py it prints the share of
same-system same-prompt pairs and of cross-prompt pairs that merge, and the mean distinct@5 per system.

Result with all-minilm-l6-v2: the cosine's label-optimal threshold is 0.667 (balanced accuracy 0.68), so
COSINE_THRESHOLD = 0.67 (above the cross-prompt 99th percentile, 0.48). ROUGE-1 F barely separates the labels
(balanced accuracy 0.54: long chat answers and short base answers share few words whatever they say) and its
label-optimal threshold (0.28) would merge 10% of answers to *different* prompts, so ROUGE1_THRESHOLD is instead
the cross-prompt 99th percentile, 0.38: two answers merge only when they overlap more than 99% of unrelated pairs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from overtonlite.metrics import distinct as D  # noqa: E402
from overtonlite.metrics.lexsuite import rouge_tokens  # noqa: E402

SYSTEMS = ("llama-2-base", "llama-2-chat", "mistral", "gpt-3.5-turbo")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent.parent / "shared" / "reference")
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    lima = args.data / "lima-oe"
    if not (lima / "judge-missing-calibration.jsonl").is_file():
        sys.exit(f"no reference data under {lima}")
    from overtonlite.backends.onnx import open_default_embedder

    emb = open_default_embedder(args.embedder)
    judged = _jsonl(lima / "judge-missing-calibration.jsonl")
    responses = [r for r in _jsonl(lima / "responses.jsonl") if r["system"] in SYSTEMS]
    texts = list(
        dict.fromkeys(
            [t for r in judged for t in (r["reference"], r["alternative"]) if t]
            + [t for r in responses for t in r["samples"] if t]
        )
    )
    vec = dict(zip(texts, np.asarray(emb.embed(texts), dtype=np.float64), strict=True))

    def cos(a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        va, vb = vec[a], vec[b]
        return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))

    def r1(a: str, b: str) -> float:
        return D.rouge1_f(rouge_tokens(a), rouge_tokens(b))

    out: dict = {"embedder": getattr(emb, "name", None), "pairs": len(judged)}
    for name, fn in (("cosine", cos), ("rouge1", r1)):
        pos = [fn(r["reference"], r["alternative"]) for r in judged if r["score"] <= 2]
        neg = [fn(r["reference"], r["alternative"]) for r in judged if r["score"] >= 3]
        best = D.best_threshold(pos, neg)
        t = (
            D.COSINE_THRESHOLD if name == "cosine" else D.ROUGE1_THRESHOLD
        )  # the statistics below are at the constant
        same_sys = {}
        for system in SYSTEMS:
            vals = [
                fn(a, b)
                for r in responses
                if r["system"] == system
                for a, b in itertools.combinations(r["samples"], 2)
            ]
            same_sys[system] = float(np.mean([v >= t for v in vals]))
        rng = random.Random(0)
        by_prompt = [(r["prompt_id"], s) for r in responses for s in r["samples"] if s]
        cross = []
        while len(cross) < 2000:
            (pa, a), (pb, b) = rng.sample(by_prompt, 2)
            if pa != pb:
                cross.append(fn(a, b))
        same = lambda a, b, fn=fn, t=t: fn(a, b) >= t  # noqa: E731
        d5 = {
            system: float(
                np.mean([D.distinct_count(r["samples"], same) for r in responses if r["system"] == system])
            )
            for system in SYSTEMS
        }
        out[name] = {
            "label_optimal": best,
            "constant": t,
            "n_pos": len(pos),
            "n_neg": len(neg),
            "pos_median": float(np.median(pos)),
            "neg_median": float(np.median(neg)),
            "merge_rate_same_system_same_prompt": same_sys,
            "merge_rate_cross_prompt": float(np.mean([v >= t for v in cross])),
            "cross_prompt_p99": float(np.quantile(cross, 0.99)),
            "mean_distinct_at_5": d5,
        }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
