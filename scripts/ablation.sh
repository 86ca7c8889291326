#!/usr/bin/env bash
# The contrastive-term study (issue 30): every row of a grid (scripts/ablation_grid.tsv) trained
# with `t2s demo --methods t2s` (or $METHOD, or the row's `method=`) on every seed, then docs/ablation.json
# written from the record.
# Every run starts with the demo's source-only warm-up (uda.adapt_from = 200): the same seed
# gives the same warm-up to every digit, so the rows differ only from the switch on. Runs
# unattended and resumes where it stopped: each finished (row, seed) appends its mIoU to a record
# kept in the repository (docs/ablation_runs.tsv: name, seed, mIoU, date, the binary's sha256
# prefix, the CPU), so a study survives the loss of its run folders.
#
# CPU runs are exact on one build and one CPU, but another CPU rounds differently (the matrix
# products block by its cache sizes), which moves a run's mIoU by a few tenths: a row is only
# compared with the baselines ($BASELINES) measured by the same build on the same CPU. So a study
# carries on across machines: on each (build, CPU) it runs the baselines and every row that no
# (build, CPU) holds complete together with complete baselines, in the grid's order. A (row,
# seed) in the record for this build and CPU, or with a finished run folder of the same build,
# CPU and method, is skipped; an interrupted one is redone.
#
#   scripts/ablation.sh [GRID]
#
# Environment: T2S (the binary; default target/release/t2s), OUT (run folders; default
# runs/ablation), SEEDS (default "0 1 2"), ITERS (iterations per run, for a smoke test; default
# the demo's 800), RECORD (default docs/ablation_runs.tsv), JSON (default docs/ablation.json),
# JOBS (runs at once, default 1; each gets cores/JOBS rayon threads; CPU runs give the same
# numbers whatever the thread count), METHOD (the demo method a row trains unless its settings
# name one as `method=NAME`; default t2s), BASELINES (the rows every other row is compared with,
# default "fda_ce_only t2s_default"; the first is the JSON's reference).
#
# Cost on the project's 2-core CPU (release build): a run is about 5.3 CPU-minutes with one rayon
# thread, and a second thread hardly shortens it, so JOBS=2 gives about 2.6 minutes of wall time
# per run: about 4.7 hours for the 108 runs of the 36-row grid, plus 17 minutes for the baselines
# on each further machine (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=${1:-scripts/ablation_grid.tsv}
T2S=${T2S:-target/release/t2s}
OUT=${OUT:-runs/ablation}
SEEDS=${SEEDS:-"0 1 2"}
RECORD=${RECORD:-docs/ablation_runs.tsv}
JSON=${JSON:-docs/ablation.json}
JOBS=${JOBS:-1}
METHOD=${METHOD:-t2s}
BASELINES=${BASELINES-"fda_ce_only t2s_default"}
iters=()
if [ -n "${ITERS:-}" ]; then iters=(--iters "$ITERS"); fi
[ -x "$T2S" ] || { echo "ablation: $T2S is not an executable t2s (build with cargo build --release, or set T2S)" >&2; exit 1; }
[ -f "$GRID" ] || { echo "ablation: no grid file $GRID" >&2; exit 1; }
case "$JOBS" in ''|*[!0-9]*|0) echo "ablation: JOBS must be a positive integer, not '$JOBS'" >&2; exit 1 ;; esac
mkdir -p "$OUT"
[ -s "$RECORD" ] || printf 'name\tseed\tmiou\tmeasured\tbinary\tcpu\n' > "$RECORD"
# A record edited by hand may lack its last newline: a line appended to it must start a new one.
[ -z "$(tail -c1 "$RECORD")" ] || echo >> "$RECORD"
# Which build, on which CPU, measured a run: the CPU's name, its widest vector instructions (they
# pick the kernels) and its data caches as /sys gives them (they set gemm's blocking).
binary=$(sha256sum "$T2S" | cut -c1-12)
simd=sse2
for f in avx2 avx512f; do grep -qw "$f" /proc/cpuinfo && simd=$f; done
caches=""
for c in /sys/devices/system/cpu/cpu0/cache/index*; do
  [ -f "$c/size" ] && [ "$(cat "$c/type" 2>/dev/null)" != Instruction ] && caches="$caches${caches:+-}$(cat "$c/size")"
done
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -s ' \t' '_')/$simd${caches:+/$caches}"
# Settings such as data.crop=[192,384] are split into words below and must not be read as globs.
set -f
threads=$(( $(nproc) / JOBS )); [ "$threads" -ge 1 ] || threads=1

# Whether this build on this CPU has measured (row, seed).
recorded() {
  awk -F'\t' -v n="$1" -v s="$2" -v b="$binary" -v c="$cpu" \
    '{ sub(/\r$/, "") } $1 == n && $2 == s && $5 == b && $6 == c { found = 1 } END { exit !found }' "$RECORD"
}
is_baseline() { case " $BASELINES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# Whether another (build, CPU) holds every seed of the row and of each baseline in the grid.
done_elsewhere() {
  awk -F'\t' -v n="$1" -v b="$binary" -v c="$cpu" -v seeds="$SEEDS" -v base="$grid_baselines" '
    { sub(/\r$/, "") }
    NR > 1 && !($5 == b && $6 == c) { have[$5 "\t" $6, $1, $2] = 1; where[$5 "\t" $6] = 1 }
    END {
      ns = split(seeds, S, " "); nb = split(base, B, " "); B[++nb] = n
      for (w in where) {
        complete = 1
        for (i = 1; i <= nb; i++) for (j = 1; j <= ns; j++) if (!((w, B[i], S[j]) in have)) complete = 0
        if (complete) exit 0
      }
      exit 1
    }' "$RECORD"
}
rows() { tr -d '\r' < "$GRID" | grep -v '^#' | grep -v '^[[:space:]]*$' || true; }
# A `#base SETTINGS` line gives settings every row starts from (a row's own come after and win):
# it pins what "the default" meant to a grid when the demo's defaults move on.
base=$(tr -d '\r' < "$GRID" | sed -n 's/^#base[[:space:]]\{1,\}//p' | head -1)
grid_baselines=""
for b in $BASELINES; do rows | cut -f1 | grep -qxF -- "$b" && grid_baselines="$grid_baselines $b"; done
# The rows this build on this CPU must run: each not done elsewhere, and the baselines with them.
todo=""
while IFS=$'\t' read -r name _; do
  is_baseline "$name" || done_elsewhere "$name" || todo="$todo $name"
done < <(rows)
if [ -n "$todo" ]; then todo="$todo $grid_baselines"; fi
echo "ablation: $binary on $cpu; to run here:${todo:- nothing}"

# The demo method a row trains: its `method=NAME` setting, or $METHOD.
row_method() {
  local m=$METHOD kv
  for kv in $1; do case "$kv" in method=*) m=${kv#method=} ;; esac; done
  echo "$m"
}

stamp() { echo "$binary $cpu iters=${ITERS:-demo} method=$1"; }

# One (row, seed): train, then append its mIoU to the record (one short line, written whole).
run_one() {
  local name=$1 s=$2 settings=$3 dir="$OUT/$1/seed_$2" method
  method=$(row_method "$settings")
  local sets=()
  for kv in $base $settings; do case "$kv" in method=*) ;; *) sets+=(--set "$kv") ;; esac; done
  echo "== $name, seed $s: $method ${settings:-(the defaults)}"
  rm -rf "$dir.tmp"
  mkdir -p "$OUT/$name"
  RAYON_NUM_THREADS=$threads "$T2S" --device cpu demo --methods "$method" --seeds "$s" "${iters[@]}" \
    "${sets[@]}" --output "$dir.tmp" > "$OUT/$name/seed_$s.log" 2>&1 || {
    echo "ablation: $name, seed $s failed; its log: $OUT/$name/seed_$s.log" >&2; return 1; }
  # The folder names what trained it, so a later invocation records it only for the same run.
  stamp "$method" > "$dir.tmp/platform"
  mv "$dir.tmp" "$dir"
  record "$name" "$s" "$method"
}

record() {
  local miou
  miou=$(python3 -c 'import json,sys; print(round(100.0 * json.load(open(sys.argv[1]))["methods"][sys.argv[2]]["miou"], 2))' \
    "$OUT/$1/seed_$2/results.json" "$3") || return 1
  recorded "$1" "$2" || printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$miou" "$(date -u +%Y-%m-%d)" "$binary" "$cpu" >> "$RECORD"
  echo "== $1, seed $2: mIoU $miou"
}

failed=0
while IFS=$'\t' read -r name settings || [ -n "$name" ]; do
  case " $todo " in *" $name "*) ;; *) continue ;; esac
  for s in $SEEDS; do
    recorded "$name" "$s" && continue
    method=$(row_method "${settings:-}")
    if [ "$(cat "$OUT/$name/seed_$s/platform" 2>/dev/null)" = "$(stamp "$method")" ]; then
      record "$name" "$s" "$method" || failed=1
      continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
    run_one "$name" "$s" "${settings:-}" &
  done
done < <(rows)
# `jobs -p` also lists jobs that ended but were not waited for, so no failure goes unseen.
while [ "$(jobs -p | wc -l)" -gt 0 ]; do wait -n || failed=1; done

python3 scripts/ablation_json.py "$GRID" "$RECORD" "$SEEDS" "$grid_baselines" > "$JSON.tmp"
mv "$JSON.tmp" "$JSON"
echo "wrote $JSON"
exit "$failed"
