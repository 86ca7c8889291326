#!/usr/bin/env bash
# Everything a short GPU session measures, in one command, in phases so that the timings are
# taken with the GPU to themselves (docs/gpu.md has the results):
#
#   1. Loss kernel alone: the criterion benchmark BIN/bench_autotune (else BIN/bench) on CUDA,
#      its PyTorch twin (scripts/bench_contrastive.py), a per-kernel profile of t2s's loss, and
#      for scale one PyTorch training step of SegFormer MiT-B5 at 512×512, batch 2. Then the
#      host's cost per operation: BIN/dispatch (`cargo bench --bench dispatch`) on CUDA, timed and
#      then sampled (flamegraphs in OUT/dispatch_flamegraphs.tar.gz); BIN/conv (`cargo bench
#      --bench conv`): Burn's convolutions against t2s's matrix-product rewrite on CUDA; BIN/transformer
#      (`cargo bench --bench transformer`): MiT's LayerNorm, softmax and GELU, Burn's against t2s's.
#   2. T2S-DA training of MiT-B5 + DAFormer at 512×512 crops, batch 2 + 2
#      (configs/synthetic_daformer_t2s.toml) on CUDA with BIN/t2s until the tail: seconds per
#      iteration (metrics.jsonl), the process's device memory and host RSS every 5 s, and a
#      `--profile-host` sample of its threads from HOST_START (default 120) for HOST_SECONDS
#      (default 60) seconds into OUT/b5_host.svg and .txt (0 seconds: none).
#   3. Tail (TAIL seconds, default 180), side by side: a profiled continuation of the training
#      (PROFILE seconds, 0 = none; CubeCL times every kernel, summed per name), scripts/gpu_check.sh
#      with BIN/t2s (CUDA and wgpu logits vs the CPU) and, with BIN/t2s_autotune and BIN/t2s_checks
#      (`--features cuda,autotune-checks`), wgpu logits vs the CPU with the autotune log on.
#
# A session that wants the longest training run instead: BENCH=0 skips phase 1, and CHECKS_AT=S starts
# phase 3's checks S seconds in, beside the training (whose first iterations compile kernels anyway),
# so that TAIL can be short; the training's steady seconds per iteration are then read after the checks end.
#
# The training's compiled kernels come back as OUT/kernel_cache_b5.tar.gz; KERNEL_CACHE=<that file>, carried
# into a later session on the same GPU and driver, seeds the training's cache (about 100 s less compiling).
#
# A training longer than one command (at most 600 s) takes two calls on the same warm machine (docs/gpu.md,
# "Two calls, one run"): the first with SAVE=1 ends phase 2 with a Ctrl-C (SIGINT: t2s finishes the
# iteration and writes a checkpoint) instead of a kill; the second, sent at once, with CONTINUE=1 keeps the
# working folder and its kernel cache and resumes the run (`t2s train --resume`). CHECKS=0 skips the
# correctness checks. DEVICE (default cuda) and CONFIG (default configs/synthetic_daformer_t2s.toml) let
# the same flow be tried on the CPU first (TRAIN_ARGS: more arguments for `t2s train`, e.g. a smaller crop);
# without nvidia-smi the memory columns are empty.
#
# Usage: [BENCH=0] [CHECKS=0] [SAVE=1] [CONTINUE=1] [STOP_GRACE=s] [SESSION_DIR=dir] [DEVICE=d] [CONFIG=toml] [TRAIN_ARGS=...] [CHECKS_AT=s] [CHECK_TIMEOUT=s] [KERNEL_CACHE=file] [PROFILE=s] [TAIL=s] [HOST_START=s] [HOST_SECONDS=s] scripts/gpu_session.sh <folder with t2s[.xz],
#          t2s_autotune[.xz], t2s_checks[.xz], bench[.xz] or bench_autotune[.xz], dispatch[.xz], conv[.xz],
#          transformer[.xz]>
#          <output folder> [budget s, default 540]
# Function names in the host profiles need binaries built with symbols (docs/gpu.md).
# Missing binaries skip their parts. Needs python3 with numpy and Pillow (torch, transformers for 1).
set -uo pipefail
BIN="$1"; OUT="$2"; BUDGET="${3:-540}"; TAIL="${TAIL:-180}"; PROFILE=${PROFILE:-0}; BENCH=${BENCH:-1}; CHECKS_AT=${CHECKS_AT:-}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-$(( TAIL - 25 ))} # seconds per prediction run of the checks
CHECKS_ON=${CHECKS:-1}; SAVE=${SAVE:-0}; CONTINUE=${CONTINUE:-0}; DEVICE=${DEVICE:-cuda}
REPO=$(pwd); T0=$(date +%s); mkdir -p "$OUT"; CONFIG=$(realpath "${CONFIG:-configs/synthetic_daformer_t2s.toml}")
# The working folder outlives the command on a warm machine (processes do not): CONTINUE=1 keeps it.
W=${SESSION_DIR:-/tmp/t2s_session}; [ "$CONTINUE" = 1 ] || rm -rf "$W"; mkdir -p "$W"
[ "$CONTINUE" = 1 ] && { [ -f "$W/b5/run/config.toml" ] || { echo "CONTINUE=1: no run in $W/b5 to resume (the machine was given back?)"; exit 2; }; }
elapsed() { echo $(( $(date +%s) - T0 )); }
for f in "$BIN"/*; do
  n=$(basename "$f" .xz)
  case "$f" in *.xz) xz -dc "$f" > "$W/$n" ;; *) cp "$f" "$W/$n" ;; esac
  chmod +x "$W/$n"
done
command -v nvidia-smi >/dev/null || nvidia-smi() { :; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc

train() { # name binary extra-args...; prints the process id. CACHE=<dir> shares a kernel cache,
  # LIMIT=<seconds> stops the run then (the id is then timeout's, not t2s's); RESUME=1 continues $W/name/run.
  local name=$1 bin=$2; shift 2
  mkdir -p "$W/$name"
  local what=(--config "$CONFIG" --set run.output="$W/$name" --set run.name=run)
  [ "${RESUME:-0}" = 1 ] && what=(--resume "$W/$name/run")
  ( cd "$W/$name" && T2S_CACHE_DIR="${CACHE:-$W/cache_$name}" exec ${LIMIT:+timeout "$LIMIT"} "$bin" --device "$DEVICE" train \
      "${what[@]}" --set run.log_interval=10 --set run.debug_interval=0 --set eval.interval=1000000 \
      --set run.checkpoint_interval=1000000 --set data.workers=4 ${TRAIN_ARGS:-} "$@" ) >> "$W/$name.log" 2>&1 &
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
# CubeCL profile log → milliseconds and launches per kernel name.
kernel_table() {
  awk -F'|' 'NF >= 4 { k = $3; gsub(/ /, "", k); v = $2; gsub(/ /, "", v); n[k]++;
      if (v ~ /ms$/) t[k] += v + 0; else if (v ~ /µs$/) t[k] += (v + 0) / 1000; else if (v ~ /ns$/) t[k] += (v + 0) / 1e6; else if (v ~ /s$/) t[k] += (v + 0) * 1000 }
      END { for (k in n) printf "%10.2f ms %8d launches  %s\n", t[k], n[k], k }' "$1" | sort -rn | head -"${2:-15}"
}

# Vulkan loaders for wgpu (carried as .gl/*.deb where the machine has none).
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
# Phase 3's correctness checks, each in the background (their ids in CHECKS).
CHECKS=(); CHECKS_STARTED=0
start_checks() {
  CHECKS_STARTED=1; echo "checks started at $(elapsed) s"
  if [ -x "$W/t2s" ]; then
    (DEVICES="cuda wgpu" TIMING=0 PREDICT_TIMEOUT=$CHECK_TIMEOUT T2S_CACHE_DIR="$W/cache_check" \
      bash scripts/gpu_check.sh "$W/t2s" "$W/check" > "$W/check.log" 2>&1) & CHECKS+=($!)
  fi
  # Builds with autotuning (t2s_checks: with `--features autotune-checks`, which runs every candidate
  # and panics naming the operation whose candidates disagree): wgpu logits vs the CPU, each from a
  # folder whose cubecl.toml turns the autotune log on at full detail (which candidate was picked).
  for b in t2s_autotune t2s_checks; do
    [ -x "$W/$b" ] || continue
    mkdir -p "$W/run_$b"; cp -r scripts crates "$W/run_$b/" 2>/dev/null
    printf '[autotune.logger]\nlevel = "full"\nfile = "%s"\n' "$W/autotune_$b.log" > "$W/run_$b/cubecl.toml"
    (cd "$W/run_$b" && RUST_BACKTRACE=1 NETS=daformer DEVICES="wgpu" TIMING=0 PREDICT_TIMEOUT=$CHECK_TIMEOUT T2S_CACHE_DIR="$W/cache_$b" \
      bash scripts/gpu_check.sh "$W/$b" "$W/check_$b" > "$W/check_$b.log" 2>&1) & CHECKS+=($!)
  done
}

# ---- 1. Loss kernel, alone on the GPU.
B=""; for b in bench_autotune bench; do [ -x "$W/$b" ] && { B=$b; break; }; done
[ "$BENCH" = 1 ] && {
  if [ -n "$B" ]; then
    echo "== $B (started at $(elapsed) s)"
    T2S_BENCH_WGPU=0 CRITERION_HOME="$W/criterion_loss" timeout 150 "$W/$B" --bench cuda --warm-up-time 2 --measurement-time 5 2>&1 | grep -v '^$'
    echo "== $B profiled, loss only (started at $(elapsed) s)"
    T2S_BENCH_WGPU=0 CUBECL_DEBUG_LOG="$W/bench_profile.log" CUBECL_DEBUG_OPTION=profile timeout 30 \
      "$W/$B" --bench 't2s loss.*cuda' --profile-time 3 > /dev/null 2>&1
    echo "kernel time per name over the profiled loop:"; kernel_table "$W/bench_profile.log" 12
  fi
  echo "== pytorch loss (started at $(elapsed) s)"
  rm -f "$W/pytorch_loss.jsonl"
  PYTHONUNBUFFERED=1 timeout 45 python3 scripts/bench_contrastive.py --device cuda --iters 30 --json "$W/pytorch_loss.jsonl"
  PYTHONUNBUFFERED=1 timeout 45 python3 scripts/bench_contrastive.py --device cuda --iters 30 --keys 65536 --json "$W/pytorch_loss.jsonl"
  # loss_bench.json (committed as docs/loss_bench.json): t2s fused, t2s tensor operations and PyTorch, this run, this GPU.
  python3 scripts/loss_bench_json.py "$W/criterion_loss" "$W/pytorch_loss.jsonl" cuda \
    "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" "$("$W/t2s" --version 2>/dev/null | sed -n 's/.*(git \(.*\))/\1/p')" > "$OUT/loss_bench.json"
  cat "$OUT/loss_bench.json"
  echo "== pytorch SegFormer MiT-B5 training step, 2×512×512 (started at $(elapsed) s)"
  PYTHONUNBUFFERED=1 timeout 50 python3 - <<'PY'
import time, torch
from transformers import SegformerConfig, SegformerForSemanticSegmentation
cfg = SegformerConfig(hidden_sizes=[64, 128, 320, 512], depths=[3, 6, 40, 3], decoder_hidden_size=768, num_labels=19)
m = SegformerForSemanticSegmentation(cfg).cuda().train()
opt = torch.optim.AdamW(m.parameters(), lr=6e-5, weight_decay=0.01)
x = torch.randn(2, 3, 512, 512, device="cuda"); y = torch.randint(0, 19, (2, 512, 512), device="cuda")
def step():
    logits = torch.nn.functional.interpolate(m(pixel_values=x).logits, size=(512, 512), mode="bilinear")
    loss = torch.nn.functional.cross_entropy(logits, y, ignore_index=255)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3): step()
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.time()
for _ in range(10): step()
torch.cuda.synchronize()
print(f"TIME pytorch {torch.__version__} SegFormer-B5 train step (fwd+bwd+AdamW, fp32, tf32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
      f"cudnn tf32 {torch.backends.cudnn.allow_tf32}): {(time.time() - t) / 10 * 1000:.0f} ms, peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
PY
  if [ -x "$W/dispatch" ]; then
    echo "== dispatch: host cost per operation (started at $(elapsed) s)"
    T2S_BENCH_WGPU=0 timeout 60 "$W/dispatch" --bench cuda --warm-up-time 2 --measurement-time 4 2>&1 | grep -v '^$'
    echo "== dispatch sampled (flamegraphs; started at $(elapsed) s)"
    T2S_BENCH_WGPU=0 CRITERION_HOME="$W/criterion" timeout 40 "$W/dispatch" --bench cuda --profile-time 8 2>&1 | grep -v '^$'
    # Criterion's folder names have spaces and brackets, which do not come back from the device: a tarball does.
    tar czf "$OUT/dispatch_flamegraphs.tar.gz" -C "$W" criterion 2>/dev/null
  fi
  if [ -x "$W/conv" ]; then
    echo "== conv: Burn's convolutions vs the matmul rewrite, fwd+bwd (started at $(elapsed) s)"
    T2S_BENCH_WGPU=0 timeout 90 "$W/conv" --bench cuda --warm-up-time 1 --measurement-time 3 2>&1 | grep -v '^$'
  fi
  if [ -x "$W/transformer" ]; then
    echo "== transformer: MiT's LayerNorm, softmax, GELU as Burn vs t2s's own backward, a B5 block, fwd+bwd (started at $(elapsed) s)"
    T2S_BENCH_WGPU=0 timeout 60 "$W/transformer" --bench cuda --warm-up-time 1 --measurement-time 2 2>&1 | grep -v '^$'
  fi
} > "$W/bench.log" 2>&1
echo "phase 1 done at $(elapsed) s"

# ---- 2. Training, alone on the GPU, until the tail.
TRAIN=""
HOST=(); [ "${HOST_SECONDS:-60}" -gt 0 ] && HOST=(--profile-host "$OUT/b5_host.svg" --profile-host-start "${HOST_START:-120}" --profile-host-seconds "${HOST_SECONDS:-60}")
[ -f "${KERNEL_CACHE:-}" ] && { mkdir -p "$W/cache_b5"; tar xzf "$KERNEL_CACHE" -C "$W/cache_b5"; echo "kernel cache seeded from $KERNEL_CACHE"; }
if [ -x "$W/t2s" ]; then
  [ "$CONTINUE" = 1 ] && echo "== resumed by a CONTINUE=1 call, $(date -u)" >> "$W/b5.log"
  TRAIN=$(RESUME=$CONTINUE train b5 "$W/t2s" "${HOST[@]}")
  monitor b5 "$TRAIN" > "$W/b5_monitor$([ "$CONTINUE" = 1 ] && date +_%s).log" 2>&1 &
fi
STOP_GRACE=${STOP_GRACE:-60} # seconds a SAVE=1 stop may take: the iteration under way, then the checkpoint
END2=$(( BUDGET - TAIL - ( SAVE == 1 ? STOP_GRACE : 0 ) ))
while [ "$(elapsed)" -lt "$END2" ] && kill -0 "${TRAIN:-0}" 2>/dev/null; do
  [ -n "$CHECKS_AT" ] && [ "$CHECKS_ON" = 1 ] && [ "$CHECKS_STARTED" = 0 ] && [ "$(elapsed)" -ge "$CHECKS_AT" ] && start_checks
  sleep 2
done
if [ -n "$TRAIN" ] && [ "$SAVE" = 1 ] && kill -0 "$TRAIN" 2>/dev/null; then
  echo "SIGINT to the training at $(elapsed) s (save and stop)"
  kill -INT "$TRAIN"
  while kill -0 "$TRAIN" 2>/dev/null && [ "$(elapsed)" -lt $(( END2 + STOP_GRACE )) ]; do sleep 1; done
  kill -0 "$TRAIN" 2>/dev/null && echo "the training had not stopped $STOP_GRACE s after SIGINT: killed, no checkpoint" \
    || echo "training stopped at $(elapsed) s: $(tr '\r' '\n' < "$W/b5.log" | grep -E '^(stopped|finished) after' | tail -n 1)"
fi
[ -n "$TRAIN" ] && kill -9 "$TRAIN" 2>/dev/null
sleep 1
echo "phase 2 done at $(elapsed) s"

# ---- 3. Tail, side by side.
P=""
if [ "$PROFILE" -gt 0 ] && [ -x "$W/t2s" ]; then
  P=$(CACHE="$W/cache_b5" LIMIT="$PROFILE" CUBECL_DEBUG_LOG="$W/profile/cubecl.log" CUBECL_DEBUG_OPTION=profile \
    train profile "$W/t2s" --set run.log_interval=1)
fi
[ "$CHECKS_STARTED" = 0 ] && [ "$CHECKS_ON" = 1 ] && start_checks
while [ "$(elapsed)" -lt $(( BUDGET - 12 )) ]; do
  busy=0; for c in ${P:-} "${CHECKS[@]}"; do kill -0 "$c" 2>/dev/null && busy=1; done
  [ $busy = 0 ] && break; sleep 2
done
for c in ${P:-} "${CHECKS[@]}"; do pkill -9 -P "$c" 2>/dev/null; kill -9 "$c" 2>/dev/null; done
pkill -9 -f "$W/t2s" 2>/dev/null

# ---- Summary.
[ -f "$W/bench.log" ] && { echo "==== loss kernel"; cat "$W/bench.log"; }
[ "$CHECKS_ON" = 1 ] && for c in check check_t2s_autotune check_t2s_checks; do echo "==== $c"; grep -E "took|RESULT|missing|rror|diff" "$W/$c.log" 2>/dev/null; done
for f in "$W"/check_t2s_checks/predict_wgpu_*.log; do
  [ -f "$f" ] && { echo "==== $f (panics of autotune-checks)"; grep -n -A12 "panicked" "$f" | grep -v "^\s*$" | cut -c1-400 | head -60; }
done
for b in t2s_autotune t2s_checks; do
  [ -f "$W/autotune_$b.log" ] || continue
  echo "==== wgpu autotune log of $b ($(wc -l < "$W/autotune_$b.log") lines; fastest picks)"
  grep -i "fastest" "$W/autotune_$b.log" | cut -c1-300 | head -40
  xz -c "$W/autotune_$b.log" > "$OUT/autotune_$b.log.xz"
done
if [ -n "$P" ]; then
  echo "==== profiled training (kernel time per name, ms, over the whole log)"
  tail -n 3 "$W/profile/run/metrics.jsonl" 2>/dev/null; kernel_table "$W/profile/cubecl.log" 20
fi
if [ -f "$OUT/b5_host.txt" ]; then echo "==== host profile of training b5 (threads, then each thread's hottest)"; head -n 60 "$OUT/b5_host.txt"; fi
if [ -f "$W/b5.log" ]; then
  echo "==== training b5"; tail -c 1500 "$W/b5.log" | tr '\r' '\n' | tail -6
  MON=$(ls "$W"/b5_monitor*.log) # this call's and, after CONTINUE=1, the earlier calls' (oldest first)
  for m in $MON; do echo "-- monitor (every 5 s): $(basename "$m")"; cat "$m"; done
  awk '{ for (i = 1; i <= NF; i++) if ($i == "device" && $(i+1) == "MiB" && $(i+2) + 0 > m) m = $(i+2) + 0 } END { print "PEAK device MiB (nvidia-smi, the process) " m }' $MON
  # The iterations at which a call stopped with a checkpoint: the next logged interval after each
  # includes the resumed process's start-up and is left out of the steady mean, like the first two.
  STOPS=$(tr '\r' '\n' < "$W/b5.log" | grep -oE '^stopped after [0-9]+' | grep -oE '[0-9]+' | tr '\n' ' ')
  python3 - "$W/b5/run/metrics.jsonl" $STOPS <<'PY'
import json, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1])]
except OSError:
    sys.exit(print("no metrics.jsonl"))
stops = sorted(int(s) for s in sys.argv[2:])
skip = {0, 1}
for s in stops:
    after = [i for i, r in enumerate(rows) if r["iter"] > s]
    if after:
        skip.add(after[0])
        print(f"  resumed after iteration {s}")
for i, r in enumerate(rows):
    print(f"  iter {r['iter']:4d}: {r['sec_per_iter']:.3f} s/iter  loss_source {r.get('loss_source', 0):.3f}  loss_t2s {r.get('loss_t2s', 0):.3f}{'' if i not in skip else '  (not in the steady mean)'}")
steady = [r["sec_per_iter"] for i, r in enumerate(rows) if i not in skip]
if steady:
    print(f"STEADY {sum(steady)/len(steady):.3f} s/iter over {len(steady)} logged intervals; iterations 1..{rows[-1]['iter']} in all")
PY
fi
[ -d "$W/cache_b5" ] && tar czf "$OUT/kernel_cache_b5.tar.gz" -C "$W/cache_b5" .
tar czf "$OUT/session_logs.tar.gz" -C "$W" $(cd "$W" && ls *.log | grep -v '^autotune_\|profile') b5/run/metrics.jsonl profile/run/metrics.jsonl \
  --exclude='*.npy' --exclude='*.png' $(cd "$W" && ls -d check*/ 2>/dev/null) 2>/dev/null
echo "total $(elapsed) s"
