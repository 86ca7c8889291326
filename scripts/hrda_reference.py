#!/usr/bin/env python3
"""Frozen reference outputs of HRDA's multi-resolution fusion, for t2s-model's HRDA tests.

Usage:
    python3 scripts/hrda_reference.py crates/t2s-model/tests/fixtures/hrda.safetensors

Follows lhoyer/HRDA (mmseg/models/decode_heads/hrda_head.py, HRDAHead.forward and decode_hr;
mmseg/models/segmentors/hrda_encoder_decoder.py, extract_slide_feat), written out here for
given decoder outputs instead of networks: the tests feed t2s the same logits and compare.

Cases (output stride 4, context scale 0.5, detail scale 1, HR image 64×96, detail crop 32×32):
    crop_*   training: one detail crop at (y1, y2, x1, x2) = (16, 48, 40, 72), class-wise attention
    crop1_*  the same with a single attention channel (attention_classwise = False)
    slide_*  inference: overlapping sliding detail crops (stride 16) merged, no crop mask

Needs torch and safetensors; CPU, float32, deterministic (seed 0).
"""

import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OS = 4
LR_SCALE, HR_SCALE = 0.5, 1.0
N, C = 2, 3
H, W = 64, 96
CROP = (32, 32)
BOX = (16, 48, 40, 72)


def scale_box(box, scale):
    y1, y2, x1, x2 = box
    return int(y1 / scale), int(y2 / scale), int(x1 / scale), int(x2 / scale)


def up(x, factor):
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def fuse(lr_seg, att, hr_seg, box):
    """HRDAHead.forward after the three head outputs (att already through the sigmoid)."""
    if box is not None:
        mask = lr_seg.new_zeros([lr_seg.shape[0], 1, *lr_seg.shape[2:]])
        y1, y2, x1, x2 = scale_box(box, OS / LR_SCALE)
        mask[:, :, y1:y2, x1:x2] = 1
        att = att * mask
    lr_seg = (1 - att) * lr_seg
    up_lr_seg = up(lr_seg, HR_SCALE / LR_SCALE)
    att = up(att, HR_SCALE / LR_SCALE)
    if box is not None:
        hr_inserted = torch.zeros_like(up_lr_seg)
        y1, y2, x1, x2 = scale_box(box, OS)
        hr_inserted[:, :, y1:y2, x1:x2] = hr_seg
    else:
        hr_inserted = hr_seg
    return att * hr_inserted + up_lr_seg, lr_seg


def slide_boxes(h_img, w_img, crop):
    """extract_slide_feat's boxes with hr_slide_overlapping = True."""
    h_crop, w_crop = crop
    h_stride, w_stride = h_crop // 2, w_crop // 2
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    boxes = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * h_stride, w_idx * w_stride
            y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            boxes.append([y1, y2, x1, x2])
    return boxes


def decode_hr(crop_logits, boxes, bs):
    """HRDAHead.decode_hr on the crops' logits (crop-major: crop i is rows i*bs..(i+1)*bs)."""
    boxes = [scale_box(b, OS) for b in boxes]
    h_img = max(b[1] for b in boxes)
    w_img = max(b[3] for b in boxes)
    preds = torch.zeros((bs, crop_logits.shape[1], h_img, w_img))
    count = torch.zeros((bs, 1, h_img, w_img))
    for i, (y1, y2, x1, x2) in enumerate(boxes):
        preds += F.pad(crop_logits[i * bs:(i + 1) * bs], (x1, w_img - x2, y1, h_img - y2))
        count[:, :, y1:y2, x1:x2] += 1
    assert (count == 0).sum() == 0
    return preds / count


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    lr_h, lr_w = int(H * LR_SCALE) // OS, int(W * LR_SCALE) // OS
    t = {}
    # Training: one detail crop.
    for name, att_c in [("crop", C), ("crop1", 1)]:
        lr_seg = torch.randn(N, C, lr_h, lr_w)
        att_logit = torch.randn(N, att_c, lr_h, lr_w)
        hr_seg = torch.randn(N, C, CROP[0] // OS, CROP[1] // OS)
        fused, lr_scaled = fuse(lr_seg, torch.sigmoid(att_logit), hr_seg, BOX)
        t.update({f"{name}_lr": lr_seg, f"{name}_att_logit": att_logit, f"{name}_hr": hr_seg,
                  f"{name}_fused": fused, f"{name}_lr_scaled": lr_scaled})
    # Inference: sliding detail crops over the whole HR image.
    boxes = slide_boxes(H, W, CROP)
    crop_logits = torch.randn(len(boxes) * N, C, CROP[0] // OS, CROP[1] // OS)
    hr_seg = decode_hr(crop_logits, boxes, N)
    lr_seg = torch.randn(N, C, lr_h, lr_w)
    att_logit = torch.randn(N, C, lr_h, lr_w)
    fused, _ = fuse(lr_seg, torch.sigmoid(att_logit), hr_seg, None)
    t.update({"slide_boxes": torch.tensor(boxes, dtype=torch.int64), "slide_crop_logits": crop_logits,
              "slide_hr": hr_seg, "slide_lr": lr_seg, "slide_att_logit": att_logit, "slide_fused": fused})
    save_file({k: v.contiguous() for k, v in t.items()}, out)
    print(f"wrote {out}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in t.items()))


if __name__ == "__main__":
    main()
