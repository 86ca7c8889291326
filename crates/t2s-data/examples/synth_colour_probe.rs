//! How far colour alone transfers between the synthetic domains: a per-pixel Gaussian classifier
//! on (R, G, B, image row) with a diagonal covariance per class, fitted on one domain's training
//! images and scored (mIoU over the 19 classes) on each domain's validation images. No shape, no
//! context: a crude lower bound that shows the appearance shift, quoted in docs/synthetic.md.
//!
//! ```sh
//! cargo run -p t2s-data --release --example synth_colour_probe
//! ```

use t2s_data::synth::{render, Domain, Split};

const W: u32 = 128;
const H: u32 = 64;
const CLASSES: usize = 19;
const FEATURES: usize = 4;
const TRAIN: u64 = 150;
const VAL: u64 = 60;

type Pixel = ([f64; FEATURES], usize);

/// Features of every third pixel of `n` samples.
fn pixels(domain: Domain, split: Split, n: u64) -> Vec<Pixel> {
    let mut out = Vec::new();
    for i in 0..n {
        let s = render(domain, W, H, 0, split.stream(i));
        let Some(label) = s.label else { continue };
        for (k, (p, &l)) in s.image.pixels().zip(label.as_raw()).enumerate().step_by(3) {
            let row = (k as u32 / W) as f64 / H as f64;
            let rgb = p.0.map(|v| v as f64 / 255.0);
            out.push(([rgb[0], rgb[1], rgb[2], row], l as usize));
        }
    }
    out
}

struct Model {
    mean: [[f64; FEATURES]; CLASSES],
    var: [[f64; FEATURES]; CLASSES],
    log_prior: [f64; CLASSES],
}

fn fit(data: &[Pixel]) -> Model {
    let mut n = [0.0f64; CLASSES];
    let mut mean = [[0.0; FEATURES]; CLASSES];
    for (f, c) in data {
        n[*c] += 1.0;
        (0..FEATURES).for_each(|j| mean[*c][j] += f[j]);
    }
    for c in 0..CLASSES {
        (0..FEATURES).for_each(|j| mean[c][j] /= n[c].max(1.0));
    }
    // A variance floor keeps classes with one flat colour from dominating by a zero variance.
    let mut var = [[1e-4; FEATURES]; CLASSES];
    for (f, c) in data {
        (0..FEATURES).for_each(|j| var[*c][j] += (f[j] - mean[*c][j]).powi(2) / n[*c].max(1.0));
    }
    let total: f64 = n.iter().sum();
    Model { mean, var, log_prior: n.map(|k| (k / total).max(1e-9).ln()) }
}

fn miou(m: &Model, data: &[Pixel]) -> (f64, [f64; CLASSES]) {
    let (mut tp, mut fp, mut fn_) = ([0.0f64; CLASSES], [0.0f64; CLASSES], [0.0f64; CLASSES]);
    for (f, truth) in data {
        let score = |c: usize| {
            m.log_prior[c] - 0.5 * (0..FEATURES).map(|j| (f[j] - m.mean[c][j]).powi(2) / m.var[c][j] + m.var[c][j].ln()).sum::<f64>()
        };
        let pred = (0..CLASSES).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap_or(0);
        if pred == *truth {
            tp[pred] += 1.0;
        } else {
            fp[pred] += 1.0;
            fn_[*truth] += 1.0;
        }
    }
    let iou: [f64; CLASSES] = std::array::from_fn(|c| 100.0 * tp[c] / (tp[c] + fp[c] + fn_[c]).max(1.0));
    (iou.iter().sum::<f64>() / CLASSES as f64, iou)
}

fn main() {
    let source = fit(&pixels(Domain::Source, Split::Train, TRAIN));
    let target = fit(&pixels(Domain::Target, Split::Train, TRAIN));
    let (source_val, target_val) = (pixels(Domain::Source, Split::Val, VAL), pixels(Domain::Target, Split::Val, VAL));
    let runs = [
        ("source→source", miou(&source, &source_val)),
        ("source→target", miou(&source, &target_val)),
        ("target→target", miou(&target, &target_val)),
    ];
    println!("colour+row Gaussian classifier, {TRAIN} training / {VAL} validation images at {W}×{H}, mIoU over 19 classes:");
    for (name, (m, _)) in &runs {
        println!("  {name}: {m:.1}");
    }
    let names = t2s_data::LabelSpace::cityscapes().names;
    println!("\nper-class IoU (%): class, source→source, source→target, target→target");
    for (c, name) in names.iter().enumerate() {
        println!("  {name:<14} {:5.1} {:5.1} {:5.1}", runs[0].1 .1[c], runs[1].1 .1[c], runs[2].1 .1[c]);
    }
}
