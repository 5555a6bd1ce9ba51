"""Wall time, peak RSS and the lower bound of ``overtonlite replicate --quick`` (or ``--full``), warm caches.

Runs the command in a child process (so the measurement covers model loading, generation, scoring and the
report, exactly as a user sees it), takes the wall time around it and the peak resident set size of the child
from ``resource.getrusage(RUSAGE_CHILDREN)``.

The LOWER BOUND is what the run's tokens need at the engine's own speed (see ``replicate_bound.py``): generated
tokens / engine decode tok/s at the batch size and context depth of each sampling pass + prompt tokens evaluated
/ prompt tok/s, token counts from the run's samples.jsonl files, throughputs calibrated in the same process on
the same models and threads just before AND just after the run (mean of the two rounds; the depth curves, a few
minutes at 32 sequences, only after it). It also prints the bound without the depth slowdown (every token decoded
behind a 32-token prompt, as the calibration's short rounds do). It prints wall / bound next to the
generation, scoring and report times, and (from the --quick run) an ESTIMATE of the full preset's bound.

Where the time went: every sampling pass records its wall time and the engine's step statistics in the run's
manifest (``systems.SYSTEM.passes``); a second table splits each pass into generation-only steps (and their
llama_decode part), steps that also evaluated prompt tokens, shared-prefix evaluation and the rest, with the mean
batch, and prices the generation-only steps at the calibrated speed of each step's own batch size: the gap between
that and the bound's batch is what smaller batches (tails) cost, the gap between it and the measured time is what
each step costs beyond the calibration (the unified cache's spread cells, the machine's drift).

Targets (issue 12): full preset wall <= 1.2x its bound; peak RSS quick <= 1.0 GB, full <= 1.5 GB; quick wall
<= 180 s on an idle 2-core machine.

    python benchmarks/bench_replicate.py [--full] [--out DIR] [--json FILE] [--keep] [--threads N]

The models and the embedder are pulled first (outside the timing), so the numbers are for warm caches. Each
measurement starts from an empty run directory (nothing is resumed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replicate_bound import (  # noqa: E402  (benchmarks/ is the script's directory)
    batch_used,
    bound,
    calibrate,
    engine_passes,
    full_preset_passes,
    merge_calibrations,
    passes,
    time_split,
)

TARGET_SECONDS = 180.0  # quick, idle machine
TARGET_RSS_GB = {"quick": 1.0, "full": 1.5}
TARGET_BOUND_RATIO = 1.2  # full preset wall / lower bound
CAL_BATCHES = (1, 4, 8, 16, 32)  # decode tok/s measured here; other batch sizes interpolated
MAX_DEPTH_STEPS = 384  # the depth curves follow the answer this far (the run's max_tokens if smaller)


def warm_caches() -> dict[str, Path]:
    """Pull the default pair and the default embedder into the cache (not timed); model name -> GGUF path."""
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_embedder, ensure_model

    reg = load_registry()
    pair = reg.pair(reg.default_pair)
    paths = {}
    for name in (pair.base, pair.chat):
        spec = reg.model(name)
        paths[spec.name] = Path(ensure_model(spec, pull=True))
    ensure_embedder(reg.embedder(reg.default_embedder), pull=True)
    return paths


def measure(out: Path, extra: list[str], *, quick: bool = True) -> dict[str, object]:
    """Run ``overtonlite replicate [--quick]`` once into ``out``; wall seconds, child peak RSS, exit code."""
    if out.exists():
        shutil.rmtree(out)
    preset = ["--quick"] if quick else []
    cmd = [sys.executable, "-m", "overtonlite", "replicate", *preset, "--out", str(out), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes, max over children
    results = {}
    if (out / "results.json").is_file():
        results = json.loads((out / "results.json").read_text())
    return {
        "command": " ".join(cmd[1:]),
        "load_average_before_after_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(max(peak_kb, before) / 1024**2, 3),
        "settings": results.get("settings"),
        "timings": results.get("timings"),
        "verdicts": {k: v.get("verdict") for k, v in (results.get("claims") or {}).items()},
        "stderr_tail": proc.stderr.strip().splitlines()[-3:] if proc.returncode else [],
    }


def _row_table(rows: list[dict[str, object]]) -> list[str]:
    lines = [
        "| pass | model | groups x N | batch | generated tok | prompt tok evaluated | depth | decode tok/s "
        "(short x depth factor) | prompt tok/s | bound s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']}/{r['system']} | {r['model']} | {r['groups']} x {r['n']} | {r['batch']} | "
            f"{r['generated_tokens']:,} | {r['prompt_tokens_evaluated']:,} | {r['depth']:.0f} | "
            f"{r['decode_tok_s']:.1f} ({r['decode_tok_s_short']:.1f} x {r['depth_factor']:.2f}) | "
            f"{r['prompt_tok_s']:.0f} | {r['bound_decode_s'] + r['bound_prompt_s']:.1f} |"
        )
    return lines


def _split_table(rows: list[dict[str, object]]) -> list[str]:
    """Where each pass's wall time went (from the engine statistics the run's manifests record)."""
    split_rows = [r for r in rows if isinstance(r.get("time_split"), dict)]
    if not split_rows:
        return []
    lines = [
        "| pass | wall s | generation-only steps s (llama_decode s) | mixed steps s | prefix s | other s "
        "| mean batch | generation-only tok/s (/ bound's decode tok/s) | generation-only s at the calibrated "
        "speed of each step's batch (at the bound's batch) | wall / bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in split_rows:
        t: dict[str, float] = r["time_split"]  # type: ignore[assignment]
        rb = float(r["bound_decode_s"]) + float(r["bound_prompt_s"])  # type: ignore[arg-type]
        mix = f"{t['mix_s']:.1f} ({t['at_bound_batch_s']:.1f})" if "mix_s" in t else "–"
        lines.append(
            f"| {r['file']}/{r['system']} | {t['wall_s']:.1f} | {t['gen_steps_s']:.1f} ({t['gen_decode_s']:.1f}) "
            f"| {t['mixed_steps_s']:.1f} | {t['prefix_s']:.1f} | {t['other_s']:.1f} | {t['mean_batch']:.1f} | "
            f"{t['gen_tok_s']:.1f} ({t.get('gen_tok_s_over_bound', 0.0):.2f}x) | {mix} | {t['wall_s'] / rb:.2f}x |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Run directory (default: a temporary one).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers to this JSON file.")
    parser.add_argument("--keep", action="store_true", help="Keep the run directory.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="Time the full preset instead of --quick.")
    parser.add_argument(
        "--full-max-tokens",
        type=int,
        default=None,
        help="max_tokens of the full preset for the bound estimate (default: the preset's own).",
    )
    args = parser.parse_args()

    from overtonlite.experiments.icl import SUMMARY_MAX_TOKENS
    from overtonlite.experiments.replicate import settings_for

    models = warm_caches()
    preset = "full" if args.full else "quick"
    run_max_tokens = settings_for(quick=not args.full, n=None, max_tokens=None, limit=None, seed=0)[
        "max_tokens"
    ]  # the engine is sized by it (sequence budget, KV cache): calibrate the same engine
    cal_rounds = [calibrate(models, CAL_BATCHES, threads=args.threads, round_no=0, max_tokens=run_max_tokens)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-replicate-"))
    out = args.out or tmp / "run"
    extra = ["--threads", str(args.threads)] if args.threads else []
    row = measure(out, extra, quick=not args.full)
    cal_rounds.append(  # the depth curves once, after the run (minutes at 32 sequences)
        calibrate(
            models,
            CAL_BATCHES,
            threads=args.threads,
            round_no=1,
            max_tokens=run_max_tokens,
            depth_steps=min(run_max_tokens, MAX_DEPTH_STEPS),
        )
    )
    cal = merge_calibrations(cal_rounds)
    any_cal = next(iter(cal.values()))
    max_seqs = any_cal["max_seqs"]

    rows = passes(out)
    for r in rows:  # each model's own engine sizing (the streams layout gives models different budgets)
        c = cal.get(r["model"], any_cal)
        r["batch"] = batch_used(r, max_seqs=c["max_seqs"], kv_budget=c["kv_budget"])
    b = bound(rows, cal) if rows else {"decode_s": 0.0, "prompt_s": 0.0, "total_s": 0.0}
    engine = engine_passes(out)
    for r in rows:
        eng = engine.get((r["file"], r["system"]))
        if eng is not None:
            r["engine"] = eng
            r["time_split"] = time_split(r, eng, cal.get(r["model"], any_cal)["decode_tok_s"])
    timings = row.get("timings") or {}
    gen_s = sum(float(v) for k, v in timings.items() if k.endswith("generate"))
    score_s = float(timings.get("score") or 0.0)
    before_report = float(timings.get("total_before_report") or 0.0)
    rss_target = TARGET_RSS_GB[preset]
    row.update(
        {
            "preset": preset,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "calibration": {m: {k: v for k, v in c.items()} for m, c in cal.items()},
            "passes": rows,
            "bound_s": b,
            "generate_s": round(gen_s, 1),
            "score_s": round(score_s, 1),
            "report_and_startup_s": round(float(row["seconds"]) - before_report, 1)
            if before_report
            else None,
            "wall_over_bound": round(float(row["seconds"]) / b["total_s"], 3) if b["total_s"] else None,
            "generate_over_bound": round(gen_s / b["total_s"], 3) if b["total_s"] else None,
            "wall_over_short_context_bound": round(float(row["seconds"]) / b["total_short_s"], 3)
            if b["total_s"]
            else None,
            "target_rss_gb": rss_target,
            "target_bound_ratio": TARGET_BOUND_RATIO,
        }
    )
    ok = row["exit_code"] == 0 and row["peak_rss_gb"] <= rss_target
    if args.full:
        ok = ok and row["wall_over_bound"] is not None and row["wall_over_bound"] <= TARGET_BOUND_RATIO
    else:
        ok = ok and row["seconds"] <= TARGET_SECONDS
    row["within_targets"] = ok

    if not args.full and rows:  # the full preset's bound, estimated from this run's counts and calibration
        full = settings_for(quick=False, n=None, max_tokens=args.full_max_tokens, limit=None, seed=0)
        quick = settings_for(quick=True, n=None, max_tokens=None, limit=None, seed=0)
        est = full_preset_passes(
            rows, full, summary_max_tokens=SUMMARY_MAX_TOKENS, quick_cap_words=quick["answer_cap_words"]
        )
        # the full preset's engine sizes its KV cache by the full preset's max_tokens, not --quick's
        from overtonlite.backends.llamacpp import MAX_KV_CELLS, cells_per_sequence

        full_budget = min(MAX_KV_CELLS, cells_per_sequence(full["max_tokens"]) * max_seqs) - 16
        for r in est:
            r["batch"] = batch_used(r, max_seqs=max_seqs, kv_budget=full_budget)
        row["full_preset_estimate"] = {
            "max_tokens": full["max_tokens"],
            "n": full["n"],
            "bound_s": bound(est, cal),
            "passes": est,
        }

    la = row["load_average_before_after_1m"]
    print(json.dumps(row, indent=2, default=str))
    print()
    print(
        f"## replicate --{preset}: load average (1 min) {la[0]} before / {la[1]} after, {os.cpu_count()} CPUs, "
        f"OMP_WAIT_POLICY={row['omp_wait_policy']}"
    )
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    print(
        f"| wall (child process, exit {row['exit_code']}) | {row['seconds']:.1f} s | "
        f"{'<= 1.2x bound' if args.full else f'<= {TARGET_SECONDS:.0f} s (idle)'} |"
    )
    print(
        f"| lower bound: decode + prompt | {b['total_s']:.1f} s = {b['decode_s']:.1f} + {b['prompt_s']:.1f} s | – |"
    )
    print(
        f"| **wall / bound** | **{row['wall_over_bound']}x** | {'<= 1.2x' if args.full else '(full: <= 1.2x)'} |"
    )
    print(
        f"| bound without the depth slowdown (every token behind a 32-token prompt) | "
        f"{b['total_short_s']:.1f} s, wall / it {row['wall_over_short_context_bound']}x | – |"
    )
    print(f"| generation (diversity + ICL) / bound | {gen_s:.1f} s, {row['generate_over_bound']}x | – |")
    print(f"| load (models + embedder) | {float(timings.get('load') or 0):.1f} s | – |")
    print(f"| scoring | {score_s:.1f} s | – |")
    print(f"| report + process start-up (wall - total before report) | {row['report_and_startup_s']} s | – |")
    print(f"| peak RSS | {row['peak_rss_gb']} GB | <= {rss_target} GB |")
    print()
    print("\n".join(_row_table(rows)))
    split_lines = _split_table(rows)
    if split_lines:
        print()
        print("\n".join(split_lines))
    cal_txt = "; ".join(
        f"{m}: prompt {c['prompt_tok_s']:.0f} tok/s, decode "
        + " / ".join(f"{v:.1f}" for v in c["decode_tok_s"].values())
        + f" tok/s at {' / '.join(str(k) for k in c['decode_tok_s'])} sequences"
        for m, c in cal.items()
    )
    print(f"\ncalibration (mean of before/after rounds, {any_cal['threads']} threads): {cal_txt}")
    for m, c in cal.items():
        for bsz, curve in (c.get("depth_tok_s") or {}).items():
            pts = ", ".join(f"{d:.0f}: {v:.1f}" for d, v in curve)
            print(f"depth curve (after the run), {m}, {bsz} sequences, depth: tok/s = {pts}")
    if "full_preset_estimate" in row:
        fe = row["full_preset_estimate"]
        print(
            f"\nfull preset (N = {fe['n']}, {fe['max_tokens']} new tokens) bound ESTIMATED from this run's fill "
            f"and calibration: {fe['bound_s']['total_s']:.0f} s = decode {fe['bound_s']['decode_s']:.0f} + "
            f"prompt {fe['bound_s']['prompt_s']:.0f} s; its wall target (1.2x) would be "
            f"{TARGET_BOUND_RATIO * fe['bound_s']['total_s']:.0f} s at this machine's current load. The depth "
            f"curves stop at --quick's max_tokens, so deeper passes keep the last measured factor (optimistic)"
        )
        print("\n".join(_row_table(fe["passes"])))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2, default=str) + "\n")
    if not args.keep and args.out is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
