//! Segmentation networks for t2s, generic over the Burn backend: ResNet (torchvision layout,
//! optional ResNetV1c deep stem) with the DeepLabV2 ASPP classifier, the Mix Transformer
//! (MiT-B0…B5) with the DAFormer and SegFormer heads, the contrastive projection head, the
//! segmentor that combines them, and PyTorch checkpoint loading.

pub mod activation;
pub mod backend;
pub mod batch_norm;
pub mod conv;
pub mod conv_bn;
pub mod conv_gemm;
pub mod depthwise;
mod depthwise_autodiff;
#[cfg(any(feature = "cubecl", feature = "fusion"))]
mod depthwise_cube;
pub mod error;
pub mod layer_norm;
pub mod resize;

pub use backend::{T2sAutodiffBackend, T2sBackend};
pub use error::{ModelError, Result};
pub use resize::{bilinear_matrix, resize_bilinear};
pub mod deeplabv2_head;
pub mod params;
pub mod projection_head;
pub mod resnet;
pub mod segmentor;

pub use params::{count_trainable, inventory, TensorEntry};
pub use segmentor::{Backbone, BackboneConfig, DecodeHead, DecodeHeadConfig, ParamGroups, SegOutput, Segmentor, SegmentorConfig, PRESETS};
pub mod checkpoint_keys;
pub mod weights;

pub use weights::{load_pytorch, load_t2s, load_t2s_into, read_t2s_config, save_t2s, LoadReport};
pub mod daformer_head;
pub mod head_output;
pub mod mit;
pub mod mlp_embed;
pub mod segformer_head;
pub mod token_linear;
