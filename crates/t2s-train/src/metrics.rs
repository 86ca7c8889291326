//! Segmentation metrics with mmsegmentation's semantics (method.md §7): a confusion matrix over
//! the whole split, per-class IoU = TP / (TP + FP + FN), mIoU as the mean over the classes of a
//! protocol that occur in the ground truth or the predictions (mmseg's `nanmean`: a class with
//! TP + FP + FN = 0 has no IoU and is left out), overall pixel accuracy.

use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Counts of (ground-truth class, predicted class) pixel pairs, `[C × C]` row-major by truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

/// A set of classes over which mIoU is averaged, with the name it is reported under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protocol {
    /// e.g. `mIoU19`, `mIoU16`, `mIoU13`.
    pub name: String,
    /// Train ids included.
    pub classes: Vec<usize>,
}

impl Protocol {
    /// All `num_classes` classes, named `mIoU<num_classes>`.
    pub fn all(num_classes: usize) -> Self {
        Self { name: format!("mIoU{num_classes}"), classes: (0..num_classes).collect() }
    }
    /// SYNTHIA's 16 classes: the 19 Cityscapes classes without terrain (9), truck (14), train (16).
    pub fn synthia16() -> Self {
        Self { name: "mIoU16".into(), classes: (0..19).filter(|c| ![9, 14, 16].contains(c)).collect() }
    }
    /// SYNTHIA's 13 classes: the 16 without wall (3), fence (4), pole (5).
    pub fn synthia13() -> Self {
        Self { name: "mIoU13".into(), classes: (0..19).filter(|c| ![3, 4, 5, 9, 14, 16].contains(c)).collect() }
    }
}

impl ConfusionMatrix {
    /// All zeros.
    pub fn new(num_classes: usize) -> Self {
        Self { num_classes, counts: vec![0; num_classes * num_classes] }
    }

    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Count of pixels of true class `truth` predicted as `pred`.
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth * self.num_classes + pred]
    }

    /// Adds one image: `truth` and `pred` are same-length train-id maps; pixels whose truth is
    /// `ignore` are skipped. A truth value that is neither a class nor `ignore`, a prediction
    /// outside the classes, or a length mismatch is an error naming `what` (e.g. the file).
    pub fn add(&mut self, truth: &[u8], pred: &[u8], ignore: u8, what: &str) -> Result<()> {
        if truth.len() != pred.len() {
            return Err(TrainError::Usage(format!("{what}: label has {} pixels but the prediction has {}", truth.len(), pred.len())));
        }
        let c = self.num_classes;
        for (&t, &p) in truth.iter().zip(pred) {
            if t == ignore {
                continue;
            }
            if t as usize >= c || p as usize >= c {
                let (kind, v) = if t as usize >= c { ("label", t) } else { ("prediction", p) };
                return Err(TrainError::Usage(format!("{what}: {kind} value {v} is not a class (0..{c}) or the ignore label {ignore}")));
            }
            self.counts[t as usize * c + p as usize] += 1;
        }
        Ok(())
    }

    /// Adds another matrix of the same size (e.g. from a parallel worker).
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// IoU per class; `None` where the class is neither in the truth nor predicted.
    pub fn iou(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|k| {
                let tp = self.get(k, k);
                let row: u64 = (0..self.num_classes).map(|p| self.get(k, p)).sum();
                let col: u64 = (0..self.num_classes).map(|t| self.get(t, k)).sum();
                let union = row + col - tp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// Per-class accuracy TP / (TP + FN); `None` where the class is absent from the truth.
    pub fn class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|k| {
                let row: u64 = (0..self.num_classes).map(|p| self.get(k, p)).sum();
                (row > 0).then(|| self.get(k, k) as f64 / row as f64)
            })
            .collect()
    }

    /// Overall pixel accuracy over non-ignored pixels (mmseg's aAcc); `None` with no pixel.
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let total: u64 = self.counts.iter().sum();
        let correct: u64 = (0..self.num_classes).map(|k| self.get(k, k)).sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// Mean IoU over the protocol's classes that have an IoU; `None` when none has.
    pub fn miou(&self, protocol: &Protocol) -> Option<f64> {
        let iou = self.iou();
        let vals: Vec<f64> = protocol.classes.iter().filter_map(|&c| iou.get(c).copied().flatten()).collect();
        (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_iou_and_miou() {
        // 3 classes; truth/pred pairs: (0,0)×3, (0,1)×1, (1,1)×2, (1,0)×1, (2,1)×1, ignore×2.
        let truth = [0u8, 0, 0, 0, 1, 1, 1, 2, 255, 255];
        let pred = [0u8, 0, 0, 1, 1, 1, 0, 1, 2, 0];
        let mut m = ConfusionMatrix::new(3);
        m.add(&truth, &pred, 255, "t").unwrap();
        // class 0: TP 3, FN 1, FP 1 → 3/5; class 1: TP 2, FN 1, FP 2 → 2/5; class 2: TP 0, FN 1 → 0.
        assert_eq!(m.iou(), vec![Some(0.6), Some(0.4), Some(0.0)]);
        assert!((m.miou(&Protocol::all(3)).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.pixel_accuracy(), Some(5.0 / 8.0));
        assert_eq!(m.class_accuracy(), vec![Some(0.75), Some(2.0 / 3.0), Some(0.0)]);
        // A class in neither truth nor prediction has no IoU and is left out of the mean.
        let mut m4 = ConfusionMatrix::new(4);
        m4.add(&truth, &pred, 255, "t").unwrap();
        assert_eq!(m4.iou()[3], None);
        assert!((m4.miou(&Protocol::all(4)).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let mut twice = m.clone();
        twice.merge(&m);
        assert_eq!(twice.get(0, 0), 6);
        assert_eq!(twice.iou(), m.iou());
    }

    #[test]
    fn synthia_protocols_pick_the_documented_classes() {
        assert_eq!(Protocol::synthia16().classes, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]);
        assert_eq!(Protocol::synthia13().classes, vec![0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]);
        // IoU 1 on classes 0..9, 0 on the rest that occur: mIoU16 and mIoU13 differ as expected.
        let mut m = ConfusionMatrix::new(19);
        let truth: Vec<u8> = (0..19).collect();
        let pred: Vec<u8> = (0..19).map(|c| if c < 9 { c } else { (c + 1) % 19 }).collect();
        m.add(&truth, &pred, 255, "t").unwrap();
        // classes 0..8 perfect (9 classes, IoU 1); 9..18 each TP 0 → 0; class 0 gets a FP from
        // truth 18 → IoU(0) = 1/2.
        let iou = m.iou();
        assert_eq!(iou[0], Some(0.5));
        let m16 = m.miou(&Protocol::synthia16()).unwrap();
        assert!((m16 - (0.5 + 8.0) / 16.0).abs() < 1e-12, "{m16}"); // classes 1..8 perfect
        let m13 = m.miou(&Protocol::synthia13()).unwrap();
        assert!((m13 - (0.5 + 5.0) / 13.0).abs() < 1e-12, "{m13}"); // 1, 2, 6, 7, 8 perfect
    }

    #[test]
    fn bad_values_are_errors_naming_the_input() {
        let mut m = ConfusionMatrix::new(3);
        let e = m.add(&[0, 7], &[0, 0], 255, "a.png").unwrap_err().to_string();
        assert!(e.contains("a.png") && e.contains("label value 7"), "{e}");
        assert!(m.add(&[0], &[0, 1], 255, "b.png").is_err());
        assert!(m.add(&[0], &[5], 255, "c.png").is_err());
    }
}
