//! The built-in synthetic domain-shift benchmark: procedural street scenes in the 19-class
//! Cityscapes label space, in a "source" domain that looks like a game engine and a "target"
//! domain that looks like a camera, with the same geometry and a shifted class distribution.
//! It needs no download and renders a 256×128 sample in 2–3 ms on one core, so that the whole
//! adaptation pipeline can be run and tested anywhere. `docs/synthetic.md` shows and measures it.
//!
//! Every sample is a pure function of `(domain, width, height, seed, index)`: the sample's
//! ChaCha8 stream ([`crate::seeded_rng`]) draws the scene, and per-pixel noise comes from hashes
//! seeded by that stream. Geometry is defined in world metres and normalised image coordinates,
//! so any resolution renders the same scene. Labels are exact: every pixel's label is the class
//! whose shape covers the pixel's centre in the rendered image; blur and noise change the image
//! only. No pixel is ignore (255).
//!
//! Layout: `layout` and `appearance` hold the two domains' statistics (the domain shift);
//! `scene` describes a scene, `street` and `traffic` draw one at random (with the draws they
//! share in `draws`), `projection` is the pinhole camera, `raster`, `render` and `figures`
//! rasterise it (from the primitives in `shapes`), `sensor` develops the image, `noise` hashes
//! per-pixel randomness; `dataset` wraps it all as a [`crate::Dataset`], `stats` measures class
//! frequencies.

mod appearance;
mod dataset;
mod draws;
mod figures;
mod layout;
mod noise;
mod projection;
mod raster;
mod render;
mod scene;
mod sensor;
mod shapes;
mod stats;
mod street;
#[cfg(test)]
mod tests;
mod traffic;

pub use dataset::{Domain, Split, SynthConfig, SyntheticDataset, MAX_LEN, MAX_SIDE};
pub use stats::class_frequencies;

use image::{GrayImage, RgbImage};

use crate::sample::{seeded_rng, Sample};

/// Streams at or above this index belong to the validation split (see [`SyntheticDataset`]);
/// training samples use `0..VAL_STREAM_BASE`.
pub const VAL_STREAM_BASE: u64 = 1 << 62;

/// The ChaCha8 stream of a sample: the domain in the top bit, the index below it, so that the
/// two domains never share a stream and each index is its own stream.
fn stream(domain: Domain, index: u64) -> u64 {
    let bit = match domain {
        Domain::Source => 0,
        Domain::Target => 1u64 << 63,
    };
    bit | (index & !(1u64 << 63))
}

/// Renders sample `index` of a domain at `width × height`: the image and its train-id label.
/// `index` is the sample's stream (indices `>= 2^63` wrap onto lower ones); the name is
/// `<domain>_<index>`. A zero width or height gives empty images.
pub fn render(domain: Domain, width: u32, height: u32, seed: u64, index: u64) -> Sample {
    render_scene(domain, width, height, seed, index).0
}

/// The label of [`render`]'s sample alone (the same pixels), without developing the image:
/// what class statistics need, at about half the cost.
pub fn render_label(domain: Domain, width: u32, height: u32, seed: u64, index: u64) -> GrayImage {
    if width == 0 || height == 0 {
        return GrayImage::new(width, height);
    }
    let (_, _, canvas) = rasterize_sample(domain, width, height, seed, index);
    GrayImage::from_raw(width, height, canvas.label).unwrap_or_else(|| GrayImage::new(width, height))
}

/// The scene, its look and the rasterised canvas of a sample (both renderers start here, so the
/// label of [`render_label`] is exactly [`render`]'s).
fn rasterize_sample(domain: Domain, width: u32, height: u32, seed: u64, index: u64) -> (scene::Scene, appearance::Look, raster::Canvas) {
    let mut rng = seeded_rng(seed, stream(domain, index));
    let stats = layout::LayoutStats::of(domain);
    let palette = appearance::Palette::of(domain);
    let scene = street::sample_scene(&stats, &palette, width, height, &mut rng);
    let look = palette.look(scene.sky.0, &mut rng);
    let canvas = render::rasterize(&scene, &look, width as usize, height as usize);
    (scene, look, canvas)
}

/// [`render`], also returning the scene (for tests that check geometry).
pub(crate) fn render_scene(domain: Domain, width: u32, height: u32, seed: u64, index: u64) -> (Sample, Option<scene::Scene>) {
    let name = format!("{}_{index:06}", domain.name());
    if width == 0 || height == 0 {
        let label = Some(GrayImage::new(width, height));
        return (Sample { name, image: RgbImage::new(width, height), label }, None);
    }
    let (scene, look, canvas) = rasterize_sample(domain, width, height, seed, index);
    let image = sensor::develop(&canvas, &look);
    let label = GrayImage::from_raw(width, height, canvas.label).unwrap_or_else(|| GrayImage::new(width, height));
    (Sample { name, image, label: Some(label) }, Some(scene))
}
