"""Scoring and embedding speed against raw onnxruntime, side by side in one run.

    python benchmarks/bench_score.py --data ../shared/reference [--embedder NAME] [--limit N] [--out bench.json]

(a) ``score_input`` on every LIMA-OE response (2,750; default options, fresh embedder, no on-disk cache) against
    raw onnxruntime embedding the same texts once (same model file, threads, truncation 256, batches of
    DEFAULT_BATCH_SIZE sorted by length): the raw embedding floor, one int8 MiniLM-L6 forward pass per distinct text with a cold cache.
    Target: score wall <= 1.1x the floor.
(b) Embedding throughput of ``OnnxEmbedder.embed`` (fresh, no cache) against the same raw loop. Target >= 0.95x.

Interleaved to damp drift on a shared machine: raw, score, raw, overtonlite embed, raw; each ratio uses the mean
of the two raw runs around it.
``--profile N`` runs ``score_input`` under cProfile and prints the N most expensive functions (cumulative time)
to stderr; the profiler's overhead inflates the score wall a little, so compare ratios without it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from overtonlite.backends.onnx import DEFAULT_BATCH_SIZE  # noqa: E402
from overtonlite.scoring.inputs import clean_text  # noqa: E402

TARGET_RATIO = 1.1  # score wall / raw embedding floor (issue 12)


def raw_embed(
    folder: Path, texts: list[str], *, threads: int, max_length: int, batch_size: int, output: str | None
) -> tuple[np.ndarray, float]:
    """Plain onnxruntime + tokenizers: sort by length, batch, mean-pool, normalise. Returns (vectors, seconds)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = threads
    sess = ort.InferenceSession(
        str(folder / "model.onnx"), sess_options=so, providers=["CPUExecutionProvider"]
    )
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    names = {i.name for i in sess.get_inputs()}
    out_name = output or sess.get_outputs()[0].name
    enc = tok.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(enc[i].ids))
    vecs = np.zeros((len(texts), 0), np.float32)
    result: dict[int, np.ndarray] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        width = max(len(enc[i].ids) for i in idx)
        ids = np.zeros((len(idx), width), np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : len(enc[i].ids)] = enc[i].ids
            mask[r, : len(enc[i].ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        h = sess.run([out_name], {k: v for k, v in feed.items() if k in names})[0]
        pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        for r, i in enumerate(idx):
            result[i] = pooled[r]
    vecs = np.stack([result[i] for i in range(len(texts))])
    return vecs, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "reference")
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N response records (of 550)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile score; print the top N to stderr"
    )
    args = ap.parse_args(argv)

    from overtonlite.backends.onnx import OnnxEmbedder, physical_cores
    from overtonlite.registry import load_registry
    from overtonlite.scoring import score_input
    from overtonlite.sources import ensure_embedder

    reg = load_registry()
    spec = reg.embedder(args.embedder or reg.default_embedder)
    folder = ensure_embedder(spec)
    max_length = min(256, int(spec.max_length or 256))
    threads = physical_cores()

    src = args.data / "lima-oe" / "responses.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()
    if args.limit:
        lines = lines[: args.limit]
    records = [json.loads(line) for line in lines]
    texts = list(dict.fromkeys(t for r in records for t in (clean_text(x) for x in r["samples"]) if t))
    # score also embeds each group's prompt (relevance): the floor is timed with and without them
    by_id = {}
    for line in (args.data / "lima-oe" / "prompts.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            by_id[rec["id"]] = rec["prompt"]
    ptexts = list(dict.fromkeys(by_id[r["prompt_id"]] for r in records if r["prompt_id"] in by_id))
    ptexts = [t for t in ptexts if t not in set(texts)]

    def fresh() -> OnnxEmbedder:
        return OnnxEmbedder(
            folder,
            name=spec.name,
            threads=threads,
            max_length=max_length,
            batch_size=DEFAULT_BATCH_SIZE,
            token_output=spec.token_output,
        )

    kw = {
        "threads": threads,
        "max_length": max_length,
        "batch_size": DEFAULT_BATCH_SIZE,
        "output": spec.token_output,
    }
    # interleaved: raw, score, raw, overtonlite embed, raw; each ratio uses the two raw runs around it
    ref_vecs, raw1 = raw_embed(folder, texts, **kw)
    _, rawp1 = raw_embed(folder, ptexts, **kw) if ptexts else (None, 0.0)

    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / "responses.jsonl"
        sub.write_text("\n".join(lines) + "\n", encoding="utf-8")
        prompts = args.data / "lima-oe" / "prompts.jsonl"
        (Path(tmp) / "prompts.jsonl").write_bytes(prompts.read_bytes())  # relevance needs the prompt texts
        prof = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        summary = score_input(sub, out=Path(tmp) / "out", embedder=fresh())
        if prof is not None:
            prof.disable()
        score_t = time.perf_counter() - t0
    if prof is not None:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.profile)
        print(buf.getvalue(), file=sys.stderr)

    _, raw2 = raw_embed(folder, texts, **kw)
    _, rawp2 = raw_embed(folder, ptexts, **kw) if ptexts else (None, 0.0)

    emb = fresh()
    t0 = time.perf_counter()
    ours = emb.embed(texts)
    ours_t = time.perf_counter() - t0
    max_diff = float(np.abs(ours - ref_vecs).max())

    _, raw3 = raw_embed(folder, texts, **kw)
    raw = (raw1 + raw2) / 2  # around score
    raw_all = raw + (rawp1 + rawp2) / 2  # responses + prompts: every text score embeds
    raw_e = (raw2 + raw3) / 2  # around the embed-only run
    load = [round(x, 2) for x in os.getloadavg()]
    res = {
        "records": len(records),
        "cpus": os.cpu_count(),
        "load_average_1_5_15_at_end": load,
        "profiled": bool(args.profile),
        "embedder": spec.name,
        "threads": threads,
        "max_length": max_length,
        "batch_size": DEFAULT_BATCH_SIZE,
        "texts": len(texts),
        "raw_onnxruntime_s": [raw1, raw2, raw3],
        "overtonlite_embed_s": ours_t,
        "score_s": score_t,
        "score_timings": summary.timings,
        "embed_ratio_throughput": raw_e / ours_t,
        "prompt_texts": len(ptexts),
        "raw_onnxruntime_prompts_s": [rawp1, rawp2],
        "score_ratio_wall": score_t / raw,
        "score_ratio_wall_all_texts": score_t / raw_all,
        "score_over_own_embed_phase": score_t / summary.timings["embed"]
        if summary.timings.get("embed")
        else None,
        "score_target_ratio": TARGET_RATIO,
        "score_within_target": score_t / raw <= TARGET_RATIO,
        "max_abs_vector_diff": max_diff,
    }
    print(
        f"| measure ({spec.name}, {len(texts)} texts, {threads} threads, trunc {max_length}, batch {DEFAULT_BATCH_SIZE}) | seconds |"
        f" ratio | target |"
    )
    print("|---|---|---|---|")
    print(
        f"| raw onnxruntime embed, the floor (runs 1 / 2 / 3) | {raw1:.1f} / {raw2:.1f} / {raw3:.1f} | – | – |"
    )
    print(
        f"| overtonlite embed (between raw 2 and 3) | {ours_t:.1f} | throughput {raw_e / ours_t:.3f}x | ≥ 0.95x |"
    )
    print(
        f"| raw embed of the {len(ptexts)} prompt texts score also embeds (runs 1 / 2) | {rawp1:.1f} / {rawp2:.1f}"
        " | – | – |"
    )
    print(
        f"| overtonlite score, default options (between raw 1 and 2) | {score_t:.1f} | wall {score_t / raw:.3f}x "
        f"the responses' floor, {score_t / raw_all:.3f}x the floor of all texts it embeds | ≤ {TARGET_RATIO}x |"
    )
    print(
        f"\nscore phases: {', '.join(f'{k} {v:.1f}s' for k, v in summary.timings.items())}; "
        f"max |Δ| vector vs raw {max_diff:.2e}; load average (1/5/15 min) at the end {load} on {os.cpu_count()} CPUs"
    )
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n")
    return 0 if score_t / raw <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
