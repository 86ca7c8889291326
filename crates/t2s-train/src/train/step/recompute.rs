//! `train.recompute = "blocks"`: the student's MiT encoder runs off the graph and is rerun block by
//! block after the loss's backward pass (`t2s_model::nets::mit::recompute`); the block passes'
//! parameter gradients are summed into the step's (`train/grad_sum.rs`).

use burn::tensor::Tensor;
use t2s_model::nets::mit::recompute::MitTape;
use t2s_model::{Backbone, Encode, Precision, Segmentor, T2sAutodiffBackend};

use super::super::grad_sum::add_gradients;
use crate::config::Recompute;
use crate::{Result, TrainError};

/// The encoder passes of one student pass, kept for their recomputation.
struct Tapes<'a, B: T2sAutodiffBackend> {
    student: &'a Segmentor<B>,
    precision: Precision,
    /// Each encoder pass, in pass order (HRDA: the context pass, then the detail crops).
    passes: Vec<EncoderPass<B>>,
}

/// An encoder pass's stage outputs (graph leaves) and tape.
type EncoderPass<B> = (Vec<Tensor<B, 4>>, MitTape<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>);

impl<B: T2sAutodiffBackend> Tapes<'_, B> {
    fn encode(&mut self, x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let Backbone::Mit(mit) = &self.student.backbone else { unreachable!("train.recompute is checked against the backbone") };
        let (leaves, tape) = mit.forward_taped(x, self.precision);
        self.passes.push((leaves.clone(), tape));
        leaves
    }

    /// Adds the encoder's gradients to `grads`, which hold the loss's (and the stage outputs').
    fn backward(self, grads: &mut B::Gradients) {
        let Backbone::Mit(mit) = &self.student.backbone else { unreachable!("train.recompute is checked against the backbone") };
        let student = self.student;
        for (leaves, tape) in self.passes.into_iter().rev() {
            let outputs = leaves.iter().map(|l| l.grad_remove(grads)).collect();
            tape.backward(mit, outputs, |g| add_gradients(student, grads, g));
        }
    }
}

/// One student pass and its backward pass: `pass` runs the student (with the given backbone pass
/// under recomputation, None otherwise) and gives its loss (None: no term); the gradients of the
/// student's parameters, encoder included.
pub(super) fn pass_and_backward<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    precision: Precision,
    recompute: Recompute,
    pass: impl FnOnce(Option<&mut Encode<'_, B>>) -> Result<Option<Tensor<B, 1>>>,
) -> Result<Option<B::Gradients>> {
    match recompute {
        Recompute::None => Ok(pass(None)?.map(|loss| loss.backward())),
        Recompute::Blocks => {
            if !matches!(student.backbone, Backbone::Mit(_)) {
                return Err(TrainError::Usage("train.recompute = \"blocks\" needs a MiT backbone".into()));
            }
            let mut tapes = Tapes { student, precision, passes: Vec::new() };
            let loss = pass(Some(&mut |x, _| tapes.encode(x)))?;
            Ok(loss.map(|loss| {
                let mut grads = loss.backward();
                tapes.backward(&mut grads);
                grads
            }))
        }
    }
}
