"""Cost of the beyond-the-paper per-group metrics (distinct@N x3 and the lexical suite) on LIMA-OE.

    python benchmarks/bench_beyond.py --data ../shared/reference

Times :func:`overtonlite.scoring.beyond.group_metrics` over the 550 groups of the authors' LIMA-OE responses (2,750
samples, cold token caches), split into its parts, after the paper's pairwise Jaccard (already part of ``score``)
as a yardstick measured in the same run. The cosine test uses seeded random unit vectors in place of the
embeddings (it compares at most N(N-1)/2 pairs of 384-d vectors per group, whatever their values), so no embedding
is computed here. Compare the total with the raw embedding floor of the same texts (benchmarks/bench_score.py).
Also prints each system's mean of the lexical metrics over its 50 prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from overtonlite.metrics import distinct, lexsuite  # noqa: E402
from overtonlite.scoring.inputs import clean_text  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent.parent / "shared" / "reference")
    args = ap.parse_args()
    path = args.data / "lima-oe" / "responses.jsonl"
    if not path.is_file():
        sys.exit(f"no reference data at {path}")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    groups = [[clean_text(t) for t in r["samples"]] for r in records]
    rng = np.random.default_rng(0)
    texts = {t for g in groups for t in g if t}
    vecs = {t: v / np.linalg.norm(v) for t, v in zip(texts, rng.normal(size=(len(texts), 384)), strict=True)}
    from overtonlite.metrics import lexical

    parts = {
        "reference: mean_pairwise_jaccard (the paper's, already in score)": lexical.mean_pairwise_jaccard,
        "distinct_at_n (cosine)": lambda g: distinct.distinct_by_cosine(g, vecs),
        "distinct_at_n_lexical (ROUGE-1)": distinct.distinct_by_rouge1,
        "compression_ratio": lexsuite.compression_ratio,
        "homogenization_rougel": lexsuite.homogenization_rougel,
        "self_repetition": lexsuite.self_repetition,
        "ngram_diversity": lexsuite.ngram_diversity,
    }
    out = {}
    for name, fn in parts.items():
        t0 = time.perf_counter()
        for g in groups:
            fn(g)
        out[name] = round(time.perf_counter() - t0, 3)
    ref = out.pop(next(iter(parts)))
    out["total_seconds"] = round(sum(out.values()), 3)
    out["reference_jaccard_seconds"] = ref
    out["groups"] = len(groups)
    lexical_keys = (
        "distinct_at_n_lexical (ROUGE-1)",
        "compression_ratio",
        "homogenization_rougel",
        "self_repetition",
        "ngram_diversity",
    )
    per_system: dict[str, dict[str, list[float]]] = {}
    for r, g in zip(records, groups, strict=True):
        row = per_system.setdefault(r["system"], {k: [] for k in lexical_keys})
        for k in lexical_keys:
            v = parts[k](g)
            if v is not None:
                row[k].append(float(v))
    out["per_system_means"] = {
        s: {k: round(float(np.mean(v)), 3) for k, v in row.items()} for s, row in per_system.items()
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
