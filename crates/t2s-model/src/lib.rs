//! Segmentation networks for t2s, generic over the Burn backend, in three parts:
//! - [`ops`]: the backend extension trait [`T2sBackend`] and the operations t2s computes its own
//!   way (depth-wise and GEMM convolutions, LayerNorm, batch norm, activations, the
//!   differentiable resize), with their backward passes and CubeCL kernels;
//! - [`nets`]: ResNet (torchvision layout, optional ResNetV1c deep stem) with the DeepLabV2 ASPP
//!   classifier, the Mix Transformer (MiT-B0…B5) with the DAFormer and SegFormer heads, the
//!   contrastive projection head, and the segmentor that combines them;
//! - [`io`]: PyTorch checkpoint loading (key renames), t2s weight files and the parameter
//!   inventory that both use.

pub mod error;
pub mod io;
pub mod nets;
pub mod ops;
pub mod precision;

pub use error::{ModelError, Result};
pub use io::params::{count_trainable, inventory, TensorEntry};
pub use io::weights::{arch_name, load_pytorch, load_t2s, load_t2s_into, read_t2s_config, safetensors_header, save_t2s, LoadReport};
pub use nets::hrda::{window_starts, CropBox, HrdaBranch, HrdaConfig};
pub use nets::masks::seed_thread_masks;
pub use nets::segmentor::{
    Backbone, BackboneConfig, DecodeHead, DecodeHeadConfig, Encode, ParamGroups, SegOutput, Segmentor, SegmentorConfig, PRESETS,
};
pub use ops::backend::{DeviceMemory, T2sAutodiffBackend, T2sBackend};
pub use ops::resize::{bilinear_matrix, resize_bilinear};
pub use precision::{compute_copy, Precision};
