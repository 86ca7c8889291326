//! The fused per-query term of the T2S contrastive loss as one autodiff operation
//! ([`T2sBackend::contrastive_rows_fused`] on [`Autodiff`]): the inner backend's forward kernel,
//! recorded with the queries as its only parent, and its backward kernel for their gradient.
//! The prototypes and the key bank carry no gradient (they come from the EMA teacher).

use crate::ops::backend::{tensor, ContrastiveRows, ContrastiveSaved, T2sBackend};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorPrimitive};

/// The backward pass.
#[derive(Debug)]
struct ContrastiveRowsBackward;

/// Queries, positives, keys and negatives, the forward pass's saved values, and `1/τ`.
type Saved<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, IntTensor<B>, ContrastiveSaved<B>, f32);

impl<B: T2sBackend> Backward<B, 1> for ContrastiveRowsBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_q] = ops.parents;
        let upstream = tensor::<B, 1>(grads.consume::<B>(&ops.node));
        let Some(node) = node_q else { return };
        let (q, positives, keys, negatives, saved, inv_tau) = ops.state;
        let negatives = Tensor::<B, 2, Int>::from_primitive(negatives);
        let dq = B::contrastive_rows_fused_backward(tensor(q), tensor(positives), tensor(keys), negatives, &saved, upstream, inv_tau)
            .expect("an autodiff operation recorded only for a backend with the fused kernels");
        grads.register::<B>(node.id, dq.into_primitive().tensor());
    }
}

/// [`T2sBackend::contrastive_rows_fused`] on [`Autodiff`]: `None` unless the inner backend has the
/// kernels.
pub(crate) fn contrastive_rows_autodiff<B: T2sBackend, C: CheckpointStrategy>(
    queries: Tensor<Autodiff<B, C>, 2>,
    positives: Tensor<Autodiff<B, C>, 2>,
    keys: Tensor<Autodiff<B, C>, 2>,
    negatives: Tensor<Autodiff<B, C>, 2, Int>,
    inv_tau: f32,
) -> Option<ContrastiveRows<Autodiff<B, C>>> {
    if !B::FUSED_CONTRASTIVE {
        return None;
    }
    let q = queries.into_primitive().tensor();
    let (positives, keys) = (positives.inner(), keys.inner());
    let negatives = Tensor::<B, 2, Int>::from_primitive(negatives.into_primitive());
    let run = |q: FloatTensor<B>| B::contrastive_rows_fused(tensor(q), positives.clone(), keys.clone(), negatives.clone(), inv_tau);
    let (rows, inner) = match ContrastiveRowsBackward.prepare::<C>([q.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = run(q.primitive.clone())?;
            let state = (
                q.primitive,
                positives.clone().into_primitive().tensor(),
                keys.clone().into_primitive().tensor(),
                negatives.clone().into_primitive(),
                out.saved.clone(),
                inv_tau,
            );
            (prep.finish(state, out.rows.clone().into_primitive().tensor()), out)
        }
        OpsKind::UnTracked(prep) => {
            let out = run(q.primitive)?;
            (prep.finish(out.rows.clone().into_primitive().tensor()), out)
        }
    };
    let saved = inner.saved;
    Some(ContrastiveRows {
        rows: Tensor::from_primitive(TensorPrimitive::Float(rows)),
        saved: ContrastiveSaved {
            lse: Tensor::from_inner(saved.lse),
            norms: Tensor::from_inner(saved.norms),
            logits: Tensor::from_inner(saved.logits),
            key_norms: Tensor::from_inner(saved.key_norms),
        },
    })
}
