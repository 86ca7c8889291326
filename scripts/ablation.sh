#!/usr/bin/env bash
# The contrastive-term study (issue 30): every row of a grid (scripts/ablation_grid.tsv) trained
# with `t2s demo --methods t2s` on every seed, all from the same source-only warm-ups, then
# docs/ablation.json written from the reports. Runs unattended and resumes where it stopped: a
# finished (row, seed) has its results.json and is skipped; an interrupted one is redone.
#
#   scripts/ablation.sh [GRID]
#
# Environment: T2S (the binary; default target/release/t2s), OUT (default runs/ablation), SEEDS
# (default "0 1 2"), WARMUPS (a demo report folder holding seed_<S>/warmup.safetensors for every
# seed, made with the same settings; default: $OUT/warmups, trained once when missing), ITERS
# (iterations per method, for a smoke test; default the demo's 800), JSON (default
# docs/ablation.json).
#
# Cost on the project's 2-core CPU (release build): a row takes about 5 minutes per seed (600
# t2s iterations at ~0.46 s plus evaluations), so a seed of the 22-row grid about 2 hours and the
# whole grid about 6 hours; the warm-ups about 3 minutes per seed.
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=${1:-scripts/ablation_grid.tsv}
T2S=${T2S:-target/release/t2s}
OUT=${OUT:-runs/ablation}
SEEDS=${SEEDS:-"0 1 2"}
WARMUPS=${WARMUPS:-$OUT/warmups}
JSON=${JSON:-docs/ablation.json}
iters=()
if [ -n "${ITERS:-}" ]; then iters=(--iters "$ITERS"); fi
[ -x "$T2S" ] || { echo "ablation: $T2S is not an executable t2s (build with cargo build --release, or set T2S)" >&2; exit 1; }
[ -f "$GRID" ] || { echo "ablation: no grid file $GRID" >&2; exit 1; }
mkdir -p "$OUT"

seed_list=$(echo $SEEDS | tr ' ' ,)
missing_warmup=0
for s in $SEEDS; do [ -f "$WARMUPS/seed_$s/warmup.safetensors" ] || missing_warmup=1; done
if [ "$missing_warmup" = 1 ]; then
  echo "== warm-ups (source-only) for seeds $seed_list into $WARMUPS"
  rm -rf "$WARMUPS.tmp"
  "$T2S" --device cpu demo --methods source_only --seeds "$seed_list" "${iters[@]}" --output "$WARMUPS.tmp"
  rm -rf "$WARMUPS" && mv "$WARMUPS.tmp" "$WARMUPS"
fi

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
    "$T2S" --device cpu demo --methods t2s --seeds "$s" --warmup-from "$WARMUPS" "${iters[@]}" "${sets[@]}" --output "$dir.tmp"
    mv "$dir.tmp" "$dir"
  done
done < "$GRID"

python3 scripts/ablation_json.py "$GRID" "$OUT" "$SEEDS" > "$JSON.tmp"
mv "$JSON.tmp" "$JSON"
echo "wrote $JSON"
