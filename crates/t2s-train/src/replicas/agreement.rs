//! Before the first iteration the replicas check that they run the same training: the same
//! initial weights and the same settings of the sections that decide each update. Replicas that
//! differ would otherwise average gradients of different models, or step with different
//! learning rates, and drift apart without an error (PyTorch's DDP broadcasts rank 0's weights
//! instead; Burn's collective has no global broadcast, docs/data-parallel.md).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::Serialize;

use super::{count_flags, sum_host, Replica};
use crate::config::RunConfig;
use crate::{Result, TrainError};

/// What every replica must share, each with a digest: the student's weights (its network,
/// `model.pretrained`'s content, `run.seed`'s draws, or the checkpoint resumed from), `[uda]`
/// (but `student_passes`, a memory choice that changes only float rounding), `[t2s]`, `[optim]`
/// and `[schedule]`. Data roots, `[train]` (precision, recomputation) and `[eval]` may differ
/// per machine.
pub fn run_digests<B: Backend, M: Module<B>>(cfg: &RunConfig, student: &M) -> Vec<(&'static str, u64)> {
    let mut weights = WeightDigest { hash: FNV_OFFSET };
    student.visit(&mut weights);
    let mut uda = cfg.uda.clone();
    uda.student_passes = crate::config::StudentPasses::Joint;
    vec![
        ("the initial weights (network, model.pretrained, run.seed or the checkpoint)", weights.hash),
        ("[uda]", section_digest(&uda)),
        ("[t2s]", section_digest(&cfg.t2s)),
        ("[optim]", section_digest(&cfg.optim)),
        ("[schedule]", section_digest(&cfg.schedule)),
    ]
}

/// Fails, on every replica, when any two replicas' [`run_digests`] differ, naming what differs.
/// Two collective calls: the digests summed (in bytes, each sum exact in f32 up to 65,793
/// replicas), then each replica's verdict, so that all of them stop together.
pub fn check_same_run<B: Backend>(replica: &Replica, digests: &[(&'static str, u64)], device: &B::Device) -> Result<()> {
    let bytes: Vec<f64> = digests.iter().flat_map(|(_, d)| d.to_le_bytes()).map(f64::from).collect();
    let sums = sum_host::<B>(Some(replica), "comparing the replicas' runs", &bytes, device)?;
    let n = replica.count as f64;
    // Every replica equal to the mean is every replica equal: one that differs sees it.
    let differs: Vec<bool> =
        bytes.chunks(8).zip(sums.chunks(8)).map(|(own, sum)| own.iter().zip(sum).any(|(o, s)| (s - n * o).abs() > 0.5)).collect();
    let counts = count_flags::<B>(replica, &differs, device)?;
    let names: Vec<&str> = digests.iter().zip(&counts).filter(|(_, &c)| c > 0).map(|((name, _), _)| *name).collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(TrainError::Replica(format!(
        "replica {} of {}: the replicas do not run the same training: they differ in {}. Start every node with the same configuration file, --set options and model.pretrained weights",
        replica.rank,
        replica.count,
        names.join(", ")
    )))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes` continued from `hash`: fixed by its definition, so equal on every
/// machine and build (std's hasher promises neither).
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The digest of a configuration section's TOML text (fields in declaration order).
fn section_digest<T: Serialize>(section: &T) -> u64 {
    fnv1a(FNV_OFFSET, toml::to_string(section).unwrap_or_default().as_bytes())
}

/// Digests every parameter's shape and values, in the module's visit order.
struct WeightDigest {
    hash: u64,
}

impl<B: Backend> ModuleVisitor<B> for WeightDigest {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        for d in t.dims() {
            self.hash = fnv1a(self.hash, &(d as u64).to_le_bytes());
        }
        self.hash = fnv1a(self.hash, t.into_data().as_bytes());
    }
}
