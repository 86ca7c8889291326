//! Command-line interface (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// t2s: domain-adaptive semantic segmentation (T2S-DA) in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "t2s",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("T2S_REVISION"), ")"),
    about,
    long_about = None,
    after_help = "When standard error is not a terminal (a batch job's log), long commands print a plain progress line every \
                  T2S_PROGRESS_INTERVAL seconds (default 30) instead of a progress bar."
)]
pub struct Cli {
    /// Compute device: auto (CUDA, then a hardware wgpu adapter, then CPU), cpu, wgpu, wgpu:N, cuda or
    /// cuda:N. `train` takes a comma list of one kind (cuda:0,cuda:1): a data-parallel replica on each.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,

    /// Sample this command's CPU time and write a flamegraph SVG here, plus a per-thread table of the
    /// hottest functions beside it (.txt): where a GPU run's host time goes. Needs a binary with
    /// symbols (built with CARGO_PROFILE_RELEASE_STRIP=false; docs/gpu.md).
    #[arg(long, global = true, value_name = "SVG")]
    pub profile_host: Option<PathBuf>,

    /// Seconds after start-up before --profile-host starts sampling (to skip loading and warm-up).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0.0, requires = "profile_host")]
    pub profile_host_start: f64,

    /// Seconds --profile-host samples for (default: until the command ends).
    #[arg(long, global = true, value_name = "SECONDS", requires = "profile_host")]
    pub profile_host_seconds: Option<f64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Segment images with a network: writes train-id PNGs, colourised overlays and (optionally) logits.
    Predict(PredictArgs),
    /// Convert a PyTorch checkpoint (torchvision, SegFormer mit_b*, mmseg/DAFormer) to a t2s weight file.
    ImportWeights(ImportArgs),
    /// List the built-in network presets with their parameter counts.
    Models,
    /// Write the built-in synthetic domain-shift benchmark (source and target street scenes with
    /// labels) to disk in a Cityscapes-like layout.
    Synth(crate::synth_cmd::SynthArgs),
    /// Validate a dataset (decode every image and label) and write per-image class pixel counts
    /// next to it, for rare class sampling.
    Prepare(crate::prepare_cmd::PrepareArgs),
    /// Evaluate weights on the evaluation sets of a run configuration: per-class IoU, mIoU (JSON, Markdown), pictures.
    Eval(crate::eval_cmd::EvalArgs),
    /// Per class, cosine similarity of the source and target prototypes of the contrastive embedding
    /// against target IoU, for one or several weights (JSON, Markdown, scatter plot).
    Similarity(crate::similarity_cmd::SimilarityArgs),
    /// Train as a run configuration says (configs/*.toml); Ctrl-C or SIGTERM saves and stops (status 130/143), --resume continues.
    Train(crate::train_cmd::TrainArgs),
    /// Train source-only, self-training (dacs) and T2S-DA on the built-in synthetic benchmark and
    /// compare them on its target domain: tables, curves and pictures in a report folder.
    Demo(crate::demo_cmd::DemoArgs),
}

/// Which network and weights.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Network: a preset (see `t2s models`), a TOML file with a [model] table, or a t2s weight file.
    /// May be left out when --weights is a t2s weight file.
    #[arg(long)]
    pub model: Option<String>,

    /// Weights: a t2s .safetensors file or a PyTorch checkpoint (.pth/.pt) (default: the --model
    /// file's, when it is a t2s weight file or a run configuration with model.pretrained).
    #[arg(long)]
    pub weights: Option<PathBuf>,

    /// Key prefix of the sub-model to take from a PyTorch checkpoint, e.g. `state_dict.ema_model.`
    /// for a DAFormer teacher (default: the file's segmentor, or DAFormer's student `model.`).
    #[arg(long)]
    pub prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// An image file or a folder of images (png, jpg, jpeg, bmp, webp).
    #[arg(long)]
    pub input: PathBuf,

    /// Output folder (created if needed).
    #[arg(long)]
    pub output: PathBuf,

    /// Also write `<name>_logits.npy`: float32 [C, H, W] at the input's resolution.
    #[arg(long)]
    pub save_logits: bool,

    /// Also write `<name>_labelIds.png`: Cityscapes label ids (road 7 … bicycle 33), what the
    /// Cityscapes benchmark server reads (mmseg's --format-only); needs a 19-class network. The
    /// network sees each image at its own size: give images at the scale it was trained at.
    #[arg(long)]
    pub label_ids: bool,

    /// Opacity of the colour map in `<name>_overlay.png`, 0..=1.
    #[arg(long, default_value_t = 0.5)]
    pub overlay_alpha: f32,

    /// Numeric format of the network's pass: f32, or bf16 (CUDA and the CPU; not wgpu, whose WGSL has no bf16).
    #[arg(long, default_value_t = t2s_model::Precision::F32)]
    pub precision: t2s_model::Precision,

    /// How the network sees each image: `auto` (the whole image when the network's estimated
    /// memory for it fits --memory-budget, else overlapping windows), `whole`, or `slide`
    /// (windows of --crop every --stride pixels, logits averaged where they overlap).
    #[arg(long, value_enum, default_value_t = PredictMode::Auto)]
    pub mode: PredictMode,

    /// Window size H,W for --mode slide (e.g. 1024,1024).
    #[arg(long, value_parser = parse_pair, value_name = "H,W")]
    pub crop: Option<[usize; 2]>,

    /// Step between windows H,W for --mode slide (default: half the crop).
    #[arg(long, value_parser = parse_pair, value_name = "H,W")]
    pub stride: Option<[usize; 2]>,

    /// For --mode auto: the most memory, in GiB, one pass may take before the image is cut into
    /// windows (an estimate from the network's shapes; raise it on a large GPU) [default: 8].
    #[arg(long, value_name = "GIB")]
    pub memory_budget: Option<f64>,

    /// For an HRDA network: predict with the `fused` prediction (the network's), or the `detail`
    /// or `context` scale alone.
    #[arg(long, default_value_t = t2s_model::HrdaBranch::Fused, value_name = "fused|detail|context")]
    pub hrda_output: t2s_model::HrdaBranch,
}

/// `predict --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictMode {
    /// Whole image where it fits --memory-budget, else windows.
    Auto,
    /// The whole image in one pass.
    Whole,
    /// Overlapping windows (--crop, --stride).
    Slide,
}

/// `H,W` (or one number for both) as `[H, W]`.
fn parse_pair(text: &str) -> Result<[usize; 2], String> {
    let parse = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("`{text}`: expected H,W in pixels, e.g. 1024,1024"));
    match text.split_once(',') {
        Some((h, w)) => Ok([parse(h)?, parse(w)?]),
        None => parse(text).map(|v| [v, v]),
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Network the checkpoint is for: a preset or a TOML file with a [model] table.
    #[arg(long)]
    pub model: String,

    /// The PyTorch checkpoint (.pth/.pt).
    #[arg(long)]
    pub weights: PathBuf,

    /// Key prefix of the sub-model to take (see `predict --prefix`).
    #[arg(long)]
    pub prefix: Option<String>,

    /// The t2s weight file to write (.safetensors).
    #[arg(long)]
    pub output: PathBuf,
}
