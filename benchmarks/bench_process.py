"""Whole-process throughput: ``overtonlite sample`` against a naive llama-cpp-python loop, each as a fresh process.

Both sides pay what a user pays: interpreter start, imports, model load, generation and writing the results. The
workload is the issue's: 4 prompts x N=5 samples x 128 new tokens on gemma-3-270m (the default base model), the
paper's settings (T 0.5, repetition penalty 1.1, no top-k / top-p), raw completion, 2 threads.

* ``engine``: ``python -m overtonlite sample --model NAME --prompts FILE --n 5 --max-tokens 128 --mode raw ...``
  into a fresh run directory (default sequence budget); tokens = the ``n_tokens`` recorded in samples.jsonl;
* ``naive``: ``python bench_process.py --child-naive ...``: one ``llama_cpp.Llama`` and N sequential
  ``create_completion`` calls per prompt with the same settings and per-sample seeds; tokens = its
  ``usage.completion_tokens``.

tok/s = generated tokens / wall seconds of the process. The two alternate ``--repeat`` times (median of each);
the target is a median ratio >= 2x.

    python benchmarks/bench_process.py [--model gemma-3-270m] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGET = 2.0


def child_naive(args: argparse.Namespace) -> int:
    """The naive loop as its own process; prints {"tokens": ...} on stdout."""
    from bench_sampling import run_naive

    from overtonlite.config import SamplingConfig

    prompts = [json.loads(line)["prompt"] for line in Path(args.prompt_file).read_text().splitlines() if line]
    sc = SamplingConfig(temperature=0.5, repetition_penalty=1.1, max_tokens=args.max_tokens)
    res = run_naive(Path(args.model_path), prompts, args.n, sc, args.threads, 2048)
    print(json.dumps({"tokens": res["tokens"]}))
    return 0


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return dt, proc


def run_engine(args: argparse.Namespace, prompt_file: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "overtonlite", "sample", "--model", args.model, "--prompts", str(prompt_file),
           "--n", str(args.n), "--max-tokens", str(args.max_tokens), "--temperature", "0.5",
           "--repetition-penalty", "1.1", "--mode", "raw", "--seed", "0", "--threads", str(args.threads),
           "--out", str(out), "--json"]  # fmt: skip
    if args.max_seqs:
        cmd += ["--max-seqs", str(args.max_seqs)]
    dt, _ = timed(cmd)
    tokens = 0
    for line in (out / "samples.jsonl").read_text().splitlines():
        if line.strip():
            tokens += sum(s["n_tokens"] for s in json.loads(line).get("samples", []))
    manifest = json.loads((out / "manifest.json").read_text())
    engine = next(iter(manifest["systems"].values())).get("engine") or {}
    return {"seconds": dt, "tokens": tokens, "tok_s": tokens / dt, "max_seqs": engine.get("max_seqs")}


def run_naive(args: argparse.Namespace, prompt_file: Path, model_path: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-naive", "--model-path", str(model_path),
           "--prompt-file", str(prompt_file), "--n", str(args.n), "--max-tokens", str(args.max_tokens),
           "--threads", str(args.threads)]  # fmt: skip
    dt, proc = timed(cmd)
    tokens = json.loads(proc.stdout.strip().splitlines()[-1])["tokens"]
    return {"seconds": dt, "tokens": tokens, "tok_s": tokens / dt}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m", help="registry name [gemma-3-270m]")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--max-seqs", type=int, default=None, help="engine budget (default: its own rule)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child-naive", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    ap.add_argument("--prompt-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from overtonlite.util import physical_cores

    args.threads = args.threads or physical_cores()
    if args.child_naive:
        return child_naive(args)

    from bench_sampling import PROMPTS, resolve_models

    (name, model_path), *_ = resolve_models(argparse.Namespace(model_path=None, models=[args.model]))
    tmp = Path(tempfile.mkdtemp(prefix="bench-process-"))
    prompt_file = tmp / "prompts.jsonl"
    with prompt_file.open("w") as fh:  # ids p0..p3: the per-sample seeds are the naive loop's
        for i, p in enumerate(PROMPTS[: args.prompts]):
            fh.write(json.dumps({"id": f"p{i}", "prompt": p}) + "\n")
    rounds = []
    try:
        for r in range(args.repeat):
            eng = run_engine(args, prompt_file, tmp / "run")
            nai = run_naive(args, prompt_file, model_path)
            rounds.append({"engine": eng, "naive": nai, "ratio": eng["tok_s"] / nai["tok_s"]})
            print(f"round {r + 1}: engine {eng['tokens']} tok in {eng['seconds']:.1f} s = {eng['tok_s']:.1f} tok/s "
                  f"(max_seqs {eng['max_seqs']}); naive {nai['tokens']} tok in {nai['seconds']:.1f} s = "
                  f"{nai['tok_s']:.1f} tok/s; ratio {rounds[-1]['ratio']:.2f}x", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(r[k]["tok_s"] for r in rounds) for k in ("engine", "naive")}
    ratio = statistics.median(r["ratio"] for r in rounds)
    print(
        "| model | workload | engine tok/s (process) | naive tok/s (process) | ratio (median of rounds) | target |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| {name} | {args.prompts} prompts x N={args.n} x {args.max_tokens} tok, {args.threads} threads | "
          f"{med['engine']:.1f} | {med['naive']:.1f} | {ratio:.2f}x | >= {TARGET:.0f}x |")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps(
                {"settings": vars(args) | {"json": str(args.json)}, "rounds": rounds, "median_ratio": ratio,
                 "load_average": os.getloadavg()},
                indent=2,
                default=str,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
