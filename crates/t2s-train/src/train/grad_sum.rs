//! Gradients of several backward passes summed per parameter, for a step whose student runs its
//! sub-batches one after another (`uda.student_passes = "sequential"`).

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use crate::fusion_order::fusion_order;

/// Adds the parameter gradients of `more` into `into`, for every float parameter of `module`
/// that has one in `more` (a parameter with a gradient in only one of them keeps that one).
pub fn add_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, into: &mut B::Gradients, more: B::Gradients) {
    let mut pairs = Pairs::<B> { into, more, items: Vec::new() };
    module.visit(&mut pairs);
    // The sums of equal-sized gradients back to back, in bounded runs (`crate::fusion_order`),
    // so that fusion joins them into few kernels instead of one per parameter; the reshapes,
    // which end a fused run, are all before and after.
    let items = pairs.items;
    let order = fusion_order(&items.iter().map(|it| it.more.dims()[0]).collect::<Vec<_>>());
    let mut items: Vec<Option<Pair<B::InnerBackend>>> = items.into_iter().map(Some).collect();
    let mut sums = HashMap::with_capacity(items.len());
    for it in order.into_iter().filter_map(|i| items[i].take()) {
        sums.insert(it.id, if let Some(acc) = it.acc { acc + it.more } else { it.more });
    }
    module.visit(&mut PutBack::<B> { into: pairs.into, sums });
}

/// One parameter's gradients, flattened: the sum so far (if any) and the one to add.
struct Pair<B: Backend> {
    id: ParamId,
    acc: Option<Tensor<B, 1>>,
    more: Tensor<B, 1>,
}

/// Takes every parameter's gradient out of `more`, and out of `into` where it has one.
struct Pairs<'a, B: AutodiffBackend> {
    into: &'a mut B::Gradients,
    more: B::Gradients,
    items: Vec<Pair<B::InnerBackend>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Pairs<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let Some(more) = value.grad_remove(&mut self.more) else { return };
        let n = more.shape().num_elements();
        let acc = value.grad_remove(self.into).map(|g| g.reshape([n]));
        self.items.push(Pair { id: param.id, acc, more: more.reshape([n]) });
    }
}

/// Puts flattened gradients (`sums`, by parameter) into `into`, in their parameters' shapes,
/// replacing what `into` holds for them (also the data-parallel mean, `crate::replicas`).
pub(crate) struct PutBack<'a, B: AutodiffBackend> {
    pub into: &'a mut B::Gradients,
    pub sums: HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for PutBack<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(sum) = self.sums.remove(&param.id) {
            let value = param.val();
            value.grad_replace(self.into, sum.reshape(value.dims()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use burn::tensor::TensorData;

    type AB = Autodiff<Flex>;

    // The backend parameter must be called `B`: named `Bk`, the derived `visit` saw neither
    // parameter (Burn 0.21's derive).
    #[derive(Module, Debug)]
    struct Four<B: burn::tensor::backend::Backend> {
        a: Param<Tensor<B, 1>>,
        b: Param<Tensor<B, 2>>,
        c: Param<Tensor<B, 2>>,
        d: Param<Tensor<B, 1>>,
    }

    #[test]
    fn sums_per_parameter_and_keeps_lone_gradients() {
        let device = Default::default();
        let param = |v: Vec<f32>, shape: Vec<usize>| Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), &device));
        let m = Four::<AB> {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device)),
            b: param(vec![3.0, -1.0, 2.0, 0.5], vec![2, 2]),
            c: param(vec![1.0, -2.0, 0.5, 4.0], vec![2, 2]),
            d: Param::from_tensor(Tensor::from_data(TensorData::new(vec![7.0f32], [1]), &device)),
        };
        // Loss 1 = Σ a² + Σ b + Σ 4d  → d/da = 2a = [2, 4], d/db = 1, d/dd = [4]; none for c.
        let mut g = (m.a.val().powi_scalar(2).sum() + m.b.val().sum() + m.d.val().mul_scalar(4.0).sum()).backward();
        // Loss 2 = Σ 3a + Σ b² + Σ c²  → d/da = [3, 3], d/db = 2b, d/dc = 2c; none for d.
        let l2 = m.a.val().mul_scalar(3.0).sum() + m.b.val().powi_scalar(2).sum() + m.c.val().powi_scalar(2).sum();
        add_gradients::<AB, _>(&m, &mut g, l2.backward());
        let grad2 = |t: Tensor<AB, 2>| {
            let g = t.grad(&g).unwrap();
            (g.dims().to_vec(), g.into_data().to_vec::<f32>().unwrap())
        };
        let grad1 = |t: Tensor<AB, 1>| t.grad(&g).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(grad1(m.a.val()), vec![5.0, 7.0]);
        assert_eq!(grad2(m.b.val()), (vec![2, 2], vec![7.0, -1.0, 5.0, 2.0]));
        assert_eq!(grad2(m.c.val()), (vec![2, 2], vec![2.0, -4.0, 1.0, 8.0]));
        assert_eq!(grad1(m.d.val()), vec![4.0]);
    }
}
