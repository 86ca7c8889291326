//! The demo's report folder: results.json, the per-class table (Markdown and JSON), loss and
//! mIoU curves, per-class bars and a picture grid of predictions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use t2s_data::visualize::{colorize, save_png};
use t2s_model::T2sBackend;
use t2s_train::{open_set, predict_labels, EvalReport, RunConfig, SetRole};

use crate::plots::{grouped_bar_chart, line_chart, Series};

/// One trained model of the report.
pub struct Trained {
    /// One of the demo's methods (`DEMO_METHODS`).
    pub method: String,
    pub seed: u64,
    pub run_dir: PathBuf,
    /// The last evaluation, on the synthetic target's validation split.
    pub report: EvalReport,
    /// The network that evaluation scored (`eval.weights`).
    pub weights: PathBuf,
}

/// What the report is written from.
pub struct DemoReport<'a> {
    /// The report folder.
    pub output: &'a Path,
    /// The configuration every run shares (its evaluation set is the picture grid's).
    pub cfg: &'a RunConfig,
    pub trained: &'a [Trained],
    /// Iterations per method, and the iteration adaptation starts at.
    pub iters: usize,
    pub warm: usize,
    /// Seconds the demo took, and the device it ran on.
    pub elapsed: f64,
    pub device_name: &'a str,
}

/// A method's columns: name, mean mIoU and mean per-class IoU over the seeds.
type Column = (String, f64, Vec<Option<f64>>);

impl DemoReport<'_> {
    /// Writes every file of the report into `output`.
    pub fn write<B: T2sBackend>(&self, device: &B::Device) -> Result<()> {
        let (names, seeds, columns) = self.write_tables()?;
        let first = seeds.first().copied().unwrap_or(0);
        self.write_charts(first, &names, &columns)?;
        self.write_grid::<B>(first, device)
    }

    /// results.json and the per-class table (table.md, table.json): class names, seeds, columns.
    fn write_tables(&self) -> Result<(Vec<String>, Vec<u64>, Vec<Column>)> {
        let (output, trained, iters, warm, elapsed, device_name) =
            (self.output, self.trained, self.iters, self.warm, self.elapsed, self.device_name);
        let mut methods: Vec<String> = Vec::new();
        for t in trained {
            if !methods.contains(&t.method) {
                methods.push(t.method.clone());
            }
        }
        let names: Vec<String> = trained.first().map(|t| t.report.classes.iter().map(|c| c.name.clone()).collect()).unwrap_or_default();
        let seeds: Vec<u64> = {
            let mut s: Vec<u64> = trained.iter().map(|t| t.seed).collect();
            s.dedup();
            s
        };

        // results.json: per method, the mean mIoU and per-class IoU over the seeds (fractions).
        let mut by_method = serde_json::Map::new();
        let mut columns = Vec::new();
        for m in &methods {
            let (miou, per_class, per_seed) = means(trained, m);
            let classes: BTreeMap<&str, Option<f64>> = names.iter().map(String::as_str).zip(per_class.iter().copied()).collect();
            by_method.insert(m.clone(), json!({ "miou": miou, "miou_per_seed": per_seed, "per_class_iou": classes }));
            columns.push((m.clone(), miou, per_class));
        }
        let results = json!({
            "benchmark": "t2s synthetic (game-like source -> camera-like target), target val split",
            "units": "fractions of 1 (IoU, mIoU over 19 classes)",
            "device": device_name,
            "iterations_per_method": iters,
            "adaptation_starts_at": warm,
            "seeds": seeds,
            "elapsed_seconds": elapsed,
            "methods": by_method,
        });
        write(&output.join("results.json"), &serde_json::to_string_pretty(&results)?)?;

        // The table, Markdown and JSON (percent).
        let pct = |v: Option<f64>| v.map(|x| format!("{:.1}", 100.0 * x)).unwrap_or_else(|| "–".into());
        let mut md = format!(
            "Synthetic target val, IoU % (mean of {} seed(s); {iters} iterations per method, adaptation from iteration {warm})\n\n| class |",
            seeds.len()
        );
        for (m, _, _) in &columns {
            md.push_str(&format!(" {m} |"));
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(columns.len()));
        md.push('\n');
        let mut rows = Vec::new();
        for (c, name) in names.iter().enumerate() {
            md.push_str(&format!("| {name} |"));
            for (_, _, per_class) in &columns {
                md.push_str(&format!(" {} |", pct(per_class[c])));
            }
            md.push('\n');
            rows.push(json!({ "class": name, "iou": columns.iter().map(|(_, _, p)| p[c].map(|x| 100.0 * x)).collect::<Vec<_>>() }));
        }
        md.push_str("| **mIoU** |");
        for (_, miou, _) in &columns {
            md.push_str(&format!(" **{:.1}** |", 100.0 * miou));
        }
        md.push('\n');
        write(&output.join("table.md"), &md)?;
        let table = json!({
            "units": "percent",
            "methods": columns.iter().map(|(m, _, _)| m).collect::<Vec<_>>(),
            "rows": rows,
            "miou": columns.iter().map(|(_, m, _)| 100.0 * m).collect::<Vec<_>>(),
        });
        write(&output.join("table.json"), &serde_json::to_string_pretty(&table)?)?;
        Ok((names, seeds, columns))
    }

    /// Loss and mIoU curves of the `first` seed's runs, and the per-class bars.
    fn write_charts(&self, first: u64, names: &[String], columns: &[Column]) -> Result<()> {
        let (output, trained) = (self.output, self.trained);
        let mut losses = Vec::new();
        let mut mious = Vec::new();
        for t in trained.iter().filter(|t| t.seed == first) {
            let (loss, miou) = read_curves(&t.run_dir.join("metrics.jsonl"))?;
            losses.push(Series { name: t.method.clone(), points: loss });
            mious.push(Series { name: t.method.clone(), points: miou });
        }
        line_chart(&output.join("loss_curves.png"), "Training loss (sum of the method's terms)", "iteration", "loss", &losses)?;
        line_chart(&output.join("miou_curves.png"), "Synthetic target val mIoU", "iteration", "mIoU %", &mious)?;
        let groups: Vec<(String, Vec<f64>)> =
            columns.iter().map(|(m, _, p)| (m.clone(), p.iter().map(|v| 100.0 * v.unwrap_or(0.0)).collect())).collect();
        grouped_bar_chart(&output.join("per_class_iou.png"), "Per-class IoU on the synthetic target", "IoU %", names, &groups)
    }

    /// predictions.png: target image | ground truth | each method's prediction (`first` seed).
    fn write_grid<B: T2sBackend>(&self, first: u64, device: &B::Device) -> Result<()> {
        let (output, cfg, trained) = (self.output, self.cfg, self.trained);
        let set = cfg.data.eval.first().context("the demo configuration has no evaluation set")?;
        let opened = open_set(set, SetRole::Eval, "data.eval[0]")?;
        let models: Vec<_> = trained
            .iter()
            .filter(|t| t.seed == first)
            .map(|t| t2s_train::load_model_from::<B>(None, Some(&t.weights), None, 0, t2s_train::Sources::CLI, device).map(|l| l.model))
            .collect::<std::result::Result<_, _>>()?;
        let options = cfg.eval_options(set, &opened.name, opened.dataset.label_space().len(), "demo");
        let shown = 4.min(opened.dataset.len());
        let mut tiles: Vec<Vec<image::RgbImage>> = Vec::new();
        for i in 0..shown {
            let sample = opened.dataset.get(i)?;
            let (w, h) = sample.image.dimensions();
            let space = opened.dataset.label_space();
            let mut row = vec![sample.image.clone()];
            if let Some(label) = &sample.label {
                row.push(colorize(label.as_raw(), w, h, space));
            }
            for model in &models {
                let pred = predict_labels(model, device, &sample.image, w, h, &options)?;
                row.push(colorize(&pred, w, h, space));
            }
            tiles.push(row);
        }
        let mut columns = vec!["target image".to_string()];
        if tiles.first().is_some_and(|row| row.len() > models.len() + 1) {
            columns.push("ground truth".into());
        }
        // Named for the network shown when it is not the student (`eval.weights = "teacher"`).
        let shown_network = |t: &Trained| match t.weights.file_stem().and_then(|s| s.to_str()) {
            Some("student") | None => t.method.clone(),
            Some(network) => format!("{} ({network})", t.method),
        };
        columns.extend(trained.iter().filter(|t| t.seed == first).map(shown_network));
        save_png(&crate::plots::labelled_grid(&columns, &tiles)?, &output.join("predictions.png"))?;
        write(&output.join("predictions.txt"), &format!("predictions.png columns: {}\n", columns.join(" | ")))?;
        Ok(())
    }
}

/// Mean over seeds of each method's mIoU and per-class IoU (None where never defined).
fn means(trained: &[Trained], method: &str) -> (f64, Vec<Option<f64>>, Vec<f64>) {
    let runs: Vec<&Trained> = trained.iter().filter(|t| t.method == method).collect();
    let per_seed: Vec<f64> = runs.iter().map(|t| t.report.headline().unwrap_or(0.0)).collect();
    let miou = per_seed.iter().sum::<f64>() / per_seed.len().max(1) as f64;
    let classes = runs.first().map(|t| t.report.classes.len()).unwrap_or(0);
    let per_class = (0..classes)
        .map(|c| {
            let v: Vec<f64> = runs.iter().filter_map(|t| t.report.classes[c].iou).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect();
    (miou, per_class, per_seed)
}

/// Points of one curve.
type Curve = Vec<(f64, f64)>;

/// (iteration, total loss) and (iteration, mIoU %) from a run's metrics.jsonl.
fn read_curves(path: &Path) -> Result<(Curve, Curve)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut loss, mut miou) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON lines", path.display()))?;
        let Some(iter) = v.get("iter").and_then(|i| i.as_f64()) else { continue };
        let x = iter;
        if let Some(m) = v.get("mIoU19").and_then(|m| m.as_f64()) {
            miou.push((x, 100.0 * m));
        } else if let Some(obj) = v.as_object() {
            let total: f64 = obj.iter().filter(|(k, _)| k.starts_with("loss_")).filter_map(|(_, v)| v.as_f64()).sum();
            loss.push((x, total));
        }
    }
    Ok((loss, miou))
}

fn write(path: &Path, text: &str) -> Result<()> {
    t2s_train::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
