#!/usr/bin/env bash
# Time benchmarks/ci_recipe.sh as a CI run would see it: cold (empty pip cache, empty OVERTONLITE_HOME, fresh
# clone, fresh venv), then warm (a second fresh clone and venv with the caches the cold run left, as a CI cache
# restore gives them). Machine-wide pip configuration (extra indexes, find-links) is switched off so that pip
# reaches only the public index, as in other people's CI.
#
#   bash benchmarks/ci_recipe_timing.sh [REPO] [WORKDIR]      # REPO: what to clone (default: this checkout)
#   PHASES="warm" bash benchmarks/ci_recipe_timing.sh ...     # only one phase (its caches must exist)
#
# Prints each step's time and a closing "cold: S s, warm: S s" line; logs stay in WORKDIR.
set -uo pipefail

REPO="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
WORK="${2:-/tmp/overtonlite-ci-timing}"
PHASES="${PHASES:-cold warm}"
mkdir -p "$WORK/cache/pip" "$WORK/cache/home"

run_phase() {  # run_phase NAME
  local name=$1 src="$WORK/$1/src" t0 rc
  rm -rf "${WORK:?}/$name"
  mkdir -p "$WORK/$name"
  git clone -q "$REPO" "$src" || return 2
  t0=$SECONDS
  (
    cd "$src" || exit 2
    unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT VIRTUAL_ENV
    export PIP_CONFIG_FILE=/dev/null PIP_CACHE_DIR="$WORK/cache/pip" OVERTONLITE_HOME="$WORK/cache/home"
    export VENV="$WORK/$name/venv" OUT="$WORK/$name/out"
    bash benchmarks/ci_recipe.sh
  ) >"$WORK/$name.log" 2>&1
  rc=$?
  grep -E '^(step |ci recipe:|check: )' "$WORK/$name.log"
  echo "$name: $((SECONDS - t0)) s, exit $rc; pip cache $(du -sh "$WORK/cache/pip" | cut -f1)," \
    "OVERTONLITE_HOME $(du -sh "$WORK/cache/home" | cut -f1); log $WORK/$name.log"
}

for phase in $PHASES; do
  if [ "$phase" = cold ]; then
    rm -rf "${WORK:?}/cache"
    mkdir -p "$WORK/cache/pip" "$WORK/cache/home"
  fi
  run_phase "$phase"
done
