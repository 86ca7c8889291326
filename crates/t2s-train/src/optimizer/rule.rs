//! The update rules, PyTorch's `torch.optim.AdamW` and `torch.optim.SGD` (single-tensor form),
//! applied to one flattened parameter tensor at a time. The rules are t2s's own, not Burn's
//! optimisers, so that the trainer can order the updates of ~1,100 tensors by size (see
//! `GroupedOptimizer::step`) and keep the state in a file format of its own.

use burn::tensor::{backend::Backend, Tensor};

use crate::config::{OptimSection, OptimizerKind};

/// An update rule with its constants (all from `[optim]`; none of Burn's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule {
    /// Decoupled weight decay (Loshchilov & Hutter), bias-corrected moments.
    AdamW { beta1: f64, beta2: f64, eps: f64 },
    /// L2 weight decay added to the gradient, heavy-ball or Nesterov momentum.
    Sgd { momentum: f64, dampening: f64, nesterov: bool },
}

/// One parameter's optimiser state, flattened (PyTorch's per-parameter `state` entries).
#[derive(Clone, Debug)]
pub(crate) enum Slot<B: Backend> {
    /// `step`: updates taken; `exp_avg`, `exp_avg_sq`: the first and second moments.
    AdamW { step: u64, exp_avg: Tensor<B, 1>, exp_avg_sq: Tensor<B, 1> },
    /// The momentum buffer (none with momentum 0, as in PyTorch).
    Sgd { momentum_buffer: Option<Tensor<B, 1>> },
}

impl Rule {
    pub(crate) fn from_config(cfg: &OptimSection) -> Self {
        match cfg.kind {
            OptimizerKind::Adamw => Rule::AdamW { beta1: cfg.betas[0], beta2: cfg.betas[1], eps: cfg.eps },
            OptimizerKind::Sgd => Rule::Sgd { momentum: cfg.momentum, dampening: cfg.dampening, nesterov: cfg.nesterov },
        }
    }

    /// The name of the rule in state files and messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Rule::AdamW { .. } => "adamw",
            Rule::Sgd { .. } => "sgd",
        }
    }

    /// One update of parameter `p` (`[n]`) with gradient `g` (`[n]`) at learning rate `lr` and
    /// weight decay `weight_decay`; `slot` is the parameter's state (`None` before its first
    /// update). Returns the new parameter (`[n]`) and state. Only element-wise operations on
    /// `[n]` tensors, so that Burn's fusion can join the updates of equal-sized parameters.
    pub(crate) fn update<B: Backend>(
        &self,
        p: Tensor<B, 1>,
        g: Tensor<B, 1>,
        slot: Option<Slot<B>>,
        lr: f64,
        weight_decay: f64,
    ) -> (Tensor<B, 1>, Slot<B>) {
        match *self {
            Rule::AdamW { beta1, beta2, eps } => {
                let (step, moments) = match slot {
                    Some(Slot::AdamW { step, exp_avg, exp_avg_sq }) => (step.saturating_add(1), Some((exp_avg, exp_avg_sq))),
                    _ => (1, None),
                };
                // torch.optim.AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g;
                // v ← β2·v + (1 − β2)·g²; p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε),
                // from m = v = 0 (a first update skips multiplying the zeros).
                let g2 = g.clone().mul(g.clone()).mul_scalar(1.0 - beta2);
                let g1 = g.mul_scalar(1.0 - beta1);
                let (m, v) = match moments {
                    Some((m, v)) => (m.mul_scalar(beta1) + g1, v.mul_scalar(beta2) + g2),
                    None => (g1, g2),
                };
                // The corrections in f64, as PyTorch computes them in Python floats.
                let t = step.min(i32::MAX as u64) as i32;
                let bias1 = 1.0 - beta1.powi(t);
                let bias2 = 1.0 - beta2.powi(t);
                let denom = v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(eps);
                let p = if weight_decay != 0.0 { p.mul_scalar(1.0 - lr * weight_decay) } else { p };
                let p = p - m.clone().div(denom).mul_scalar(lr / bias1);
                (p, Slot::AdamW { step, exp_avg: m, exp_avg_sq: v })
            }
            Rule::Sgd { momentum, dampening, nesterov } => {
                // torch.optim.SGD: d = g + wd·p; b ← μ·b + (1 − dampening)·d (b = d at the
                // first update); d = d + μ·b (Nesterov) or b; p ← p − lr·d.
                let d = if weight_decay != 0.0 { g + p.clone().mul_scalar(weight_decay) } else { g };
                let (d, buffer) = if momentum != 0.0 {
                    let b = match slot {
                        Some(Slot::Sgd { momentum_buffer: Some(b) }) => b.mul_scalar(momentum) + d.clone().mul_scalar(1.0 - dampening),
                        _ => d.clone(),
                    };
                    let d = if nesterov { d + b.clone().mul_scalar(momentum) } else { b.clone() };
                    (d, Some(b))
                } else {
                    (d, None)
                };
                (p - d.mul_scalar(lr), Slot::Sgd { momentum_buffer: buffer })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn t(v: &[f32]) -> Tensor<Flex, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn vals(t: Tensor<Flex, 1>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() <= tol * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn adamw_two_updates_match_the_formula_by_hand() {
        let rule = Rule::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        // p = 1, g = 2 then g = −1; lr 0.1, wd 0.01.
        let (p, slot) = rule.update(t(&[1.0]), t(&[2.0]), None, 0.1, 0.01);
        // t = 1: m = 0.2, v = 0.004; m̂ = 2, v̂ = 4 → p = 1·0.999 − 0.1·2/(2 + 1e-8) = 0.899.
        close(&vals(p.clone()), &[0.999 - 0.1 * 2.0 / (2.0 + 1e-8)], 1e-6);
        let (p, slot) = rule.update(p, t(&[-1.0]), Some(slot), 0.1, 0.01);
        // t = 2: m = 0.9·0.2 − 0.1 = 0.08, v = 0.999·0.004 + 0.001 = 0.004996;
        // p = 0.899·0.999 − 0.1/(1 − 0.81) · 0.08 / (√0.004996/√(1 − 0.998001) + 1e-8).
        let p1 = 0.999 - 0.1 * 2.0 / (2.0 + 1e-8);
        let expected = p1 * 0.999 - 0.1 / 0.19 * 0.08 / ((0.004996f64).sqrt() / (1.0f64 - 0.998001).sqrt() + 1e-8);
        close(&vals(p), &[expected], 1e-6);
        let Slot::AdamW { step, exp_avg, exp_avg_sq } = slot else { panic!("not AdamW state") };
        assert_eq!(step, 2);
        close(&vals(exp_avg), &[0.08], 1e-6);
        close(&vals(exp_avg_sq), &[0.004996], 1e-6);
    }

    #[test]
    fn sgd_momentum_dampening_and_nesterov_by_hand() {
        // μ 0.9, dampening 0.5, wd 0.1, lr 0.1; p = 1, g = 1 then 2.
        let heavy = Rule::Sgd { momentum: 0.9, dampening: 0.5, nesterov: false };
        let (p, slot) = heavy.update(t(&[1.0]), t(&[1.0]), None, 0.1, 0.1);
        // d = 1 + 0.1 = 1.1, b = d (no dampening at the first update), p = 1 − 0.11 = 0.89.
        close(&vals(p.clone()), &[0.89], 1e-6);
        let (p, _) = heavy.update(p, t(&[2.0]), Some(slot), 0.1, 0.1);
        // d = 2 + 0.089 = 2.089, b = 0.9·1.1 + 0.5·2.089 = 2.0345, p = 0.89 − 0.20345.
        close(&vals(p), &[0.89 - 0.20345], 1e-6);
        let nesterov = Rule::Sgd { momentum: 0.9, dampening: 0.0, nesterov: true };
        let (p, slot) = nesterov.update(t(&[1.0]), t(&[1.0]), None, 0.1, 0.0);
        // b = 1, d = 1 + 0.9 = 1.9, p = 0.81.
        close(&vals(p.clone()), &[0.81], 1e-6);
        let (p, _) = nesterov.update(p, t(&[2.0]), Some(slot), 0.1, 0.0);
        // b = 0.9 + 2 = 2.9, d = 2 + 2.61 = 4.61, p = 0.81 − 0.461.
        close(&vals(p), &[0.81 - 0.461], 1e-6);
        // Momentum 0 keeps no buffer.
        let plain = Rule::Sgd { momentum: 0.0, dampening: 0.0, nesterov: false };
        let (p, slot) = plain.update(t(&[1.0]), t(&[1.0]), None, 0.1, 0.0);
        close(&vals(p), &[0.9], 1e-6);
        assert!(matches!(slot, Slot::Sgd { momentum_buffer: None }));
    }
}
