//! The `t2s` program: parses the command line, picks the device, and calls into the library
//! crates.

mod cli;
mod demo_cmd;
mod device;
mod eval_cmd;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu_cache;
#[cfg(unix)]
mod host_profile;
mod plots;
mod prepare_cmd;
mod progress;
mod similarity_cmd;
mod stop_signal;
mod synth_cmd;
mod train_cmd;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use clap::Parser;
use t2s_model::T2sBackend;

use cli::{Cli, Command, ImportArgs, PredictArgs};
use device::{dispatch, BackendTask};

fn main() {
    #[cfg(all(target_os = "linux", feature = "wgpu"))]
    device::ensure_runtime_dir();
    let cli = Cli::parse();
    #[cfg(unix)]
    if matches!(cli.command, Command::Models) {
        // Rust ignores SIGPIPE, so `t2s models | head` panicked on the closed pipe; a listing
        // should end quietly as other Unix tools do. Not the commands that write files after
        // printing (eval, similarity): the pipe's end must not cut their reports short.
        // SAFETY: `signal` with SIG_DFL is async-signal-safe and runs before any other thread.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    t2s_train::train::run_dir::set_program_revision(env!("T2S_REVISION"));
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    gpu_cache::configure();
    if let Err(err) = with_host_profile(cli) {
        eprintln!("error: {}", error_chain(&err));
        std::process::exit(1);
    }
}

/// `err` and its causes, `: `-separated as anyhow's `{:#}` gives them, but without a cause that
/// its parent's message already ends with (an I/O error a library message quotes was printed twice).
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Runs the command, inside a `--profile-host` window when one is asked for; the profile is
/// written whether the command succeeds or fails.
fn with_host_profile(mut cli: Cli) -> Result<()> {
    let Some(svg) = cli.profile_host.take() else { return run(cli) };
    let seconds = |flag: &str, v: f64| -> Result<std::time::Duration> {
        std::time::Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("{flag} {v}: must be a number of seconds, 0 or more"))
    };
    let after = seconds("--profile-host-start", cli.profile_host_start)?;
    let length = cli.profile_host_seconds.map(|s| seconds("--profile-host-seconds", s)).transpose()?;
    #[cfg(unix)]
    {
        let profile = host_profile::start(svg, after, length)?;
        let outcome = run(cli);
        let written = profile.finish();
        outcome.and(written)
    }
    #[cfg(not(unix))]
    {
        let _ = (svg, after, length);
        bail!("--profile-host: sampling is only available on Linux and macOS builds")
    }
}

/// `model` as `predict` and `eval` run it: computing in `precision` (`--precision`) and giving
/// HRDA's `branch` prediction (`--hrda-output`), or why the device or the network cannot.
fn for_inference<B: T2sBackend>(
    model: &t2s_model::Segmentor<B>,
    precision: t2s_model::Precision,
    branch: t2s_model::HrdaBranch,
    device: &B::Device,
) -> Result<t2s_model::Segmentor<B>> {
    if let Err(why) = precision.require_on::<B>(device) {
        bail!("--precision {precision}: {why}; use --precision f32");
    }
    model.at_precision(precision).with_hrda_branch(branch).with_context(|| format!("--hrda-output {branch}"))
}

fn run(cli: Cli) -> Result<()> {
    // These run on the CPU whatever the device: a --device given to them would do nothing.
    let cpu_only = match &cli.command {
        Command::ImportWeights(_) => Some("import-weights"),
        Command::Models => Some("models"),
        Command::Synth(_) => Some("synth"),
        Command::Prepare(_) => Some("prepare"),
        _ => None,
    };
    if let (Some(name), false) = (cpu_only, matches!(cli.device.as_str(), "auto" | "cpu")) {
        bail!("--device {}: `t2s {name}` runs on the CPU; leave out --device (or give cpu)", cli.device);
    }
    match cli.command {
        Command::Predict(args) => {
            let selected = device::select(&cli.device)?;
            eprintln!("device: {selected}");
            dispatch(&selected, Predict(args))
        }
        // Conversion is pure data movement: always on the CPU.
        Command::ImportWeights(args) => ImportWeights(args).run::<burn::backend::Flex>(Default::default()),
        Command::Models => list_models(),
        Command::Synth(args) => synth_cmd::run(args),
        Command::Prepare(args) => prepare_cmd::run(args),
        Command::Train(args) => {
            let selected = device::select_many(&cli.device)?;
            let names: Vec<String> = selected.iter().map(|s| s.to_string()).collect();
            eprintln!("device: {}", names.join(", "));
            let command_line = std::env::args().collect::<Vec<_>>().join(" ");
            device::dispatch_replicas(&selected, train_cmd::Train { args, command_line })
        }
        Command::Demo(args) => {
            let selected = device::select(&cli.device)?;
            eprintln!("device: {selected}");
            let command_line = std::env::args().collect::<Vec<_>>().join(" ");
            dispatch(&selected, demo_cmd::Demo { args, command_line, device_name: selected.to_string() })
        }
        Command::Eval(args) => {
            let selected = device::select(&cli.device)?;
            eprintln!("device: {selected}");
            dispatch(&selected, eval_cmd::Eval(args))
        }
        Command::Similarity(args) => {
            let selected = device::select(&cli.device)?;
            eprintln!("device: {selected}");
            dispatch(&selected, similarity_cmd::Similarity(args))
        }
    }
}

struct Predict(PredictArgs);

impl BackendTask for Predict {
    type Output = ();

    fn run<B: T2sBackend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        if !(0.0..=1.0).contains(&a.overlay_alpha) {
            bail!("--overlay-alpha {}: must be between 0 and 1", a.overlay_alpha);
        }
        output_folder(Some(&a.output))?;
        let inference = predict_inference(&a)?;
        let images = predict_inputs(&a.input, &a.output)?;
        // The weights, or a t2s file given as --model alone, checked before the network loads.
        let file = a.model.weights.clone().or_else(|| a.model.model.as_ref().map(std::path::PathBuf::from));
        prefix_selects_pytorch_keys(a.model.prefix.as_deref(), file.as_deref())?;
        let loaded = t2s_train::load_model::<B>(a.model.model.as_deref(), a.model.weights.as_deref(), a.model.prefix.as_deref(), &device)
            .context("loading the network")?;
        match (&loaded.report, &loaded.weights) {
            (Some(report), Some(file)) => {
                let from_model = if a.model.weights.is_none() { " (from --model)" } else { "" };
                eprintln!("weights: {}{from_model}: {report}", file.display());
            }
            _ => eprintln!("warning: no --weights given: predicting with a randomly initialised network"),
        }
        let space = t2s_data::LabelSpace::cityscapes();
        if loaded.config.num_classes != space.len() {
            eprintln!(
                "note: the network has {} classes; colours beyond the 19 Cityscapes classes are drawn black",
                loaded.config.num_classes
            );
        }
        let opts =
            t2s_train::PredictOptions { output: a.output.clone(), save_logits: a.save_logits, overlay_alpha: a.overlay_alpha, inference };
        let bar = progress::Progress::new("predict", images.len(), "{spinner} predict [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}");
        let progress = |done: usize, next: &std::path::Path| {
            bar.set_message(next.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            bar.set_position(done as u64);
        };
        let report = t2s_train::predict_images(
            &crate::for_inference(&loaded.model, a.precision, a.hrda_output, &device)?,
            &loaded.config,
            &device,
            &images,
            &space,
            &opts,
            &progress,
        )?;
        bar.set_position(images.len() as u64);
        bar.finish_and_clear();
        for files in &report.written {
            let name = files.labels.file_name().map(|n| n.to_string_lossy().replace("_labelTrainIds.png", "")).unwrap_or_default();
            if files.oriented {
                eprintln!("note: {name}: turned upright as its EXIF orientation says");
            }
            if let (t2s_train::PredictInference::Auto { budget_bytes }, t2s_train::InferenceMode::Slide { crop, stride }) =
                (inference, files.mode)
            {
                eprintln!(
                    "note: {name}: the whole image would need more than --memory-budget {:.1} GiB; predicted in {}×{} windows every {}×{} pixels",
                    budget_bytes as f64 / GIB,
                    crop[0],
                    crop[1],
                    stride[0],
                    stride[1]
                );
            }
        }
        eprintln!("wrote predictions for {} image(s) to {}", report.written.len(), a.output.display());
        if !report.unreadable.is_empty() {
            for (path, why) in &report.unreadable {
                eprintln!("skipped {}: {why}", path.display());
            }
            bail!("{} of {} image(s) could not be read (listed above); the others were predicted", report.unreadable.len(), images.len());
        }
        Ok(())
    }
}

const GIB: f64 = (1u64 << 30) as f64;
/// `predict --memory-budget`'s default, in GiB (its help text says 8 too: clap's default would
/// hide whether the flag was given, which --mode whole and slide refuse).
const DEFAULT_MEMORY_BUDGET_GIB: f64 = 8.0;

/// Refuses an `--output` that is a file, before any work (creating the folder failed late, with
/// the system's message twice).
pub(crate) fn output_folder(output: Option<&std::path::Path>) -> Result<()> {
    match output {
        Some(o) if o.exists() && !o.is_dir() => bail!("--output {}: a file, not a folder; give a folder (created if missing)", o.display()),
        _ => Ok(()),
    }
}

/// Refuses `--prefix` with a t2s weight file, whose keys are the network's own: it would select
/// nothing and be ignored.
pub(crate) fn prefix_selects_pytorch_keys(prefix: Option<&str>, weights: Option<&std::path::Path>) -> Result<()> {
    if let (Some(prefix), Some(w)) = (prefix, weights) {
        if matches!(t2s_model::read_t2s_config(w), Ok(Some(_))) {
            bail!("--prefix {prefix}: {} is a t2s weight file, whose keys have no prefix to select; leave out --prefix", w.display());
        }
    }
    Ok(())
}

/// `predict`'s --mode, --crop, --stride and --memory-budget, checked together.
fn predict_inference(a: &PredictArgs) -> Result<t2s_train::PredictInference> {
    use crate::cli::PredictMode;
    let mode = clap::ValueEnum::to_possible_value(&a.mode).map(|v| v.get_name().to_string()).unwrap_or_default();
    if a.mode != PredictMode::Slide && (a.crop.is_some() || a.stride.is_some()) {
        bail!("--crop and --stride apply to --mode slide (this command has --mode {mode})");
    }
    if a.mode != PredictMode::Auto && a.memory_budget.is_some() {
        bail!("--memory-budget applies to --mode auto (this command has --mode {mode})");
    }
    Ok(match a.mode {
        PredictMode::Whole => t2s_train::PredictInference::Fixed(t2s_train::InferenceMode::Whole),
        PredictMode::Slide => {
            let Some(crop) = a.crop else { bail!("--mode slide needs --crop H,W (the window size, e.g. 1024,1024)") };
            let stride = a.stride.unwrap_or([crop[0].div_ceil(2), crop[1].div_ceil(2)]);
            let mode = t2s_train::InferenceMode::Slide { crop, stride };
            mode.validate("--crop/--stride").map_err(anyhow::Error::msg)?;
            t2s_train::PredictInference::Fixed(mode)
        }
        PredictMode::Auto => {
            let budget = a.memory_budget.unwrap_or(DEFAULT_MEMORY_BUDGET_GIB);
            if !(budget.is_finite() && budget > 0.0) {
                bail!("--memory-budget {budget}: give the memory one pass may take, in GiB (e.g. 8)");
            }
            t2s_train::PredictInference::Auto { budget_bytes: (budget * GIB) as u64 }
        }
    })
}

/// The images of `--input`; when `--output` is the same folder, without the files an earlier
/// prediction wrote there (`*_color.png`, …), which are outputs, not inputs.
fn predict_inputs(input: &std::path::Path, output: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let images = t2s_data::list_images(input).context("reading --input")?;
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if !input.is_dir() || !same(input, output) {
        return Ok(images);
    }
    let is_output = |p: &std::path::PathBuf| {
        p.file_name().map(|n| n.to_string_lossy().into_owned()).is_some_and(|n| t2s_train::OUTPUT_SUFFIXES.iter().any(|s| n.ends_with(s)))
    };
    let (outputs, inputs): (Vec<_>, Vec<_>) = images.into_iter().partition(is_output);
    if !outputs.is_empty() {
        eprintln!("note: {} earlier prediction file(s) in {} are not taken as inputs", outputs.len(), input.display());
    }
    if inputs.is_empty() {
        bail!("{}: no images besides earlier prediction files", input.display());
    }
    Ok(inputs)
}

struct ImportWeights(ImportArgs);

impl BackendTask for ImportWeights {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        if a.output.is_dir() {
            bail!("--output {}: a folder; give the weight file to write (e.g. model.safetensors)", a.output.display());
        }
        let same = |x: &std::path::Path, y: &std::path::Path| matches!((x.canonicalize(), y.canonicalize()), (Ok(p), Ok(q)) if p == q);
        if same(&a.output, &a.weights) {
            bail!(
                "--output {}: the checkpoint being imported; give another file (it would be replaced by one sub-model)",
                a.output.display()
            );
        }
        if t2s_model::read_t2s_config(&a.weights).ok().flatten().is_some() {
            bail!("--weights {}: already a t2s weight file", a.weights.display());
        }
        let loaded = t2s_train::load_model::<B>(Some(&a.model), Some(&a.weights), a.prefix.as_deref(), &device)
            .context("importing the checkpoint")?;
        if let Some(report) = &loaded.report {
            eprintln!("{report}");
        }
        t2s_model::save_t2s(&loaded.model, &loaded.config, &a.output)?;
        eprintln!("wrote {}", a.output.display());
        Ok(())
    }
}

fn list_models() -> Result<()> {
    println!("{:<22} {:>14}", "preset", "parameters");
    for name in t2s_model::PRESETS {
        let cfg = t2s_model::SegmentorConfig::preset(name)?;
        let net = cfg.init::<burn::backend::Flex>(&Default::default())?;
        println!("{:<22} {:>14}", name, t2s_model::count_trainable::<burn::backend::Flex, _>(&net));
    }
    Ok(())
}
