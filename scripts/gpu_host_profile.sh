#!/usr/bin/env bash
# Where does a CUDA training iteration spend its time off the GPU? Starts the MiT-B5 T2S-DA run of
# configs/synthetic_daformer_t2s.toml, waits WAIT seconds (kernel compilation), then samples for
# SAMPLE seconds: per-thread CPU time (top -H), the main thread's stack (gdb, when the machine has
# it; a binary with its symbol table, e.g. `strip --strip-debug`, names the functions) and a
# flat perf profile (when it has perf). Usage: scripts/gpu_host_profile.sh <t2s[.xz]> <out> [WAIT] [SAMPLE]
set -uo pipefail
BIN="$1"; OUT="$2"; WAIT="${3:-120}"; SAMPLE="${4:-60}"; REPO=$(pwd); mkdir -p "$OUT"
W=/tmp/t2s_host; rm -rf "$W"; mkdir -p "$W"
case "$BIN" in *.xz) xz -dc "$BIN" > "$W/t2s" ;; *) cp "$BIN" "$W/t2s" ;; esac; chmod +x "$W/t2s"
echo "tools: $(command -v perf gdb eu-stack py-spy | tr '\n' ' ')"
( cd "$W" && T2S_CACHE_DIR="$W/cache" exec "$W/t2s" --device cuda train --config "$REPO/configs/synthetic_daformer_t2s.toml" \
    --set run.output="$W" --set run.name=run --set run.log_interval=1 --set run.debug_interval=0 --set eval.interval=1000000 \
    --set run.checkpoint_interval=1000000 --set data.workers=4 ) > "$W/train.log" 2>&1 &
PID=$!
sleep "$WAIT"
echo "== iterations so far"; grep -o '"iter":[0-9]*\|"sec_per_iter":[0-9.]*' "$W/run/metrics.jsonl" | paste - -
echo "== threads (top -H, 3 samples 2 s apart)"; top -H -b -n 3 -d 2 -p "$PID" | grep -A12 "PID USER" | grep -v "^$" | head -45
if command -v perf >/dev/null; then
  timeout $(( SAMPLE + 20 )) perf record -F 199 -g -p "$PID" -o "$W/perf.data" -- sleep "$SAMPLE" > /dev/null 2>&1
  echo "== perf, per thread and symbol"; perf report -i "$W/perf.data" --no-children --sort comm,sym --stdio -g none 2>/dev/null | grep "%" | head -40
elif command -v gdb >/dev/null; then
  end=$(( $(date +%s) + SAMPLE ))
  while [ "$(date +%s)" -lt "$end" ]; do
    timeout 20 gdb -p "$PID" -batch -ex "thread 1" -ex "bt 40" 2>/dev/null | grep -E "^#" | sed -E 's/0x[0-9a-f]+ in //' | cut -c1-220 >> "$W/stacks.txt"
    echo "----" >> "$W/stacks.txt"; sleep 1
  done
  echo "== main-thread stacks ($(grep -c -- ---- "$W/stacks.txt") samples); innermost t2s/burn/cubecl frames, counted"
  awk '/^----/ { if (f != "") print f; f = ""; next } f == "" && /(t2s|burn|cubecl|cubek)/ { f = $0 } END { if (f != "") print f }' "$W/stacks.txt" \
    | sed -E 's/^#[0-9]+ +//; s/ \(.*//' | sort | uniq -c | sort -rn | head -25
  echo "== the same, innermost t2s frame"
  awk '/^----/ { if (f != "") print f; f = ""; next } f == "" && /t2s_(train|model|loss|data)/ { f = $0 } END { if (f != "") print f }' "$W/stacks.txt" \
    | sed -E 's/^#[0-9]+ +//; s/ \(.*//' | sort | uniq -c | sort -rn | head -15
  cp "$W/stacks.txt" "$OUT/"
else
  echo "no perf or gdb: only the thread table above"
fi
echo "== iterations"; grep -o '"iter":[0-9]*\|"sec_per_iter":[0-9.]*' "$W/run/metrics.jsonl" | paste - -
kill -9 "$PID" 2>/dev/null; tail -c 400 "$W/train.log" | tr '\r' '\n' | tail -3
