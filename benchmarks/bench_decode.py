"""Decode speed of the sampling engine against llama.cpp's own ``llama-batched-bench``, batch size by batch size.

The reference is built from the same vendored llama.cpp sources as the installed llama-cpp-python (see
``llamacpp_ref.py``; the first run fetches the sdist and builds one tool into ``~/.cache/overtonlite-bench``).
For every batch size B the three measurements run back to back (interleaved, the order reversed every other
round), at the same model and threads:

* ``llama.cpp``: llama-batched-bench, B separate prompts of ``--pp`` tokens, ``--tg`` generated tokens each,
  in the engine's KV layout (``--layout unified``: one cache, ``-kvu``; ``--layout streams``: llama.cpp's default of
  a stream per sequence); its text-generation speed S_TG;
* ``engine``: :class:`LlamaCppGenerator` generating B sequences as groups of ``--n`` samples (B/n prompts of
  ``--pp`` tokens, end-of-text ignored, ``--tg`` tokens each, the paper's T=0.5 and repetition penalty 1.1);
  tokens/s of its generation-only steps (decode + sampling + bookkeeping);
* ``raw``: a bare ``llama_decode`` loop through ctypes on the engine's context (no sampling).

``--repeat`` rounds of the three (default 3) give medians per method and, per round, the engine's speed over
llama.cpp's in the same round (printed as median and range: the spread is this machine's noise).

    python benchmarks/bench_decode.py --models smollm2-135m-instruct gemma-3-270m --out decode.json
    python benchmarks/bench_decode.py --layout streams --tg 384 --batches 8 16 32

On a machine shared with other work, compare the ratios (measured side by side), not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampling import prompt_of_tokens, raw_decode_tok_s, resolve_models, write_results  # noqa: E402
from llamacpp_ref import batched_bench, ensure_batched_bench  # noqa: E402

from overtonlite.backends.base import GenRequest  # noqa: E402
from overtonlite.backends.llamacpp import LlamaCppGenerator  # noqa: E402
from overtonlite.config import SamplingConfig  # noqa: E402


def engine_tok_s(gen: LlamaCppGenerator, prompt: str, batch: int, n: int, tg: int) -> float:
    per = min(n, batch)
    sc = SamplingConfig(temperature=0.5, repetition_penalty=1.1, max_tokens=tg)
    reqs = [
        GenRequest(f"g{i}", f"{i} {prompt}", tuple(range(i * per, (i + 1) * per)), sc)
        for i in range(max(1, batch // per))
    ]
    before = dict(gen.stats)
    list(gen.generate(reqs))
    toks = gen.stats["gen_step_tokens"] - before["gen_step_tokens"]
    us = gen.stats["gen_step_us"] - before["gen_step_us"]
    return toks / (us / 1e6) if us else 0.0


def bench_model(name: str, path: Path, binary: Path, args: argparse.Namespace) -> dict[str, Any]:
    n_kv = max(2048, max(args.batches) * (args.pp + args.tg + 16))
    gen = LlamaCppGenerator(
        path,
        n_ctx=max(512, args.pp + args.tg + 16),
        n_threads=args.threads,
        max_seqs=max(args.batches),
        n_kv=n_kv,
        ignore_eos=True,
        kv_layout=args.layout,
    )
    threads = gen.n_threads
    prompt = prompt_of_tokens(gen, args.pp - 2)  # the group index and BOS make up the rest
    rows: dict[int, dict[str, Any]] = {}
    unified = args.layout == "unified"
    engine_tok_s(gen, prompt, 1, 1, 16)  # warm-up (first use of the cache, the sampler's session and buffer)
    for b in args.batches:
        ref, ours, raw = [], [], []
        runs = [
            (ref, lambda b=b: batched_bench(
                binary, path, batches=[b], threads=threads, pp=args.pp, tg=args.tg, unified=unified
            )[b]["speed_tg"]),
            (ours, lambda b=b: engine_tok_s(gen, prompt, b, args.n, args.tg)),
            (raw, lambda b=b: raw_decode_tok_s(gen, b, prompt=args.pp, steps=args.tg)),
        ]  # fmt: skip
        for k in range(args.repeat):
            # odd rounds run the three in reverse order, so a drift in the machine's speed favours none of them
            for into, measure in runs if k % 2 == 0 else runs[::-1]:
                into.append(measure())
        r, o, w = statistics.median(ref), statistics.median(ours), statistics.median(raw)
        paired = [
            x / y for x, y in zip(ours, ref, strict=True)
        ]  # each round's engine over that round's llama.cpp
        rows[b] = {
            "llama_cpp": r,
            "engine": o,
            "raw": w,
            "engine_vs_llama_cpp": o / r,
            "raw_vs_llama_cpp": w / r,
            "rounds": {"llama_cpp": ref, "engine": ours, "raw": raw},
            "paired_engine_vs_llama_cpp": {
                "median": statistics.median(paired),
                "min": min(paired),
                "max": max(paired),
            },
        }
        print(f"{name} B={b:2d}: llama.cpp {r:7.1f}  engine {o:7.1f} ({o / r:.2f}x)  raw {w:7.1f} ({w / r:.2f}x)"
              f"  rounds {' '.join(f'{x:.2f}' for x in paired)}", file=sys.stderr, flush=True)  # fmt: skip
    gen.close()
    return {"model": name, "threads": threads, "layout": args.layout, "batches": rows}


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | KV layout | batch | llama-batched-bench tok/s | engine tok/s | engine / llama.cpp "
        "| raw decode / llama.cpp | engine / llama.cpp by round: median (min-max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for b, r in res["batches"].items():
            pr = r["paired_engine_vs_llama_cpp"]
            lines.append(
                f"| {res['model']} | {res['layout']} | {b} | {r['llama_cpp']:.1f} | {r['engine']:.1f} | "
                f"{r['engine_vs_llama_cpp']:.2f}x | {r['raw_vs_llama_cpp']:.2f}x | "
                f"{pr['median']:.2f}x ({pr['min']:.2f}-{pr['max']:.2f}) |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="registry names (default: the default pair)")
    ap.add_argument("--model-path", nargs="*", help="local GGUF files instead of registry names")
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--n", type=int, default=4, help="samples per prompt group in the engine")
    ap.add_argument("--pp", type=int, default=32, help="prompt tokens per sequence")
    ap.add_argument("--tg", type=int, default=128, help="generated tokens per sequence")
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--repeat", type=int, default=3, help="alternating rounds per batch size (medians)")
    ap.add_argument("--layout", choices=["unified", "streams"], default="unified",
                    help="the engine's KV layout, and llama.cpp's to compare with (-kvu or its default)")  # fmt: skip
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    binary = ensure_batched_bench()
    from overtonlite.backends.llamacpp.native import import_llama, load_policy

    import_llama()  # the OpenMP wait policy is chosen here; llama-batched-bench inherits it with the environment
    policy = load_policy()
    print(f"OpenMP wait policy {policy['omp_wait_policy'] or 'default (spinning)'}; CPUs busy at load: "
          f"{policy['busy_cpus_at_load']}", file=sys.stderr, flush=True)  # fmt: skip
    t0 = time.perf_counter()
    results = [bench_model(name, path, binary, args) for name, path in resolve_models(args)]
    print(render(results))
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    for res in results:
        res.update(policy)
    write_results(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
