//! Batch-norm running statistics across replicas. Each replica's forward passes update its own
//! (its batch's statistics); averaged after every step, they stay the same on every replica, so
//! that the EMA teacher, which takes the student's running statistics, stays the same too, and a
//! resumed group (every replica loading rank 0's checkpoint) continues exactly. PyTorch's DDP
//! broadcasts rank 0's buffers instead, and mmseg turns that off (each GPU keeps its own); the
//! mean of the replicas' estimates is the better estimate of the statistics of the whole batch
//! (docs/method-notes.md).

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_collective::{all_reduce, ReduceOperation};

use super::{within, Replica};
use crate::Result;

/// `module` with every float tensor that trains no gradient (batch norm's running mean and
/// variance) replaced by its mean over the replicas: one all-reduce of them all, flattened in
/// visit order. Unchanged with fewer than two replicas or no such tensor.
pub fn mean_running_stats<B: AutodiffBackend, M: AutodiffModule<B>>(replica: &Replica, module: M) -> Result<M> {
    if replica.count < 2 {
        return Ok(module);
    }
    // Burn's `RunningState` keeps a forward pass's update aside until it is synchronised, which
    // `valid()` does; visiting before that would read the statistics of one update ago.
    drop(module.valid());
    let mut take = Running::<B> { items: Vec::new() };
    module.visit(&mut take);
    if take.items.is_empty() {
        return Ok(module);
    }
    let sizes: Vec<usize> = take.items.iter().map(|(_, t)| t.dims()[0]).collect();
    let flat = Tensor::cat(take.items.iter().map(|(_, t)| t.clone()).collect(), 0);
    let peer = replica.peer();
    let primitive = flat.into_primitive().tensor();
    let mean = within(replica, "averaging the batch-norm statistics", move || {
        all_reduce::<B::InnerBackend>(peer, primitive, ReduceOperation::Mean)
    })?;
    let mean = Tensor::<B::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(mean));
    let mut offset = 0;
    let mut values = HashMap::with_capacity(sizes.len());
    for ((id, _), n) in take.items.iter().zip(sizes) {
        values.insert(*id, mean.clone().narrow(0, offset, n));
        offset += n;
    }
    Ok(module.map(&mut PutRunning::<B> { values }))
}

/// The float tensors that do not require a gradient, flattened, in visit order.
struct Running<B: AutodiffBackend> {
    items: Vec<(ParamId, Tensor<B::InnerBackend, 1>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Running<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        if !t.is_require_grad() {
            let n = t.shape().num_elements();
            self.items.push((param.id, t.inner().reshape([n])));
        }
    }
}

/// Puts the averaged statistics back, in their shapes.
struct PutRunning<B: AutodiffBackend> {
    values: HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for PutRunning<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(mean) = self.values.remove(&param.id) else { return param };
        let (id, t, mapper) = param.consume();
        let shape = t.shape();
        Param::from_mapped_value(id, Tensor::from_inner(mean.reshape(shape)), mapper)
    }
}
