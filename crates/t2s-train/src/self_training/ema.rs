//! The EMA teacher update θ_T ← α·θ_T + (1 − α)·θ_S (method.md §3 step 1).

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{backend::Backend, Tensor};

/// Averages every trainable parameter of `student` into `teacher` with weight `alpha` on the
/// teacher. As DAFormer's `_update_ema`, which zips `parameters()`, BatchNorm running statistics
/// are not averaged: the teacher keeps its own. The two modules must share parameter ids
/// (the teacher made by cloning the student, or the student's `valid()` inference copy).
/// Burn initialises parameters lazily, so a clone of a never-read parameter draws its own random
/// values: the first update must use α = 0 (as `ema_alpha(0, ·)` gives, and as DAFormer copies
/// the weights at iteration 0), which makes the teacher an exact copy.
pub fn ema_update<B: Backend, M: Module<B>>(teacher: M, student: &M, alpha: f64) -> M {
    let trainable: HashSet<ParamId> = t2s_model::inventory::<B, M>(student).into_iter().filter(|e| e.trainable).map(|e| e.id).collect();
    let mut collect = Collect { trainable, values: HashMap::new() };
    student.visit(&mut collect);
    teacher.map(&mut Blend { values: collect.values, alpha })
}

/// Student parameters, flattened, by id.
struct Collect<B: Backend> {
    trainable: HashSet<ParamId>,
    values: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.trainable.contains(&param.id) {
            let t = param.val();
            let n = t.shape().num_elements();
            self.values.insert(param.id, t.reshape([n]));
        }
    }
}

struct Blend<B: Backend> {
    values: HashMap<ParamId, Tensor<B, 1>>,
    alpha: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.values.remove(&id) {
            Some(s) => {
                let dims = tensor.dims();
                tensor.mul_scalar(self.alpha) + s.reshape(dims).mul_scalar(1.0 - self.alpha)
            }
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
    fn parameters_are_averaged_and_running_stats_kept() {
        let device = Default::default();
        let student = Tiny::<Flex> { fc: LinearConfig::new(2, 3).init(&device), bn: BatchNormConfig::new(3).init(&device) };
        // Burn initialises parameters lazily: read them once so that the clone holds the same
        // values instead of drawing its own.
        let _ = (student.fc.weight.val(), student.fc.bias.as_ref().map(|b| b.val()), student.bn.gamma.val(), student.bn.beta.val());
        let teacher = student.clone();
        // Every student tensor + 1, running statistics included.
        let student = student.map(&mut AddOne);
        let t0 = values(teacher.fc.weight.val());
        let rm0 = values(teacher.bn.running_mean.value());
        let teacher = ema_update(teacher, &student, 0.9);
        for (t, o) in values(teacher.fc.weight.val()).iter().zip(&t0) {
            assert!((t - (o + 0.1)).abs() < 1e-6, "{t} vs {o}");
        }
        assert!(values(teacher.bn.gamma.val()).iter().all(|g| (g - 1.1).abs() < 1e-6));
        assert_eq!(values(teacher.bn.running_mean.value()), rm0);
        // α = 0 copies the student's parameters exactly.
        let copy = ema_update(teacher, &student, 0.0);
        assert_eq!(values(copy.fc.weight.val()), values(student.fc.weight.val()));
    }
}
