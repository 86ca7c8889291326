#!/usr/bin/env bash
# Throughput of data-parallel CPU replicas against one (issue 28, point 5): the demo's network
# and data (configs/synthetic_demo.toml), `t2s` from iteration 0, ITERS iterations each, with
# `--device cpu` and `--device cpu,cpu` (the same per-replica batch, so two replicas train on
# twice the images per iteration). Prints seconds per iteration (rank 0's metrics, the first
# iteration excluded) and images per second.
#
#   T2S=target/release/t2s ITERS=20 bash scripts/replica_throughput.sh
set -euo pipefail
T2S="${T2S:-target/release/t2s}"
ITERS="${ITERS:-20}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
cfg="$(cd "$(dirname "$0")/.." && pwd)/configs/synthetic_demo.toml"
batch=$(awk -F' *= *' '/^batch_size/ {print $2; exit}' "$cfg")
for devices in cpu cpu,cpu; do
  n=$(tr ',' '\n' <<<"$devices" | wc -l)
  (cd "$OUT" && "$T2S" --device "$devices" train --config "$cfg" --set run.name="r$n" --set uda.adapt_from=0 \
      --set eval.interval=0 --set run.checkpoint_interval=0 --set run.log_interval=1 --until "$ITERS" >/dev/null 2>&1)
  python3 - "$OUT/runs/r$n/metrics.jsonl" "$n" "$batch" <<'PY'
import json, sys
path, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
recs = [json.loads(l) for l in open(path) if '"sec_per_iter"' in l]
secs = [r["sec_per_iter"] for r in recs[1:]]
s = sum(secs) / len(secs)
print(f"{n} replica(s) × batch {batch}: {s:.3f} s/iteration, {n * batch / s:.2f} images/s over {len(secs)} iterations")
PY
done
