//! The optimiser state of a checkpoint, `optimizer.safetensors`: one F32 tensor per moment or
//! momentum buffer, named `<parameter path>.<field>` with PyTorch's field names (`exp_avg`,
//! `exp_avg_sq`, `momentum_buffer`), and in the header's metadata the rule and every
//! parameter's step count. Paths are the module's (`backbone.stages.0…weight`), so a resume
//! matches them whatever ids this process gave the parameters. Format 1 (before 2026-12-06)
//! named tensors by parameter id, valid with the ids of the checkpoint's `student.mpk`.

use std::collections::HashMap;
use std::path::Path;

use burn::module::ParamId;
use burn::tensor::{backend::Backend, Tensor, TensorData, Transaction};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::rule::{Rule, Slot};
use crate::{Result, TrainError};

/// The file's name in a checkpoint folder.
pub const STATE_FILE: &str = "optimizer.safetensors";
/// What t2s before this format wrote (Burn's optimiser records), recognised to say so.
const LEGACY_FILES: [&str; 2] = ["optimizer_decay.mpk", "optimizer_no_decay.mpk"];
const FORMAT_KEY: &str = "format";
const FORMAT: &str = "t2s-optimizer-2";
/// Keyed by parameter id (checkpoints with `student.mpk`).
const FORMAT_BY_ID: &str = "t2s-optimizer-1";
const RULE_KEY: &str = "rule";
const STEPS_KEY: &str = "steps";

/// Writes `state` to `path` with one device read for all tensors, each parameter under its
/// path in `paths`.
pub(crate) fn save<B: Backend>(
    path: &Path,
    rule: &Rule,
    state: &HashMap<ParamId, Slot<B>>,
    paths: &HashMap<ParamId, String>,
) -> Result<()> {
    let err = |message: String| TrainError::Io { path: path.into(), message };
    let mut keyed = state
        .keys()
        .map(|id| paths.get(id).map(|p| (p.as_str(), *id)).ok_or_else(|| err(format!("parameter {} is not in the network", id.val()))))
        .collect::<Result<Vec<_>>>()?;
    keyed.sort();
    let mut names = Vec::new();
    let mut steps = serde_json::Map::new();
    let mut read = Transaction::default();
    for (key, id) in keyed {
        let mut register = |field: &str, t: &Tensor<B, 1>| {
            names.push(format!("{key}.{field}"));
            read = std::mem::take(&mut read).register(t.clone());
        };
        match &state[&id] {
            Slot::AdamW { step, exp_avg, exp_avg_sq } => {
                register("exp_avg", exp_avg);
                register("exp_avg_sq", exp_avg_sq);
                steps.insert(key.to_string(), (*step).into());
            }
            Slot::Sgd { momentum_buffer: Some(b) } => register("momentum_buffer", b),
            Slot::Sgd { momentum_buffer: None } => {}
        }
    }
    let data: Vec<TensorData> = if names.is_empty() { Vec::new() } else { read.execute() };
    let data: Vec<TensorData> = data.into_iter().map(|d| d.convert::<f32>()).collect();
    let views = names
        .iter()
        .zip(&data)
        .map(|(name, d)| TensorView::new(Dtype::F32, d.shape.to_vec(), d.as_bytes()).map(|v| (name.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    let metadata = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
        (RULE_KEY.to_string(), rule.name().to_string()),
        (STEPS_KEY.to_string(), serde_json::Value::Object(steps).to_string()),
    ]);
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| err(e.to_string()))
}

/// Reads the state written by [`save`] from checkpoint folder `dir`. `sizes` holds the number of
/// values of every parameter of the model being resumed, by id, and `ids` its parameters' ids by
/// path: a state of another model, of another rule, or a file that is not one, is an error that
/// says so.
pub(crate) fn load<B: Backend>(
    dir: &Path,
    rule: &Rule,
    sizes: &HashMap<ParamId, usize>,
    ids: &HashMap<String, ParamId>,
    device: &B::Device,
) -> Result<HashMap<ParamId, Slot<B>>> {
    let path = dir.join(STATE_FILE);
    let err = |message: String| TrainError::Io { path: path.clone(), message };
    if !path.exists() {
        if LEGACY_FILES.iter().any(|f| dir.join(f).exists()) {
            return Err(err(format!(
                "missing; this checkpoint holds the optimiser state as {} (Burn records), written by t2s before \
                 2026-12-04, which this version does not read: resume it with the t2s that wrote it, or start a new \
                 run from its weights (`--set model.pretrained={}`)",
                LEGACY_FILES.join(" and "),
                dir.join("student.safetensors").display()
            )));
        }
        return Err(err("missing: the checkpoint is incomplete; resume from an earlier one".into()));
    }
    let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let by_id = match meta.get(FORMAT_KEY).map(String::as_str) {
        Some(FORMAT) => false,
        Some(FORMAT_BY_ID) => true,
        _ => return Err(err(format!("not a t2s optimiser state (no `{FORMAT_KEY} = {FORMAT}` in its metadata)"))),
    };
    // The parameter a tensor-name prefix (or a step count's key) names.
    let param = |key: &str| -> Option<ParamId> {
        if by_id {
            key.parse::<u64>().ok().map(ParamId::from)
        } else {
            ids.get(key).copied()
        }
    };
    let saved_rule = meta.get(RULE_KEY).map(String::as_str).unwrap_or("");
    if saved_rule != rule.name() {
        return Err(err(format!(
            "holds `{saved_rule}` state but the configuration's optim.kind is `{}`: resume with the run's own configuration",
            rule.name()
        )));
    }
    let steps: HashMap<String, u64> =
        serde_json::from_str(meta.get(STEPS_KEY).map(String::as_str).unwrap_or("{}")).map_err(|e| err(format!("step counts: {e}")))?;

    let mut fields: HashMap<ParamId, HashMap<String, Tensor<B, 1>>> = HashMap::new();
    for (name, view) in file.tensors() {
        let bad = |why: &str| err(format!("tensor `{name}`: {why}"));
        let (key, field) = name.rsplit_once('.').ok_or_else(|| bad("not named `<parameter>.<field>`"))?;
        let Some((id, &n)) = param(key).and_then(|id| sizes.get(&id).map(|n| (id, n))) else {
            return Err(bad("no parameter of this model has that name: the checkpoint belongs to another model or run"));
        };
        if view.dtype() != Dtype::F32 || view.shape() != [n] {
            return Err(bad(&format!("expected F32 [{n}] (the parameter's size), found {:?} {:?}", view.dtype(), view.shape())));
        }
        let values: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let tensor = Tensor::from_data(TensorData::new(values, [n]), device);
        fields.entry(id).or_default().insert(field.to_string(), tensor);
    }
    let steps: HashMap<ParamId, u64> = steps.into_iter().filter_map(|(key, step)| param(&key).map(|id| (id, step))).collect();

    let mut state = HashMap::new();
    for (id, mut f) in fields {
        let missing = |field: &str| err(format!("parameter {}: `{}.{field}` is missing", id.val(), id.val()));
        let slot = match rule {
            Rule::AdamW { .. } => {
                let step = *steps.get(&id).ok_or_else(|| missing("steps"))?;
                let exp_avg = f.remove("exp_avg").ok_or_else(|| missing("exp_avg"))?;
                let exp_avg_sq = f.remove("exp_avg_sq").ok_or_else(|| missing("exp_avg_sq"))?;
                Slot::AdamW { step, exp_avg, exp_avg_sq }
            }
            Rule::Sgd { .. } => Slot::Sgd { momentum_buffer: Some(f.remove("momentum_buffer").ok_or_else(|| missing("momentum_buffer"))?) },
        };
        if let Some(other) = f.keys().next() {
            return Err(err(format!("parameter {}: unexpected field `{other}` for {}", id.val(), rule.name())));
        }
        state.insert(id, slot);
    }
    Ok(state)
}
