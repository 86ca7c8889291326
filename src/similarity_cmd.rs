//! `t2s similarity`: per class, the cosine similarity between the source and target prototypes of
//! a network's contrastive embedding (or of the decoder feature it is projected from), against
//! the class's target IoU (the analysis of Figure 1 of the T2S-DA paper), and how well the target
//! prototypes sit on their own classes' source prototypes, for one or several weight files in one
//! table and one plot.

use std::path::{Path, PathBuf};
use t2s_model::T2sBackend;

use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use t2s_train::{open_set, write_atomic, Alignment, FeatureSpace, PrototypeOptions, RunConfig, SetRole};

use crate::device::BackendTask;
use crate::plots::{scatter_chart, ScatterSeries};

/// Arguments of `t2s similarity`.
#[derive(Debug, Args)]
pub struct SimilarityArgs {
    /// Run configuration: its [model], [data.source], first [[data.eval]], [eval] and
    /// t2s.label_min_fraction are used.
    #[arg(long)]
    pub config: PathBuf,

    /// Weights to analyse (repeatable): t2s .safetensors files or PyTorch checkpoints (of a
    /// network with a projection head, for `--space embedding`).
    #[arg(long, required = true)]
    pub weights: Vec<PathBuf>,

    /// Display name of each --weights, in the same order (default: the file names).
    #[arg(long)]
    pub name: Vec<String>,

    /// Key prefix inside a PyTorch checkpoint (see `t2s predict --prefix`).
    #[arg(long)]
    pub prefix: Option<String>,

    /// Images per domain for the prototypes: the first N of the source set and of the first
    /// evaluation set.
    #[arg(long, default_value_t = 100)]
    pub images: usize,

    /// The features the prototypes are class means of: `embedding` (the projection head's, where
    /// the contrastive term acts) or `decoder` (the feature the projection head and the
    /// classifier read: comparable between runs with and without the contrastive term).
    #[arg(long, value_enum, default_value_t = Space::Embedding)]
    pub space: Space,

    /// Output folder (default: `similarity` next to the first weights file).
    #[arg(long)]
    pub output: Option<PathBuf>,

    /// Override a configuration key (repeatable), e.g. `--set t2s.label_min_fraction=0.5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// `--space`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Space {
    /// The projection head's embedding.
    Embedding,
    /// The decode head's fused feature (DeepLabV2: the last backbone stage).
    Decoder,
}

impl From<Space> for FeatureSpace {
    fn from(s: Space) -> Self {
        match s {
            Space::Embedding => FeatureSpace::Embedding,
            Space::Decoder => FeatureSpace::Decoder,
        }
    }
}

/// The command, run on the selected backend.
pub struct Similarity(pub SimilarityArgs);

/// One analysed weights file.
struct RunResult {
    name: String,
    weights: PathBuf,
    miou: Option<f64>,
    cosine: Vec<Option<f64>>,
    /// Per-class target IoU (fraction), as `t2s eval` reports it.
    iou: Vec<Option<f64>>,
    source_pixels: Vec<u64>,
    target_pixels: Vec<u64>,
    pearson: Option<f64>,
    alignment: Option<Alignment>,
}

impl BackendTask for Similarity {
    type Output = ();

    fn run<B: T2sBackend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        crate::arg_checks::output_folder(a.output.as_deref())?;
        if a.images == 0 {
            bail!("--images must be at least 1");
        }
        let names = run_names(&a.weights, &a.name)?;
        let config = RunConfig::load(&a.config, &a.overrides)?;
        let Some(eval_set) = config.data.eval.first() else {
            bail!("{}: no evaluation set; add a [[data.eval]] table with the labelled target split (see configs/)", a.config.display());
        };
        let network = config.network().context("resolving [model]")?;
        let space = FeatureSpace::from(a.space);
        let embedding = space == FeatureSpace::Embedding;
        if embedding && network.as_ref().is_some_and(|n| n.projection.is_none()) {
            bail!(
                "{}: the network has no projection head; `t2s similarity` needs [model.network.projection], or `--space decoder`",
                a.config.display()
            );
        }
        let prefix = a.prefix.clone().or_else(|| config.model.pretrained_prefix.clone());
        let source = open_set(&config.data.source, SetRole::Source, "data.source")?;
        let target = open_set(eval_set, SetRole::Eval, "data.eval[0]")?;
        for set in [&source, &target] {
            for note in &set.notes {
                eprintln!("{}: {note}", set.name);
            }
        }
        let classes = target.dataset.label_space().len();
        if source.dataset.label_space().len() != classes {
            bail!(
                "data.source ({}) has {} classes and data.eval[0] ({}) {classes}; prototypes need one label space",
                source.name,
                source.dataset.label_space().len(),
                target.name
            );
        }
        let class_names = target.dataset.label_space().names.clone();
        let eval_options = config.eval_options(eval_set, &target.name, classes, "given");

        let mut runs = Vec::with_capacity(a.weights.len());
        for (weights, name) in a.weights.iter().zip(names) {
            crate::arg_checks::prefix_selects_pytorch_keys(a.prefix.as_deref(), Some(weights))?;
            let loaded = t2s_train::load_model_from::<B>(
                network.clone(),
                Some(weights),
                prefix.as_deref(),
                0,
                t2s_train::Sources { model: "[model] of --config", weights: "--weights" },
                &device,
            )
            .with_context(|| format!("loading {}", weights.display()))?;
            if let Some(report) = &loaded.report {
                eprintln!("{name}: {report}");
            }
            if embedding && loaded.model.proj_head.is_none() {
                bail!(
                    "{}: the network has no projection head; `t2s similarity` needs [model.network.projection], or `--space decoder`",
                    weights.display()
                );
            }
            if loaded.config.num_classes != classes {
                bail!("{}: the network predicts {} classes but the data has {classes}", weights.display(), loaded.config.num_classes);
            }
            let prototypes = |setting: &str, set: &t2s_train::OpenedSet, resize: Option<[u32; 2]>| {
                let options = PrototypeOptions {
                    space,
                    images: a.images,
                    resize,
                    stride: loaded.config.logit_stride(),
                    min_fraction: config.t2s.label_min_fraction,
                    set: format!("{setting} ({})", set.name),
                };
                let bar = progress_bar(a.images.min(set.dataset.len()), &format!("{name}: {} prototypes", set.name));
                let sums = t2s_train::embedding_class_sums(&loaded.model, &device, set.dataset.as_ref(), &options, &|n| {
                    bar.set_position(n as u64)
                });
                bar.finish_and_clear();
                sums.with_context(|| format!("{name}: prototypes of {setting} ({})", set.name))
            };
            let source_sums = prototypes("data.source", &source, config.data.source.resize)?;
            let target_sums = prototypes("data.eval[0]", &target, eval_options.resize)?;
            let cosine = t2s_train::prototype_cosines(&source_sums, &target_sums)?;
            let alignment = t2s_train::prototype_alignment(&source_sums, &target_sums)?;

            let bar = progress_bar(target.dataset.len(), &format!("{name}: eval {}", target.name));
            let (report, _) =
                t2s_train::evaluate(&loaded.model, &device, target.dataset.as_ref(), &eval_options, 0, &|n| bar.set_position(n as u64))
                    .with_context(|| format!("{name}: evaluating on {}", target.name))?;
            bar.finish_and_clear();
            let iou: Vec<Option<f64>> = report.classes.iter().map(|c| c.iou).collect();
            let pearson = t2s_train::pearson(&cosine, &iou);
            runs.push(RunResult {
                name,
                weights: weights.clone(),
                miou: report.headline(),
                cosine,
                iou,
                source_pixels: source_sums.pixels().to_vec(),
                target_pixels: target_sums.pixels().to_vec(),
                pearson,
                alignment,
            });
        }

        let output = a.output.clone().unwrap_or_else(|| a.weights[0].parent().unwrap_or(Path::new(".")).join("similarity"));
        std::fs::create_dir_all(&output).with_context(|| format!("creating {} (--output)", output.display()))?;
        let sets = (source.name.as_str(), target.name.as_str());
        write_atomic(&output.join("similarity.json"), json_report(&class_names, &runs, sets, a.images, space).as_bytes())?;
        let table = markdown(&class_names, &runs, sets, a.images, space);
        write_atomic(&output.join("similarity.md"), table.as_bytes())?;
        println!("{table}");
        let series: Vec<ScatterSeries> = runs
            .iter()
            .map(|r| ScatterSeries {
                name: match r.pearson {
                    Some(p) => format!("{} (r = {p:.2})", r.name),
                    None => r.name.clone(),
                },
                points: (0..classes).filter_map(|c| Some((r.cosine[c]?, 100.0 * r.iou[c]?, class_names[c].clone()))).collect(),
            })
            .collect();
        let title = format!("per-class IoU on {} vs. source-target prototype similarity", target.name);
        scatter_chart(&output.join("similarity.png"), &title, "cosine similarity of the class prototypes", "IoU (%)", &series)?;
        eprintln!("wrote {}/similarity.json, .md and .png", output.display());
        Ok(())
    }
}

/// Display names: `--name` (one per `--weights`) or the file names, made unique with the folder
/// (e.g. `iter_000004/student`) and then a counter.
fn run_names(weights: &[PathBuf], given: &[String]) -> Result<Vec<String>> {
    if !given.is_empty() {
        if given.len() != weights.len() {
            bail!("{} --name for {} --weights: give one name per weights file, or none", given.len(), weights.len());
        }
        return Ok(given.to_vec());
    }
    let stem = |w: &PathBuf| w.file_stem().map_or_else(|| w.display().to_string(), |s| s.to_string_lossy().into_owned());
    let with_dir = |w: &PathBuf| match w.parent().and_then(|p| p.file_name()) {
        Some(d) => format!("{}/{}", d.to_string_lossy(), stem(w)),
        None => stem(w),
    };
    let mut names: Vec<String> = weights.iter().map(stem).collect();
    if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        names = weights.iter().map(with_dir).collect();
    }
    let mut unique = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let dup = names[..i].iter().filter(|m| *m == n).count();
        unique.push(if dup == 0 { n.clone() } else { format!("{n} ({})", dup + 1) });
    }
    Ok(unique)
}

fn progress_bar(len: usize, message: &str) -> Progress {
    let bar = Progress::new(message, len, "{spinner} {msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}");
    bar.bar().set_message(message.to_string());
    bar
}

/// `similarity.json`: the feature space and class names, then per run the headline mIoU, the
/// Pearson correlation of cosine and IoU over the classes with both, the prototypes' alignment,
/// and per class cosine, IoU (fraction, as in the `t2s eval` report) and the embedding-resolution
/// pixels the prototypes averaged.
fn json_report(classes: &[String], runs: &[RunResult], (source, target): (&str, &str), images: usize, space: FeatureSpace) -> String {
    let runs: Vec<_> = runs
        .iter()
        .map(|r| {
            let per_class: Vec<_> = classes
                .iter()
                .enumerate()
                .map(|(c, name)| {
                    json!({
                        "class": name,
                        "cosine": r.cosine[c],
                        "iou": r.iou[c],
                        "source_pixels": r.source_pixels[c],
                        "target_pixels": r.target_pixels[c],
                    })
                })
                .collect();
            json!({
                "name": r.name,
                "weights": r.weights.display().to_string(),
                "miou": r.miou,
                "pearson_cosine_iou": r.pearson,
                "alignment": r.alignment.map(|a| json!({
                    "classes": a.classes,
                    "nearest_own": a.nearest_own,
                    "same_class_cosine": a.same,
                    "other_class_cosine": a.cross,
                })),
                "per_class": per_class,
            })
        })
        .collect();
    let doc =
        json!({ "space": space.name(), "source": source, "target": target, "images_per_domain": images, "classes": classes, "runs": runs });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// `similarity.md`: one row per class with cosine and IoU (%) of every run, then mIoU, the
/// correlation and the alignment.
fn markdown(classes: &[String], runs: &[RunResult], (source, target): (&str, &str), images: usize, space: FeatureSpace) -> String {
    let num = |v: Option<f64>, scale: f64, digits: usize| v.map_or("–".to_string(), |v| format!("{:.*}", digits, v * scale));
    let what = match space {
        FeatureSpace::Embedding => "projection-head embedding",
        FeatureSpace::Decoder => "decoder feature (the projection head's and classifier's input)",
    };
    let mut s = format!(
        "# Source–target prototype similarity\n\nPrototypes: the mean {what} per ground-truth class over the \
         first {images} images of {source} (source) and of {target} (target); cosine of the two. IoU on all of {target}.\n\n| class |"
    );
    for r in runs {
        s += &format!(" {} cosine | {} IoU |", r.name, r.name);
    }
    s += "\n|---|";
    s += &"---:|---:|".repeat(runs.len());
    s += "\n";
    for (c, name) in classes.iter().enumerate() {
        s += &format!("| {name} |");
        for r in runs {
            s += &format!(" {} | {} |", num(r.cosine[c], 1.0, 3), num(r.iou[c], 100.0, 2));
        }
        s += "\n";
    }
    s += "| **mIoU** |";
    for r in runs {
        s += &format!(" | {} |", num(r.miou, 100.0, 2));
    }
    s += "\n| **Pearson r (cosine, IoU)** |";
    for r in runs {
        s += &format!(" {} | |", num(r.pearson, 1.0, 3));
    }
    let row = |label: &str, cell: &dyn Fn(&Alignment) -> String| {
        let mut line = format!("\n| **{label}** |");
        for r in runs {
            line += &format!(" {} | |", r.alignment.as_ref().map_or("–".to_string(), cell));
        }
        line
    };
    s += &row("target prototypes nearest their own class's source prototype", &|a| format!("{} of {}", a.nearest_own, a.classes));
    s += &row("mean cosine to their own class's source prototype", &|a| format!("{:.3}", a.same));
    s += &row("mean cosine to the other classes' source prototypes", &|a| format!("{:.3}", a.cross));
    s + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_unique_file_names() {
        let w = |p: &str| PathBuf::from(p);
        let names = run_names(&[w("a/best.safetensors"), w("b/t2s.safetensors")], &[]).unwrap();
        assert_eq!(names, ["best", "t2s"]);
        let names = run_names(&[w("r/iter_2/student.safetensors"), w("r/iter_4/student.safetensors")], &[]).unwrap();
        assert_eq!(names, ["iter_2/student", "iter_4/student"]);
        let names = run_names(&[w("x/s.safetensors"), w("x/s.safetensors")], &[]).unwrap();
        assert_eq!(names, ["x/s", "x/s (2)"]);
        assert!(run_names(&[w("a"), w("b")], &["one".into()]).is_err());
    }
}
