//! What the end-to-end tests share: the `t2s` program, and the tiny run on the synthetic
//! benchmark that several of them train (a network of a few thousand parameters, 32×64 crops, a
//! few iterations: seconds on the CPU).

#![allow(dead_code)] // each test file uses its own part of this module

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The `t2s` program built for these tests.
pub fn t2s_program() -> Command {
    Command::new(env!("CARGO_BIN_EXE_t2s"))
}

/// `t2s --device cpu`, run in `dir` (runs land in `dir/runs/`).
pub fn t2s(dir: &Path) -> Command {
    let mut c = t2s_program();
    c.current_dir(dir).args(["--device", "cpu"]);
    c
}

/// A ResNet with one block per stage and the DeepLabV2 head, for the 19 Cityscapes classes;
/// `backbone` adds the backbone's other keys.
pub fn resnet_network(backbone: &str) -> String {
    format!(
        "
[model.network]
num_classes = 19
[model.network.backbone]
type = \"resnet\"
layers = [1, 1, 1, 1]
{backbone}
[model.network.decode_head]
type = \"deeplabv2\"
"
    )
}

/// A MiT with one block per stage (stochastic depth at its default rate), the DAFormer head and
/// an 8-d projection head, for the 19 Cityscapes classes.
pub const TINY_MIT_NETWORK: &str = r#"
[model.network]
num_classes = 19
[model.network.backbone]
type = "mit"
embed_dims = [8, 16, 24, 32]
depths = [1, 1, 1, 1]
num_heads = [1, 2, 3, 4]
sr_ratios = [8, 4, 2, 1]
[model.network.decode_head]
type = "daformer"
embed_dim = 16
channels = 16
[model.network.projection]
dim = 8
"#;

/// [`resnet_network`] with bottleneck blocks, a deep stem of width 8 and base width 4.
pub fn tiny_network() -> String {
    resnet_network("depth = 0\nblock = \"bottleneck\"\nstem = \"deep\"\nstem_width = 8\nbase_width = 4")
}

/// `[data]`: 16 synthetic source images of 64×32 in batches of two 32×64 crops, two synthetic
/// target images to evaluate on, and a rare class sampling threshold for images this small.
pub const SYNTHETIC_DATA: &str = r#"
[data]
batch_size = 2
crop = [32, 64]
workers = 2

[data.source]
kind = "synthetic"
domain = "source"
len = 16
size = [64, 32]

[[data.eval]]
kind = "synthetic"
domain = "target"
len = 2
size = [64, 32]

[data.rcs]
min_pixels = 50
"#;

/// `[data.target]`: 16 unlabelled synthetic target images of 64×32, for self-training.
pub const SYNTHETIC_TARGET: &str = "\n[data.target]\nkind = \"synthetic\"\ndomain = \"target\"\nlen = 16\nsize = [64, 32]\n";

/// `[optim]`, `[schedule]`, `[eval]` and `[run]` of a short run: AdamW at 1e-3 after one warm-up
/// iteration, no periodic evaluation (the last iteration evaluates), a metrics line per iteration.
pub fn short_schedule(max_iters: usize, checkpoint_interval: usize) -> String {
    format!(
        "
[optim]
lr = 1e-3

[schedule]
max_iters = {max_iters}
warmup_iters = 1

[eval]
interval = 0

[run]
log_interval = 1
checkpoint_interval = {checkpoint_interval}
"
    )
}

/// [`tiny_network`] trained `source_only` on [`SYNTHETIC_DATA`] for 4 iterations, with a
/// checkpoint every 2.
pub fn tiny_source_only_run() -> String {
    format!("{}\n[uda]\nmethod = \"source_only\"\n{SYNTHETIC_DATA}{}", tiny_network(), short_schedule(4, 2))
}

/// The metrics lines of a run folder's training iterations (those with `loss_source`).
pub fn training_records(run: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss_source").is_some())
        .map(|v| v.as_object().unwrap().clone())
        .collect()
}

/// Whether a wgpu adapter exists; without one the wgpu tests are skipped, unless
/// `T2S_REQUIRE_WGPU` is set, which makes that a failure (CI installs lavapipe and sets it).
#[cfg(feature = "wgpu")]
pub fn wgpu_available() -> bool {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    if pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).is_empty() {
        assert!(std::env::var_os("T2S_REQUIRE_WGPU").is_none(), "no wgpu adapter but T2S_REQUIRE_WGPU is set");
        eprintln!("skipped: no wgpu adapter");
        return false;
    }
    true
}

/// The f32 tensors of a safetensors file (a checkpoint's `student.safetensors`), by name.
pub fn weight_file(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(k, t)| (k, t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()))
        .collect()
}
