//! Before the first iteration the replicas check that they run the same training: the same
//! initial weights and the same settings of everything that decides an update. Replicas that
//! differ would otherwise average gradients of different models, or step with different
//! learning rates, and drift apart without an error (PyTorch's DDP broadcasts rank 0's weights
//! instead; Burn's collective has no global broadcast, docs/data-parallel.md).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde_json::Value;

use super::{count_flags, linger_across_machines, sum_host, Replica};
use crate::config::RunConfig;
use crate::{Result, TrainError};

/// What may differ from machine to machine: where the files are, how they are read, the numeric
/// format and recomputation of the passes (`[train]`), evaluation and output (`[eval]`, `[run]`
/// but its seed), and `uda.student_passes` (a memory choice that changes only float rounding).
const PER_MACHINE: &[&str] = &["root", "mapping", "name", "workers", "prefetch", "pretrained", "student_passes"];

/// What every replica must share, each with a digest: the student's weights (its network,
/// `model.pretrained`'s content, `run.seed`'s draws, or the checkpoint resumed from); `[model]`,
/// `[data]` (but its evaluation sets), `[uda]`, `[t2s]`, `[optim]` and `[schedule]`, less the
/// [`PER_MACHINE`] keys; `run.seed`; and the iteration the run stops at (`until`, `--until`).
pub fn run_digests<B: Backend, M: Module<B>>(cfg: &RunConfig, student: &M, until: usize) -> Result<Vec<(&'static str, u64)>> {
    let mut weights = WeightDigest { hash: FNV_OFFSET };
    student.visit(&mut weights);
    let mut whole = serde_json::to_value(cfg).map_err(|e| TrainError::Replica(format!("describing the run to compare it: {e}")))?;
    if let Some(data) = whole.get_mut("data").and_then(Value::as_object_mut) {
        data.remove("eval");
    }
    drop_keys(&mut whole, PER_MACHINE);
    let section = |name: &str| digest_of(&whole[name]);
    Ok(vec![
        ("the initial weights (network, model.pretrained, run.seed or the checkpoint)", weights.hash),
        ("[model]", section("model")),
        ("[data] (but roots, workers and evaluation sets)", section("data")),
        ("[uda]", section("uda")),
        ("[t2s]", section("t2s")),
        ("[optim]", section("optim")),
        ("[schedule]", section("schedule")),
        ("run.seed", digest_of(&whole["run"]["seed"])),
        ("the iteration to stop at (--until)", fnv1a(FNV_OFFSET, &(until as u64).to_le_bytes())),
    ])
}

/// Fails, on every replica, when any two replicas' [`run_digests`] differ, naming what differs.
/// Two collective calls: the digests' bytes and a 1 per replica summed (each sum exact in f32
/// below 65,793 replicas), then each replica's verdict, so that all of them stop together.
pub fn check_same_run<B: Backend>(replica: &Replica, digests: &[(&'static str, u64)], device: &B::Device) -> Result<()> {
    let mut values: Vec<f64> = digests.iter().flat_map(|(_, d)| d.to_le_bytes()).map(f64::from).collect();
    values.push(1.0);
    let sums = sum_host::<B>(Some(replica), "comparing the replicas' runs", &values, device)?;
    if sums.len() != values.len() {
        return Err(TrainError::Replica(format!(
            "replica {}: comparing the replicas' runs: {} sums for {} values",
            replica.rank,
            sums.len(),
            values.len()
        )));
    }
    // Nodes with other numbers of devices join all the same; their count is the last sum.
    let n = sums[values.len() - 1];
    let bytes = &values[..values.len() - 1];
    // Every replica equal to the mean is every replica equal: one that differs sees it.
    let mut differs: Vec<bool> =
        bytes.chunks(8).zip(sums.chunks(8)).map(|(own, sum)| own.iter().zip(sum).any(|(o, s)| (s - n * o).abs() > 0.5)).collect();
    differs.push((n - replica.count as f64).abs() > 0.5);
    let counts = count_flags::<B>(replica, &differs, device)?;
    let mut names: Vec<String> = digests.iter().zip(&counts).filter(|(_, &c)| c > 0).map(|((name, _), _)| name.to_string()).collect();
    if counts[digests.len()] > 0 {
        names.push(format!("the number of replicas ({} in all, not {}: every node needs as many devices)", n.round(), replica.count));
    }
    if names.is_empty() {
        return check_distinct_ranks::<B>(replica, replica.rank, device);
    }
    linger_across_machines();
    Err(TrainError::Replica(format!(
        "replica {} of {}: the replicas do not run the same training: they differ in {}. Start every node with the same configuration file, --set options, --until and model.pretrained weights (and --resume the same run folder, on a file system every node sees)",
        replica.rank,
        replica.count,
        names.join(", ")
    )))
}

/// Fails, on every replica, when two processes took the same rank (two nodes given the same
/// `--node-rank`): the count matches, but one shard of the data is trained twice and another
/// never. A one-hot of each replica's rank, summed: every rank must be held once. Called once the
/// replica count is known to agree, so that every replica sends a vector of the same length.
/// `claimed`: the rank this process was given (its `--node-rank` and device index).
pub(super) fn check_distinct_ranks<B: Backend>(replica: &Replica, claimed: usize, device: &B::Device) -> Result<()> {
    let own: Vec<bool> = (0..replica.count).map(|r| r == claimed).collect();
    let held = count_flags::<B>(replica, &own, device)?;
    let twice: Vec<String> =
        held.iter().enumerate().filter(|(_, &c)| c > 1).map(|(r, c)| format!("rank {r} is taken by {c} processes")).collect();
    let none: Vec<String> = held.iter().enumerate().filter(|(_, &c)| c == 0).map(|(r, _)| r.to_string()).collect();
    if twice.is_empty() && none.is_empty() {
        return Ok(());
    }
    linger_across_machines();
    Err(TrainError::Replica(format!(
        "replica {} of {}: replica {}, and rank(s) {} by none: give each node its own --node-rank from 0 to --nodes − 1 (with Slurm: one task per node, --ntasks-per-node=1)",
        replica.rank,
        replica.count,
        twice.join(", "),
        if none.is_empty() { "–".to_string() } else { none.join(", ") }
    )))
}

/// Removes every key named in `keys`, at any depth.
fn drop_keys(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !keys.contains(&k.as_str()));
            map.values_mut().for_each(|v| drop_keys(v, keys));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_keys(v, keys)),
        _ => {}
    }
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

/// The digest of a configuration value's JSON text (objects with sorted keys).
fn digest_of(v: &Value) -> u64 {
    fnv1a(FNV_OFFSET, v.to_string().as_bytes())
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
