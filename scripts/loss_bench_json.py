#!/usr/bin/env python3
"""The figures of docs/loss_bench.json (issue 24's format; committed after a GPU session) from one
GPU session's loss-kernel measurements: the criterion results of
`benches/contrastive_loss.rs` (t2s fused and tensor-operation forms) and the JSON lines of
`scripts/bench_contrastive.py --json` (PyTorch), measured back to back on the same device.

    loss_bench_json.py CRITERION_DIR PYTORCH_JSONL BACKEND DEVICE COMMIT > loss_bench.json

BACKEND is the bench's label ("cuda", "wgpu" or "cpu (Flex)"); DEVICE describes the machine.
Writes {"date", "commit", "device", "runs": [{"impl", "shape", "ms"}]}; criterion's mean, in ms.
"""
import datetime
import json
import os
import sys

GROUPS = {"t2s loss 4864x256 m50 K60000 fwd+bwd": "default", "t2s loss mitb5 4864x256 m50 K65536 fwd+bwd": "mitb5"}


def criterion_runs(root, backend):
    runs = []
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json"), encoding="utf-8") as f:
            bench = json.load(f)
        shape = GROUPS.get(bench.get("group_id"))
        name = bench.get("function_id") or ""
        if shape is None or not name.startswith(backend):
            continue
        rest = name[len(backend):].strip()
        impl = {"fused": "t2s-fused", "tensor ops": "t2s-tensor", "": "t2s-tensor"}.get(rest)
        if impl is None:
            continue
        with open(os.path.join(dirpath, "estimates.json"), encoding="utf-8") as f:
            ms = json.load(f)["mean"]["point_estimate"] / 1e6
        runs.append({"impl": impl, "shape": shape, "ms": round(ms, 4)})
    return runs


def main():
    root, pytorch, backend, device, commit = sys.argv[1:6]
    runs = criterion_runs(root, backend)
    if os.path.exists(pytorch):
        with open(pytorch, encoding="utf-8") as f:
            runs += [json.loads(line) for line in f if line.strip()]
    runs.sort(key=lambda r: (r["shape"], r["impl"]))
    out = {"date": datetime.date.today().isoformat(), "commit": commit, "device": device, "runs": runs}
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
