//! Renders the picture and the class-frequency table of docs/synthetic.md:
//!
//! ```sh
//! cargo run -p t2s-data --release --example synth_sheet -- docs/images/synth_domains.png 500
//! ```
//!
//! writes a grid of source and target samples at 192×96 with their colourised labels (one row
//! per index: source image, source label, target image, target label) and prints the share of pixels of
//! each class in each domain over the given number of training samples (default 500).

use std::path::PathBuf;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use t2s_data::synth::{class_frequencies, render, Domain, Split};
use t2s_data::visualize::colorize;
use t2s_data::LabelSpace;

const ROWS: u32 = 4;
const W: u32 = 192;
const H: u32 = 96;
const GAP: u32 = 2;
const SEED: u64 = 0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: synth_sheet <out.png> [samples for the table]")?);
    let count: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("samples for the table `{n}`: {e}"))?,
        None => 500,
    };
    let space = LabelSpace::cityscapes();
    let mut sheet = RgbImage::from_pixel(4 * W + 3 * GAP, ROWS * H + (ROWS - 1) * GAP, image::Rgb([255, 255, 255]));
    for row in 0..ROWS {
        for (k, domain) in Domain::ALL.into_iter().enumerate() {
            let s = render(domain, W, H, SEED, row as u64);
            let label = s.label.as_ref().ok_or("synthetic samples are labelled")?;
            let color = colorize(label.as_raw(), W, H, &space);
            let y = row * (H + GAP);
            let x = 2 * k as u32 * (W + GAP);
            image::imageops::replace(&mut sheet, &s.image, x as i64, y as i64);
            image::imageops::replace(&mut sheet, &color, (x + W + GAP) as i64, y as i64);
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Best compression keeps the picture in the docs small; the target's sensor noise is what
    // costs bytes.
    let file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    PngEncoder::new_with_quality(file, CompressionType::Best, FilterType::Adaptive).write_image(
        sheet.as_raw(),
        sheet.width(),
        sheet.height(),
        ExtendedColorType::Rgb8,
    )?;
    eprintln!("wrote {}", out.display());

    // The table is measured at the default resolution; the picture is smaller to stay small.
    let (tw, th) = (256, 128);
    let source = class_frequencies(Domain::Source, Split::Train, tw, th, SEED, count);
    let target = class_frequencies(Domain::Target, Split::Train, tw, th, SEED, count);
    println!("Pixel share per class over {count} training samples ({tw}×{th}, seed {SEED}):\n");
    println!("| train id | class | source % | target % | target / source |");
    println!("|---:|---|---:|---:|---:|");
    for (id, name) in space.names.iter().enumerate() {
        let ratio = if source[id] > 0.0 { format!("{:.2}", target[id] / source[id]) } else { "–".into() };
        println!("| {id} | {name} | {:.2} | {:.2} | {ratio} |", 100.0 * source[id], 100.0 * target[id]);
    }
    Ok(())
}
