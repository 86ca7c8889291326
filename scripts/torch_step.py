#!/usr/bin/env python3
"""The PyTorch reference of one t2s T2S-DA training step, for side-by-side timing (docs/gpu.md).

The same work as `t2s train --config configs/synthetic_daformer_t2s.toml` does per iteration:
MiT (the `transformers` SegFormer encoder) + the DAFormer head as t2s builds it (per-stage linear
embeddings, a depth-wise separable ASPP with dilations 1/6/12/18, a 3×3 bottleneck, channel
dropout, a 1×1 classifier) + the projection head; batch B source + B target at S×S crops:

  1. EMA teacher update (α = 0.999);
  2. teacher pass (no grad) over target and source images: pseudo-labels with DAFormer's
     confidence weight and margins, the contrastive term's keys;
  3. ClassMix (half of each source image's classes onto the target) + colour jitter and blur;
     FDA pseudo-targets (β = 0.01, on the device as FDA's own code does);
  4. student passes over source, mixed and pseudo-target images (joint: one pass over the three;
     sequential: DAFormer's order, a forward and backward pass each): source CE, confidence-
     weighted mixed CE, pseudo-target CE, and the T2S contrastive term (19 × 256 queries, 50
     negatives per query from the key bank of the batch's source and target teacher keys,
     τ = 0.2, per-class means, source prototypes with momentum);
  5. AdamW (lr 6e-5, ×10 on the heads, no weight decay on norms and position blocks).

TF32 matrix products are on, as PyTorch users run; `--bf16` runs the networks under bf16
autocast (losses in f32). Prints one line `RESULT {json}` with the median seconds per steady
iteration and the peak memory (torch.cuda.max_memory_allocated, and nvidia-smi's reading of this
process). Random data: the timing does not depend on image content.

  python3 scripts/torch_step.py --device cuda [--bf16] [--passes joint|sequential] [--recompute none|blocks] [--iters 20]
"""
import argparse
import json
import statistics
import subprocess
import threading
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import SegformerConfig, SegformerModel

MIT = {  # depths, hidden sizes, heads (the SegFormer / DAFormer MiT-B0…B5)
    "b0": ([2, 2, 2, 2], [32, 64, 160, 256], [1, 2, 5, 8]),
    "b5": ([3, 6, 40, 3], [64, 128, 320, 512], [1, 2, 5, 8]),
}
C = 19
IGNORE = 255


def conv_bn(cin, cout, k, dilation=1, groups=1):
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class DaFormerHead(nn.Module):
    def __init__(self, in_channels, e=256, ch=256, dilations=(1, 6, 12, 18)):
        super().__init__()
        self.embed = nn.ModuleList(nn.Linear(c, e) for c in in_channels)
        branches = []
        for d in dilations:
            if d == 1:
                branches.append(conv_bn(4 * e, ch, 1))
            else:  # mmcv DepthwiseSeparableConvModule: depth-wise 3×3 (dilated) then point-wise 1×1
                branches.append(nn.Sequential(conv_bn(4 * e, 4 * e, 3, d, groups=4 * e), conv_bn(4 * e, ch, 1)))
        self.aspp = nn.ModuleList(branches)
        self.bottleneck = conv_bn(len(dilations) * ch, ch, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(ch, C, 1)

    def forward(self, feats):
        h, w = feats[0].shape[2:]
        xs = []
        for f, lin in zip(feats, self.embed):
            n, c, fh, fw = f.shape
            x = lin(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(n, -1, fh, fw)
            xs.append(x if (fh, fw) == (h, w) else F.interpolate(x, (h, w), mode="bilinear", align_corners=False))
        x = torch.cat(xs, 1)
        feature = self.bottleneck(torch.cat([b(x) for b in self.aspp], 1))
        return self.conv_seg(self.dropout(feature)), feature


class Net(nn.Module):
    def __init__(self, variant, dim=256):
        super().__init__()
        depths, hidden, heads = MIT[variant]
        cfg = SegformerConfig(depths=depths, hidden_sizes=hidden, num_attention_heads=heads, drop_path_rate=0.1)
        self.backbone = SegformerModel(cfg)
        self.head = DaFormerHead(hidden)
        self.proj = nn.Sequential(nn.Conv2d(256, 256, 1), nn.BatchNorm2d(256), nn.ReLU(True), nn.Conv2d(256, dim, 1))

    def forward(self, x):
        feats = self.backbone(pixel_values=x, output_hidden_states=True).hidden_states
        logits, feature = self.head(list(feats))
        return logits, F.normalize(self.proj(feature).float(), dim=1)


def checkpoint_blocks(backbone):
    """Each SegFormer layer (a MiT block) under torch.utils.checkpoint: only its input is kept and
    it reruns in the backward pass, with the same drop-path draws (the RNG state is restored).
    Wrapping `forward` works whatever the transformers version's own gradient checkpointing."""
    from torch.utils.checkpoint import checkpoint

    layers = [m for m in backbone.modules() if type(m).__name__ == "SegformerLayer"]
    assert layers, "no SegformerLayer in this transformers version's SegformerModel"
    for layer in layers:
        layer.forward = (lambda f: lambda *a, **k: checkpoint(f, *a, use_reentrant=False, **k))(layer.forward)


def param_groups(net, lr):
    """DAFormer's AdamW groups: heads at 10× the lr, no weight decay on norms and position blocks."""
    groups = {}
    for name, p in net.named_parameters():
        head = not name.startswith("backbone.")
        no_decay = p.ndim == 1 or "norm" in name or "pos" in name
        key = (head, no_decay)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": lr * (10 if head else 1), "weight_decay": 0.0 if nd else 0.01} for (head, nd), ps in groups.items()]


def pseudo_labels(logits, size, threshold=0.968, margin=(15, 120)):
    probs = torch.softmax(F.interpolate(logits.float(), size, mode="bilinear", align_corners=False), 1)
    conf, labels = probs.max(1)
    weight = (conf >= threshold).float().mean()
    w = torch.full_like(conf, 1.0) * weight
    h = size[0]
    top, bottom = round(margin[0] * h / 512), round(margin[1] * h / 512)
    w[:, :top] = 0
    w[:, h - bottom:] = 0
    return labels, w


def class_mix(xs, ys, xt, yt, wt):
    mixed_x, mixed_y, mixed_w = [], [], []
    for i in range(xs.shape[0]):
        classes = torch.unique(ys[i])
        classes = classes[classes != IGNORE]
        chosen = classes[torch.randperm(len(classes), device=classes.device)[: (len(classes) + 1) // 2]]
        m = torch.isin(ys[i], chosen)
        mixed_x.append(torch.where(m, xs[i], xt[i]))
        mixed_y.append(torch.where(m, ys[i], yt[i]))
        mixed_w.append(torch.where(m, torch.ones_like(wt[i]), wt[i]))
    return torch.stack(mixed_x), torch.stack(mixed_y), torch.stack(mixed_w)


def strong_aug(x):
    """Colour jitter (brightness, contrast) and a 3×3 Gaussian blur, per batch, on the device."""
    x = x * (1 + 0.2 * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5))
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + 0.2 * (torch.rand_like(mean) - 0.5)) + mean
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    return F.conv2d(x, k, padding=1, groups=3)


def fda(src, tgt, beta=0.01):
    fs, ft = torch.fft.rfft2(src), torch.fft.rfft2(tgt)
    amp, pha = fs.abs(), fs.angle()
    h, w = src.shape[2:]
    b = max(1, int(min(h, w) * beta))
    amp_t = ft.abs()
    amp[..., :b, :b] = amp_t[..., :b, :b]
    amp[..., h - b:, :b] = amp_t[..., h - b:, :b]
    return torch.fft.irfft2(torch.polar(amp, pha), s=(h, w))


def downscale_labels(y, factor, min_fraction=0.5):
    """Majority label of each factor×factor block, ignore where it covers less than min_fraction."""
    onehot = F.one_hot(torch.where(y == IGNORE, C, y), C + 1)[..., :C].permute(0, 3, 1, 2).float()
    frac = F.avg_pool2d(onehot, factor)
    best, label = frac.max(1)
    return torch.where(best >= min_fraction, label, torch.full_like(label, IGNORE))


class T2sTerm:
    def __init__(self, dim, device, queries=19 * 256, negatives=50, tau=0.2, momentum=0.9):
        self.prototypes = F.normalize(torch.randn(C, dim, device=device), dim=1)
        self.nq, self.m, self.tau, self.momentum = queries, negatives, tau, momentum

    def plan(self, src_keys, src_labels, tgt_keys, tgt_probs):
        d = src_keys.shape[1]
        ks = src_keys.permute(0, 2, 3, 1).reshape(-1, d)
        kt = tgt_keys.permute(0, 2, 3, 1).reshape(-1, d)
        ls = src_labels.reshape(-1)
        lt = tgt_probs.argmax(1).reshape(-1)
        valid = ls != IGNORE
        onehot = F.one_hot(torch.where(valid, ls, 0), C).float() * valid[:, None]
        counts = onehot.sum(0)
        means = F.normalize(onehot.t() @ ks, dim=1)
        seen = counts > 0
        self.prototypes = torch.where(seen[:, None], F.normalize(self.momentum * self.prototypes + (1 - self.momentum) * means, dim=1), self.prototypes)
        # Class-balanced queries: up to nq / C per present class, drawn among its labelled pixels.
        per = self.nq // C
        scores = torch.rand(ls.shape[0], device=ls.device) + (~valid) * 2
        order = torch.argsort(ls * 4 + scores)  # grouped by class, random within a class
        starts = torch.cumsum(counts, 0) - counts
        idx = (starts[:, None] + torch.arange(per, device=ls.device)[None, :] % counts.clamp(min=1)[:, None]).long()
        q_idx = order[idx[seen].reshape(-1)]
        q_cls = ls[q_idx]
        # Negatives from the key bank (source and target keys) of other classes.
        keys = torch.cat([ks, kt])
        key_cls = torch.cat([ls, lt])
        neg = torch.empty(q_cls.shape[0], self.m, dtype=torch.long, device=ls.device)
        for c in range(C):
            rows = (q_cls == c).nonzero()[:, 0]
            if rows.numel():
                other = (key_cls != c).float()
                neg[rows] = torch.multinomial(other, rows.numel() * self.m, replacement=True).reshape(-1, self.m)
        return q_idx, q_cls, keys, neg, counts

    def loss(self, student_emb, plan, class_weights):
        q_idx, q_cls, keys, neg, _ = plan
        d = student_emb.shape[1]
        q = F.normalize(student_emb.permute(0, 2, 3, 1).reshape(-1, d)[q_idx].float(), dim=1)
        pos = (q * self.prototypes[q_cls]).sum(1, keepdim=True)
        negs = torch.bmm(F.normalize(keys, dim=1)[neg], q[:, :, None])[:, :, 0]
        logits = torch.cat([pos, negs], 1) / self.tau
        per_query = torch.logsumexp(logits, 1) - logits[:, 0]
        onehot = F.one_hot(q_cls, C).float()
        per_class = (onehot.t() @ per_query) / onehot.sum(0).clamp(min=1)
        present = onehot.sum(0) > 0
        w = class_weights * present
        return (w * per_class).sum() / w.sum().clamp(min=1e-12)


def ce(logits, y, weight=None):
    logits = F.interpolate(logits.float(), y.shape[1:], mode="bilinear", align_corners=False)
    loss = F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="none")
    if weight is not None:
        loss = loss * weight
    return loss.mean()


def step(student, teacher, t2s, opt, batch, args):
    xs, ys, xt = batch
    n, size = xs.shape[0], xs.shape[2:]
    amp = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16)
    with torch.no_grad():
        tp, sp = list(teacher.parameters()), list(student.parameters())
        torch._foreach_mul_(tp, 0.999)
        torch._foreach_add_(tp, sp, alpha=0.001)
        with amp:
            t_logits, t_emb = teacher(torch.cat([xt, xs]))
        yt, wt = pseudo_labels(t_logits[:n], size)
        xm, ym, wm = class_mix(xs, ys, xt, yt, wt)
        xm = strong_aug(xm)
        xp = fda(xs, xt)
        factor = size[0] // t_emb.shape[2]
        ys_e = downscale_labels(ys, factor)
        t_probs = torch.softmax(t_logits[:n].float(), 1)
        plan = t2s.plan(t_emb[n:], ys_e, t_emb[:n], t_probs)
    class_weights = torch.ones(C, device=xs.device)
    opt.zero_grad(set_to_none=True)

    def part_losses(part, logits, emb):
        if part == 0:
            return ce(logits, ys)
        if part == 1:
            return ce(logits, ym, wm)
        return ce(logits, ys) + t2s.loss(emb, plan, class_weights)

    parts = [xs, xm, xp]
    if args.passes == "joint":
        with amp:
            logits, emb = student(torch.cat(parts))
        loss = sum(part_losses(i, logits[i * n:(i + 1) * n], emb[i * n:(i + 1) * n]) for i in range(3))
        loss.backward()
        total = loss.detach()
    else:
        total = 0
        for i, x in enumerate(parts):
            with amp:
                logits, emb = student(x)
            loss = part_losses(i, logits, emb)
            loss.backward()
            total = total + loss.detach()
    opt.step()
    return total


class GpuMemory:
    """The largest memory nvidia-smi reports for this process, polled every 0.5 s."""

    def __init__(self):
        self.peak, self.running = None, True
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self):
        import os
        while self.running:
            try:
                out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                for line in out.splitlines():
                    pid, mib = [v.strip() for v in line.split(",")]
                    if int(pid) == os.getpid():
                        self.peak = max(self.peak or 0, int(mib))
            except (OSError, ValueError, subprocess.SubprocessError):
                return
            time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--variant", default="b5", choices=sorted(MIT))
    ap.add_argument("--size", type=int, default=512, help="crop side (512)")
    ap.add_argument("--batch", type=int, default=2, help="images per domain (2)")
    ap.add_argument("--passes", default="joint", choices=["joint", "sequential"])
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks")
    ap.add_argument("--recompute", default="none", choices=["none", "blocks"],
                    help="blocks: torch.utils.checkpoint around each MiT block of the student (t2s's train.recompute)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    student = Net(args.variant).to(dev).train()
    if args.recompute == "blocks":
        checkpoint_blocks(student.backbone)
    teacher = Net(args.variant).to(dev).eval()
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(param_groups(student, 6e-5), lr=6e-5, betas=(0.9, 0.999), eps=1e-8)
    t2s = T2sTerm(256, dev)
    n, s = args.batch, args.size
    # Source labels: a few classes in horizontal bands, so ClassMix and the samplers have work.
    ys = (torch.arange(s, device=dev)[None, :, None] * 8 // s).expand(n, s, s).contiguous()
    batch = (torch.randn(n, 3, s, s, device=dev), ys, torch.randn(n, 3, s, s, device=dev))
    monitor = GpuMemory() if dev.type == "cuda" else None
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for i in range(args.warmup + args.iters):
        if i == args.warmup and dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        t = time.perf_counter()
        loss = step(student, teacher, t2s, opt, batch, args)
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    if monitor:
        time.sleep(1.0)
        monitor.running = False
    result = {
        "name": f"pytorch-{args.variant}-{'bf16' if args.bf16 else 'f32'}-{args.passes}" + ("-blocks" if args.recompute == "blocks" else ""),
        "impl": "pytorch",
        "precision": "bf16" if args.bf16 else "f32",
        "student_passes": args.passes,
        "recompute": args.recompute,
        "s_per_iter": statistics.median(times),
        "peak_mib": monitor.peak if monitor else None,
        "max_memory_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "iters": args.iters,
        "last_loss": float(loss),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
