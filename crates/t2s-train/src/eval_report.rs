//! The result of an evaluation: per-class IoU table, mIoU under each protocol (always with the
//! protocol's name, so a SYNTHIA result is never mistaken for a 19-class one), written as JSON
//! and as a Markdown table.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::metrics::{ConfusionMatrix, Protocol};
use crate::{Result, TrainError};

/// One class's scores (fractions in 0..=1; `None` where undefined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Class name.
    pub name: String,
    /// Intersection over union.
    pub iou: Option<f64>,
    /// Pixel accuracy within the class (recall).
    pub accuracy: Option<f64>,
}

/// mIoU under one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolScore {
    /// e.g. `mIoU19`.
    pub name: String,
    /// Number of classes in the protocol.
    pub classes: usize,
    /// The mean IoU (fraction), `None` when no class of the protocol occurred.
    pub miou: Option<f64>,
    /// The classes that entered the mean: those of the protocol present in the ground truth or
    /// the predictions (a class in neither has no IoU, as in mmseg).
    #[serde(default)]
    pub averaged: Vec<String>,
}

impl ProtocolScore {
    /// "mIoU19 45.12 % over 11 classes present in the ground truth or the predictions, of 19".
    pub fn describe(&self) -> String {
        let value = self.miou.map_or("n/a".to_string(), |v| format!("{:.2} %", 100.0 * v));
        if self.averaged.len() == self.classes {
            format!("{} {value} over all {} classes", self.name, self.classes)
        } else {
            format!(
                "{} {value} over {} classes present in the ground truth or the predictions, of {}",
                self.name,
                self.averaged.len(),
                self.classes
            )
        }
    }
}

/// Everything an evaluation reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// What was evaluated (dataset and split).
    pub dataset: String,
    /// Which weights: `student` or `teacher`.
    pub weights: String,
    /// Number of images.
    pub images: usize,
    /// mIoU per protocol, the first being the headline number.
    pub miou: Vec<ProtocolScore>,
    /// Overall pixel accuracy (fraction).
    pub pixel_accuracy: Option<f64>,
    /// Per-class scores in train-id order.
    pub classes: Vec<ClassScore>,
    /// The confusion matrix behind all of it.
    pub confusion: ConfusionMatrix,
}

impl EvalReport {
    /// Builds the report from a confusion matrix and class names (one per class).
    pub fn new(dataset: &str, weights: &str, images: usize, confusion: ConfusionMatrix, names: &[String], protocols: &[Protocol]) -> Self {
        let (iou, acc) = (confusion.iou(), confusion.class_accuracy());
        let classes =
            (0..confusion.num_classes()).map(|k| ClassScore { name: classes_name(names, k), iou: iou[k], accuracy: acc[k] }).collect();
        let miou = protocols
            .iter()
            .map(|p| ProtocolScore {
                name: p.name.clone(),
                classes: p.classes.len(),
                miou: confusion.miou(p),
                averaged: p.classes.iter().filter(|&&c| iou.get(c).copied().flatten().is_some()).map(|&c| classes_name(names, c)).collect(),
            })
            .collect();
        Self {
            dataset: dataset.into(),
            weights: weights.into(),
            images,
            miou,
            pixel_accuracy: confusion.pixel_accuracy(),
            classes,
            confusion,
        }
    }

    /// The headline mIoU (first protocol).
    pub fn headline(&self) -> Option<f64> {
        self.miou.first().and_then(|p| p.miou)
    }

    /// A Markdown table of per-class IoU and accuracy (percent), followed by the mIoU lines.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.2}", 100.0 * v));
        let width = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        let mut s = format!("{} ({} weights, {} images)\n\n", self.dataset, self.weights, self.images);
        s += &format!("| {:width$} | IoU % | Acc % |\n|{}|------:|------:|\n", "class", "-".repeat(width + 2));
        for c in &self.classes {
            s += &format!("| {:width$} | {:>5} | {:>5} |\n", c.name, pct(c.iou), pct(c.accuracy));
        }
        s += "\n";
        for p in &self.miou {
            s += &format!("{}\n", p.describe());
        }
        s += &format!("aAcc: {}\n", pct(self.pixel_accuracy));
        s
    }

    /// Writes `<stem>.json` and `<stem>.md` into `dir`, each atomically (temp file + rename).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<()> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| TrainError::Usage(format!("cannot serialise the evaluation report: {e}")))?;
        write_atomic(&dir.join(format!("{stem}.json")), json.as_bytes())?;
        write_atomic(&dir.join(format!("{stem}.md")), self.table().as_bytes())
    }
}

/// Class `k`'s name, or `class k` beyond the list.
fn classes_name(names: &[String], k: usize) -> String {
    names.get(k).cloned().unwrap_or_else(|| format!("class {k}"))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// crash never leaves a half-written file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| TrainError::Io { path: path.to_path_buf(), message: e.to_string() };
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    if path.is_dir() {
        return Err(TrainError::Io { path: path.to_path_buf(), message: "it is a folder; give a file name".into() });
    }
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_table_and_files() {
        let mut m = ConfusionMatrix::new(3);
        m.add(&[0, 0, 0, 0, 1, 1, 1, 2], &[0, 0, 0, 1, 1, 1, 0, 1], 255, "t").unwrap();
        let names: Vec<String> = ["road", "sidewalk", "building"].map(String::from).to_vec();
        let r = EvalReport::new("toy val", "student", 1, m, &names, &[Protocol::all(3)]);
        assert!((r.headline().unwrap() - (0.6 + 0.4 + 0.0) / 3.0).abs() < 1e-12);
        let t = r.table();
        assert!(t.contains("| road     | 60.00 | 75.00 |"), "{t}");
        assert!(t.contains("mIoU3 33.33 % over all 3 classes"), "{t}");
        // Class 2 (building) is never labelled and never predicted: no IoU, not in the mean.
        let mut m = ConfusionMatrix::new(3);
        m.add(&[0, 0, 1, 1], &[0, 1, 1, 1], 255, "t").unwrap();
        let r2 = EvalReport::new("toy val", "student", 1, m, &names, &[Protocol::all(3)]);
        assert_eq!(r2.miou[0].averaged, ["road", "sidewalk"]);
        // IoU road 1/2, sidewalk 2/3: mean over the two.
        assert!((r2.headline().unwrap() - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!(r2.table().contains("mIoU3 58.33 % over 2 classes present in the ground truth or the predictions, of 3"), "{}", r2.table());
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path(), "eval").unwrap();
        let back: EvalReport = serde_json::from_str(&std::fs::read_to_string(dir.path().join("eval.json")).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(std::fs::read_to_string(dir.path().join("eval.md")).unwrap(), t);
    }
}
