//! The teacher's part of a self-training step: one forward pass, off the autodiff graph, over the
//! images that play the target's part (the target batch, or in domain generalisation the
//! pseudo-targets: unreliable negatives, π, the target prototypes) and, when the contrastive
//! term needs its keys, the source images.

use burn::tensor::backend::Backend;
use t2s_model::{SegOutput, Segmentor, T2sBackend};

use super::tensors::{split_output, upload};
use super::StepBatches;
use crate::{Result, TrainError};

/// The images the teacher sees in the target's place, `[N, 3, H, W]` normalised.
pub(super) struct TeacherView<'a> {
    images: &'a [f32],
    n: usize,
    size: (usize, usize),
}

impl<'a> TeacherView<'a> {
    /// The target batch when there is one, else the pseudo-targets; self-training has at least
    /// one of them (`dacs` needs a target set: `RunConfig::validate`).
    pub(super) fn of(batches: StepBatches<'a>, pseudo_targets: Option<&'a [f32]>) -> Result<Self> {
        let s = batches.source;
        let images = batches
            .target
            .map(|t| t.images.as_slice())
            .or(pseudo_targets)
            .ok_or_else(|| TrainError::Internal("self-training without a target batch or pseudo-targets".into()))?;
        Ok(Self { images, n: s.len(), size: (s.height, s.width) })
    }
}

/// What the teacher's pass gives the rest of the step.
pub(super) struct TeacherOutputs<B: Backend> {
    /// On the target (or pseudo-target) images: logits `[N, C, h, w]`, embedding, features.
    pub view: SegOutput<B>,
    /// On the source images, when asked for (the contrastive term's keys).
    pub source: Option<SegOutput<B>>,
}

/// The teacher's one pass over `view` and, when given, `source`'s images, as one batch.
pub(super) fn teacher_pass<B: T2sBackend>(
    teacher: &Segmentor<B>,
    view: TeacherView,
    source: Option<&t2s_data::Batch>,
    device: &B::Device,
) -> TeacherOutputs<B> {
    let mut parts: Vec<&[f32]> = vec![view.images];
    parts.extend(source.map(|s| s.images.as_slice()));
    let (h, w) = view.size;
    let out = teacher.forward_sub_batches(upload(&parts, view.n, h, w, device), parts.len());
    let mut outs = split_output(out, parts.len(), view.n).into_iter();
    let view = outs.next().expect("one output per part");
    TeacherOutputs { view, source: outs.next() }
}
