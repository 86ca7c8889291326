//! An inventory of a module's tensors by path: counts of trainable parameters, the optimiser's
//! parameter groups, and the list of names and shapes that checkpoints are compared against.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{backend::Backend, Tensor};

/// One tensor of a module.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// Dotted path, e.g. `backbone.layer1.0.conv1.weight` (enum variant names left out, as in
    /// PyTorch checkpoints).
    pub path: String,
    pub id: ParamId,
    pub shape: Vec<usize>,
    /// False for running statistics (BN `running_mean` / `running_var`), which are state, not
    /// parameters.
    pub trainable: bool,
}

#[derive(Default)]
struct Inventory {
    stack: Vec<(String, String)>,
    entries: Vec<TensorEntry>,
}

impl<B: Backend> ModuleVisitor<B> for Inventory {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        // Enum variants appear as containers named `Enum:...`; their names are not path parts.
        let path: Vec<&str> = self.stack.iter().filter(|(_, ty)| !ty.starts_with("Enum:")).map(|(name, _)| name.as_str()).collect();
        let leaf = path.last().copied().unwrap_or("");
        self.entries.push(TensorEntry {
            path: path.join("."),
            id: param.id,
            // Without initialising a lazy parameter: `t2s models` lists every preset in milliseconds.
            shape: param.lazy_shape().to_vec(),
            trainable: !(leaf == "running_mean" || leaf == "running_var"),
        });
    }
}

/// Every float tensor of `module` (parameters and running statistics), in visiting order.
pub fn inventory<B: Backend, M: Module<B>>(module: &M) -> Vec<TensorEntry> {
    let mut v = Inventory::default();
    module.visit(&mut v);
    v.entries
}

/// Number of trainable parameters (what PyTorch's `parameters()` counts: running statistics
/// excluded, unlike Burn's `num_params`).
pub fn count_trainable<B: Backend, M: Module<B>>(module: &M) -> usize {
    inventory::<B, M>(module).iter().filter(|e| e.trainable).map(|e| e.shape.iter().product::<usize>()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::LinearConfig;

    #[test]
    fn counting_leaves_lazy_parameters_uninitialised() {
        // A fresh Linear's weight and bias are lazy: counting reads their shapes only, so listing
        // every preset's size allocates no weights (`t2s models`).
        let linear = LinearConfig::new(3, 5).init::<Flex>(&Default::default());
        assert!(!linear.weight.is_initialized());
        assert_eq!(count_trainable::<Flex, _>(&linear), 3 * 5 + 5);
        let shapes: Vec<Vec<usize>> = inventory::<Flex, _>(&linear).into_iter().map(|e| e.shape).collect();
        assert_eq!(shapes, vec![vec![3, 5], vec![5]]);
        assert!(!linear.weight.is_initialized());
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use burn::backend::Flex;

    /// Optimiser state and weight files are keyed by path: no two tensors may share one.
    #[test]
    fn every_tensor_of_every_preset_has_its_own_path() {
        for name in crate::PRESETS {
            let mut cfg = crate::SegmentorConfig::preset(name).unwrap();
            cfg.projection = Some(Default::default());
            let net = cfg.init::<Flex>(&Default::default()).unwrap();
            let entries = inventory::<Flex, _>(&net);
            let paths: std::collections::HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths.len(), entries.len(), "{name}: {} tensors, {} paths", entries.len(), paths.len());
        }
    }
}
