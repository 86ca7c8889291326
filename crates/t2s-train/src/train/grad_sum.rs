//! Gradients of several backward passes summed per parameter, for a step whose student runs its
//! sub-batches one after another (`uda.student_passes = "sequential"`).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

/// Adds the parameter gradients of `more` into `into`, for every float parameter of `module`
/// that has one in `more` (a parameter with a gradient in only one of them keeps that one).
pub fn add_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, into: &mut B::Gradients, more: B::Gradients) {
    module.visit(&mut AddInto::<B> { into, more });
}

struct AddInto<'a, B: AutodiffBackend> {
    into: &'a mut B::Gradients,
    more: B::Gradients,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for AddInto<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let Some(g) = value.grad_remove(&mut self.more) else { return };
        let sum = match value.grad_remove(self.into) {
            Some(acc) => acc + g,
            None => g,
        };
        value.grad_replace(self.into, sum);
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
    struct Two<B: burn::tensor::backend::Backend> {
        a: Param<Tensor<B, 1>>,
        b: Param<Tensor<B, 2>>,
    }

    #[test]
    fn sums_per_parameter_and_keeps_lone_gradients() {
        let device = Default::default();
        let m = Two::<AB> {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device)),
            b: Param::from_tensor(Tensor::from_data(TensorData::new(vec![3.0f32, -1.0], [1, 2]), &device)),
        };
        // Loss 1 = Σ a² + Σ b  → d/da = 2a = [2, 4], d/db = [1, 1].
        let mut g = (m.a.val().powi_scalar(2).sum() + m.b.val().sum()).backward();
        // Loss 2 = Σ 3a       → d/da = [3, 3], no gradient for b.
        let l2 = m.a.val().mul_scalar(3.0).sum();
        add_gradients::<AB, _>(&m, &mut g, l2.backward());
        let ga = m.a.val().grad(&g).unwrap().into_data().to_vec::<f32>().unwrap();
        let gb = m.b.val().grad(&g).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(ga, vec![5.0, 7.0]);
        assert_eq!(gb, vec![1.0, 1.0]);
    }
}
