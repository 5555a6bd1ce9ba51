#!/usr/bin/env bash
# Time benchmarks/ci_recipe.sh as a CI run sees it: cold (empty caches, fresh clone, fresh venv), then warm (a
# second fresh clone and venv, with the cached folders restored as a CI cache step restores them: pip's cache and
# $OVERTONLITE_HOME/models and /embedders, nothing else). Machine-wide pip configuration (extra indexes,
# find-links) is switched off, so pip reaches only the public index, as in other people's CI.
#
#   bash benchmarks/ci_recipe_timing.sh [REPO] [WORKDIR]      # REPO: what to clone (default: this checkout)
#   PHASES="warm" bash benchmarks/ci_recipe_timing.sh ...     # only one phase (the saved caches must exist)
#
# Prints each step's time and a closing line per phase; logs stay in WORKDIR.
set -uo pipefail

REPO="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
WORK="${2:-/tmp/overtonlite-ci-timing}"
PHASES="${PHASES:-cold warm}"

run_phase() {  # run_phase NAME: clone, restore the saved caches (warm), run the recipe, save the caches
  local name=$1 dir="$WORK/$1" t0 rc
  rm -rf "$dir"
  mkdir -p "$dir/pip" "$dir/home"
  git clone -q "$REPO" "$dir/src" || return 2
  if [ "$name" != cold ]; then  # "restore cache"
    cp -a "$WORK/saved/pip/." "$dir/pip/"
    cp -a "$WORK/saved/home/." "$dir/home/"
  fi
  t0=$SECONDS
  (
    cd "$dir/src" || exit 2
    unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT VIRTUAL_ENV
    export PIP_CONFIG_FILE=/dev/null PIP_CACHE_DIR="$dir/pip" OVERTONLITE_HOME="$dir/home"
    export VENV="$dir/venv" OUT="$dir/out"
    bash benchmarks/ci_recipe.sh
  ) >"$dir.log" 2>&1
  rc=$?
  grep -E '^(step |ci recipe:|check: )' "$dir.log"
  echo "$name: $((SECONDS - t0)) s, exit $rc; pip cache $(du -sh "$dir/pip" | cut -f1), models" \
    "$(du -shc "$dir/home/models" "$dir/home/embedders" 2>/dev/null | tail -1 | cut -f1); log $dir.log"
  rm -rf "$WORK/saved"  # "save cache": the same folders a CI cache step keeps
  mkdir -p "$WORK/saved/home"
  cp -a "$dir/pip" "$WORK/saved/pip"
  for sub in models embedders; do
    [ -d "$dir/home/$sub" ] && cp -a "$dir/home/$sub" "$WORK/saved/home/$sub"
  done
}

for phase in $PHASES; do
  run_phase "$phase"
done
