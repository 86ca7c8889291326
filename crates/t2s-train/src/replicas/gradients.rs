//! The gradient all-reduce of a data-parallel step: every parameter gradient of a replica,
//! flattened into one buffer in the module's parameter order (the same on every replica, whatever
//! the parameters' ids), averaged across the replicas in one collective call, and put back.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_collective::{all_reduce, ReduceOperation};

use super::{within, Replica};
use crate::train::grad_sum::PutBack;
use crate::Result;

/// Replaces every parameter gradient of `module` in `grads` by its mean over the replicas
/// (DistributedDataParallel's average, so that a step of N replicas on batches of B is the step
/// of one replica on the N·B images with the mean loss). Every replica must call it with the
/// same set of gradients (the same parameters, shapes and order); a replica with another set
/// gets an error, as does one whose peers do not answer within `replica.timeout`.
pub fn mean_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(replica: &Replica, module: &M, grads: &mut B::Gradients) -> Result<()> {
    if replica.count < 2 {
        return Ok(());
    }
    let mut take = Take::<B> { grads, items: Vec::new() };
    module.visit(&mut take);
    let items = take.items;
    if items.is_empty() {
        return Ok(());
    }
    let sizes: Vec<usize> = items.iter().map(|(_, g)| g.dims()[0]).collect();
    let flat = Tensor::cat(items.iter().map(|(_, g)| g.clone()).collect(), 0);
    let peer = replica.peer();
    let primitive = flat.into_primitive().tensor();
    let mean = within(replica, "averaging the gradients", move || all_reduce::<B::InnerBackend>(peer, primitive, ReduceOperation::Mean))?;
    let mean = Tensor::<B::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(mean));
    let mut offset = 0;
    let mut sums = HashMap::with_capacity(items.len());
    for ((id, _), n) in items.iter().zip(sizes) {
        sums.insert(*id, mean.clone().narrow(0, offset, n));
        offset += n;
    }
    module.visit(&mut PutBack::<B> { into: grads, sums });
    Ok(())
}

/// Takes every parameter's gradient out of `grads`, flattened, in visit order.
struct Take<'a, B: AutodiffBackend> {
    grads: &'a mut B::Gradients,
    items: Vec<(ParamId, Tensor<B::InnerBackend, 1>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Take<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad_remove(self.grads) {
            let n = g.shape().num_elements();
            self.items.push((param.id, g.reshape([n])));
        }
    }
}
