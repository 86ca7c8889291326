#!/usr/bin/env bash
# The contrastive-term study (issue 30): every row of a grid (scripts/ablation_grid.tsv) trained
# with `t2s demo --methods t2s` on every seed, then docs/ablation.json written from the reports.
# Every run starts with the demo's source-only warm-up (uda.adapt_from = 200): the same seed
# gives the same warm-up to every digit, so the rows differ only from the switch on. Runs
# unattended and resumes where it stopped: a finished (row, seed) has its results.json and is
# skipped; an interrupted one is redone.
#
#   scripts/ablation.sh [GRID]
#
# Environment: T2S (the binary; default target/release/t2s), OUT (default runs/ablation), SEEDS
# (default "0 1 2"), ITERS (iterations per run, for a smoke test; default the demo's 800), JSON
# (default docs/ablation.json).
#
# Cost on the project's 2-core CPU (release build): a row takes about 6 minutes per seed (200
# source-only iterations at ~0.15 s, 600 t2s iterations at ~0.46 s, four evaluations of ~12 s),
# so a seed of the 22-row grid about 2.2 hours and the whole grid about 6.5 hours.
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=${1:-scripts/ablation_grid.tsv}
T2S=${T2S:-target/release/t2s}
OUT=${OUT:-runs/ablation}
SEEDS=${SEEDS:-"0 1 2"}
JSON=${JSON:-docs/ablation.json}
iters=()
if [ -n "${ITERS:-}" ]; then iters=(--iters "$ITERS"); fi
[ -x "$T2S" ] || { echo "ablation: $T2S is not an executable t2s (build with cargo build --release, or set T2S)" >&2; exit 1; }
[ -f "$GRID" ] || { echo "ablation: no grid file $GRID" >&2; exit 1; }
mkdir -p "$OUT"

while IFS=$'\t' read -r name settings || [ -n "$name" ]; do
  case "$name" in ''|'#'*) continue ;; esac
  sets=()
  for kv in ${settings:-}; do sets+=(--set "$kv"); done
  for s in $SEEDS; do
    dir="$OUT/$name/seed_$s"
    [ -f "$dir/results.json" ] && continue
    echo "== $name, seed $s: ${settings:-(the defaults)}"
    rm -rf "$dir.tmp"
    mkdir -p "$OUT/$name"
    "$T2S" --device cpu demo --methods t2s --seeds "$s" "${iters[@]}" "${sets[@]}" --output "$dir.tmp"
    mv "$dir.tmp" "$dir"
  done
done < "$GRID"

python3 scripts/ablation_json.py "$GRID" "$OUT" "$SEEDS" > "$JSON.tmp"
mv "$JSON.tmp" "$JSON"
echo "wrote $JSON"
