//! The optimiser with DAFormer's parameter groups (method.md §3): backbone at the base learning
//! rate, heads at `head_lr_mult` × (10), no weight decay on normalisation and position-embedding
//! parameters; AdamW or SGD with momentum, every constant taken from `[optim]` (Burn's defaults
//! differ from PyTorch's: AdamW ε 1e-5 and weight decay 1e-4, SGD dampening 0.1).
//!
//! The update rules are t2s's own (`rule`), with PyTorch's arithmetic: one step updates
//! equal-sized tensors back to back (`crate::fusion_order`) so that Burn's fusion joins them,
//! where Burn's optimisers step one tensor at a time (docs/benchmarks.md, "Kernel launches per
//! training iteration"). The state is saved in a format of t2s's own (`state_file`).

mod rule;
mod state_file;

use std::collections::HashMap;
use std::path::Path;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use t2s_model::ParamGroups;

use crate::config::{OptimSection, ScheduleSection};
use crate::fusion_order::fusion_order;
use crate::Result;
use rule::{Rule, Slot};
pub use state_file::STATE_FILE;

/// A parameter group: learning-rate multiplier and weight decay.
#[derive(Debug, Clone, Copy)]
struct Group {
    lr_mult: f64,
    weight_decay: f64,
}

/// The grouped optimiser of a run.
pub struct GroupedOptimizer<B: AutodiffBackend> {
    rule: Rule,
    groups: Vec<Group>,
    /// The group of every trained parameter; parameters in none are not updated.
    group_of: HashMap<ParamId, usize>,
    state: HashMap<ParamId, Slot<B::InnerBackend>>,
    base_lr: f64,
    schedule: ScheduleSection,
}

impl<B: AutodiffBackend> GroupedOptimizer<B> {
    /// Builds the optimiser for a model with the given parameter groups.
    pub fn new(cfg: &OptimSection, schedule: &ScheduleSection, groups: &ParamGroups) -> Self {
        let mut group_of = HashMap::new();
        let mut list: Vec<Group> = Vec::new();
        for (ids, lr_mult) in [(&groups.backbone, 1.0), (&groups.head, cfg.head_lr_mult)] {
            for id in ids {
                let weight_decay = if cfg.no_decay_on_norm && groups.no_decay.contains(id) { 0.0 } else { cfg.weight_decay };
                let g = Group { lr_mult, weight_decay };
                let index = match list.iter().position(|o| o.lr_mult == g.lr_mult && o.weight_decay == g.weight_decay) {
                    Some(i) => i,
                    None => {
                        list.push(g);
                        list.len() - 1
                    }
                };
                group_of.insert(*id, index);
            }
        }
        Self { rule: Rule::from_config(cfg), groups: list, group_of, state: HashMap::new(), base_lr: cfg.lr, schedule: schedule.clone() }
    }

    /// The base learning rate at iteration `iter` (the backbone's; heads get their multiple).
    pub fn lr(&self, iter: usize) -> f64 {
        self.schedule.lr_at(iter, self.base_lr)
    }

    /// Writes the optimiser state (moments or momentum buffers, step counts) of `module`'s
    /// parameters as `<dir>/optimizer.safetensors`, by parameter path.
    pub fn save<M: AutodiffModule<B>>(&self, dir: &Path, module: &M) -> Result<()> {
        let paths = t2s_model::io::params::inventory::<B, M>(module).into_iter().map(|e| (e.id, e.path)).collect();
        state_file::save(&dir.join(STATE_FILE), &self.rule, &self.state, &paths)
    }

    /// Restores the state written by [`GroupedOptimizer::save`] for `module`, matching parameters
    /// by path (or, in a checkpoint written before 2026-12-06, by the ids its `student.mpk`
    /// restored).
    pub fn load<M: AutodiffModule<B>>(mut self, dir: &Path, module: &M, device: &B::Device) -> Result<Self> {
        let mut sizes = Sizes { sizes: HashMap::new() };
        module.visit(&mut sizes);
        let ids = t2s_model::io::params::inventory::<B, M>(module).into_iter().map(|e| (e.path, e.id)).collect();
        self.state = state_file::load(dir, &self.rule, &sizes.sizes, &ids, device)?;
        Ok(self)
    }

    /// One optimiser step at (0-based) iteration `iter` with the gradients of `module`'s loss.
    /// Parameters without a gradient keep their values and state (as PyTorch skips them).
    pub fn step<M: AutodiffModule<B>>(&mut self, iter: usize, module: M, mut grads: B::Gradients) -> M {
        let mut gather = Gather::<B> { group_of: &self.group_of, grads: &mut grads, items: Vec::new() };
        module.visit(&mut gather);
        let items = gather.items;
        // Equal-sized updates back to back, in bounded runs (`fusion_order`; module order within
        // a size), so that fusion joins them (every operation of an update is element-wise on
        // `[n]`; the reshapes, which end a fused run, are all above and below). The order
        // changes no value.
        let order = fusion_order(&items.iter().map(|it| it.param.dims()[0]).collect::<Vec<_>>());
        let mut items: Vec<Option<Item<B::InnerBackend>>> = items.into_iter().map(Some).collect();
        // mmcv scales the *scheduled* rate of each group: lr_group(t) = schedule(t, base·mult).
        let lrs: Vec<f64> = self.groups.iter().map(|g| self.schedule.lr_at(iter, self.base_lr * g.lr_mult)).collect();
        let mut updated = HashMap::with_capacity(items.len());
        for it in order.into_iter().filter_map(|i| items[i].take()) {
            let group = self.groups[it.group];
            let (p, slot) = self.rule.update(it.param, it.grad, self.state.remove(&it.id), lrs[it.group], group.weight_decay);
            self.state.insert(it.id, slot);
            updated.insert(it.id, p);
        }
        module.map(&mut Replace::<B> { values: updated })
    }
}

/// One parameter to update: its value and gradient, flattened, and its group.
struct Item<B: Backend> {
    id: ParamId,
    group: usize,
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
}

/// Takes the gradient of every grouped parameter out of `grads`.
struct Gather<'a, B: AutodiffBackend> {
    group_of: &'a HashMap<ParamId, usize>,
    grads: &'a mut B::Gradients,
    items: Vec<Item<B::InnerBackend>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Gather<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(&group) = self.group_of.get(&param.id) else { return };
        let value = param.val();
        let Some(grad) = value.grad_remove(self.grads) else { return };
        let n = grad.shape().num_elements();
        self.items.push(Item { id: param.id, group, param: value.inner().reshape([n]), grad: grad.reshape([n]) });
    }
}

/// Puts the updated values in place, in their shapes, as leaves that require gradients again.
struct Replace<B: AutodiffBackend> {
    values: HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Replace<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.values.remove(&id) {
            Some(v) => {
                let updated = Tensor::from_inner(v.reshape(tensor.dims()));
                if tensor.is_require_grad() {
                    updated.require_grad()
                } else {
                    updated
                }
            }
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The number of values of every parameter, by id.
struct Sizes {
    sizes: HashMap<ParamId, usize>,
}

impl<B: Backend> ModuleVisitor<B> for Sizes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.sizes.insert(param.id, param.lazy_shape().num_elements());
    }
}

#[cfg(test)]
mod tests;
