#!/usr/bin/env python3
"""Generate reference fixtures for the t2s model-import tests.

Usage:
    python3 scripts/make_model_fixtures.py OUTDIR

Writes into OUTDIR (flat, ~2 MB in total):
    resnet.pth           state dicts of tiny ResNets + a tiny DeepLabV2 (mmseg key layout)
    resnet.safetensors   input and stage outputs / logits of those models
    mit.pth              tiny SegFormer and DAFormer segmentors (original SegFormer / mmseg key layout)
    mit_backbone.pth     bare tiny MiT backbone as in the official mit_b*.pth files (incl. ImageNet `head.*`)
    mit.safetensors      input, encoder stage outputs and logits of those models
    reference.json       parameter counts and key/shape lists of the full-size models, tiny configs

Independent references: torchvision's own ResNet blocks and transformers' SegFormer implementation.
The script itself converts the transformers weights to the original SegFormer layout and re-checks
them against a plain-functional re-implementation of the original `mix_transformer.py`, so a wrong
key mapping fails here rather than in the Rust tests.

Needs: torch, torchvision, transformers, safetensors. Both transformers SegFormer module layouts
are handled (4.x/5.0 `encoder.block...` and the refactored 5.x `stages...`); tried with torch 2.11,
torchvision 0.26 and transformers 5.0.0 and 5.24.0, which give identical .pth files (outputs agree
to ~3e-6). Runs on CPU in float32 (~30 s on 2 cores); no network, no GPU.
"""

import collections
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import transformers
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerModel

# ---------------------------------------------------------------------------------------------
# Configurations (also written to reference.json so the Rust tests can read them)
# ---------------------------------------------------------------------------------------------

RES_INPUT_SHAPE = [1, 3, 64, 48]  # non-square on purpose: catches H/W mix-ups
MIT_INPUT_SHAPE = [1, 3, 64, 96]

RESNET_TINY = {
    "basic": {
        "block": "BasicBlock",
        "layers": [2, 2, 2, 2],
        "widths": [8, 16, 32, 64],
        "stem_width": 8,
        "replace_stride_with_dilation": [False, False, False],
        "deep_stem": False,
    },
    "bottleneck_os8": {
        "block": "Bottleneck",
        "layers": [1, 2, 2, 1],
        "widths": [4, 8, 16, 32],
        "stem_width": 8,
        "replace_stride_with_dilation": [False, True, True],
        "deep_stem": True,
    },
}
DLV2_TINY = {"in_channels": 128, "num_classes": 5, "dilations": [6, 12, 18, 24]}

MIT_TINY = dict(
    num_channels=3,
    num_encoder_blocks=4,
    depths=[2, 1, 1, 2],
    sr_ratios=[8, 4, 2, 1],
    hidden_sizes=[8, 16, 24, 32],
    patch_sizes=[7, 3, 3, 3],
    strides=[4, 2, 2, 2],
    num_attention_heads=[1, 2, 3, 4],
    mlp_ratios=[4, 4, 4, 4],
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    classifier_dropout_prob=0.0,
    drop_path_rate=0.0,
    layer_norm_eps=1e-6,
    decoder_hidden_size=16,
    num_labels=5,
)
DAFORMER_TINY = {"in_channels": [8, 16, 24, 32], "embed_dims": [16, 16, 16, 16], "channels": 16,
                 "num_classes": 5, "dilations": [1, 6, 12, 18], "dropout_ratio": 0.1}

# LayerNorm eps of the ORIGINAL SegFormer (NVlabs mix_transformer.py, also DAFormer's copy):
#   OverlapPatchEmbed.norm = nn.LayerNorm(embed_dim)            -> 1e-5
#   Block.norm1 / Block.norm2 = norm_layer(dim), norm_layer = partial(nn.LayerNorm, eps=1e-6) -> 1e-6
#   Attention.norm (after the sr conv) = nn.LayerNorm(dim)       -> 1e-5
#   MixVisionTransformer.norm1..norm4 = norm_layer(embed_dims[i]) -> 1e-6
# What transformers does (checked in the sources of 5.0.0 and 5.24.0; 4.x is identical to 5.0.0):
# EVERY LayerNorm is built as `nn.LayerNorm(hidden_size)`, i.e. torch's default eps 1e-5, and
# `config.layer_norm_eps` is never read by modeling_segformer.py. So not only the four stage
# norms but also the block norms (layer_norm_1/2 resp. layernorm_before/after) differ from the
# original; `set_original_layernorm_eps_` below sets all of them explicitly to the values above.
MIT_EPS = {"patch_embed_norm": 1e-5, "block_norm1_norm2": 1e-6, "attn_norm": 1e-5, "stage_norm": 1e-6}
BN_EPS = 1e-5  # nn.BatchNorm2d default == mmcv BN default

MIT_FULL = {
    # name: (hidden_sizes, depths, decoder_hidden_size used by the official SegFormer heads)
    "b0": ([32, 64, 160, 256], [2, 2, 2, 2], 256),
    "b1": ([64, 128, 320, 512], [2, 2, 2, 2], 256),
    "b2": ([64, 128, 320, 512], [3, 4, 6, 3], 768),
    "b3": ([64, 128, 320, 512], [3, 4, 18, 3], 768),
    "b4": ([64, 128, 320, 512], [3, 8, 27, 3], 768),
    "b5": ([64, 128, 320, 512], [3, 6, 40, 3], 768),
}
MIT_FULL_COMMON = dict(num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1], mlp_ratios=[4, 4, 4, 4],
                       patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2])


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def randomize_norms_and_biases_(modules):
    """Make eval-mode normalisation non-trivial and biases non-zero (`modules`: an iterable).

    Freshly initialised BN (weight 1, bias 0, mean 0, var 1) and LN (1, 0) are close to identity
    maps, so a loader that silently drops them would still pass; random values make every
    tensor matter. Weights are left as initialised.
    """
    for m in modules:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        elif isinstance(m, nn.LayerNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.normal_(0.0, 0.1)


def torch_default_init_(modules):
    """Re-initialise Linear/Conv2d weights with torch's default (kaiming-uniform) init.

    transformers' `_init_weights` draws them from N(0, 0.02). In a model this small that makes
    q.k logits ~1e-3, i.e. an almost uniform attention, and the fixture would hardly notice a
    wrong head split or a swapped q/k in the Rust port. torch's default init gives O(1) logits.
    """
    for m in modules:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()


def tensor_for_saving(t):
    """Own, contiguous copy (no storage shared with other tensors); floats as float32.

    Integer tensors (BN `num_batches_tracked`, int64) keep their dtype, as in real checkpoints.
    """
    t = t.detach().cpu()
    if t.is_floating_point():
        t = t.to(torch.float32)
    return t.contiguous().clone()


def add_prefixed(dst, prefix, sd):
    for k, v in sd.items():
        key = prefix + k
        assert key not in dst, f"duplicate key {key}"
        dst[key] = tensor_for_saving(v)


def key_shape_list(sd):
    return [[k, list(v.shape)] for k, v in sd.items()]


def n_params(module):
    return int(sum(p.numel() for p in module.parameters()))


def check_close(name, got, want, tol=1e-4):
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert err <= tol * scale, f"{name}: max abs diff {err:.3e} (scale {scale:.3e})"
    return err


# ---------------------------------------------------------------------------------------------
# A. ResNet (torchvision blocks) + DeepLabV2 head (DAFormer DLV2Head over mmseg ASPPModule)
# ---------------------------------------------------------------------------------------------

class TinyResNet(ResNet):
    """torchvision ResNet with configurable widths, optional mmseg ResNetV1c deep stem, no avgpool/fc.

    Mirrors torchvision's ResNet.__init__ (0.26) line by line, except for the widths. Blocks are
    built by torchvision's own `_make_layer`, so block structure, strides, dilations (incl. the
    first dilated block using the previous dilation, which equals mmseg's contract_dilation=True)
    and downsample layout are torchvision's.
    """

    def __init__(self, block, layers, widths, stem_width, replace_stride_with_dilation=None, deep_stem=False):
        # Skip ResNet.__init__ on purpose: it hard-codes 64..512 widths and adds avgpool/fc.
        nn.Module.__init__(self)
        norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer

        self.inplanes = stem_width
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(f"replace_stride_with_dilation should be a 3-element list, got {replace_stride_with_dilation}")
        self.groups = 1
        self.base_width = 64
        self.deep_stem = deep_stem
        if deep_stem:
            # mmseg ResNetV1c stem: keys stem.0/1 (conv/BN), stem.3/4, stem.6/7; ReLUs at 2, 5, 8.
            half = stem_width // 2
            self.stem = nn.Sequential(
                nn.Conv2d(3, half, kernel_size=3, stride=2, padding=1, bias=False),
                norm_layer(half),
                nn.ReLU(inplace=True),
                nn.Conv2d(half, half, kernel_size=3, stride=1, padding=1, bias=False),
                norm_layer(half),
                nn.ReLU(inplace=True),
                nn.Conv2d(half, stem_width, kernel_size=3, stride=1, padding=1, bias=False),
                norm_layer(stem_width),
                nn.ReLU(inplace=True),
            )
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = norm_layer(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2, dilate=replace_stride_with_dilation[2])

        # Same init as torchvision (zero_init_residual=False).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs


class ConvOnly(nn.Module):
    """mmcv ConvModule with norm_cfg=None, act_cfg=None: just `conv` (bias='auto' -> bias=True)."""

    def __init__(self, cin, cout, kernel_size, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation, bias=True)

    def forward(self, x):
        return self.conv(x)


class DLV2Head(nn.Module):
    """DAFormer's DLV2Head: mmseg ASPPModule without norm/act, branch outputs summed.

    mmseg's ASPPModule is an nn.ModuleList, so its keys are `aspp_modules.{i}.conv.*`. The head
    deletes BaseDecodeHead's conv_seg, so no other tensors exist.
    """

    def __init__(self, in_channels, num_classes, dilations=(6, 12, 18, 24)):
        super().__init__()
        self.aspp_modules = nn.ModuleList(
            [ConvOnly(in_channels, num_classes, 1 if d == 1 else 3, padding=0 if d == 1 else d, dilation=d)
             for d in dilations])

    def forward(self, x):
        out = self.aspp_modules[0](x)
        for m in self.aspp_modules[1:]:
            out = out + m(x)
        return out


class DeepLabV2(nn.Module):
    """mmseg EncoderDecoder layout: `backbone.*`, `decode_head.*`; the head reads the last stage."""

    def __init__(self, backbone, decode_head):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head

    def forward(self, x):
        return self.decode_head(self.backbone(x)[-1])


def make_resnet_fixtures(outdir):
    torch.manual_seed(0)
    x = torch.randn(*RES_INPUT_SHAPE)
    blocks = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}

    models = {}
    for name, cfg in RESNET_TINY.items():
        m = TinyResNet(blocks[cfg["block"]], cfg["layers"], cfg["widths"], cfg["stem_width"],
                       cfg["replace_stride_with_dilation"], cfg["deep_stem"])
        randomize_norms_and_biases_(m.modules())
        models[name] = m.eval()

    head = DLV2Head(DLV2_TINY["in_channels"], DLV2_TINY["num_classes"], tuple(DLV2_TINY["dilations"]))
    randomize_norms_and_biases_(head.modules())  # only the conv biases here
    # Same backbone object (and weights) as `bottleneck_os8`.
    seg = DeepLabV2(models["bottleneck_os8"], head).eval()

    tensors = {"input": x}
    for name, m in models.items():
        outs = m(x)
        for i, o in enumerate(outs):
            tensors[f"{name}.layer{i + 1}"] = o
    tensors["deeplabv2.logits"] = seg(x)

    # Shape checks (documented in the brief): basic /4,/8,/16,/32; os8 keeps 1/8 from layer2 on.
    exp = {
        "basic.layer1": (1, 8, 16, 12), "basic.layer2": (1, 16, 8, 6),
        "basic.layer3": (1, 32, 4, 3), "basic.layer4": (1, 64, 2, 2),
        "bottleneck_os8.layer1": (1, 16, 16, 12), "bottleneck_os8.layer2": (1, 32, 8, 6),
        "bottleneck_os8.layer3": (1, 64, 8, 6), "bottleneck_os8.layer4": (1, 128, 8, 6),
        "deeplabv2.logits": (1, 5, 8, 6),
    }
    for k, s in exp.items():
        assert tuple(tensors[k].shape) == s, f"{k}: {tuple(tensors[k].shape)} != {s}"

    ckpt = {}
    add_prefixed(ckpt, "basic.", models["basic"].state_dict())
    add_prefixed(ckpt, "bottleneck_os8.", models["bottleneck_os8"].state_dict())
    add_prefixed(ckpt, "deeplabv2.", seg.state_dict())  # deeplabv2.backbone.*, deeplabv2.decode_head.*
    for key in ("bottleneck_os8.stem.0.weight", "bottleneck_os8.stem.7.running_var",
                "deeplabv2.backbone.layer3.0.downsample.0.weight",
                "deeplabv2.decode_head.aspp_modules.3.conv.bias", "basic.conv1.weight",
                "basic.layer1.0.bn1.num_batches_tracked"):
        assert key in ckpt, key
    assert not any(k.startswith("bottleneck_os8.conv1") for k in ckpt)

    torch.save(ckpt, os.path.join(outdir, "resnet.pth"))
    save_file({k: tensor_for_saving(v) for k, v in tensors.items()}, os.path.join(outdir, "resnet.safetensors"))
    return tensors


# ---------------------------------------------------------------------------------------------
# B. MiT / SegFormer (transformers) -> original layout; DAFormer head
# ---------------------------------------------------------------------------------------------

def _get(obj, *paths, optional=False):
    """First existing dotted attribute path. Lets one converter serve both transformers layouts:
    4.x/early 5.x (`encoder.block.i.j.attention.self.query`, ...) and the refactored 5.x one
    (`stages.i.blocks.j.attention.q_proj`, ...)."""
    for path in paths:
        cur = obj
        ok = True
        for part in path.split("."):
            if hasattr(cur, part):
                cur = getattr(cur, part)
            else:
                ok = False
                break
        if ok:
            return cur
    if optional:
        return None
    raise AttributeError(f"{type(obj).__name__} has none of {paths}")


def segformer_parts(hf_model):
    """List of (section, original_name, module_or_(k,v), layernorm_eps_or_None).

    section is "backbone" or "decode_head"; original names have no section prefix. Layout of the
    original (NVlabs SegFormer / mmseg / DAFormer) checkpoints, cross-checked against
    transformers' convert_segformer_original_to_pytorch.py and 5.x conversion_mapping.py.
    """
    base = hf_model if isinstance(hf_model, SegformerModel) else hf_model.segformer
    if hasattr(base, "stages"):  # refactored layout (e.g. transformers 5.24)
        stages = [(st.patch_embeddings, st.blocks, st.layer_norm) for st in base.stages]
    else:  # transformers 4.x / 5.0 layout
        enc = base.encoder
        stages = list(zip(enc.patch_embeddings, enc.block, enc.layer_norm))

    parts = []
    for i, (patch, blocks, stage_norm) in enumerate(stages, start=1):
        parts.append(("backbone", f"patch_embed{i}.proj", patch.proj, None))
        parts.append(("backbone", f"patch_embed{i}.norm", patch.layer_norm, MIT_EPS["patch_embed_norm"]))
        for j, blk in enumerate(blocks):
            b = f"block{i}.{j}"
            parts.append(("backbone", f"{b}.norm1", _get(blk, "layernorm_before", "layer_norm_1"),
                          MIT_EPS["block_norm1_norm2"]))
            parts.append(("backbone", f"{b}.attn.q", _get(blk, "attention.q_proj", "attention.self.query"), None))
            k = _get(blk, "attention.k_proj", "attention.self.key")
            v = _get(blk, "attention.v_proj", "attention.self.value")
            parts.append(("backbone", f"{b}.attn.kv", (k, v), None))
            parts.append(("backbone", f"{b}.attn.proj", _get(blk, "attention.o_proj", "attention.output.dense"), None))
            sr = _get(blk, "attention.sequence_reduction.sequence_reduction", "attention.self.sr", optional=True)
            if sr is not None:
                parts.append(("backbone", f"{b}.attn.sr", sr, None))
                parts.append(("backbone", f"{b}.attn.norm",
                              _get(blk, "attention.sequence_reduction.layer_norm", "attention.self.layer_norm"),
                              MIT_EPS["attn_norm"]))
            parts.append(("backbone", f"{b}.norm2", _get(blk, "layernorm_after", "layer_norm_2"),
                          MIT_EPS["block_norm1_norm2"]))
            parts.append(("backbone", f"{b}.mlp.fc1", _get(blk, "mlp.fc1", "mlp.dense1"), None))
            parts.append(("backbone", f"{b}.mlp.dwconv.dwconv", _get(blk, "mlp.dwconv.dwconv"), None))
            parts.append(("backbone", f"{b}.mlp.fc2", _get(blk, "mlp.fc2", "mlp.dense2"), None))
        parts.append(("backbone", f"norm{i}", stage_norm, MIT_EPS["stage_norm"]))

    head = getattr(hf_model, "decode_head", None) if not isinstance(hf_model, SegformerModel) else None
    if head is not None:
        for k_idx, mlp in enumerate(_get(head, "linear_projections", "linear_c"), start=1):
            parts.append(("decode_head", f"linear_c{k_idx}.proj", mlp.proj, None))
        parts.append(("decode_head", "linear_fuse.conv", head.linear_fuse, None))
        parts.append(("decode_head", "linear_fuse.bn", head.batch_norm, None))
        parts.append(("decode_head", "linear_pred", head.classifier, None))
    return parts


def segformer_modules_in_original_order(hf_model):
    """All parameter-holding modules of the model, in original-layout order (k before v).

    Completeness is guaranteed by the every-key-used-once assertion of the converter."""
    mods = []
    for _, _, mod, _ in segformer_parts(hf_model):
        mods.extend(mod if isinstance(mod, tuple) else (mod,))
    return mods


def set_original_layernorm_eps_(hf_model):
    """Give every transformers LayerNorm the eps of its original counterpart (see MIT_EPS)."""
    covered = set()
    for _, name, mod, eps in segformer_parts(hf_model):
        if eps is not None:
            assert isinstance(mod, nn.LayerNorm), f"{name}: {type(mod)}"
            mod.eps = eps
            covered.add(id(mod))
    all_ln = [n for n, m in hf_model.named_modules() if isinstance(m, nn.LayerNorm)]
    missed = [n for n, m in hf_model.named_modules() if isinstance(m, nn.LayerNorm) and id(m) not in covered]
    assert not missed and all_ln, f"LayerNorms without an eps decision: {missed}"


def convert_segformer_to_original(hf_model):
    """transformers state dict -> (backbone_sd, decode_head_sd) in the original layout, unprefixed.

    Asserts that every transformers state-dict entry is used exactly once.
    """
    module_name = {id(m): n for n, m in hf_model.named_modules()}
    used = collections.Counter()
    out = {"backbone": {}, "decode_head": {}}
    for section, name, mod, _ in segformer_parts(hf_model):
        dst = out[section]
        if isinstance(mod, tuple):
            # Original Attention.kv = Linear(C, 2C); forward splits its output as
            # reshape(B, N, 2, heads, C/heads) -> rows [0, C) are keys, [C, 2C) are values.
            k, v = mod
            for m in (k, v):
                assert set(m.state_dict().keys()) == {"weight", "bias"}, module_name[id(m)]
                for local in m.state_dict():
                    used[f"{module_name[id(m)]}.{local}"] += 1
            dst[f"{name}.weight"] = torch.cat([k.weight, v.weight], dim=0)
            dst[f"{name}.bias"] = torch.cat([k.bias, v.bias], dim=0)
        else:
            for local, t in mod.state_dict().items():
                dst[f"{name}.{local}"] = t
                used[f"{module_name[id(mod)]}.{local}"] += 1
    hf_keys = set(hf_model.state_dict().keys())
    twice = sorted(k for k, c in used.items() if c != 1)
    missing = sorted(hf_keys - set(used))
    unknown = sorted(set(used) - hf_keys)
    assert not twice and not missing and not unknown, \
        f"key mapping broken: used!=1: {twice[:5]}, unmapped: {missing[:5]}, not in state_dict: {unknown[:5]}"
    return out["backbone"], out["decode_head"]


def mit_reference_forward(sd, x, cfg):
    """Plain-functional copy of the ORIGINAL mix_transformer.py forward, on original-layout keys.

    Only used to validate the converter (and the eps fix) against transformers' outputs.
    """
    outs = []
    n = x.shape[0]
    for i in range(1, cfg["num_encoder_blocks"] + 1):
        p = f"patch_embed{i}."
        w = sd[p + "proj.weight"]
        x = F.conv2d(x, w, sd[p + "proj.bias"], stride=cfg["strides"][i - 1], padding=w.shape[-1] // 2)
        _, c, h, wd = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = F.layer_norm(t, (c,), sd[p + "norm.weight"], sd[p + "norm.bias"], MIT_EPS["patch_embed_norm"])
        heads = cfg["num_attention_heads"][i - 1]
        hd = c // heads
        sr = cfg["sr_ratios"][i - 1]
        tokens = t.shape[1]
        for j in range(cfg["depths"][i - 1]):
            b = f"block{i}.{j}."
            y = F.layer_norm(t, (c,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], MIT_EPS["block_norm1_norm2"])
            q = F.linear(y, sd[b + "attn.q.weight"], sd[b + "attn.q.bias"]).reshape(n, tokens, heads, hd)
            q = q.permute(0, 2, 1, 3)
            if sr > 1:
                y_ = y.permute(0, 2, 1).reshape(n, c, h, wd)
                y_ = F.conv2d(y_, sd[b + "attn.sr.weight"], sd[b + "attn.sr.bias"], stride=sr)
                y_ = y_.reshape(n, c, -1).permute(0, 2, 1)
                y_ = F.layer_norm(y_, (c,), sd[b + "attn.norm.weight"], sd[b + "attn.norm.bias"], MIT_EPS["attn_norm"])
            else:
                y_ = y
            kv = F.linear(y_, sd[b + "attn.kv.weight"], sd[b + "attn.kv.bias"])
            kv = kv.reshape(n, -1, 2, heads, hd).permute(2, 0, 3, 1, 4)
            k, v = kv[0], kv[1]
            attn = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
            attn = attn.softmax(dim=-1)
            o = (attn @ v).transpose(1, 2).reshape(n, tokens, c)
            t = t + F.linear(o, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])

            y = F.layer_norm(t, (c,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], MIT_EPS["block_norm1_norm2"])
            y = F.linear(y, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])
            hidden = y.shape[-1]
            y = y.transpose(1, 2).reshape(n, hidden, h, wd)
            y = F.conv2d(y, sd[b + "mlp.dwconv.dwconv.weight"], sd[b + "mlp.dwconv.dwconv.bias"],
                         padding=1, groups=hidden)
            y = F.gelu(y.flatten(2).transpose(1, 2))  # nn.GELU() (exact erf form) in the original
            t = t + F.linear(y, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        t = F.layer_norm(t, (c,), sd[f"norm{i}.weight"], sd[f"norm{i}.bias"], MIT_EPS["stage_norm"])
        x = t.reshape(n, h, wd, c).permute(0, 3, 1, 2).contiguous()
        outs.append(x)
    return outs


def segformer_head_reference(sd, feats):
    """Functional copy of mmseg SegFormerHead.forward on original-layout keys."""
    n = feats[0].shape[0]
    size = feats[0].shape[2:]
    embedded = []
    for k, f in enumerate(feats, start=1):
        e = F.linear(f.flatten(2).transpose(1, 2), sd[f"linear_c{k}.proj.weight"], sd[f"linear_c{k}.proj.bias"])
        e = e.permute(0, 2, 1).reshape(n, -1, f.shape[2], f.shape[3])
        if e.shape[2:] != size:
            e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
        embedded.append(e)
    x = torch.cat(embedded[::-1], dim=1)  # original: cat([_c4, _c3, _c2, _c1])
    x = F.conv2d(x, sd["linear_fuse.conv.weight"])
    x = F.batch_norm(x, sd["linear_fuse.bn.running_mean"], sd["linear_fuse.bn.running_var"],
                     sd["linear_fuse.bn.weight"], sd["linear_fuse.bn.bias"], training=False, eps=BN_EPS)
    x = F.relu(x)
    return F.conv2d(x, sd["linear_pred.weight"], sd["linear_pred.bias"])


# --- DAFormer head, mirroring lhoyer/DAFormer mmseg/models/decode_heads/daformer_head.py ---------

class ConvModule(nn.Module):
    """mmcv ConvModule(norm_cfg=BN, act_cfg=ReLU): conv (bias='auto' -> False with a norm) -> bn -> ReLU."""

    def __init__(self, cin, cout, kernel_size, padding=0, dilation=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv DepthwiseSeparableConvModule with dw_norm_cfg/dw_act_cfg='default' (= BN, ReLU)."""

    def __init__(self, cin, cout, kernel_size, padding, dilation):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, kernel_size, padding=padding, dilation=dilation, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class ASPPWrapper(nn.Module):
    """DAFormer ASPPWrapper(sep=True, pool=False, context_cfg=None).

    mmseg DepthwiseSeparableASPPModule: dilation 1 -> 1x1 ConvModule, others -> depthwise-separable
    3x3 with padding=dilation. It is an nn.ModuleList, hence `aspp_modules.{i}.*`.
    """

    def __init__(self, in_channels, channels, dilations):
        super().__init__()
        self.aspp_modules = nn.ModuleList([
            ConvModule(in_channels, channels, 1) if d == 1
            else DepthwiseSeparableConvModule(in_channels, channels, 3, padding=d, dilation=d)
            for d in dilations])
        self.bottleneck = ConvModule(len(dilations) * channels, channels, 3, padding=1)

    def forward(self, x):
        return self.bottleneck(torch.cat([m(x) for m in self.aspp_modules], dim=1))


class MLP(nn.Module):
    """mmseg segformer_head.MLP: [n, c, h, w] -> [n, h*w, embed]."""

    def __init__(self, input_dim, embed_dim):
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x):
        return self.proj(x.flatten(2).transpose(1, 2).contiguous())


class DAFormerHead(nn.Module):
    """DAFormer head with its mmseg parameter names (embed_cfg=mlp, fusion_cfg=aspp sep, no pool)."""

    def __init__(self, in_channels, embed_dims, channels, num_classes, dilations=(1, 6, 12, 18), dropout_ratio=0.1):
        super().__init__()
        self.embed_layers = nn.ModuleDict(
            {str(i): MLP(c, e) for i, (c, e) in enumerate(zip(in_channels, embed_dims))})
        self.fuse_layer = ASPPWrapper(sum(embed_dims), channels, dilations)
        self.dropout = nn.Dropout2d(dropout_ratio)  # BaseDecodeHead.cls_seg: dropout then conv_seg
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, feats):
        n = feats[-1].shape[0]
        os_size = feats[0].shape[2:]
        embedded = []
        for i, f in enumerate(feats):
            e = self.embed_layers[str(i)](f)
            e = e.permute(0, 2, 1).contiguous().reshape(n, -1, f.shape[2], f.shape[3])
            if e.shape[2:] != os_size:
                e = F.interpolate(e, size=os_size, mode="bilinear", align_corners=False)
            embedded.append(e)
        x = self.fuse_layer(torch.cat(embedded, dim=1))  # order 0, 1, 2, 3 (not reversed)
        return self.conv_seg(self.dropout(x))


def make_mit_fixtures(outdir):
    torch.manual_seed(1)
    x = torch.randn(*MIT_INPUT_SHAPE)

    # Eager attention: plain softmax(QK^T)V, identical maths to the original (only matters for the
    # refactored 5.x layout, which otherwise picks SDPA; older layouts are always eager).
    config = SegformerConfig(**MIT_TINY, attn_implementation="eager")
    model = SegformerForSemanticSegmentation(config)
    # Walk the modules in ORIGINAL-layout order (not model.modules(), whose order differs between
    # transformers layouts) so that the random weights do not depend on the transformers version.
    modules = segformer_modules_in_original_order(model)
    torch_default_init_(modules)
    randomize_norms_and_biases_(modules)
    set_original_layernorm_eps_(model)
    model.eval()

    out = model(pixel_values=x, output_hidden_states=True)
    hs = list(out.hidden_states)
    if len(hs) == MIT_TINY["num_encoder_blocks"] + 1:  # defensive: an initial-embedding entry
        hs = hs[1:]
    assert len(hs) == 4, f"expected 4 hidden states, got {len(hs)}"
    h, w = MIT_INPUT_SHAPE[2], MIT_INPUT_SHAPE[3]
    exp_sizes = [(h // 4, w // 4), (h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    for i, f in enumerate(hs):
        want = (1, MIT_TINY["hidden_sizes"][i]) + exp_sizes[i]
        assert tuple(f.shape) == want, f"stage{i + 1}: {tuple(f.shape)} != {want} (hidden_states must be NCHW)"
    logits = out.logits
    assert tuple(logits.shape) == (1, MIT_TINY["num_labels"], h // 4, w // 4), tuple(logits.shape)

    backbone_sd, head_sd = convert_segformer_to_original(model)
    assert len(head_sd) == 4 * 2 + 1 + 5 + 2, sorted(head_sd)

    # Validate the converted weights with the original maths. (This cannot catch eps mistakes:
    # 1e-5 vs 1e-6 moves these outputs by ~1e-6, far below the tolerance.)
    ref_feats = mit_reference_forward(backbone_sd, x, MIT_TINY)
    errs = [check_close(f"stage{i + 1}", hs[i], ref_feats[i]) for i in range(4)]
    errs.append(check_close("segformer.logits", logits, segformer_head_reference(head_sd, hs)))
    print(f"  converter check vs functional original MiT/SegFormerHead: max abs diff {max(errs):.2e}")

    daf = DAFormerHead(DAFORMER_TINY["in_channels"], DAFORMER_TINY["embed_dims"], DAFORMER_TINY["channels"],
                       DAFORMER_TINY["num_classes"], tuple(DAFORMER_TINY["dilations"]), DAFORMER_TINY["dropout_ratio"])
    randomize_norms_and_biases_(daf.modules())
    daf.eval()
    daf_logits = daf(hs)
    assert tuple(daf_logits.shape) == tuple(logits.shape), tuple(daf_logits.shape)
    daf_sd = daf.state_dict()
    for key in ("embed_layers.0.proj.weight", "fuse_layer.aspp_modules.0.conv.weight",
                "fuse_layer.aspp_modules.0.bn.running_var",
                "fuse_layer.aspp_modules.1.depthwise_conv.conv.weight",
                "fuse_layer.aspp_modules.1.depthwise_conv.bn.running_mean",
                "fuse_layer.aspp_modules.3.pointwise_conv.bn.num_batches_tracked",
                "fuse_layer.bottleneck.conv.weight", "conv_seg.weight", "conv_seg.bias"):
        assert key in daf_sd, key

    ckpt = {}
    add_prefixed(ckpt, "segformer.backbone.", backbone_sd)
    add_prefixed(ckpt, "segformer.decode_head.", head_sd)
    add_prefixed(ckpt, "daformer.backbone.", backbone_sd)
    add_prefixed(ckpt, "daformer.decode_head.", daf_sd)
    torch.save(ckpt, os.path.join(outdir, "mit.pth"))

    # Official mit_b*.pth files: unprefixed backbone + ImageNet classifier `head.*`.
    bare = {}
    add_prefixed(bare, "", backbone_sd)
    bare["head.weight"] = tensor_for_saving(torch.randn(1000, MIT_TINY["hidden_sizes"][-1]) * 0.02)
    bare["head.bias"] = tensor_for_saving(torch.randn(1000) * 0.1)
    torch.save(bare, os.path.join(outdir, "mit_backbone.pth"))

    tensors = {"input": x}
    for i, f in enumerate(hs):
        tensors[f"stage{i + 1}"] = f
    tensors["segformer.logits"] = logits
    tensors["daformer.logits"] = daf_logits
    save_file({k: tensor_for_saving(v) for k, v in tensors.items()}, os.path.join(outdir, "mit.safetensors"))
    return tensors, key_shape_list(backbone_sd), model.config


# ---------------------------------------------------------------------------------------------
# C. reference.json: full-size parameter counts and key layouts
# ---------------------------------------------------------------------------------------------

def make_reference(outdir, mit_tiny_keys, mit_tiny_config):
    from torchvision.models import (ResNet18_Weights, ResNet50_Weights, ResNet101_Weights,
                                    resnet18, resnet50, resnet101)

    counts, specs = {}, {}
    keys = {}
    for name, ctor, weights in (("resnet18", resnet18, ResNet18_Weights),
                                ("resnet50", resnet50, ResNet50_Weights),
                                ("resnet101", resnet101, ResNet101_Weights)):
        m = ctor()  # random init, 1000 classes
        total = n_params(m)
        # torchvision's own metadata, as a sanity check of the counting.
        assert total == weights.IMAGENET1K_V1.meta["num_params"], (name, total)
        fc = n_params(m.fc)
        counts[f"{name}_backbone"] = total - fc
        counts[f"{name}_with_fc"] = total
        specs[f"{name}_backbone"] = f"torchvision {name}() parameters excluding fc.* (buffers not counted)"
        specs[f"{name}_with_fc"] = f"torchvision {name}() parameters including fc (1000 classes)"
        if name == "resnet101":
            sd = {k: v for k, v in m.state_dict().items() if not k.startswith("fc.")}
            keys["resnet101"] = key_shape_list(sd)
        del m

    for name, (hidden, depths, dec) in MIT_FULL.items():
        cfg_kwargs = dict(hidden_sizes=hidden, depths=depths, decoder_hidden_size=dec, num_labels=19,
                          **MIT_FULL_COMMON)
        if name in ("b0", "b5"):
            m = SegformerForSemanticSegmentation(SegformerConfig(**cfg_kwargs))
            counts[f"mit_{name}_encoder"] = n_params(m.segformer)
            counts[f"segformer_head_{name}"] = n_params(m.decode_head)
            specs[f"segformer_head_{name}"] = (f"transformers SegformerDecodeHead, in {hidden}, decoder_hidden_size "
                                               f"{dec}, 19 classes (parameters only, BN buffers not counted)")
            if name == "b5":
                backbone_sd, _ = convert_segformer_to_original(m)
                keys["mit_b5"] = key_shape_list(backbone_sd)
        else:
            m = SegformerModel(SegformerConfig(**cfg_kwargs))
            counts[f"mit_{name}_encoder"] = n_params(m)
        specs[f"mit_{name}_encoder"] = (f"MiT-{name.upper()} encoder, hidden {hidden}, depths {depths}, "
                                        f"heads [1,2,5,8], sr [8,4,2,1] (no ImageNet head)")
        del m

    daf = DAFormerHead([64, 128, 320, 512], [256] * 4, 256, 19)
    counts["daformer_head_b5"] = n_params(daf)
    specs["daformer_head_b5"] = ("DAFormerHead, in [64,128,320,512], embed 256 each, channels 256, "
                                 "aspp sep dilations (1,6,12,18), 19 classes")
    dlv2 = DLV2Head(2048, 19, (6, 12, 18, 24))
    counts["deeplabv2_head"] = n_params(dlv2)
    specs["deeplabv2_head"] = "DLV2Head (4 biased 3x3 convs, dilations 6/12/18/24), 2048 in, 19 classes"

    ref = {
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "transformers": transformers.__version__},
        "param_counts": counts,
        "param_count_specs": specs,
        "keys": keys,
        "tiny_configs": {
            "resnet": {"input_shape": RES_INPUT_SHAPE, **RESNET_TINY,
                       "deeplabv2": {"backbone": "bottleneck_os8", **DLV2_TINY}},
            "mit": {"input_shape": MIT_INPUT_SHAPE, "segformer_config": MIT_TINY,
                    "layer_norm_eps": MIT_EPS, "batch_norm_eps": BN_EPS,
                    "attn_implementation": getattr(mit_tiny_config, "_attn_implementation", None),
                    "backbone_keys": mit_tiny_keys},
            "daformer_head": DAFORMER_TINY,
        },
        "fixture_layout": {
            "resnet.pth": "basic.<torchvision keys>, bottleneck_os8.<keys>, deeplabv2.backbone.<keys>, "
                          "deeplabv2.decode_head.aspp_modules.{i}.conv.{weight,bias}",
            "mit.pth": "segformer.backbone.<original MiT keys>, segformer.decode_head.<mmseg SegFormerHead keys>, "
                       "daformer.backbone.<same>, daformer.decode_head.<DAFormerHead keys>",
            "mit_backbone.pth": "<original MiT keys>, head.weight [1000,C4], head.bias [1000]",
            "dtypes": "float32 everywhere except BN num_batches_tracked (int64, as in real checkpoints)",
        },
    }
    path = os.path.join(outdir, "reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    return ref


def main():
    if len(sys.argv) != 2:
        print("usage: python3 scripts/make_model_fixtures.py OUTDIR", file=sys.stderr)
        sys.exit(2)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, transformers {transformers.__version__}")

    with torch.no_grad():
        print("A. ResNet fixtures")
        res = make_resnet_fixtures(outdir)
        print("B. MiT / SegFormer / DAFormer fixtures")
        mit, mit_keys, mit_cfg = make_mit_fixtures(outdir)
        print("C. reference.json")
        ref = make_reference(outdir, mit_keys, mit_cfg)

    print("\noutputs (shape, max |x|):")
    for k, v in list(res.items()) + list(mit.items()):
        print(f"  {k:24s} {str(tuple(v.shape)):18s} {v.abs().max().item():.4f}")
    print("\nparam counts:")
    for k, v in ref["param_counts"].items():
        print(f"  {k:24s} {v:,}")
    print(f"\nkeys: resnet101 {len(ref['keys']['resnet101'])}, mit_b5 {len(ref['keys']['mit_b5'])}")
    total = 0
    print("\nfiles:")
    for name in ("resnet.pth", "resnet.safetensors", "mit.pth", "mit_backbone.pth", "mit.safetensors",
                 "reference.json"):
        size = os.path.getsize(os.path.join(outdir, name))
        total += size
        print(f"  {name:20s} {size / 1024:8.1f} KiB")
    print(f"  {'total':20s} {total / 1024:8.1f} KiB")
    if total > 3 * 1024 * 1024:
        print("WARNING: fixtures exceed 3 MB", file=sys.stderr)


if __name__ == "__main__":
    main()
