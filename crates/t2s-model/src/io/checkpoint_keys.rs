//! Renaming of PyTorch checkpoint keys (torchvision, SegFormer `mit_b*.pth`, mmseg / DAFormer
//! segmentors) to t2s parameter paths. Pure string work, so every rule is unit-tested.

/// How the keys of a checkpoint were interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// Prefix removed from every kept key (`state_dict.`, `model.`, a user-given one…).
    pub stripped_prefix: String,
    /// True when the file holds a bare backbone (torchvision / `mit_b*.pth`), false for a
    /// whole segmentor (`backbone.` / `decode_head.` keys).
    pub backbone_only: bool,
}

/// Chooses which keys of a checkpoint to use. With `prefix = Some(p)` only keys starting with
/// `p` are kept. Otherwise: a top-level `state_dict.` is entered (mmseg checkpoints), and of a
/// DAFormer UDA checkpoint (`model.`, `ema_model.`, `imnet_model.`) the student `model.` is
/// taken, as DAFormer evaluates it.
pub fn choose_layout(keys: &[String], prefix: Option<&str>) -> KeyLayout {
    let stripped_prefix = match prefix {
        Some(p) if p.is_empty() || p.ends_with('.') => p.to_string(),
        Some(p) => format!("{p}."),
        None => {
            let mut p = String::new();
            if keys.iter().any(|k| k.starts_with("state_dict.")) {
                p.push_str("state_dict.");
            }
            let under = |q: &str| keys.iter().any(|k| k.starts_with(&format!("{p}{q}")));
            if under("model.backbone.") {
                p.push_str("model.");
            }
            p
        }
    };
    let backbone_only = !keys.iter().any(|k| k.starts_with(&format!("{stripped_prefix}backbone.")));
    KeyLayout { stripped_prefix, backbone_only }
}

/// Network family the keys are mapped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    ResNet,
    Mit,
}

/// Classifier weights of ImageNet checkpoints (torchvision `fc`, SegFormer `head`): never loaded,
/// reported as ignored rather than unexpected.
pub fn is_classifier_key(key: &str) -> bool {
    key.starts_with("backbone.fc.") || key.starts_with("backbone.head.")
}

/// Maps one checkpoint key (after the layout's prefix is removed and, for bare backbones,
/// `backbone.` added) to the t2s parameter path. Returns `None` for bookkeeping tensors that no
/// module holds (`num_batches_tracked`).
pub fn rename_key(key: &str, family: Family) -> Option<String> {
    let mut segs: Vec<String> = key.split('.').map(str::to_string).collect();
    if segs.last().map(String::as_str) == Some("num_batches_tracked") {
        return None;
    }
    if segs.first().map(String::as_str) == Some("backbone") && segs.len() > 1 {
        let rest = segs.split_off(1);
        let rest = match family {
            Family::ResNet => rename_resnet(rest),
            Family::Mit => rename_mit(rest),
        };
        segs.extend(rest);
    } else if segs.first().map(String::as_str) == Some("decode_head") && segs.len() > 2 && segs[1] == "scale_attention" {
        // HRDA's `HRDAHead` holds the scale-attention head (`decode_head.scale_attention.…`),
        // which t2s's segmentor holds beside the decode head.
        segs.remove(0);
    } else if segs.first().map(String::as_str) == Some("decode_head") && segs.len() > 1 {
        // HRDA's `HRDAHead` wraps the single-scale head as `decode_head.head.…`.
        if segs.len() > 2 && segs[1] == "head" {
            segs.remove(1);
        }
        // SegFormer's head: `linear_c{k}` (k = 1..4) is our `linear_c.{k-1}`.
        if let Some(k) = segs[1].strip_prefix("linear_c").and_then(|k| k.parse::<usize>().ok()) {
            if (1..=4).contains(&k) {
                segs.splice(1..2, ["linear_c".to_string(), (k - 1).to_string()]);
            }
        }
    }
    Some(segs.join("."))
}

fn rename_resnet(mut segs: Vec<String>) -> Vec<String> {
    // ResNetV1c deep stem: Sequential(conv, bn, relu, conv, bn, relu, conv, bn, relu).
    if segs.first().map(String::as_str) == Some("stem") && segs.len() > 1 {
        let mapped = match segs[1].as_str() {
            "0" => Some(("0", "conv")),
            "1" => Some(("0", "bn")),
            "3" => Some(("1", "conv")),
            "4" => Some(("1", "bn")),
            "6" => Some(("2", "conv")),
            "7" => Some(("2", "bn")),
            _ => None,
        };
        if let Some((i, part)) = mapped {
            segs.splice(1..2, [i.to_string(), part.to_string()]);
        }
    }
    // Projection shortcut: Sequential(conv, bn).
    if let Some(pos) = segs.iter().position(|s| s == "downsample") {
        if let Some(next) = segs.get_mut(pos + 1) {
            match next.as_str() {
                "0" => *next = "conv".into(),
                "1" => *next = "bn".into(),
                _ => {}
            }
        }
    }
    segs
}

fn rename_mit(mut segs: Vec<String>) -> Vec<String> {
    // Stage-numbered top-level modules become entries of `stages`.
    for (name, field) in [("patch_embed", "patch_embed"), ("block", "blocks"), ("norm", "norm")] {
        if let Some(i) = segs[0].strip_prefix(name).and_then(|i| i.parse::<usize>().ok()) {
            if (1..=4).contains(&i) {
                segs.splice(0..1, ["stages".to_string(), (i - 1).to_string(), field.to_string()]);
                break;
            }
        }
    }
    // Mix-FFN: the original wraps its depth-wise conv in a `DWConv` module (`dwconv.dwconv`).
    if let Some(pos) = segs.windows(3).position(|w| w[0] == "mlp" && w[1] == "dwconv" && w[2] == "dwconv") {
        segs.remove(pos + 2);
    }
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn layouts_are_detected() {
        let tv = keys(&["conv1.weight", "layer1.0.conv1.weight", "fc.weight"]);
        assert_eq!(choose_layout(&tv, None), KeyLayout { stripped_prefix: "".into(), backbone_only: true });
        let mmseg = keys(&["state_dict.backbone.patch_embed1.proj.weight", "state_dict.decode_head.conv_seg.weight", "meta.x"]);
        assert_eq!(choose_layout(&mmseg, None), KeyLayout { stripped_prefix: "state_dict.".into(), backbone_only: false });
        let uda = keys(&["state_dict.model.backbone.a", "state_dict.ema_model.backbone.a", "state_dict.imnet_model.backbone.a"]);
        assert_eq!(choose_layout(&uda, None).stripped_prefix, "state_dict.model.");
        assert_eq!(choose_layout(&uda, Some("state_dict.ema_model")).stripped_prefix, "state_dict.ema_model.");
        assert!(!choose_layout(&uda, Some("state_dict.ema_model")).backbone_only);
    }

    #[test]
    fn resnet_keys() {
        let r = |k| rename_key(k, Family::ResNet);
        assert_eq!(r("backbone.conv1.weight").unwrap(), "backbone.conv1.weight");
        assert_eq!(r("backbone.layer2.0.downsample.0.weight").unwrap(), "backbone.layer2.0.downsample.conv.weight");
        assert_eq!(r("backbone.layer2.0.downsample.1.running_var").unwrap(), "backbone.layer2.0.downsample.bn.running_var");
        assert_eq!(r("backbone.stem.0.weight").unwrap(), "backbone.stem.0.conv.weight");
        assert_eq!(r("backbone.stem.4.bias").unwrap(), "backbone.stem.1.bn.bias");
        assert_eq!(r("backbone.stem.7.running_mean").unwrap(), "backbone.stem.2.bn.running_mean");
        assert_eq!(r("backbone.bn1.num_batches_tracked"), None);
        assert_eq!(r("decode_head.aspp_modules.3.conv.bias").unwrap(), "decode_head.aspp_modules.3.conv.bias");
    }

    #[test]
    fn mit_and_head_keys() {
        let m = |k| rename_key(k, Family::Mit).unwrap();
        assert_eq!(m("backbone.patch_embed1.proj.weight"), "backbone.stages.0.patch_embed.proj.weight");
        assert_eq!(m("backbone.block4.2.attn.kv.weight"), "backbone.stages.3.blocks.2.attn.kv.weight");
        assert_eq!(m("backbone.block2.0.mlp.dwconv.dwconv.bias"), "backbone.stages.1.blocks.0.mlp.dwconv.bias");
        assert_eq!(m("backbone.block2.0.norm1.weight"), "backbone.stages.1.blocks.0.norm1.weight");
        assert_eq!(m("backbone.norm3.bias"), "backbone.stages.2.norm.bias");
        assert_eq!(m("decode_head.linear_c4.proj.weight"), "decode_head.linear_c.3.proj.weight");
        assert_eq!(m("decode_head.linear_fuse.bn.weight"), "decode_head.linear_fuse.bn.weight");
        assert_eq!(
            m("decode_head.fuse_layer.aspp_modules.1.depthwise_conv.conv.weight"),
            "decode_head.fuse_layer.aspp_modules.1.depthwise_conv.conv.weight"
        );
        // HRDA's `HRDAHead`: the wrapped head and the scale attention beside it.
        assert_eq!(m("decode_head.head.fuse_layer.bottleneck.conv.weight"), "decode_head.fuse_layer.bottleneck.conv.weight");
        assert_eq!(m("decode_head.scale_attention.fuse_layer.conv.weight"), "scale_attention.fuse_layer.conv.weight");
        assert_eq!(m("decode_head.scale_attention.conv_seg.bias"), "scale_attention.conv_seg.bias");
        assert!(is_classifier_key("backbone.head.weight"));
        assert!(is_classifier_key("backbone.fc.bias"));
        assert!(!is_classifier_key("decode_head.conv_seg.weight"));
    }
}
