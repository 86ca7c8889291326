//! `[schedule]`: iterations and the learning-rate curve, mmcv's `PolyLrUpdaterHook` with linear
//! warm-up (DAFormer: warm-up over 1,500 iterations from 1e-6·lr, then power-1 decay to 0 at
//! 40,000). Burn has no polynomial schedule, so it lives here.

use serde::{Deserialize, Serialize};

/// Length of training and the learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// Total training iterations (DAFormer: 40,000).
    pub max_iters: usize,
    /// Linear warm-up iterations (1,500); 0 disables warm-up.
    pub warmup_iters: usize,
    /// Learning-rate factor at the first warm-up iteration (1e-6).
    pub warmup_ratio: f64,
    /// Exponent of the polynomial decay (1.0 = linear).
    pub power: f64,
    /// Learning rate reached at `max_iters` (0).
    pub min_lr: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self { max_iters: 40_000, warmup_iters: 1_500, warmup_ratio: 1e-6, power: 1.0, min_lr: 0.0 }
    }
}

impl ScheduleSection {
    /// Learning rate at (0-based) iteration `iter` for a group whose base rate is `base_lr`,
    /// exactly as mmcv 1.x computes it: `regular = (base − min)·(1 − iter/max)^power + min`;
    /// during warm-up (`iter < warmup_iters`) the rate is
    /// `regular · (1 − (1 − iter/warmup_iters)·(1 − warmup_ratio))`.
    pub fn lr_at(&self, iter: usize, base_lr: f64) -> f64 {
        let progress = if self.max_iters == 0 { 1.0 } else { (iter as f64 / self.max_iters as f64).min(1.0) };
        let regular = (base_lr - self.min_lr) * (1.0 - progress).powf(self.power) + self.min_lr;
        if iter < self.warmup_iters {
            let k = (1.0 - iter as f64 / self.warmup_iters as f64) * (1.0 - self.warmup_ratio);
            regular * (1.0 - k)
        } else {
            regular
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmcv_poly_with_linear_warmup() {
        let s = ScheduleSection::default();
        let base = 6e-5;
        // iter 0: regular = base; warm-up factor = 1 − (1 − 0)(1 − 1e-6) = 1e-6.
        assert!((s.lr_at(0, base) - base * 1e-6).abs() < 1e-18);
        // iter 750: regular = base·(1 − 750/40000); factor = 1 − 0.5·(1 − 1e-6) = 0.5000005.
        let want = base * (1.0 - 750.0 / 40_000.0) * 0.500_000_5;
        assert!((s.lr_at(750, base) - want).abs() < 1e-15);
        // After warm-up: plain linear decay; 0 at the end and beyond.
        assert!((s.lr_at(20_000, base) - base * 0.5).abs() < 1e-15);
        assert_eq!(s.lr_at(40_000, base), 0.0);
        assert_eq!(s.lr_at(50_000, base), 0.0);
        let p = ScheduleSection { power: 0.9, warmup_iters: 0, min_lr: 1e-4, ..s };
        assert!((p.lr_at(10_000, 2.5e-4) - (1.5e-4 * 0.75f64.powf(0.9) + 1e-4)).abs() < 1e-15);
    }
}
