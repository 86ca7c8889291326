//! Everything between files on disk and tensors for t2s: the Cityscapes train-id label space
//! with its names and colours, reading images, ImageNet normalisation, and writing predictions
//! (label PNGs, colourised maps, overlays, `.npy` logits).

pub mod error;
pub mod image_io;
pub mod label_space;
pub mod npy;
pub mod sample;
pub mod visualize;

pub use error::{DataError, Result};
pub use image_io::{list_images, normalize_imagenet, read_rgb, IMAGENET_MEAN, IMAGENET_STD};
pub use label_space::{LabelSpace, IGNORE_LABEL};
pub use sample::{seeded_rng, Dataset, Sample};
