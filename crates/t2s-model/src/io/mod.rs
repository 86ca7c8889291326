//! Weights in and out of the networks: PyTorch checkpoints (mmseg/DAFormer key renames in
//! [`checkpoint_keys`]), t2s's own `.safetensors` files ([`weights`]), and the parameter
//! inventory ([`params`]) that both, the trainable-parameter counts and the optimiser's
//! parameter groups are read from.

pub mod checkpoint_keys;
pub mod params;
pub mod weights;
