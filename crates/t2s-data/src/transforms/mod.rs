//! Per-sample image transforms of the training pipeline, each in its own file:
//!
//! - geometric, applied by the loader to every sample ([`augment`]): [`resize`] (bilinear for
//!   images, nearest for labels, mmcv/OpenCV semantics), [`crop`] (random crop with mmseg's
//!   one-class-at-most-75 % re-draw, padding), [`flip`] (horizontal);
//! - photometric "strong" augmentation of the mixed image ([`strong`]): [`photometric`] colour
//!   jitter (kornia's `ColorJitter` as DACS/DAFormer call it) and [`blur`] (kornia's
//!   `GaussianBlur2d` with DAFormer's kernel size);
//! - [`planar`]: `HWC` u8 images to `CHW` buffers and ImageNet normalisation.
//!
//! Every random decision takes an explicit `rng` so that results are a function of the seed and
//! the sample's stream only (see [`crate::seeded_rng`]).

pub mod augment;
pub mod blur;
pub mod crop;
pub mod flip;
pub mod photometric;
pub mod planar;
pub mod resize;
pub mod strong;

pub use augment::{augment, AugmentConfig};
pub use blur::{daformer_blur_kernel_size, gaussian_blur_in_place, gaussian_kernel};
pub use crop::{crop_sample, draw_crop, pad_sample, CropBox, CropConfig};
pub use flip::{flip_sample, maybe_flip};
pub use photometric::{color_jitter_in_place, ColorJitterFactors, JitterOp};
pub use planar::{normalize_planar_in_place, to_planar_f32, to_planar_u8};
pub use resize::{rescale_size, resize_bilinear, resize_bilinear_window, resize_nearest, Resize};
pub use strong::{StrongAug, StrongAugConfig};
