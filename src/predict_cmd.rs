//! `t2s predict`: label pictures (train ids, colours, overlays) for a folder of images, in whole,
//! sliding-window or memory-bounded (`--mode auto`) inference.

use anyhow::{bail, Context, Result};
use t2s_model::T2sBackend;

use crate::arg_checks::{for_inference, output_folder, prefix_selects_pytorch_keys};
use crate::cli::PredictArgs;
use crate::device::BackendTask;
use crate::progress;

pub struct Predict(pub PredictArgs);

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
        let opts = t2s_train::PredictOptions {
            output: a.output.clone(),
            save_logits: a.save_logits,
            overlay_alpha: a.overlay_alpha,
            label_ids: a.label_ids,
            inference,
        };
        let bar = progress::Progress::new("predict", images.len(), "{spinner} predict [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}");
        let progress = |done: usize, next: &std::path::Path| {
            bar.set_message(next.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            bar.set_position(done as u64);
        };
        let report = t2s_train::predict_images(
            &for_inference(&loaded.model, a.precision, a.hrda_output, &device)?,
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
