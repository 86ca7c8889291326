#!/usr/bin/env bash
# One T2S-DA training step, t2s against its PyTorch reference (scripts/torch_step.py), back to back
# on the same GPU in one run, for every configuration in RUNS; writes OUT/gpu_step.json (issue
# 23's format, committed as docs/gpu_step.json after a GPU session) and OUT/gpu_step.md (the table for docs/gpu.md).
#
#   t2s:     `t2s train` on configs/synthetic_daformer_t2s.toml (MiT-B5 + DAFormer, 512×512, batch
#            2 + 2) for WARMUP + ITERS iterations; seconds per iteration = the median of the logged
#            `sec_per_iter` after WARMUP (the first ~10 compile kernels); peak = the largest device
#            memory nvidia-smi reports for the process, sampled every second (and the largest
#            `mem_mib` of the metrics lines: the allocator's reserved pages).
#   pytorch: scripts/torch_step.py with the same batch, crop and passes; the median of ITERS timed
#            steps after its own warm-up; peak from nvidia-smi as well (and max_memory_allocated).
#
# RUNS lists precision:passes[:recompute] (recompute: none, the default, or blocks: t2s's
# train.recompute and torch.utils.checkpoint per MiT block in the reference).
#
# Usage: [RUNS="f32:joint bf16:joint bf16:joint:blocks"] [WARMUP=15] [ITERS=15] [DEVICE=cuda] [CONFIG=toml]
#        [TRAIN_ARGS=...] [TORCH_ARGS=...] scripts/gpu_step.sh <t2s binary or .xz> <output folder>
# DEVICE=cpu with a small CONFIG / TRAIN_ARGS and TORCH_ARGS="--variant b0 --size 64" tries the flow
# without a GPU (the memory columns are then empty). Needs python3 with torch and transformers.
set -uo pipefail
BIN="$1"; OUT="$2"
RUNS=${RUNS:-"f32:joint bf16:joint"}; WARMUP=${WARMUP:-15}; ITERS=${ITERS:-15}; DEVICE=${DEVICE:-cuda}
CONFIG=$(realpath "${CONFIG:-configs/synthetic_daformer_t2s.toml}"); TRAIN_ARGS=${TRAIN_ARGS:-}; TORCH_ARGS=${TORCH_ARGS:-}
REPO=$(pwd); mkdir -p "$OUT"; W=$(mktemp -d)
case "$BIN" in *.xz) xz -dc "$BIN" > "$W/t2s" ;; *) cp "$BIN" "$W/t2s" ;; esac
chmod +x "$W/t2s"
RESULTS="$OUT/gpu_step_runs.jsonl"; : > "$RESULTS"

# peak_mib PID: the largest used_memory nvidia-smi reports for PID while it runs (empty without a GPU).
peak_mib() {
  local pid=$1 peak=""
  while kill -0 "$pid" 2>/dev/null; do
    local m
    m=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null | awk -F', *' -v p="$pid" '$1 == p { print $2 }')
    [ -n "$m" ] && { [ -z "$peak" ] || [ "$m" -gt "$peak" ]; } && peak=$m
    sleep 1
  done
  echo "$peak"
}

for run in $RUNS; do
  IFS=: read -r precision passes recompute <<< "$run"; recompute=${recompute:-none}
  tag="$precision-$passes"; [ "$recompute" = none ] || tag="$tag-$recompute"
  echo "== t2s $precision $passes recompute=$recompute ($((WARMUP + ITERS)) iterations)"
  name="t2s-$tag"
  # shellcheck disable=SC2086 # TRAIN_ARGS is a list of arguments
  (cd "$W" && exec ./t2s --device "$DEVICE" train --config "$CONFIG" --set "run.name=$name" --set "run.output=\"$W/runs\"" \
    --set "schedule.max_iters=$((WARMUP + ITERS))" --set run.log_interval=1 --set run.checkpoint_interval=0 \
    --set eval.interval=0 --set "uda.student_passes=$passes" --set "train.precision=$precision" --set "train.recompute=\"$recompute\"" $TRAIN_ARGS) > "$OUT/$name.log" 2>&1 &
  pid=$!
  peak=$(peak_mib $pid); wait $pid; rc=$?
  tail -3 "$OUT/$name.log"
  python3 - "$W/runs/$name/metrics.jsonl" "$WARMUP" "$ITERS" "$precision" "$passes" "${peak:-null}" "$rc" "$name" "$recompute" >> "$RESULTS" <<'EOF'
import json, statistics, sys
path, warmup, iters, precision, passes, peak, rc, name, recompute = sys.argv[1:]
try:
    recs = [json.loads(l) for l in open(path) if l.strip()]
except OSError:
    recs = []
steady = [r["sec_per_iter"] for r in recs if "sec_per_iter" in r and r["iter"] > int(warmup)]
# t2s's own reading of its allocator on each metrics line (reserved; in use after the step).
reserved = [r["mem_mib"] for r in recs if "mem_mib" in r]
in_use = [r["mem_in_use_mib"] for r in recs if "mem_in_use_mib" in r]
print(json.dumps({"name": name, "impl": "t2s", "precision": precision, "student_passes": passes, "recompute": recompute,
                  "s_per_iter": statistics.median(steady) if steady else None,
                  "peak_mib": None if peak == "null" else int(peak), "iters": len(steady), "exit": int(rc),
                  "reserved_mib": max(reserved) if reserved else None, "in_use_mib": max(in_use) if in_use else None}))
EOF
  echo "== pytorch $precision $passes recompute=$recompute"
  flag=""; [ "$precision" = bf16 ] && flag="--bf16"
  # shellcheck disable=SC2086
  python3 "$REPO/scripts/torch_step.py" --device "$DEVICE" --passes "$passes" --recompute "$recompute" --warmup 5 --iters "$ITERS" $flag $TORCH_ARGS \
    > "$OUT/pytorch-$tag.log" 2>&1
  tail -1 "$OUT/pytorch-$tag.log"
  grep '^RESULT ' "$OUT/pytorch-$tag.log" | sed 's/^RESULT //' >> "$RESULTS"
done

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); gpu=${gpu:-$DEVICE}
python3 - "$RESULTS" "$OUT/gpu_step.json" "$OUT/gpu_step.md" "$commit" "$gpu" <<'EOF'
import datetime, json, sys
runs_path, json_path, md_path, commit, device = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
doc = {"date": datetime.date.today().isoformat(), "commit": commit, "device": device, "runs": runs}
json.dump(doc, open(json_path, "w"), indent=2)
rows = ["| configuration | t2s s/iter | PyTorch s/iter | ratio | t2s peak MiB | t2s reserved MiB | PyTorch peak MiB |", "|---|---|---|---|---|---|---|"]
key_of = lambda r: (r["precision"], r["student_passes"], r.get("recompute", "none"))
for key in dict.fromkeys(key_of(r) for r in runs):
    t = next((r for r in runs if r["impl"] == "t2s" and key_of(r) == key), {})
    p = next((r for r in runs if r["impl"] == "pytorch" and key_of(r) == key), {})
    ts, ps = t.get("s_per_iter"), p.get("s_per_iter")
    ratio = f"{ts / ps:.2f}" if ts and ps else "–"
    f = lambda v, d=3: "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
    label = f"{key[0]}, {key[1]}" + ("" if key[2] == "none" else f", recompute {key[2]}")
    rows.append(f"| {label} | {f(ts)} | {f(ps)} | {ratio} | {f(t.get('peak_mib'))} | {f(t.get('reserved_mib'))} | {f(p.get('peak_mib'))} |")
open(md_path, "w").write(f"{device}, commit {commit}, {doc['date']}\n\n" + "\n".join(rows) + "\n")
print("\n".join(rows))
EOF
rm -rf "$W"
