//! Whole-image inference on image files: label PNGs, colourised overlays and optional logits.

use std::path::{Path, PathBuf};
use t2s_model::T2sBackend;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use t2s_data::visualize::{colorize, label_image, overlay, save_png};
use t2s_data::{normalize_imagenet, read_rgb_oriented, DataError, LabelSpace};
use t2s_model::{Segmentor, SegmentorConfig};

use crate::inference::{infer_logits, InferenceMode};

use crate::error::Result;

/// What `t2s predict` writes.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Folder receiving the outputs (created if needed).
    pub output: PathBuf,
    /// Also write `<stem>_logits.npy`, float32 `[C, H, W]` at the input's resolution.
    pub save_logits: bool,
    /// Weight of the colour map in the overlay.
    pub overlay_alpha: f32,
    /// Also write `<stem>_labelIds.png`, Cityscapes label ids (a 19-class network in Cityscapes'
    /// order): the format of the Cityscapes benchmark server.
    pub label_ids: bool,
    /// How the network sees each image.
    pub inference: PredictInference,
}

/// How `predict` runs the network over an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PredictInference {
    /// This mode for every image.
    Fixed(InferenceMode),
    /// The whole image in one pass where the network's estimated memory for it
    /// ([`SegmentorConfig::inference_bytes`]) fits `budget_bytes`, else sliding windows
    /// ([`auto_inference`]).
    Auto {
        /// The most memory one pass may take, in bytes.
        budget_bytes: u64,
    },
}

/// Whole-image inference if `network`'s estimate for an `h × w` image fits `budget_bytes`;
/// otherwise windows of 1024×1024 (mmseg's SegFormer test crop), halved until one fits (down to
/// 128), each overlapping its neighbours by half (HRDA's test stride).
pub fn auto_inference(network: &SegmentorConfig, h: usize, w: usize, budget_bytes: u64) -> InferenceMode {
    if network.inference_bytes(h, w) <= budget_bytes {
        return InferenceMode::Whole;
    }
    let mut side = 1024;
    let crop = loop {
        let crop = [side.min(h), side.min(w)];
        if side <= 128 || network.inference_bytes(crop[0], crop[1]) <= budget_bytes {
            break crop;
        }
        side /= 2;
    };
    InferenceMode::Slide { crop, stride: [crop[0].div_ceil(2), crop[1].div_ceil(2)] }
}

/// Files written for one image.
#[derive(Debug, Clone)]
pub struct PredictionFiles {
    /// `<stem>_labelTrainIds.png`: 8-bit train ids.
    pub labels: PathBuf,
    /// `<stem>_color.png`: colourised prediction.
    pub color: PathBuf,
    /// `<stem>_overlay.png`: prediction blended over the image.
    pub overlay: PathBuf,
    /// `<stem>_logits.npy` when asked for.
    pub logits: Option<PathBuf>,
    /// `<stem>_labelIds.png` when asked for: 8-bit Cityscapes label ids.
    pub label_ids: Option<PathBuf>,
    /// The mode the network ran in.
    pub mode: InferenceMode,
    /// Whether the image was turned upright as its EXIF orientation says.
    pub oriented: bool,
}

/// What [`predict_images`] did.
#[derive(Debug, Default)]
pub struct PredictReport {
    /// The files written, per image predicted.
    pub written: Vec<PredictionFiles>,
    /// Images that could not be read (skipped), with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Classes of a network whose predictions have Cityscapes label ids (`--label-ids`).
const CITYSCAPES_CLASSES: usize = 19;

/// The endings of the files `predict` writes, which are never read back as inputs.
pub const OUTPUT_SUFFIXES: [&str; 5] = ["_labelTrainIds.png", "_labelIds.png", "_color.png", "_overlay.png", "_logits.npy"];

/// Runs `model` (built from `network`) on every image and writes its predictions (see
/// [`PredictionFiles`]). Any input size works: the logits are bilinearly upsampled to the image's
/// size before the argmax, and images too large for one pass go through in windows
/// ([`PredictInference::Auto`]). JPEG EXIF orientation is applied first, as viewers do. An
/// image that cannot be read is skipped and reported; the others are processed. Inputs with the
/// same stem (`a.png`, `a.jpg`) write under their full names (`a_png_…`, `a_jpg_…`), not over
/// each other. `progress` is called before each image with the number of images done and the
/// next one.
pub fn predict_images<B: T2sBackend>(
    model: &Segmentor<B>,
    network: &SegmentorConfig,
    device: &B::Device,
    images: &[PathBuf],
    space: &LabelSpace,
    opts: &PredictOptions,
    progress: &dyn Fn(usize, &Path),
) -> Result<PredictReport> {
    if opts.label_ids && network.num_classes != CITYSCAPES_CLASSES {
        return Err(crate::TrainError::Usage(format!(
            "--label-ids writes Cityscapes label ids, for a network of Cityscapes' {CITYSCAPES_CLASSES} classes; this one has {}",
            network.num_classes
        )));
    }
    std::fs::create_dir_all(&opts.output).map_err(|source| DataError::Io { path: opts.output.clone(), source })?;
    let names = output_names(images);
    let mut report = PredictReport::default();
    for (done, (path, name)) in images.iter().zip(&names).enumerate() {
        progress(done, path);
        let (img, oriented) = match read_rgb_oriented(path) {
            Ok(read) => read,
            Err(e) => {
                report.unreadable.push((path.clone(), e.to_string()));
                continue;
            }
        };
        let (w, h) = img.dimensions();
        let mode = match opts.inference {
            PredictInference::Fixed(mode) => mode,
            PredictInference::Auto { budget_bytes } => auto_inference(network, h as usize, w as usize, budget_bytes),
        };
        let mut files = predict_one(model, device, &img, name, space, opts, mode)?;
        files.oriented = oriented;
        report.written.push(files);
    }
    Ok(report)
}

/// Each input's output name: its stem, or for stems that several inputs share, the file name with
/// its dot as an underscore.
fn output_names(images: &[PathBuf]) -> Vec<String> {
    let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let stems: Vec<String> = images.iter().map(stem).collect();
    images
        .iter()
        .zip(&stems)
        .map(|(p, s)| {
            if stems.iter().filter(|t| *t == s).count() > 1 {
                p.file_name().map(|n| n.to_string_lossy().replace('.', "_")).unwrap_or_else(|| s.clone())
            } else {
                s.clone()
            }
        })
        .collect()
}

/// An RGB image as the network's input: ImageNet-normalised, `[1, 3, H, W]`.
pub(crate) fn image_tensor<B: Backend>(img: &image::RgbImage, device: &B::Device) -> Tensor<B, 4> {
    let (w, h) = img.dimensions();
    Tensor::from_data(TensorData::new(normalize_imagenet(img), [1, 3, h as usize, w as usize]), device)
}

fn predict_one<B: T2sBackend>(
    model: &Segmentor<B>,
    device: &B::Device,
    img: &image::RgbImage,
    stem: &str,
    space: &LabelSpace,
    opts: &PredictOptions,
    mode: InferenceMode,
) -> Result<PredictionFiles> {
    let (w, h) = img.dimensions();
    let x = image_tensor::<B>(img, device);
    // [1, C, H, W] at the image's resolution.
    let logits = infer_logits(model, x, mode);
    let classes = logits.dims()[1];
    let labels: Vec<u8> = logits.clone().argmax(1).into_data().iter::<i64>().map(|v| v as u8).collect();

    let out = |suffix: &str| opts.output.join(format!("{stem}{suffix}"));
    let files = PredictionFiles {
        labels: out("_labelTrainIds.png"),
        color: out("_color.png"),
        overlay: out("_overlay.png"),
        logits: opts.save_logits.then(|| out("_logits.npy")),
        label_ids: opts.label_ids.then(|| out("_labelIds.png")),
        mode,
        oriented: false,
    };
    save_png(&label_image(&labels, w, h), &files.labels)?;
    if let Some(path) = &files.label_ids {
        let table = t2s_data::label_space::cityscapes_train_id_to_label_id();
        let ids: Vec<u8> = labels.iter().map(|&t| table[t as usize]).collect();
        save_png(&label_image(&ids, w, h), path)?;
    }
    let color = colorize(&labels, w, h, space);
    save_png(&color, &files.color)?;
    save_png(&overlay(img, &color, opts.overlay_alpha), &files.overlay)?;
    if let Some(npy) = &files.logits {
        let data: Vec<f32> = logits.into_data().iter::<f32>().collect();
        t2s_data::npy::write_f32(npy, &[classes, h as usize, w as usize], &data)?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_12_megapixel_photo_with_mit_b5_goes_through_in_windows() {
        let b5 = SegmentorConfig::preset("daformer-mitb5").unwrap();
        let budget = 8u64 << 30;
        // A Cityscapes frame (2048×1024) fits (~2.5 GB): whole, as DAFormer evaluates.
        assert_eq!(auto_inference(&b5, 1024, 2048, budget), InferenceMode::Whole);
        // 4000×3000 would take ~75 GB (stage-1 attention); 1024×1024 windows take ~1 GB.
        assert_eq!(auto_inference(&b5, 3000, 4000, budget), InferenceMode::Slide { crop: [1024, 1024], stride: [512, 512] });
        // A tight budget shrinks the windows: 1024² needs ~1.05 GB, 512² ~0.27 GB.
        assert_eq!(auto_inference(&b5, 3000, 4000, 600 << 20), InferenceMode::Slide { crop: [512, 512], stride: [256, 256] });
    }
}
