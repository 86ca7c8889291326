//! HRDA's fusion and sliding merge against frozen PyTorch outputs: `scripts/hrda_reference.py`
//! wrote random decoder outputs and what lhoyer/HRDA's `HRDAHead` makes of them
//! (`fixtures/hrda.safetensors`); t2s must reproduce them from the same inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use t2s_model::nets::hrda::{fuse_scales, merge_slide, slide_boxes, CropBox};

type B = Flex;

/// The fixture's tensors: float32 ones as `[N, C, H, W]`, int64 ones as flat vectors.
fn fixture() -> (BTreeMap<String, Tensor<B, 4>>, BTreeMap<String, Vec<i64>>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hrda.safetensors");
    let bytes = std::fs::read(&path).expect("fixture exists");
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let (mut floats, mut ints) = (BTreeMap::new(), BTreeMap::new());
    for (name, view) in st.tensors() {
        if view.dtype() == Dtype::I64 {
            ints.insert(name, view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect());
        } else {
            let data: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            let s = view.shape();
            floats.insert(name, Tensor::from_data(TensorData::new(data, [s[0], s[1], s[2], s[3]]), &Default::default()));
        }
    }
    (floats, ints)
}

fn assert_close(name: &str, ours: Tensor<B, 4>, theirs: &Tensor<B, 4>) {
    assert_eq!(ours.dims(), theirs.dims(), "{name}: shape");
    let diff = (ours - theirs.clone()).abs().max().into_scalar();
    assert!(diff < 1e-5, "{name}: max |diff| {diff:e}");
}

#[test]
fn the_detail_crop_is_fused_as_hrda_fuses_it() {
    let (t, _) = fixture();
    let crop = CropBox { y1: 16, y2: 48, x1: 40, x2: 72 };
    // Class-wise attention, and a single attention channel broadcast over the classes.
    for case in ["crop", "crop1"] {
        let get = |k: &str| t[&format!("{case}_{k}")].clone();
        let (fused, lr_scaled) = fuse_scales(get("lr"), sigmoid(get("att_logit")), get("hr"), Some(crop), 4);
        assert_close(&format!("{case} fused"), fused, &get("fused"));
        assert_close(&format!("{case} (1 − att)·lr"), lr_scaled, &get("lr_scaled"));
    }
}

#[test]
fn sliding_detail_crops_merge_and_fuse_as_in_hrda() {
    let (t, ints) = fixture();
    let boxes = slide_boxes(64, 96, [32, 32], true);
    let theirs: Vec<CropBox> = ints["slide_boxes"]
        .chunks(4)
        .map(|b| CropBox { y1: b[0] as usize, y2: b[1] as usize, x1: b[2] as usize, x2: b[3] as usize })
        .collect();
    assert_eq!(boxes, theirs);
    let at_logits: Vec<CropBox> = boxes.iter().map(|b| b.shrunk(4)).collect();
    let hr = merge_slide(t["slide_crop_logits"].clone(), &at_logits, 2);
    assert_close("merged detail", hr.clone(), &t["slide_hr"]);
    let (fused, _) = fuse_scales(t["slide_lr"].clone(), sigmoid(t["slide_att_logit"].clone()), hr, None, 4);
    assert_close("fused", fused, &t["slide_fused"]);
}
