"""Wall time and peak RSS of ``overtonlite replicate --quick`` with warm model caches.

Runs the command in a child process (so the measurement covers model loading, generation, scoring and the
report, exactly as a user sees it), takes the wall time around it and the peak resident set size of the child
from ``resource.getrusage(RUSAGE_CHILDREN)``. Targets: <= 180 s and <= 1.5 GB on 2 cores.

    python benchmarks/bench_replicate.py [--out DIR] [--json FILE] [--keep] [--full]

``--full`` times the full preset (``replicate`` without ``--quick``) instead; the targets apply to ``--quick`` only.

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

TARGET_SECONDS = 180.0
TARGET_RSS_GB = 1.5


def warm_caches() -> None:
    """Pull the default pair and the default embedder into the cache (not timed)."""
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_embedder, ensure_model

    reg = load_registry()
    pair = reg.pair(reg.default_pair)
    for name in (pair.base, pair.chat):
        ensure_model(reg.model(name), pull=True)
    ensure_embedder(reg.embedder(reg.default_embedder), pull=True)


def measure(out: Path, extra: list[str], *, quick: bool = True) -> dict[str, object]:
    """Run ``overtonlite replicate [--quick]`` once into ``out``; wall seconds, child peak RSS, exit code."""
    if out.exists():
        shutil.rmtree(out)
    preset = ["--quick"] if quick else []
    cmd = [sys.executable, "-m", "overtonlite", "replicate", *preset, "--out", str(out), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes, max over children
    results = {}
    if (out / "results.json").is_file():
        results = json.loads((out / "results.json").read_text())
    return {
        "command": " ".join(cmd[1:]),
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(max(peak_kb, before) / 1024**2, 3),
        "settings": results.get("settings"),
        "verdicts": {k: v.get("verdict") for k, v in (results.get("claims") or {}).items()},
        "stderr_tail": proc.stderr.strip().splitlines()[-3:] if proc.returncode else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Run directory (default: a temporary one).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers to this JSON file.")
    parser.add_argument("--keep", action="store_true", help="Keep the run directory.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--full", action="store_true", help="Time the full preset (no targets) instead of --quick."
    )
    args = parser.parse_args()

    warm_caches()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replicate-"))
    out = args.out or tmp / "run"
    extra = ["--threads", str(args.threads)] if args.threads else []
    row = measure(out, extra, quick=not args.full)
    preset = "replicate" if args.full else "replicate --quick"
    row.update(
        {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "machine": platform.machine(),
            "target_seconds": TARGET_SECONDS,
            "target_rss_gb": TARGET_RSS_GB,
            "within_targets": row["exit_code"] == 0
            and row["seconds"] <= TARGET_SECONDS
            and row["peak_rss_gb"] <= TARGET_RSS_GB,
        }
    )
    if args.full:
        row.update({"target_seconds": None, "target_rss_gb": None, "within_targets": row["exit_code"] == 0})
    print(
        f"{preset}: {row['seconds']} s wall, peak RSS {row['peak_rss_gb']} GB, exit {row['exit_code']} "
        f"(quick targets <= {TARGET_SECONDS:.0f} s, <= {TARGET_RSS_GB} GB; load avg {row['load_average_1m']})"
    )
    print(json.dumps(row, indent=2))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    if not args.keep and args.out is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if row["within_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
