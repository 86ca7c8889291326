//! Everything between files on disk and tensors for t2s: the Cityscapes train-id label space
//! with its names and colours, reading images, ImageNet normalisation, writing predictions
//! (label PNGs, colourised maps, overlays, `.npy` logits), the dataset readers, and the cached
//! per-image class statistics `t2s prepare` writes, and the training input pipeline: transforms,
//! FDA, ClassMix, rare class sampling, the parallel batch loader and the host-side batch mixing
//! of a self-training step (`batch_mix`: ClassMix + strong augmentation, FDA pseudo-targets);
//! and the built-in synthetic domain-shift benchmark (`synth`).

pub mod batch_mix;
pub mod class_stats;
pub mod classmix;
pub mod datasets;
pub mod error;
pub mod fda;
pub mod image_io;
pub mod label_space;
pub mod loader;
pub mod mic;
pub mod npy;
pub mod prepare;
pub mod rcs;
pub mod sample;
pub mod synth;
pub mod transforms;
pub mod visualize;

pub use batch_mix::{class_mix, pseudo_target, rolled_style, MixedBatch};
pub use class_stats::{class_stats_path, load_class_stats, ClassStats, ImageStats};
pub use classmix::{classes_present, ClassMixMask};
pub use datasets::{open_dataset, DatasetKind, DatasetOptions, DatasetReader, LabelUse, ScanReport};
pub use error::{DataError, Result};
pub use fda::{low_frequency_half_width, Fda};
pub use image_io::{list_images, normalize_imagenet, read_rgb, read_rgb_oriented, IMAGENET_MEAN, IMAGENET_STD};
pub use label_space::{LabelSpace, IGNORE_LABEL};
pub use loader::{Batch, Loader, LoaderConfig, SampleOrder};
pub use mic::{masked_target, BlockMask, BlockMaskConfig, MaskedBatch};
pub use prepare::{prepare_dataset, PrepareOptions, PrepareReport};
pub use rcs::{RareClassSampler, RcsConfig};
pub use sample::{seeded_rng, Dataset, Sample};
pub use synth::{SynthConfig, SyntheticDataset};
pub use transforms::{AugmentConfig, CropConfig, Resize, StrongAug, StrongAugConfig};
