//! What replicas agree on besides the gradients: sums of per-replica numbers (the T2S
//! prototypes' class sums, the re-weighting statistics, the class frequencies), whether to stop,
//! and a barrier; each an identity without replicas, so a single-replica run computes exactly
//! what it did before data parallelism existed.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{all_reduce, ReduceOperation};
use t2s_loss::ClassSums;

use super::{within, Replica};
use crate::Result;

/// `t` summed over the replicas (every replica gets the sum); `t` itself without replicas.
pub fn sum_across<B: Backend, const D: usize>(replica: Option<&Replica>, what: &str, t: Tensor<B, D>) -> Result<Tensor<B, D>> {
    let Some(replica) = replica.filter(|r| r.count > 1) else { return Ok(t) };
    let peer = replica.peer();
    let primitive = t.into_primitive().tensor();
    let sum = within(replica, what, move || all_reduce::<B>(peer, primitive, ReduceOperation::Sum))?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(sum)))
}

/// Per-class sums and counts added up over the replicas (one all-reduce).
pub fn sum_class_sums<B: Backend>(replica: Option<&Replica>, what: &str, sums: ClassSums<B>) -> Result<ClassSums<B>> {
    if replica.is_none_or(|r| r.count < 2) {
        return Ok(sums);
    }
    Ok(ClassSums::unpacked(sum_across(replica, what, sums.packed())?))
}

/// Host numbers added up over the replicas (through `device`); unchanged without replicas.
pub fn sum_host<B: Backend>(replica: Option<&Replica>, what: &str, values: &[f64], device: &B::Device) -> Result<Vec<f64>> {
    if replica.is_none_or(|r| r.count < 2) || values.is_empty() {
        return Ok(values.to_vec());
    }
    let t = Tensor::<B, 1>::from_data(TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), [values.len()]), device);
    let sum = sum_across(replica, what, t)?;
    Ok(sum.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect())
}

/// How many replicas raised each flag (the stop request, a non-finite loss): every replica
/// gets the same counts, so they all take the same turn.
pub fn count_flags<B: Backend>(replica: &Replica, flags: &[bool], device: &B::Device) -> Result<Vec<usize>> {
    let values: Vec<f64> = flags.iter().map(|&f| f64::from(u8::from(f))).collect();
    Ok(sum_host::<B>(Some(replica), "agreeing on whether to go on", &values, device)?.into_iter().map(|v| v.round() as usize).collect())
}
