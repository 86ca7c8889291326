//! `train.precision = "bf16"` on the CPU (Flex computes bf16 convolutions, products and
//! reductions; lavapipe has no bf16, see docs/gpu.md): a `t2s` run of a tiny MiT + DAFormer network
//! (LayerNorms, attention, batch norms, the projection head, every loss term) follows the f32
//! run's loss curve within bf16's precision.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use burn::backend::{Autodiff, Flex};
use t2s_train::train::run_dir::create_run_dir;
use t2s_train::{train, RunConfig, TrainOptions};

use common::{short_schedule, training_records, SYNTHETIC_DATA, SYNTHETIC_TARGET, TINY_MIT_NETWORK};

const ITERS: usize = 6;

/// MiT with one block per stage, the DAFormer head and an 8-d projection head, trained `t2s`.
fn config() -> String {
    let t2s = "\n[t2s]\nqueries = 32\nmin_queries_per_class = 2\nnegatives = 4\nlabel_min_fraction = 0.5\n";
    format!("{TINY_MIT_NETWORK}\n[uda]\nmethod = \"t2s\"\n{SYNTHETIC_DATA}{SYNTHETIC_TARGET}{}{t2s}", short_schedule(ITERS, 0))
}

/// One training at a time: the CPU backend's random generator (parameter draws, dropout) is
/// global to the process, so runs in parallel test threads would draw each other's numbers.
static ONE_RUN: Mutex<()> = Mutex::new(());

/// The run's loss terms per iteration, at `precision` with the student's passes `passes`.
fn losses(precision: &str, passes: &str) -> Vec<Vec<(String, f64)>> {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let overrides = [
        format!("run.output=\"{}\"", dir.path().display()),
        format!("train.precision=\"{precision}\""),
        format!("uda.student_passes=\"{passes}\""),
    ];
    let cfg = RunConfig::parse(&config(), &overrides).unwrap();
    let run_dir = create_run_dir(&cfg, std::path::Path::new("precision.toml"), "test").unwrap();
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        resume: false,
        record: None,
        until: None,
        stop: Arc::new(AtomicBool::new(false)),
        events: &|_| {},
        replica: None,
    };
    train::<Autodiff<Flex>>(&cfg, &opts, &Default::default()).unwrap();
    let terms = ["loss_source", "loss_mix", "loss_pseudo_target", "loss_t2s"];
    training_records(&run_dir).iter().map(|r| terms.iter().map(|t| (t.to_string(), r[*t].as_f64().unwrap_or(f64::NAN))).collect()).collect()
}

/// Same seed, same data (and the same dropout draws): every term of every iteration is finite
/// and close to the f32 run's. The cross-entropy terms within 0.5 % at every iteration (measured
/// at most 0.1 % over these 6 iterations). The contrastive term's logits are cosines over
/// τ = 0.1, so the embeddings' bf16 rounding (relative 2⁻⁹ per value) is magnified tenfold: at
/// iteration 1 (the same weights) within 6 % (measured 1.7 %); later its queries are sampled by
/// pseudo-labels, which flip on near-ties, so each iteration within 20 % (measured at most 12 %)
/// and its mean over the run within 6 % (measured 2.3 %).
#[test]
fn a_bf16_run_follows_the_f32_loss_curve() {
    let (full, half) = (losses("f32", "joint"), losses("bf16", "joint"));
    assert_eq!((full.len(), half.len()), (ITERS, ITERS));
    let rel = |x: f64, y: f64| (x - y).abs() / x;
    for (i, (a, b)) in full.iter().zip(&half).enumerate() {
        for ((name, x), (_, y)) in a.iter().zip(b) {
            let what = format!("iteration {}: {name} = {x} (f32), {y} (bf16)", i + 1);
            assert!(x.is_finite() && y.is_finite() && *x > 0.0, "{what}");
            let tolerance = match (name.as_str(), i) {
                ("loss_t2s", 0) => 0.06,
                ("loss_t2s", _) => 0.2,
                _ => 0.005,
            };
            assert!(rel(*x, *y) < tolerance, "{what}");
        }
    }
    let mean =
        |run: &[Vec<(String, f64)>]| run.iter().map(|r| r.iter().find(|(n, _)| n == "loss_t2s").unwrap().1).sum::<f64>() / ITERS as f64;
    let (x, y) = (mean(&full), mean(&half));
    assert!(rel(x, y) < 0.06, "mean loss_t2s over the run: {x} (f32), {y} (bf16)");
}

/// Sequential passes (a compute copy per pass) in bf16: every term finite and positive.
#[test]
fn bf16_runs_with_sequential_passes() {
    let half = losses("bf16", "sequential");
    assert_eq!(half.len(), ITERS);
    assert!(half.iter().flatten().all(|(_, v)| v.is_finite() && *v > 0.0), "{half:?}");
}
