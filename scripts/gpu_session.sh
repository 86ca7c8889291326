#!/usr/bin/env bash
# Everything a short GPU session measures, in one command (docs/gpu.md has the results and why
# the parts run side by side: a cold CUDA kernel cache means minutes of CPU-bound compilation).
#
#   1. T2S-DA training of MiT-B5 + DAFormer at 512×512 crops, batch 2 + 2
#      (configs/synthetic_daformer_t2s.toml) on CUDA for the whole budget with the build in
#      BIN/t2s: seconds per iteration (metrics.jsonl), the process's device memory and host RSS
#      every 5 s, and the growth of the kernel cache (how long compilation takes).
#   2. The same training with BIN/t2s_autotune (a build with Burn's autotuning), stopped after
#      3 iterations: how long a cold autotuning start takes.
#   3. The loss-kernel benchmark (criterion) of BIN/bench_autotune and BIN/bench on CUDA and the
#      PyTorch twin (scripts/bench_contrastive.py).
#   4. scripts/gpu_check.sh with each build: small networks' logits on CUDA (and wgpu) vs the CPU.
#
# Usage: [PROFILE=seconds] scripts/gpu_session.sh <folder with t2s[.xz], t2s_autotune[.xz], bench[.xz],
#                               bench_autotune[.xz]> <output folder> [budget in seconds, default 500]
# Missing binaries skip their parts. Needs python3 with numpy and Pillow (and torch for part 3).
set -uo pipefail
BIN="$1"; OUT="$2"; BUDGET="${3:-500}"
REPO=$(pwd); T0=$(date +%s); mkdir -p "$OUT"
W=/tmp/t2s_session; rm -rf "$W"; mkdir -p "$W"
elapsed() { echo $(( $(date +%s) - T0 )); }
for f in "$BIN"/*; do
  n=$(basename "$f" .xz)
  case "$f" in *.xz) xz -dc "$f" > "$W/$n" ;; *) cp "$f" "$W/$n" ;; esac
  chmod +x "$W/$n"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc

train() { # name binary extra-args...; prints the process id. CACHE=<dir> shares a kernel cache,
  # LIMIT=<seconds> stops the run then (the id is then timeout's, not t2s's).
  local name=$1 bin=$2; shift 2
  mkdir -p "$W/$name"
  ( cd "$W/$name" && T2S_CACHE_DIR="${CACHE:-$W/cache_$name}" exec ${LIMIT:+timeout "$LIMIT"} "$bin" --device cuda train \
      --config "$REPO/configs/synthetic_daformer_t2s.toml" --set run.output="$W/$name" --set run.name=run \
      --set run.log_interval=10 --set run.debug_interval=0 --set eval.interval=1000000 \
      --set run.checkpoint_interval=1000000 --set data.workers=4 "$@" ) > "$W/$name.log" 2>&1 &
  echo $!
}
monitor() { # name pid
  local name=$1 pid=$2
  while kill -0 "$pid" 2>/dev/null; do
    mem=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', *' -v p="$pid" '$1==p {print $2}')
    gpu=$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits)
    rss=$(ps -o rss= -p "$pid" 2>/dev/null | tr -d ' ')
    cache=$(du -sm "$W/cache_$name" 2>/dev/null | cut -f1)
    it=$(tail -n 1 "$W/$name/run/metrics.jsonl" 2>/dev/null | grep -o '"iter":[0-9]*' | cut -d: -f2)
    echo "$(elapsed) s  iter ${it:-0}  device MiB ${mem:-?}  host RSS MiB $(( ${rss:-0} / 1024 ))  gpu util %, used MiB: $gpu  kernel cache MB ${cache:-0}"
    sleep 5
  done
}

TRAIN=""; TUNE=""
if [ -x "$W/t2s" ]; then TRAIN=$(train b5 "$W/t2s"); monitor b5 "$TRAIN" > "$W/b5_monitor.log" 2>&1 & fi
if [ -x "$W/t2s_autotune" ]; then TUNE=$(train b5_autotune "$W/t2s_autotune" --until 3 --set run.log_interval=1); monitor b5_autotune "$TUNE" > "$W/b5_autotune_monitor.log" 2>&1 & fi

# Small-network correctness checks, one per build, beside the training runs.
# The device machine has no Vulkan loader: the debs in .gl (see the device notes) bring it.
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
[ -x "$W/t2s" ] && (DEVICES="wgpu cuda" TIMING=0 PREDICT_TIMEOUT=240 T2S_CACHE_DIR="$W/cache_check" \
  bash scripts/gpu_check.sh "$W/t2s" "$W/check" > "$W/check.log" 2>&1 &)
[ -x "$W/t2s_autotune" ] && (DEVICES="wgpu cuda" TIMING=0 PREDICT_TIMEOUT=240 T2S_CACHE_DIR="$W/cache_check_autotune" \
  bash scripts/gpu_check.sh "$W/t2s_autotune" "$W/check_autotune" > "$W/check_autotune.log" 2>&1 &)

# Loss kernel: t2s (criterion, CUDA only) and PyTorch, one after the other.
{
  for b in bench_autotune bench; do
    [ -x "$W/$b" ] || continue
    echo "== $b (started at $(elapsed) s)"
    T2S_CACHE_DIR="$W/cache_$b" T2S_BENCH_WGPU=0 timeout 150 "$W/$b" --bench cuda --warm-up-time 2 --measurement-time 5 2>&1 | grep -v '^$'
  done
  echo "== pytorch (started at $(elapsed) s)"
  PYTHONUNBUFFERED=1 timeout 90 python3 scripts/bench_contrastive.py --device cuda --iters 30
} > "$W/bench.log" 2>&1

# PROFILE=<seconds> keeps that much of the budget for a profiled run at the end: CubeCL logs every
# kernel's time (each launch is synchronised, so the run is slower than the real one); the table
# below sums them per kernel name, which is how the grouped-convolution problem was found.
PROFILE=${PROFILE:-0}
while [ "$(elapsed)" -lt $(( BUDGET - 15 - PROFILE )) ] && kill -0 "${TRAIN:-0}" 2>/dev/null; do sleep 2; done
[ -n "$TRAIN" ] && kill -9 "$TRAIN" 2>/dev/null
sleep 1
if [ "$PROFILE" -gt 0 ] && [ -x "$W/t2s" ]; then
  P=$(CACHE="$W/cache_b5" LIMIT="$PROFILE" CUBECL_DEBUG_LOG="$W/profile/cubecl.log" CUBECL_DEBUG_OPTION=profile \
    train profile "$W/t2s" --set run.log_interval=1)
  while kill -0 "$P" 2>/dev/null; do sleep 1; done
  echo "==== profiled run (kernel time per name, ms, over the whole log)"
  tail -n 3 "$W/profile/run/metrics.jsonl" 2>/dev/null
  awk -F'|' 'NF >= 4 { k = $3; gsub(/ /, "", k); v = $2; gsub(/ /, "", v); n[k]++;
      if (v ~ /ms$/) t[k] += v + 0; else if (v ~ /µs$/) t[k] += (v + 0) / 1000; else if (v ~ /ns$/) t[k] += (v + 0) / 1e6; else if (v ~ /s$/) t[k] += (v + 0) * 1000 }
      END { for (k in n) printf "%10.1f ms %8d launches  %s\n", t[k], n[k], k }' "$W/profile/cubecl.log" | sort -rn | head -15
fi

echo "==== loss kernel"; cat "$W/bench.log"
for c in check check_autotune; do echo "==== $c"; grep -E "took|RESULT|missing|rror" "$W/$c.log" 2>/dev/null; done
for r in b5 b5_autotune; do
  [ -f "$W/$r.log" ] || continue
  echo "==== training $r"; tail -c 1500 "$W/$r.log" | tr '\r' '\n' | tail -6
  echo "-- monitor (every 5 s; first and last lines)"; head -3 "$W/${r}_monitor.log"; echo ...; tail -4 "$W/${r}_monitor.log"
  python3 - "$W/$r/run/metrics.jsonl" <<'PY'
import json, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1])]
except OSError:
    sys.exit(print("no metrics.jsonl"))
print("iterations logged:", [r["iter"] for r in rows][:3], "...", rows[-1]["iter"] if rows else None)
for r in rows:
    print(f"  iter {r['iter']:4d}: {r['sec_per_iter']:.3f} s/iter  loss_source {r.get('loss_source', 0):.3f}  loss_t2s {r.get('loss_t2s', 0):.3f}")
if len(rows) > 3:
    steady = [r["sec_per_iter"] for r in rows[2:]]
    print(f"STEADY {sum(steady)/len(steady):.3f} s/iter over iterations {rows[1]['iter']+1}..{rows[-1]['iter']}")
PY
done
tar czf "$OUT/session_logs.tar.gz" -C "$W" $(cd "$W" && ls *.log) b5/run/metrics.jsonl b5_autotune/run/metrics.jsonl check/cpu_daformer 2>/dev/null
echo "total $(elapsed) s"
