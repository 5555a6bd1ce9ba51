"""What cohort tails cost: replay a finished run's sample lengths through the engine's admission rule.

Every cohort (see "Exact resume" in ``overtonlite.backends.llamacpp``) ends in a tail where its last long samples
decode at a small batch. This script takes the per-sample ``n_tokens`` of a run directory's ``samples.jsonl``
(and ``aux/samples.jsonl``), replays each sampling pass step by step under the engine's rules (a group of N
samples is admitted once N sequences are free and its prompt plus N x max_tokens cells fit the KV budget; a
finished sample frees its sequence and its cells at once; a cohort starts once the previous one is finished),
and prices each step at the decode speed the calibration measured for that step's batch size. It prints the
replayed decode time for several cohort fills next to the full-batch time (every token at the pass's batch size),
so the tail cost of each fill is visible without re-running an hour of generation.

The decode curve comes from a ``bench_replicate.py --json`` file (its ``calibration``); prompt evaluation and
context depth are left out on both sides, so only the scheduling differs.

    python benchmarks/cohort_tails.py RUN_DIR --calibration BENCH.json [--fills 2 4 8 0] [--max-seqs 32]

A fill of 0 means one cohort per pass (continuous batching within the pass).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from replicate_bound import batch_used, decode_at, records  # noqa: E402  (benchmarks/ is the script's directory)


def read_passes(run: Path) -> dict[tuple[str, str, str], list[tuple[list[int], int, int]]]:
    """(file, system, model) -> groups in file order: (sample lengths, prompt tokens, max_tokens)."""
    out: dict[tuple[str, str, str], list[tuple[list[int], int, int]]] = {}
    for file, r in records(run):
        if not r.get("samples"):
            continue
        mt = int((r.get("sampling") or {}).get("max_tokens") or 0)
        out.setdefault((file, str(r["system"]), str(r["model"])), []).append(
            ([int(s.get("n_tokens") or 0) for s in r["samples"]], int(r.get("prompt_tokens") or 0), mt)
        )
    return out


def replay(
    groups: list[tuple[list[int], int, int]],
    curve: dict[int, float],
    *,
    max_seqs: int,
    kv_budget: int,
    fill: int,
) -> tuple[float, float]:
    """(replayed decode seconds, mean batch size) of one pass under cohorts of ``fill`` x (max_seqs // N)
    groups (``fill`` 0: one cohort)."""
    n = max(1, max(len(g[0]) for g in groups))
    size = max(1, max_seqs // n) * fill if fill else len(groups)
    seconds = 0.0
    steps = tokens = 0
    for start in range(0, len(groups), size):
        queue = list(groups[start : start + size])
        live: list[dict[str, Any]] = []  # admitted groups: remaining tokens per sample, reserved cells
        used = 0
        while queue or live:
            while queue:
                lengths, prompt, mt = queue[0]
                busy = sum(1 for g in live for x in g["left"] if x > 0)
                if max_seqs - busy < len(lengths) or used + prompt + len(lengths) * mt > kv_budget:
                    break
                queue.pop(0)
                # a sample of 0 tokens still takes one step (it samples its end token)
                live.append({"left": [max(1, x) for x in lengths], "prompt": prompt, "mt": mt})
                used += prompt + len(lengths) * mt
            batch = sum(1 for g in live for x in g["left"] if x > 0)
            if batch == 0:
                break
            seconds += batch / decode_at(curve, batch)
            steps += 1
            tokens += batch
            still = []
            for g in live:
                g["left"] = [x - 1 for x in g["left"]]
                used -= g["mt"] * sum(1 for x in g["left"] if x == 0)
                if any(x > 0 for x in g["left"]):
                    still.append(g)
                else:
                    used -= g["prompt"]
            live = still
    return seconds, tokens / max(1, steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="A finished run directory (samples.jsonl).")
    parser.add_argument("--calibration", type=Path, required=True, help="A bench_replicate.py --json file.")
    parser.add_argument("--fills", type=int, nargs="+", default=[2, 4, 8, 0])
    parser.add_argument("--max-seqs", type=int, default=None, help="Default: the calibration's.")
    args = parser.parse_args()

    bench = json.loads(args.calibration.read_text(encoding="utf-8"))
    cal = {
        m: {int(b): float(v) for b, v in c["decode_tok_s"].items()} for m, c in bench["calibration"].items()
    }
    any_cal = next(iter(bench["calibration"].values()))
    max_seqs = args.max_seqs or int(any_cal["max_seqs"])
    kv_budget = int(any_cal["kv_budget"])
    passes = read_passes(args.run)
    if not passes:
        print(f"error: no samples in {args.run}", file=sys.stderr)
        return 2
    totals = {"full batch": 0.0, **{f: 0.0 for f in args.fills}}
    print(
        "| pass | groups x N | full batch s | "
        + " | ".join(f"fill {f or 'pass'} s (mean batch)" for f in args.fills)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(args.fills))
    for (file, system, model), groups in passes.items():
        curve = cal[model]
        n = max(len(g[0]) for g in groups)
        tokens = sum(max(1, x) for g in groups for x in g[0])
        shape = {
            "n": n,
            "groups": len(groups),
            "samples": sum(len(g[0]) for g in groups),
            "prompt_tokens": sum(g[1] for g in groups),
            "max_tokens": max(g[2] for g in groups),
        }
        full_batch = batch_used(shape, max_seqs=max_seqs, kv_budget=kv_budget)
        ideal = tokens / decode_at(curve, full_batch)
        totals["full batch"] += ideal
        cells = []
        for f in args.fills:
            sec, mean_b = replay(groups, curve, max_seqs=max_seqs, kv_budget=kv_budget, fill=f)
            totals[f] += sec
            cells.append(f"{sec:.0f} ({mean_b:.1f})")
        print(f"| {file}/{system} | {len(groups)} x {n} | {ideal:.0f} | " + " | ".join(cells) + " |")
    base = totals["full batch"]
    print(
        f"| **total** | | **{base:.0f}** | "
        + " | ".join(f"**{totals[f]:.0f}** ({totals[f] / base:.2f}x)" for f in args.fills)
        + " |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
