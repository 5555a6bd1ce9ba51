"""llama.cpp's own ``llama-batched-bench``, built from the SAME vendored sources as the installed llama-cpp-python.

Used by ``bench_decode.py`` as the reference decode speed. The sdist of the installed llama-cpp-python version is
fetched with ``pip download --no-binary llama-cpp-python`` (pip's cache makes a second fetch free), and only the
``llama-batched-bench`` target is built with cmake, into a cache folder outside the repository
(``$OVERTONLITE_BENCH_CACHE`` or ``~/.cache/overtonlite-bench``). Nothing of it is committed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("OVERTONLITE_BENCH_CACHE", Path.home() / ".cache" / "overtonlite-bench"))


def installed_version() -> str:
    from importlib import metadata

    return metadata.version("llama-cpp-python")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_batched_bench(version: str | None = None, *, jobs: int = 2) -> Path:
    """Path of a ``llama-batched-bench`` built from llama-cpp-python ``version``'s vendored llama.cpp."""
    version = version or installed_version()
    root = cache_root() / f"llama-cpp-python-{version}"
    binary = root / "build" / "bin" / "llama-batched-bench"
    if binary.is_file():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    sdists = sorted(root.glob("llama_cpp_python-*.tar.gz")) + sorted(root.glob("llama-cpp-python-*.tar.gz"))
    if not sdists:
        _log(f"fetching the llama-cpp-python {version} sdist with pip")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
             f"llama-cpp-python=={version}", "-d", str(root)],
            check=True,
        )  # fmt: skip
        sdists = sorted(root.glob("*.tar.gz"))
    src = root / "src"
    if not (src / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        shutil.rmtree(src, ignore_errors=True)
        with tarfile.open(sdists[0]) as tar:
            top = tar.getnames()[0].split("/")[0]
            tar.extractall(root, filter="data")
        (root / top).rename(src)
    llama_src = src / "vendor" / "llama.cpp"
    build = root / "build"
    _log(f"building llama-batched-bench from {llama_src} (a few minutes)")
    subprocess.run(
        ["cmake", "-S", str(llama_src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
         "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "llama-batched-bench", "-j", str(jobs)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    if not binary.is_file():
        raise SystemExit(f"the build did not produce {binary}")
    return binary


def batched_bench(
    binary: Path,
    model: Path,
    *,
    batches: list[int],
    threads: int,
    pp: int = 32,
    tg: int = 128,
    n_kv: int = 0,
    unified: bool = True,
) -> dict[int, dict[str, float]]:
    """Run llama-batched-bench (separate prompts of ``pp`` tokens, ``tg`` generated per sequence; one unified KV
    cache with ``-kvu``, else llama.cpp's default of a KV stream per sequence); returns {batch size: its JSONL row}
    (``speed_tg`` is the decode tok/s)."""
    n_kv = n_kv or max(2048, max(batches) * (pp + tg) + 64)
    cmd = [
        str(binary), "-m", str(model), "-c", str(n_kv), "-b", "512", "-ub", "512", "-t", str(threads),
        "-tb", str(threads), "-npp", str(pp), "-ntg", str(tg), "-npl", ",".join(map(str, batches)),
        *(["-kvu"] if unified else []), "--output-format", "jsonl",
    ]  # fmt: skip
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows: dict[int, dict[str, float]] = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            rows[int(row["pl"])] = row
    return rows
