//! `[eval]`: when and how the model is evaluated during training (and by `t2s eval`).

use serde::{Deserialize, Serialize};

use crate::inference::InferenceMode;

/// Which weights are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalWeights {
    /// The trained network (the anchors' practice; default).
    Student,
    /// The EMA teacher.
    Teacher,
}

/// Mean-IoU protocols to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocols {
    /// 19 classes; for a SYNTHIA source also 16 and 13 (default).
    Auto,
    /// 19 classes only.
    Cityscapes19,
    /// 19, 16 and 13.
    Synthia,
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every this many iterations (4,000); 0: only at the end.
    pub interval: usize,
    /// Inference: `{ mode = "whole" }` (default) or `{ mode = "slide", crop = [h, w], stride = [h, w] }`.
    pub inference: InferenceMode,
    /// The network the evaluations during training score: `student` (default, the anchors'
    /// practice) or `teacher` (the EMA teacher; the student during a source-only warm-up, which
    /// has none). Reports name it; `best.safetensors` keeps the best-scoring network evaluated,
    /// whichever it was. `t2s eval` scores the weights it is given.
    pub weights: EvalWeights,
    /// `auto`, `cityscapes19` or `synthia`.
    pub protocols: Protocols,
    /// Keep-ratio resize `[long, short]` of evaluation images before inference (Cityscapes
    /// [1024, 512]); logits are resized back to the label's full resolution.
    pub resize: Option<[u32; 2]>,
    /// Images written as prediction pictures per evaluation (4): by `t2s eval` into its output
    /// folder, during training into `<run>/eval/iter_<N>_<set>/` (`<name>_pred.png`, `_gt.png`).
    pub save_images: usize,
    /// The evaluation set whose headline mIoU picks `best.safetensors`, by its name as runs
    /// report it (e.g. `cityscapes val`); the first `[[data.eval]]` when left out. Selecting on
    /// the target's own labelled split is what UDA papers do and is optimistic: the number is
    /// the best of many looks at the set it is reported on (docs/method-notes.md).
    pub select_on: Option<String>,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            interval: 4_000,
            inference: InferenceMode::Whole,
            weights: EvalWeights::Student,
            protocols: Protocols::Auto,
            resize: None,
            save_images: 4,
            select_on: None,
        }
    }
}
