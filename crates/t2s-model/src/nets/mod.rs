//! The networks, built from the operations in [`crate::ops`]: backbones (ResNet, the Mix
//! Transformer), decode heads (DeepLabV2, DAFormer, SegFormer), the contrastive projection head,
//! and the [`segmentor::Segmentor`] that puts one of each together.

pub mod conv_bn;
pub mod daformer_head;
pub mod deeplabv2_head;
pub mod head_output;
pub mod host_init;
pub mod hrda;
pub mod inference_memory;
pub mod masks;
pub mod mit;
pub mod mlp_embed;
pub mod projection_head;
pub mod resnet;
pub mod segformer_head;
pub mod segmentor;
