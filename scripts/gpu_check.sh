#!/usr/bin/env bash
# Checks a CUDA build of t2s on an NVIDIA machine against the CPU backend on the same inputs,
# and times inference. Usage: scripts/gpu_check.sh <t2s binary or .xz> <output folder>
# Environment: DEVICES (default "cuda", e.g. "cuda wgpu"; wgpu needs a Vulkan loader and driver),
# WGPU=1 (same as adding wgpu), TIMING=0 skips the full-size timing part, PREDICT_TIMEOUT
# (seconds per prediction run, default 180: a cold kernel cache compiles for minutes, docs/gpu.md),
# NETS (default "daformer deeplabv2"). Each prediction's full output is kept in the output folder.
# Needs python3 with numpy and Pillow (to make inputs and compare .npy files); for the PyTorch
# timing row also torch + transformers.
set -uo pipefail
T2S="$1"; OUT="$2"; mkdir -p "$OUT"
DEVICES="${DEVICES:-cuda}${WGPU:+ wgpu}"
W=$(mktemp -d)
case "$T2S" in *.xz) { xz -dc "$T2S" > "$W/t2s" && chmod +x "$W/t2s"; } || { echo "cannot decompress $T2S"; exit 1; }; T2S="$W/t2s" ;; esac
FIX=crates/t2s-model/tests/fixtures
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# Two small networks with weights from the PyTorch fixtures.
cat > "$W/daformer.toml" <<'TOML'
num_classes = 5
[backbone]
type = "mit"
embed_dims = [8, 16, 24, 32]
depths = [2, 1, 1, 2]
num_heads = [1, 2, 3, 4]
sr_ratios = [8, 4, 2, 1]
[decode_head]
type = "daformer"
embed_dim = 16
channels = 16
TOML
cat > "$W/deeplabv2.toml" <<'TOML'
num_classes = 5
[backbone]
type = "resnet"
depth = 0
layers = [1, 2, 2, 1]
block = "bottleneck"
stem = "deep"
stem_width = 8
base_width = 4
[decode_head]
type = "deeplabv2"
TOML
"$T2S" import-weights --model "$W/daformer.toml" --weights $FIX/mit.pth --prefix daformer. --output "$W/daformer.safetensors"
"$T2S" import-weights --model "$W/deeplabv2.toml" --weights $FIX/resnet.pth --prefix deeplabv2. --output "$W/deeplabv2.safetensors"

python3 - "$W" <<'PY'
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for name, (h, w) in {"small": (37, 53), "wide": (256, 512), "big": (1024, 2048)}.items():
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/{name}.png")
PY
mkdir -p "$W/in" && cp "$W/small.png" "$W/wide.png" "$W/in/"

compare() { # net device
  python3 - "$W/cpu_$1" "$W/$2_$1" "$1 $2" <<'PY'
import sys, glob, os, numpy as np
worst = 0.0
files = sorted(glob.glob(sys.argv[1] + "/*_logits.npy"))
if not files:
    sys.exit(print(f"RESULT {sys.argv[3]} FAIL: no CPU logits to compare with"))
for a in files:
    b = os.path.join(sys.argv[2], os.path.basename(a))
    if not os.path.exists(b):
        print(f"  {sys.argv[3]} {os.path.basename(a)} missing (the run did not finish)"); worst = float("inf"); continue
    x = np.load(a); y = np.load(b)
    rel = np.abs(x - y).max() / max(np.abs(x).max(), 1e-12)
    worst = max(worst, rel)
    print(f"  {sys.argv[3]} {os.path.basename(a)} {x.shape} max rel diff vs cpu {rel:.2e}")
# CUDA multiplies f32 matrices on tensor cores in TF32 (10-bit mantissa; cubek does so whenever the
# device supports it, docs/gpu.md), so its bar is TF32's; every other backend must agree to 1e-3.
bar = 1e-2 if sys.argv[3].endswith("cuda") else 1e-3
print(f"RESULT {sys.argv[3]} worst rel diff {worst:.2e} (bar {bar:.0e}) {'PASS' if worst < bar else 'FAIL'}")
PY
}
for net in ${NETS:-daformer deeplabv2}; do
  "$T2S" --device cpu predict --weights "$W/$net.safetensors" --input "$W/in" --output "$W/cpu_$net" --save-logits 2>&1 | tail -1
  for dev in $DEVICES; do
    s=$(date +%s)
    timeout "${PREDICT_TIMEOUT:-180}" "$T2S" --device $dev predict --weights "$W/$net.safetensors" --input "$W/in" --output "$W/${dev}_$net" --save-logits 2>&1 | tee "$OUT/predict_${dev}_$net.log" | tail -2
    rc=${PIPESTATUS[0]}
    echo "  $net $dev: prediction run took $(( $(date +%s) - s )) s (exit $rc; 124 = timed out)"
    compare $net $dev
  done
done
cp -r "$W"/cpu_daformer "$OUT/" 2>/dev/null
[ "${TIMING:-1}" = 0 ] && exit 0

# Inference time of full-size networks (random weights) on a 2048x1024 image: one image vs
# nine, so the difference is the steady-state time of eight predictions (JIT compilation and
# autotuning are paid by the first).
mkdir -p "$W/one" "$W/nine"; cp "$W/big.png" "$W/one/"; for i in $(seq 1 9); do cp "$W/big.png" "$W/nine/b$i.png"; done
for preset in segformer-mitb5 daformer-mitb5 deeplabv2-r101; do
  s=$(date +%s.%N); timeout 120 "$T2S" --device cuda predict --model $preset --input "$W/one" --output "$W/o1" >/dev/null 2>&1; m=$(date +%s.%N)
  timeout 120 "$T2S" --device cuda predict --model $preset --input "$W/nine" --output "$W/o9" >/dev/null 2>&1; e=$(date +%s.%N)
  python3 -c "a,b,c=$s,$m,$e; one=b-a; nine=c-b; print(f'TIME t2s cuda {\"$preset\"} 2048x1024: first run {one:.1f} s, steady {(nine-one)/8*1000:.0f} ms/image (incl. PNG decode/encode)')"
done
python3 - <<'PY'
import time, torch
from transformers import SegformerConfig, SegformerForSemanticSegmentation
cfg = SegformerConfig(hidden_sizes=[64,128,320,512], depths=[3,6,40,3], decoder_hidden_size=768, num_labels=19)
m = SegformerForSemanticSegmentation(cfg).cuda().eval()
x = torch.randn(1, 3, 1024, 2048, device="cuda")
with torch.no_grad():
    for _ in range(3): y = torch.nn.functional.interpolate(m(pixel_values=x).logits, size=(1024, 2048), mode="bilinear").argmax(1).cpu()
    torch.cuda.synchronize(); t = time.time()
    for _ in range(8): y = torch.nn.functional.interpolate(m(pixel_values=x).logits, size=(1024, 2048), mode="bilinear").argmax(1).cpu()
    torch.cuda.synchronize()
print(f"TIME pytorch {torch.__version__} cuda segformer-b5 2048x1024 fp32 (tf32 {torch.backends.cuda.matmul.allow_tf32}): {(time.time()-t)/8*1000:.0f} ms/image (forward+upsample+argmax, no PNG IO)")
PY
true
