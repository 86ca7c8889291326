//! The EMA teacher update θ_T ← α·θ_T + (1 − α)·θ_S (method.md §3 step 1).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{backend::Backend, Tensor};

/// Averages every parameter of `student` into `teacher` with weight `alpha` on the teacher,
/// BatchNorm running statistics included: the teacher runs in eval mode, so its statistics
/// must follow its weights (unlike DAFormer's `_update_ema`; why, in docs/method-notes.md).
/// The two modules must share parameter ids
/// (the teacher made by cloning the student, or the student's `valid()` inference copy).
/// Burn initialises parameters lazily, so a clone of a never-read parameter draws its own random
/// values: the first update must use α = 0 (as `ema_alpha(0, ·)` gives, and as DAFormer copies
/// the weights at iteration 0), which makes the teacher an exact copy.
pub fn ema_update<B: Backend, M: Module<B>>(teacher: M, student: &M, alpha: f64) -> M {
    let mut s = Collect { values: HashMap::new() };
    student.visit(&mut s);
    let mut t = Collect { values: HashMap::new() };
    teacher.visit(&mut t);
    // Blended with tensors of one size back to back, in bounded runs (`crate::fusion_order`):
    // Burn's fusion joins consecutive element-wise operations of one output shape into one
    // kernel, so the ~1,100 tensors of MiT-B5 + DAFormer take a kernel per run instead of one
    // each. All are flattened above and reshaped back below, apart from the blends, because a
    // reshape ends a fused run. The order of the blends changes no value (each tensor's is its
    // own).
    let mut ids: Vec<(usize, ParamId)> =
        t.values.iter().filter(|(id, _)| s.values.contains_key(*id)).map(|(id, v)| (v.dims()[0], *id)).collect();
    ids.sort_by_key(|&(_, id)| id.val());
    let order = crate::fusion_order::fusion_order(&ids.iter().map(|&(n, _)| n).collect::<Vec<_>>());
    let mut blended = HashMap::with_capacity(ids.len());
    for (_, id) in order.into_iter().map(|i| ids[i]) {
        let (Some(old), Some(new)) = (t.values.remove(&id), s.values.remove(&id)) else { continue };
        blended.insert(id, old.mul_scalar(alpha) + new.mul_scalar(1.0 - alpha));
    }
    teacher.map(&mut Replace { values: blended })
}

/// Module tensors (parameters and running statistics), flattened, by id.
struct Collect<B: Backend> {
    values: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.values.insert(param.id, t.reshape([n]));
    }
}

/// Puts the blended tensors in place of the teacher's, in their shapes.
struct Replace<B: Backend> {
    values: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> ModuleMapper<B> for Replace<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.values.remove(&id) {
            Some(v) => v.reshape(tensor.dims()),
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};

    #[derive(Module, Debug)]
    struct Tiny<B: Backend> {
        fc: Linear<B>,
        bn: BatchNorm<B>,
    }

    struct AddOne;
    impl<B: Backend> ModuleMapper<B> for AddOne {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, m) = param.consume();
            Param::from_mapped_value(id, t.add_scalar(1.0), m)
        }
    }

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    }

    #[test]
    fn parameters_and_running_stats_are_averaged() {
        let device = Default::default();
        let student = Tiny::<Flex> { fc: LinearConfig::new(2, 3).init(&device), bn: BatchNormConfig::new(3).init(&device) };
        // Burn initialises parameters lazily: read them once so that the clone holds the same
        // values instead of drawing its own.
        let _ = (student.fc.weight.val(), student.fc.bias.as_ref().map(|b| b.val()), student.bn.gamma.val(), student.bn.beta.val());
        // A clone would share the running statistics' storage (Burn's `RunningState` is
        // `Arc`-backed); a fresh module loaded from the student's record owns its own, with the
        // student's parameter ids, as the trainer's `valid()` teacher does.
        let fresh = Tiny::<Flex> { fc: LinearConfig::new(2, 3).init(&device), bn: BatchNormConfig::new(3).init(&device) };
        let teacher = fresh.load_record(student.clone().into_record());
        // Every student tensor + 1, running statistics included.
        let student = student.map(&mut AddOne);
        let t0 = values(teacher.fc.weight.val());
        let teacher = ema_update(teacher, &student, 0.9);
        let blended = values(teacher.fc.weight.val());
        assert_eq!(blended.len(), t0.len());
        for (t, o) in blended.iter().zip(&t0) {
            assert!((t - (o + 0.1)).abs() < 1e-6, "{t} vs {o}");
        }
        assert!(values(teacher.bn.gamma.val()).iter().all(|g| (g - 1.1).abs() < 1e-6));
        // Running mean 0 → 0.1, running variance 1 → 1.1.
        assert!(values(teacher.bn.running_mean.value()).iter().all(|m| (m - 0.1).abs() < 1e-6));
        assert!(values(teacher.bn.running_var.value()).iter().all(|v| (v - 1.1).abs() < 1e-6));
        // α = 0 copies the student's parameters exactly.
        let copy = ema_update(teacher, &student, 0.0);
        assert_eq!(values(copy.fc.weight.val()), values(student.fc.weight.val()));
    }
}
