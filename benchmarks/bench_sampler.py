"""The sampler's tempered pass: the engine's (rows scaled in place, then onnxruntime's softmax) against the same
pass in plain numpy.

For a decode step of R sequences over a vocabulary of V tokens, the engine turns the R logits rows into tempered
probabilities and sums of 1024-token blocks before drawing (``fastsample.Workspace.tempered``). The numpy
version beside it is what the engine did before (subtract the row maximum, multiply by 1/T, exp, block sums; the
rows split over two threads); both run alternately on the same random rows, and the whole ``sample_step`` (pass
plus draws) is timed too. Minimum and median of ``--repeat`` alternating rounds, in milliseconds per step:

    python benchmarks/bench_sampler.py --rows 8 32 --vocab 262144 49152
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampling import write_results  # noqa: E402

from overtonlite.backends.llamacpp.fastsample import BLOCK, SeqRng, Workspace, sample_step
from overtonlite.config import SamplingConfig


def numpy_pass(part: np.ndarray, inv_t: np.ndarray, out: np.ndarray, pool: ThreadPoolExecutor) -> np.ndarray:
    """exp((logit - row max) * inv_t) and its block sums, half of the rows on a helper thread."""

    def rows(a: np.ndarray, s: np.ndarray, o: np.ndarray) -> np.ndarray:
        np.subtract(a, a.max(axis=1, keepdims=True), out=o)
        np.multiply(o, s, out=o)
        np.exp(o, out=o)
        return np.add.reduceat(o, np.arange(0, o.shape[1], BLOCK), axis=1)

    h = part.shape[0] // 2
    if h == 0:
        return rows(part, inv_t, out)
    other = pool.submit(rows, part[h:], inv_t[h:], out[h:])
    return np.concatenate([rows(part[:h], inv_t[:h], out[:h]), other.result()])


def measure(rows: int, vocab: int, repeat: int, threads: int) -> dict[str, Any]:
    rng = np.random.default_rng(rows * 7919 + vocab)
    logits = (rng.standard_normal((rows, vocab)) * 5).astype(np.float32)
    inv_t = np.full((rows, 1), 2.0, dtype=np.float32)
    ws = Workspace(threads=threads)
    out = np.empty_like(logits)
    work = np.empty_like(logits)  # the engine's pass scales its rows in place: each round gets a fresh copy
    sc = SamplingConfig(temperature=0.5)
    rngs = [SeqRng(sc, k) for k in range(rows)]
    times: dict[str, list[float]] = {"numpy": [], "onnxruntime": [], "sample_step": []}
    with ThreadPoolExecutor(max_workers=1) as pool:
        for k in range(repeat + 1):
            t0 = time.perf_counter()
            numpy_pass(logits, inv_t, out, pool)
            t1 = time.perf_counter()
            np.copyto(work, logits)
            t2 = time.perf_counter()
            ws.tempered(work, inv_t)
            t3 = time.perf_counter()
            np.copyto(work, logits)
            t4 = time.perf_counter()
            sample_step(work, list(range(rows)), [sc] * rows, rngs, ws)
            t5 = time.perf_counter()
            if k:  # the first round warms the buffers and the session
                times["numpy"].append(t1 - t0)
                times["onnxruntime"].append(t3 - t2)
                times["sample_step"].append(t5 - t4)
    ws.close()
    row: dict[str, Any] = {"rows": rows, "vocab": vocab, "threads": threads}
    for name, ts in times.items():
        row[name] = {"min_ms": min(ts) * 1e3, "median_ms": statistics.median(ts) * 1e3}
    row["numpy_over_onnxruntime"] = row["numpy"]["median_ms"] / row["onnxruntime"]["median_ms"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[8, 32], help="sequences per step")
    ap.add_argument("--vocab", type=int, nargs="*", default=[262144, 49152], help="vocabulary sizes")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    results = [measure(r, v, args.repeat, args.threads) for v in args.vocab for r in args.rows]
    print(
        "| vocab | rows | numpy pass ms (min / median) | onnxruntime pass ms | numpy / onnxruntime | sample_step ms |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = [f"{r[k]['min_ms']:.1f} / {r[k]['median_ms']:.1f}" for k in ("numpy", "onnxruntime")]
        step = f"{r['sample_step']['min_ms']:.1f} / {r['sample_step']['median_ms']:.1f}"
        ratio = f"{r['numpy_over_onnxruntime']:.2f}x"
        print(f"| {r['vocab']} | {r['rows']} | {cells[0]} | {cells[1]} | {ratio} | {step} |")
    write_results(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
