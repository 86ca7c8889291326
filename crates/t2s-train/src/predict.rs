//! Whole-image inference on image files: label PNGs, colourised overlays and optional logits.

use std::path::{Path, PathBuf};
use t2s_model::T2sBackend;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use t2s_data::visualize::{colorize, label_image, overlay, save_png};
use t2s_data::{normalize_imagenet, read_rgb, DataError, LabelSpace};
use t2s_model::Segmentor;

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
}

/// What [`predict_images`] did.
#[derive(Debug, Default)]
pub struct PredictReport {
    /// The files written, per image predicted.
    pub written: Vec<PredictionFiles>,
    /// Images that could not be read (skipped), with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The endings of the files `predict` writes, which are never read back as inputs.
pub const OUTPUT_SUFFIXES: [&str; 4] = ["_labelTrainIds.png", "_color.png", "_overlay.png", "_logits.npy"];

/// Runs `model` on every image and writes its predictions (see [`PredictionFiles`]). Any input
/// size works: the logits are bilinearly upsampled to the image's size before the argmax. An
/// image that cannot be read is skipped and reported; the others are processed. Inputs with the
/// same stem (`a.png`, `a.jpg`) write under their full names (`a_png_…`, `a_jpg_…`), not over
/// each other. `progress` is called before each image with the number of images done and the
/// next one.
pub fn predict_images<B: T2sBackend>(
    model: &Segmentor<B>,
    device: &B::Device,
    images: &[PathBuf],
    space: &LabelSpace,
    opts: &PredictOptions,
    progress: &dyn Fn(usize, &Path),
) -> Result<PredictReport> {
    std::fs::create_dir_all(&opts.output).map_err(|source| DataError::Io { path: opts.output.clone(), source })?;
    let names = output_names(images);
    let mut report = PredictReport::default();
    for (done, (path, name)) in images.iter().zip(&names).enumerate() {
        progress(done, path);
        let img = match read_rgb(path) {
            Ok(img) => img,
            Err(e) => {
                report.unreadable.push((path.clone(), e.to_string()));
                continue;
            }
        };
        report.written.push(predict_one(model, device, &img, name, space, opts)?);
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
) -> Result<PredictionFiles> {
    let (w, h) = img.dimensions();
    let x = image_tensor::<B>(img, device);
    // [1, C, H, W] at the image's resolution.
    let logits = model.predict(x);
    let classes = logits.dims()[1];
    let labels: Vec<u8> = logits.clone().argmax(1).into_data().iter::<i64>().map(|v| v as u8).collect();

    let out = |suffix: &str| opts.output.join(format!("{stem}{suffix}"));
    let files = PredictionFiles {
        labels: out("_labelTrainIds.png"),
        color: out("_color.png"),
        overlay: out("_overlay.png"),
        logits: opts.save_logits.then(|| out("_logits.npy")),
    };
    save_png(&label_image(&labels, w, h), &files.labels)?;
    let color = colorize(&labels, w, h, space);
    save_png(&color, &files.color)?;
    save_png(&overlay(img, &color, opts.overlay_alpha), &files.overlay)?;
    if let Some(npy) = &files.logits {
        let data: Vec<f32> = logits.into_data().iter::<f32>().collect();
        t2s_data::npy::write_f32(npy, &[classes, h as usize, w as usize], &data)?;
    }
    Ok(files)
}
