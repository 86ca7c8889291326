//! The mean-teacher self-training of DACS/DAFormer (method.md §3) that T2S-DA builds on: the EMA
//! coefficient and confidence-weighted pseudo-labels, and the EMA update of the teacher's parameters. Off the autodiff graph: callers pass the
//! teacher's logits from an inference (`valid()`) module.

mod ema;
mod pseudo_label;

pub use ema::ema_update;
pub use pseudo_label::{ema_alpha, pseudo_labels, PseudoLabels};
