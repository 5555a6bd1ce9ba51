"""Benchmark the batched sampling engine against the naive llama-cpp-python loop, side by side in one run.

For each default GGUF (or ``--model-path``):

1. throughput: 4 prompts x N=5 samples x max_tokens=128 with the paper's settings (T 0.5, repetition penalty 1.1,
   no top-k/top-p/min-p), this engine (in the run plan's cohorts, as ``overtonlite sample`` runs it) vs N
   sequential ``Llama.create_completion`` calls per prompt with the same settings and seeds; tokens/s of each and
   the ratio (target >= 1.5x); then the cost of exact resume: ``--exact-prompts`` prompts in cohorts against the
   same prompts with continuous batching, back to back;
2. shared prefix: 8 prompts sharing a ~1k-token preamble; prompt tokens submitted vs evaluated (target: the
   preamble evaluated once);
3. decode speed at 1/5/10 sequences (32-token prompt, 128 generated tokens each, end-of-text ignored), next to
   a raw ``llama_decode`` loop on the same context in the same run (no sampling) and to the
   ``llama-batched-bench`` numbers once quoted for a calm 2-core machine. ``bench_decode.py`` measures the real
   reference: llama-batched-bench built from the same sources, interleaved, batch sizes 1-32.

    python benchmarks/bench_sampling.py --out bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from overtonlite.backends.base import GenRequest
from overtonlite.backends.llamacpp import LlamaCppGenerator
from overtonlite.config import SamplingConfig, derive_seed

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are some good ways to stay focused while working from home?",
    "Explain why the sky looks blue during the day and red at sunset.",
    "Give me your opinion: is it better to rent or to buy a home?",
]

MORE_PROMPTS = [
    "Should schools give students homework? Answer yes or no, then explain.",
    "Describe a perfect weekend in a small mountain town.",
    "What are the pros and cons of electric cars?",
    "How do I politely say no to extra work from my manager?",
]

# llama-batched-bench decode tok/s, 2 cores / 2 threads, 32-token prompts, 128 generated tokens per sequence
CEILING = {
    "gemma-3-270m": {1: 75.8, 5: 102.0, 10: 150.6},
    "smollm2-135m-instruct": {1: 127.5, 5: 194.6, 10: 235.3},
}

EXAMPLE_QA = [
    (
        "How do plants make their food?",
        "Plants capture sunlight with chlorophyll and turn water and carbon dioxide "
        "into sugar, releasing oxygen as a by-product. This process is called photosynthesis.",
    ),
    (
        "What is a good habit for better sleep?",
        "Keep a regular schedule: going to bed and waking up at the same "
        "time every day helps your body clock. Avoid bright screens for an hour before bed.",
    ),
    (
        "Why do we have seasons?",
        "The Earth's axis is tilted, so each hemisphere leans towards the Sun for part of "
        "the year and away from it for the rest. The angle of sunlight, not the distance, makes the difference.",
    ),
    (
        "How can I learn to cook?",
        "Start with a few simple dishes you like, cook them often, and change one thing at "
        "a time. Taste as you go, keep your knife sharp and read recipes all the way through first.",
    ),
]


def preamble(gen: LlamaCppGenerator, target_tokens: int = 1000) -> str:
    """A URIAL-style preamble (instructions + example query/answer pairs) of about ``target_tokens`` tokens."""
    text = "Below are a list of conversations between a curious user and a helpful, honest assistant.\n\n"
    i = 0
    while gen.count_tokens(text) < target_tokens:
        q, a = EXAMPLE_QA[i % len(EXAMPLE_QA)]
        text += f"# Query {i + 1}:\n```\n{q}\n```\n\n# Answer:\n```\n{a}\n```\n\n"
        i += 1
    return text


def prompt_of_tokens(gen: LlamaCppGenerator, n: int) -> str:
    words = (" ".join(PROMPTS * 4)).split()
    while gen.count_tokens(" ".join(words)) > n:
        words.pop()
    return " ".join(words)


def run_engine(
    gen: LlamaCppGenerator, prompts: list[str], n: int, sc: SamplingConfig, *, cohorts: bool = False
) -> dict[str, Any]:
    """The engine on ``prompts``; ``cohorts``: in the run plan's cohorts, as ``overtonlite sample`` runs it (exact
    resume), else with continuous batching across all groups."""
    size = gen.cohort_groups(n)
    reqs = [
        GenRequest(
            f"p{i}", p, tuple(derive_seed(0, f"p{i}", j) for j in range(n)), sc, i // size if cohorts else -1
        )
        for i, p in enumerate(prompts)
    ]
    t0 = time.perf_counter()
    results = list(gen.generate(reqs))
    dt = time.perf_counter() - t0
    tokens = sum(s.n_tokens for r in results for s in r.samples)
    return {"seconds": dt, "tokens": tokens, "tok_s": tokens / dt}


def run_naive(
    path: Path, prompts: list[str], n: int, sc: SamplingConfig, threads: int, n_ctx: int
) -> dict[str, Any]:
    import llama_cpp

    llm = llama_cpp.Llama(
        str(path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        last_n_tokens_size=n_ctx,
        verbose=False,
    )
    tokens = 0
    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        for j in range(n):
            out = llm.create_completion(
                p,
                max_tokens=sc.max_tokens,
                temperature=sc.temperature,
                repeat_penalty=sc.repetition_penalty,
                top_k=sc.top_k,
                top_p=sc.top_p,
                min_p=sc.min_p,
                seed=derive_seed(0, f"p{i}", j),
            )
            tokens += out["usage"]["completion_tokens"]
    dt = time.perf_counter() - t0
    llm.close()
    return {"seconds": dt, "tokens": tokens, "tok_s": tokens / dt}


def bench_model(name: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    sc = SamplingConfig(temperature=0.5, repetition_penalty=1.1, max_tokens=args.max_tokens)
    row: dict[str, Any] = {"model": name, "path": str(path)}
    gen = LlamaCppGenerator(path, n_ctx=args.n_ctx, n_threads=args.threads, max_seqs=args.max_seqs)
    row["threads"] = gen.n_threads
    prompts = PROMPTS[: args.prompts]
    if gen.has_chat_template():  # a chat model is sampled through its template, as `overtonlite sample` does
        prompts = [gen.render_chat([{"role": "user", "content": p}]) for p in prompts]
    row["chat_template"] = gen.has_chat_template()
    row["engine"] = run_engine(gen, prompts, args.n, sc, cohorts=True)
    if not args.skip_naive:
        row["naive"] = run_naive(path, prompts, args.n, sc, gen.n_threads, args.n_ctx)
        row["ratio"] = row["engine"]["tok_s"] / row["naive"]["tok_s"]
    if args.exact_prompts:  # the cost of exact resume: cohorts against continuous batching, back to back
        many = (PROMPTS + MORE_PROMPTS) * (1 + args.exact_prompts // 8)
        many = [f"{p} ({i})" for i, p in enumerate(many[: args.exact_prompts])]
        if gen.has_chat_template():
            many = [gen.render_chat([{"role": "user", "content": p}]) for p in many]
        exact = run_engine(gen, many, args.n, sc, cohorts=True)
        continuous = run_engine(gen, many, args.n, sc, cohorts=False)
        row["exact_resume"] = {
            "prompts": len(many),
            "cohort_groups": gen.cohort_groups(args.n),
            "cohorts_tok_s": exact["tok_s"],
            "continuous_tok_s": continuous["tok_s"],
            "cost": 1 - exact["tok_s"] / continuous["tok_s"],
        }
    # shared prefix
    pre = preamble(gen, args.prefix_tokens)
    shared = [pre + f"# Query:\n```\n{q}\n```\n\n# Answer:\n```\n" for q in PROMPTS + MORE_PROMPTS]
    before = dict(gen.stats)
    run_engine(gen, shared, 1, sc.replace(max_tokens=4))
    submitted = sum(gen.count_tokens(p) for p in shared)
    row["prefix"] = {
        "prompts": len(shared),
        "preamble_tokens": gen.count_tokens(pre),
        "prompt_tokens_submitted": submitted,
        "prompt_tokens_evaluated": gen.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"],
        "prefix_tokens_evaluated": gen.stats["prefix_tokens_evaluated"] - before["prefix_tokens_evaluated"],
    }
    gen.close()
    # decode speed at 1/5/10 sequences, end-of-text ignored so every sequence generates exactly 128 tokens
    row["decode"] = {}
    dec = LlamaCppGenerator(path, n_ctx=args.n_ctx, n_threads=args.threads, max_seqs=16, ignore_eos=True)
    p32 = prompt_of_tokens(dec, 32)
    for s in args.seqs:
        raw = raw_decode_tok_s(dec, s)
        before = dict(dec.stats)
        run_engine(dec, [p32], s, sc.replace(max_tokens=128))
        toks = dec.stats["gen_step_tokens"] - before["gen_step_tokens"]
        us = dec.stats["gen_step_us"] - before["gen_step_us"]
        tok_s = toks / (us / 1e6) if us else 0.0
        ceiling = CEILING.get(name, {}).get(s)
        row["decode"][s] = {
            "tok_s": tok_s,
            "raw_decode_tok_s": raw,
            "of_raw": tok_s / raw,
            "ceiling": ceiling,
            "of_ceiling": tok_s / ceiling if ceiling else None,
        }
    dec.close()
    return row


def raw_decode_tok_s(gen: LlamaCppGenerator, n_seqs: int, *, prompt: int = 32, steps: int = 128) -> float:
    """Same context, no sampling, no bookkeeping: one llama_decode of n_seqs tokens per step (the in-run
    ceiling, like llama-batched-bench with separate 32-token prompts)."""
    nm = gen.native
    nm.clear()
    gen.kv.prefix = None
    tok = nm.tokenize("Hello", add_special=False, parse_special=False)[0]
    for seq in range(1, n_seqs + 1):
        nm.decode([(tok, i, seq, False) for i in range(prompt)])
    t0 = time.perf_counter()
    for step in range(steps):
        nm.decode([(tok, prompt + step, seq, True) for seq in range(1, n_seqs + 1)])
    nm.sync_outputs()
    dt = time.perf_counter() - t0
    nm.clear()
    return n_seqs * steps / dt


def write_results(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """Write ``{"settings": the arguments, "results": results}`` as JSON to ``args.out``, if one was given."""
    if args.out:
        args.out.write_text(
            json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
        )


def resolve_models(args: argparse.Namespace) -> list[tuple[str, Path]]:
    if args.model_path:
        return [(Path(p).stem, Path(p)) for p in args.model_path]
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_model

    reg = load_registry()
    names = args.models or [reg.pair("default").base, reg.pair("default").chat]
    return [(n, ensure_model(reg.model(n), pull=True)) for n in names]


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | engine tok/s | naive tok/s | ratio | exact resume: cohorts / continuous tok/s (cost) | prefix: submitted / evaluated (preamble) | decode tok/s by seqs (x raw decode, x quoted batched-bench) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        naive = f"{r['naive']['tok_s']:.1f}" if "naive" in r else "-"
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        pf = r["prefix"]
        pre = f"{pf['prompt_tokens_submitted']} / {pf['prompt_tokens_evaluated']} ({pf['preamble_tokens']})"
        dec = " / ".join(
            f"{d['tok_s']:.1f} ({d['of_raw']:.2f}x raw"
            + (f", {d['of_ceiling']:.2f}x quoted)" if d["of_ceiling"] else ")")
            for d in r["decode"].values()
        )
        ex = r.get("exact_resume")
        exact = f"{ex['cohorts_tok_s']:.1f} / {ex['continuous_tok_s']:.1f} ({ex['cost']:+.1%})" if ex else "-"
        lines.append(
            f"| {r['model']} | {r['engine']['tok_s']:.1f} | {naive} | {ratio} | {exact} | {pre} | {dec} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="registry names (default: the default pair)")
    ap.add_argument("--model-path", nargs="*", help="local GGUF files instead of registry names")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--max-seqs", type=int, default=None, help="default: the engine's own budget rule")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--prefix-tokens", type=int, default=1000)
    ap.add_argument("--seqs", type=int, nargs="*", default=[1, 5, 10])
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument(
        "--exact-prompts",
        type=int,
        default=16,
        help="prompts for the cohorts-vs-continuous comparison (0: skip)",
    )
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)

    rows = [bench_model(name, path, args) for name, path in resolve_models(args)]
    table = render(rows)
    try:
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(table))
    except ImportError:
        pass
    print(table)
    if args.out:
        import llama_cpp

        meta = {
            "python": platform.python_version(),
            "llama_cpp_python": llama_cpp.__version__,
            "machine": platform.machine(),
        }
        args.out.write_text(
            json.dumps(
                {"meta": meta, "settings": vars(args) | {"out": str(args.out)}, "rows": rows},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
