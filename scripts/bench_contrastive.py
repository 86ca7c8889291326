"""The T2S loss kernel in PyTorch, for the speed comparison in docs/benchmarks.md.

Same computation and sizes as `benches/contrastive_loss.rs`: 19 classes x 256 queries, D = 256,
m = 50 negatives per query from a key bank of 60,000, temperature 0.2, forward + backward
(gradient w.r.t. the queries only); `--keys 65536` is the bench's `mitb5` size (the key bank of a
MiT-B5 512x512 step). Usage:

    python3 scripts/bench_contrastive.py [--device cpu|cuda] [--threads N] [--keys K] [--json FILE]

`--json FILE` appends {"impl": "pytorch", "shape": "default"|"mitb5", "ms": median} as a line.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

C, PER_CLASS, D, M, K, TAU = 19, 256, 256, 50, 60_000, 0.2


def t2s_loss(queries, classes, prototypes, keys, negatives, weights, tau):
    q = F.normalize(queries, dim=1)
    p = F.normalize(prototypes.detach(), dim=1)
    k = F.normalize(keys.detach(), dim=1)
    pos = (q * p[classes]).sum(1, keepdim=True) / tau  # [Nq, 1]
    neg = torch.bmm(k[negatives], q.unsqueeze(2)).squeeze(2) / tau  # [Nq, M]
    logits = torch.cat([pos, neg], 1)
    per_query = torch.logsumexp(logits, 1) - pos.squeeze(1)
    one_hot = F.one_hot(classes, C).to(q.dtype)  # [Nq, C]
    counts = one_hot.sum(0)
    present = counts > 0
    per_class = (one_hot * per_query[:, None]).sum(0) / counts.clamp(min=1)
    w = torch.where(present, weights.detach(), torch.zeros_like(weights))
    if present.sum() < 2:
        return per_query.sum() * 0
    return (w * per_class).sum() / w.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--keys", type=int, default=K, help="key bank size (60000; 65536 is the mitb5 shape)")
    ap.add_argument("--json", help="append the median as a JSON line to this file")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    nq = C * PER_CLASS
    queries = torch.randn(nq, D, generator=g).to(dev).requires_grad_()
    classes = (torch.arange(nq) // PER_CLASS).to(dev)
    prototypes = torch.randn(C, D, generator=g).to(dev)
    keys = torch.randn(a.keys, D, generator=g).to(dev)
    negatives = torch.randint(0, a.keys, (nq, M), generator=g).to(dev)
    weights = (torch.rand(C, generator=g) * 9.9 + 0.1).to(dev)

    def step():
        queries.grad = None
        loss = t2s_loss(queries, classes, prototypes, keys, negatives, weights, TAU)
        loss.backward()
        return queries.grad.sum().item()  # synchronises, like the Rust bench reading the gradient

    for _ in range(3):
        step()
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2] * 1e3
    print(f"pytorch {torch.__version__} {a.device} threads={torch.get_num_threads()} keys={a.keys}: "
          f"median {median:.2f} ms, min {times[0] * 1e3:.2f} ms over {a.iters} iterations")
    if a.json:
        shape = "default" if a.keys == K else "mitb5" if a.keys == 4 * 128 * 128 else f"K{a.keys}"
        with open(a.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"impl": "pytorch", "shape": shape, "ms": round(median, 4)}) + "\n")


if __name__ == "__main__":
    main()
