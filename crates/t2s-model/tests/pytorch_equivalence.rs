//! The networks against PyTorch: `scripts/make_model_fixtures.py` built reference modules
//! (torchvision's ResNet blocks, transformers' SegFormer, a plain-PyTorch DAFormer head) with
//! random weights and saved their checkpoints (`fixtures/*.pth`), inputs and outputs
//! (`fixtures/*.safetensors`), and parameter counts and key lists of the full-size networks
//! (`fixtures/reference.json`). These tests load the same checkpoints through the user-facing
//! loader and must reproduce the outputs (relative error under 1e-4).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use t2s_model::io::checkpoint_keys::{rename_key, Family};
use t2s_model::nets::deeplabv2_head::DeepLabV2HeadConfig;
use t2s_model::nets::mit::MitConfig;
use t2s_model::nets::resnet::{BlockKind, ResNetConfig, StemKind};
use t2s_model::nets::segmentor::{BackboneConfig, DecodeHeadConfig};
use t2s_model::{count_trainable, inventory, load_pytorch, Segmentor, SegmentorConfig};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// All float32 tensors of a safetensors fixture.
fn expected(file: &str) -> BTreeMap<String, Tensor<B, 4>> {
    let bytes = std::fs::read(fixture(file)).expect("fixture exists");
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            let s = view.shape();
            (name, Tensor::from_data(TensorData::new(data, [s[0], s[1], s[2], s[3]]), &Default::default()))
        })
        .collect()
}

fn assert_close(name: &str, ours: Tensor<B, 4>, theirs: &Tensor<B, 4>) {
    assert_eq!(ours.dims(), theirs.dims(), "{name}: shape");
    let scale = theirs.clone().abs().max().into_scalar();
    let diff = (ours - theirs.clone()).abs().max().into_scalar();
    let rel = diff / scale.max(1e-12);
    assert!(rel < 1e-4, "{name}: max |diff| {diff:e} relative to max |ref| {scale:e} = {rel:e}");
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap()
}

fn resnet_cfg(layers: [usize; 4], block: BlockKind, stem: StemKind, stem_width: usize, base_width: usize, os: usize) -> ResNetConfig {
    ResNetConfig { depth: 0, stem, stem_width, base_width, output_stride: os, layers: Some(layers), block: Some(block), widths: None }
}

fn segmentor(backbone: BackboneConfig, decode_head: DecodeHeadConfig) -> (SegmentorConfig, Segmentor<B>) {
    let cfg = SegmentorConfig { backbone, decode_head, num_classes: 5, projection: None, hrda: None };
    let net = cfg.init::<B>(&Default::default()).expect("network builds");
    (cfg, net)
}

fn dlv2() -> DecodeHeadConfig {
    DecodeHeadConfig::Deeplabv2(DeepLabV2HeadConfig::default())
}

fn tiny_mit() -> MitConfig {
    let mut m = MitConfig::b(0).unwrap();
    m.embed_dims = [8, 16, 24, 32];
    m.depths = [2, 1, 1, 2];
    m.num_heads = [1, 2, 3, 4];
    m.sr_ratios = [8, 4, 2, 1];
    m
}

#[test]
fn resnet_basic_torchvision_layout() {
    let exp = expected("resnet.safetensors");
    let (cfg, mut net) = segmentor(BackboneConfig::Resnet(resnet_cfg([2; 4], BlockKind::Basic, StemKind::Torchvision, 8, 8, 32)), dlv2());
    let report = load_pytorch(&mut net, &cfg, &fixture("resnet.pth"), Some("basic.")).expect("loads");
    assert!(report.backbone_only);
    let feats = net.extract_features(exp["input"].clone());
    for (i, f) in feats.into_iter().enumerate() {
        assert_close(&format!("basic.layer{}", i + 1), f, &exp[&format!("basic.layer{}", i + 1)]);
    }
}

#[test]
fn resnet_v1c_bottleneck_output_stride_8_and_deeplabv2() {
    let exp = expected("resnet.safetensors");
    let backbone = BackboneConfig::Resnet(resnet_cfg([1, 2, 2, 1], BlockKind::Bottleneck, StemKind::Deep, 8, 4, 8));
    let (cfg, mut net) = segmentor(backbone.clone(), dlv2());
    load_pytorch(&mut net, &cfg, &fixture("resnet.pth"), Some("bottleneck_os8.")).expect("backbone loads");
    for (i, f) in net.extract_features(exp["input"].clone()).into_iter().enumerate() {
        assert_close(&format!("bottleneck_os8.layer{}", i + 1), f, &exp[&format!("bottleneck_os8.layer{}", i + 1)]);
    }
    // The whole mmseg-layout segmentor (backbone. + decode_head.).
    let (cfg, mut net) = segmentor(backbone, dlv2());
    let report = load_pytorch(&mut net, &cfg, &fixture("resnet.pth"), Some("deeplabv2.")).expect("segmentor loads");
    assert!(!report.backbone_only && report.not_in_file.is_empty() && report.unexpected.is_empty(), "{report}");
    assert_close("deeplabv2.logits", net.forward(exp["input"].clone()).logits, &exp["deeplabv2.logits"]);
}

#[test]
fn mit_with_segformer_head_matches_transformers() {
    let exp = expected("mit.safetensors");
    let mut head = t2s_model::nets::segformer_head::SegFormerHeadConfig::default();
    head.embed_dim = 16;
    let (cfg, mut net) = segmentor(BackboneConfig::Mit(tiny_mit()), DecodeHeadConfig::Segformer(head));
    let report = load_pytorch(&mut net, &cfg, &fixture("mit.pth"), Some("segformer.")).expect("loads");
    assert!(report.not_in_file.is_empty() && report.unexpected.is_empty(), "{report}");
    let out = net.forward(exp["input"].clone());
    for (i, f) in out.features.into_iter().enumerate() {
        assert_close(&format!("stage{}", i + 1), f, &exp[&format!("stage{}", i + 1)]);
    }
    assert_close("segformer.logits", out.logits, &exp["segformer.logits"]);
}

#[test]
fn mit_with_daformer_head_matches_reference() {
    let exp = expected("mit.safetensors");
    let mut head = t2s_model::nets::daformer_head::DaFormerHeadConfig::default();
    head.embed_dim = 16;
    head.channels = 16;
    let (cfg, mut net) = segmentor(BackboneConfig::Mit(tiny_mit()), DecodeHeadConfig::Daformer(head));
    let report = load_pytorch(&mut net, &cfg, &fixture("mit.pth"), Some("daformer.")).expect("loads");
    assert!(report.not_in_file.is_empty() && report.unexpected.is_empty(), "{report}");
    assert_close("daformer.logits", net.forward(exp["input"].clone()).logits, &exp["daformer.logits"]);
}

#[test]
fn bare_mit_backbone_file_loads_and_ignores_the_imagenet_classifier() {
    let exp = expected("mit.safetensors");
    let (cfg, mut net) = segmentor(BackboneConfig::Mit(tiny_mit()), DecodeHeadConfig::Daformer(Default::default()));
    let report = load_pytorch(&mut net, &cfg, &fixture("mit_backbone.pth"), None).expect("loads");
    assert!(report.backbone_only && report.unexpected.is_empty(), "{report}");
    assert_eq!(report.ignored, 2, "head.weight and head.bias");
    assert!(report.not_in_file.iter().all(|p| p.starts_with("decode_head.")), "{report}");
    for (i, f) in net.extract_features(exp["input"].clone()).into_iter().enumerate() {
        assert_close(&format!("stage{}", i + 1), f, &exp[&format!("stage{}", i + 1)]);
    }
}

#[test]
fn wrong_architecture_and_class_count_are_clear_errors() {
    // A ResNet checkpoint offered to a MiT network.
    let (cfg, mut net) = segmentor(BackboneConfig::Mit(tiny_mit()), dlv2());
    let err = load_pytorch(&mut net, &cfg, &fixture("resnet.pth"), Some("basic.")).unwrap_err().to_string();
    assert!(err.contains("resnet.pth") && err.contains("missing") && err.contains("backbone.stages.0"), "{err}");
    // The right backbone but 7 classes instead of 5: the classifier's shape is named.
    let backbone = BackboneConfig::Resnet(resnet_cfg([1, 2, 2, 1], BlockKind::Bottleneck, StemKind::Deep, 8, 4, 8));
    let cfg = SegmentorConfig { backbone, decode_head: dlv2(), num_classes: 7, projection: None, hrda: None };
    let mut net = cfg.init::<B>(&Default::default()).unwrap();
    let err = load_pytorch(&mut net, &cfg, &fixture("resnet.pth"), Some("deeplabv2.")).unwrap_err().to_string();
    assert!(err.contains("decode_head.aspp_modules.0.conv.weight") && err.contains("7 classes"), "{err}");
    // A MiT twice as wide mismatches nearly every tensor: the first eight are listed, then a count.
    let mut wide = tiny_mit();
    wide.embed_dims = [16, 32, 48, 64];
    let (cfg_wide, mut wide_net) = segmentor(BackboneConfig::Mit(wide), DecodeHeadConfig::Segformer(Default::default()));
    let err = load_pytorch(&mut wide_net, &cfg_wide, &fixture("mit.pth"), Some("segformer.")).unwrap_err().to_string();
    let listed: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    let total: usize = err
        .split(" tensors have the wrong shape")
        .next()
        .and_then(|h| h.rsplit(char::is_whitespace).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(total > 9 && listed.len() == 9, "{err}");
    assert_eq!(listed[8], format!("  … and {} more", total - 8), "{err}");
    // Not a checkpoint at all.
    let err = load_pytorch(&mut net, &cfg, &fixture("reference.json"), None).unwrap_err().to_string();
    assert!(err.contains("reference.json") && err.contains("PyTorch"), "{err}");
}

/// Our full-size networks expose exactly the tensors of the PyTorch originals (after the
/// documented renames), with the same shapes (Linear weights are stored transposed in Burn).
fn assert_same_tensors(net: &Segmentor<B>, reference_keys: &serde_json::Value, family: Family) {
    // Burn calls norm affine parameters gamma/beta where PyTorch says weight/bias.
    let torch_name = |p: String| match p.rsplit_once('.') {
        Some((head, "gamma")) => format!("{head}.weight"),
        Some((head, "beta")) => format!("{head}.bias"),
        _ => p,
    };
    let ours: BTreeMap<String, Vec<usize>> =
        inventory::<B, _>(net).into_iter().filter(|e| e.path.starts_with("backbone.")).map(|e| (torch_name(e.path), e.shape)).collect();
    let mut theirs = BTreeMap::new();
    for pair in reference_keys.as_array().unwrap() {
        let key = pair[0].as_str().unwrap();
        let shape: Vec<usize> = pair[1].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        if let Some(name) = rename_key(&format!("backbone.{key}"), family) {
            theirs.insert(name, shape);
        }
    }
    let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(only_ours.is_empty() && only_theirs.is_empty(), "only ours: {only_ours:?}\nonly PyTorch: {only_theirs:?}");
    for (k, s) in &ours {
        let t = &theirs[k];
        let transposed: Vec<usize> = t.iter().rev().copied().collect();
        assert!(s == t || (s.len() == 2 && *s == transposed), "{k}: ours {s:?}, PyTorch {t:?}");
    }
}

#[test]
fn full_size_resnet101_and_mit_b5_match_pytorch_tensor_lists_and_counts() {
    let r = reference();
    let counts = &r["param_counts"];
    let device = Default::default();

    let cfg = SegmentorConfig::preset("deeplabv2-r101").unwrap();
    let net = cfg.init::<B>(&device).unwrap();
    assert_same_tensors(&net, &r["keys"]["resnet101"], Family::ResNet);
    let t2s_model::Backbone::ResNet(backbone) = &net.backbone else { panic!("resnet") };
    assert_eq!(count_trainable::<B, _>(backbone) as u64, counts["resnet101_backbone"].as_u64().unwrap());
    let t2s_model::DecodeHead::DeepLabV2(head) = &net.decode_head else { panic!("dlv2") };
    assert_eq!(count_trainable::<B, _>(head) as u64, counts["deeplabv2_head"].as_u64().unwrap());
    drop(net);

    let cfg = SegmentorConfig::preset("daformer-mitb5").unwrap();
    let net = cfg.init::<B>(&device).unwrap();
    assert_same_tensors(&net, &r["keys"]["mit_b5"], Family::Mit);
    let t2s_model::Backbone::Mit(backbone) = &net.backbone else { panic!("mit") };
    assert_eq!(count_trainable::<B, _>(backbone) as u64, counts["mit_b5_encoder"].as_u64().unwrap());
    let t2s_model::DecodeHead::DaFormer(head) = &net.decode_head else { panic!("daformer") };
    assert_eq!(count_trainable::<B, _>(head) as u64, counts["daformer_head_b5"].as_u64().unwrap());
}

#[test]
fn encoder_and_head_parameter_counts_match_pytorch() {
    let r = reference();
    let counts = &r["param_counts"];
    let device = Default::default();
    for b in 0..=4 {
        let net = MitConfig::b(b).unwrap().init::<B>(&device);
        assert_eq!(count_trainable::<B, _>(&net) as u64, counts[format!("mit_b{b}_encoder")].as_u64().unwrap(), "MiT-B{b}");
    }
    for (preset, key) in [("segformer-mitb0", "segformer_head_b0"), ("segformer-mitb5", "segformer_head_b5")] {
        let net = SegmentorConfig::preset(preset).unwrap().init::<B>(&device).unwrap();
        let t2s_model::DecodeHead::SegFormer(head) = &net.decode_head else { panic!("segformer") };
        assert_eq!(count_trainable::<B, _>(head) as u64, counts[key].as_u64().unwrap(), "{preset}");
    }
    for (depth, key) in [(18, "resnet18_backbone"), (50, "resnet50_backbone")] {
        let net = ResNetConfig::new(depth).init::<B>(&device).unwrap();
        assert_eq!(count_trainable::<B, _>(&net) as u64, counts[key].as_u64().unwrap(), "ResNet-{depth}");
    }
}
