//! Loading PyTorch checkpoints into a [`Segmentor`], and the project's own weight format
//! (safetensors with the model configuration in its metadata).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::module::ParamId;
use burn::tensor::backend::Backend;
use burn::tensor::DType;
use burn_store::pytorch::PytorchReader;
use burn_store::{ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot};

use crate::error::{ModelError, Result};
use crate::io::checkpoint_keys::{choose_layout, is_classifier_key, rename_key, Family};
use crate::nets::segmentor::{BackboneConfig, Segmentor, SegmentorConfig};

/// Metadata key under which t2s weight files store their model configuration (JSON).
pub const CONFIG_METADATA_KEY: &str = "t2s.model";

/// What a PyTorch import did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Prefix of the checkpoint keys that were used.
    pub prefix: String,
    /// The file held only a backbone (ImageNet weights): heads keep their fresh initialisation.
    pub backbone_only: bool,
    /// Number of tensors loaded.
    pub loaded: usize,
    /// Model tensors the file did not provide (left as initialised; only allowed for the heads
    /// of a backbone-only file and for the projection head).
    pub not_in_file: Vec<String>,
    /// File tensors the model has no place for (other than classifier heads).
    pub unexpected: Vec<String>,
    /// File tensors deliberately skipped (ImageNet classifier, `num_batches_tracked`).
    pub ignored: usize,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} tensors{}{}",
            self.loaded,
            if self.prefix.is_empty() { String::new() } else { format!(" from keys under `{}`", self.prefix) },
            if self.backbone_only { " (backbone only; heads freshly initialised)" } else { "" }
        )?;
        if self.ignored > 0 {
            write!(f, "; ignored {} (classifier / bookkeeping)", self.ignored)?;
        }
        if !self.not_in_file.is_empty() {
            write!(f, "; {} model tensors not in the file, e.g. {}", self.not_in_file.len(), self.not_in_file[0])?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; {} unexpected tensors in the file: {}", self.unexpected.len(), preview(&self.unexpected))?;
        }
        Ok(())
    }
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} … and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// A network in a few words, for messages: "ResNet-101 + DeepLabV2 head, 19 classes".
pub fn arch_name(cfg: &SegmentorConfig) -> String {
    let b = match &cfg.backbone {
        BackboneConfig::Resnet(r) if r.layers.is_none() => format!("ResNet-{}", r.depth),
        BackboneConfig::Resnet(r) => format!("ResNet with {:?} blocks", r.layers.unwrap_or_default()),
        BackboneConfig::Mit(m) => format!("MiT {:?}", m.embed_dims),
    };
    let h = match &cfg.decode_head {
        crate::nets::segmentor::DecodeHeadConfig::Deeplabv2(_) => "DeepLabV2",
        crate::nets::segmentor::DecodeHeadConfig::Daformer(_) => "DAFormer",
        crate::nets::segmentor::DecodeHeadConfig::Segformer(_) => "SegFormer",
    };
    format!("{b} + {h} head, {} classes", cfg.num_classes)
}

/// Loads a PyTorch checkpoint (`.pth`/`.pt`: torchvision ResNet, SegFormer `mit_b*`, or a whole
/// mmseg / DAFormer segmentor, optionally under `state_dict` and `model.`/`ema_model.`) into
/// `model`. `prefix` selects a sub-model explicitly (e.g. `state_dict.ema_model.` for a
/// DAFormer teacher). Missing backbone tensors, missing decode-head tensors of a whole
/// segmentor, and any wrongly shaped tensor are errors naming the tensors; so is a panic while
/// reading or applying the file (burn-store's pickle reader can panic on a damaged one: caught,
/// `model` then partly filled).
pub fn load_pytorch<B: Backend>(model: &mut Segmentor<B>, cfg: &SegmentorConfig, path: &Path, prefix: Option<&str>) -> Result<LoadReport> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load_pytorch_file(model, cfg, path, prefix))).unwrap_or_else(|panic| {
        let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
        Err(ModelError::WeightsRead {
            path: path.to_path_buf(),
            message: format!("reading or applying it failed ({}); is it a complete PyTorch checkpoint?", what.unwrap_or_default()),
        })
    })
}

fn load_pytorch_file<B: Backend>(model: &mut Segmentor<B>, cfg: &SegmentorConfig, path: &Path, prefix: Option<&str>) -> Result<LoadReport> {
    let read_err = |message: String| ModelError::WeightsRead { path: path.to_path_buf(), message };
    if !path.is_file() {
        return Err(read_err("no such file".into()));
    }
    let reader = PytorchReader::new(path).map_err(|e| {
        // burn-store's message says "corrupted or unsupported" twice over; keep its first clause.
        let text = e.to_string();
        let first = text.split(". ").next().unwrap_or(&text).trim_end_matches('.').trim_start_matches("Pickle parsing error: ");
        // A configuration given where weights go is a likely mix-up of --model and --weights.
        let toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let hint = if toml { "; a .toml file describes a network: give it as --model (or model.preset/[model.network])" } else { "" };
        read_err(format!("not a readable PyTorch checkpoint ({first}): the file is damaged, or not a .pth/.pt checkpoint{hint}"))
    })?;
    let tensors = reader.into_tensors();
    let all_keys: Vec<String> = tensors.keys().cloned().collect();
    let layout = choose_layout(&all_keys, prefix);
    let family = match cfg.backbone {
        BackboneConfig::Resnet(_) => Family::ResNet,
        BackboneConfig::Mit(_) => Family::Mit,
    };

    let mut report = LoadReport { prefix: layout.stripped_prefix.clone(), backbone_only: layout.backbone_only, ..Default::default() };
    let mut snapshots = Vec::new();
    for (key, snap) in tensors {
        let Some(rest) = key.strip_prefix(&layout.stripped_prefix) else { continue };
        let full = if layout.backbone_only { format!("backbone.{rest}") } else { rest.to_string() };
        let part_of_the_network = ["backbone.", "decode_head.", "proj_head."].iter().any(|p| full.starts_with(p));
        if !layout.backbone_only && !part_of_the_network {
            // Other parts of a segmentor checkpoint (auxiliary heads, optimiser state).
            report.ignored += 1;
            continue;
        }
        if is_classifier_key(&full) {
            report.ignored += 1;
            continue;
        }
        let Some(name) = rename_key(&full, family) else {
            report.ignored += 1;
            continue;
        };
        snapshots.push((name, snap));
    }
    if snapshots.is_empty() {
        return Err(read_err(format!(
            "no tensors found under the prefix `{}`; the file's keys start with: {}",
            layout.stripped_prefix,
            preview(&top_level_names(&all_keys))
        )));
    }

    let result = apply_torch_named(model, snapshots);
    let mismatch = |details: String| ModelError::WeightsMismatch { path: path.to_path_buf(), arch: arch_name(cfg), details };
    if !result.errors.is_empty() {
        // The first few: a checkpoint of another architecture mismatches hundreds of tensors.
        let mut lines: Vec<String> = result.errors.iter().take(8).map(|e| format!("  {e}")).collect();
        if result.errors.len() > lines.len() {
            lines.push(format!("  … and {} more", result.errors.len() - lines.len()));
        }
        return Err(mismatch(format!(
            "{} tensors have the wrong shape (is this checkpoint for another architecture or class count?):\n{}",
            result.errors.len(),
            lines.join("\n")
        )));
    }
    report.loaded = result.applied.len();
    report.unexpected = result.unused.clone();
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    let fatal: Vec<&String> =
        missing.iter().filter(|p| p.starts_with("backbone.") || (!layout.backbone_only && p.starts_with("decode_head."))).collect();
    if report.loaded == 0 || !fatal.is_empty() {
        let names: Vec<String> = fatal.iter().map(|s| s.to_string()).collect();
        return Err(mismatch(format!(
            "{} of the model's tensors are missing from the file: {}{}",
            names.len(),
            preview(&names),
            if report.unexpected.is_empty() { String::new() } else { format!("\nthe file has instead: {}", preview(&report.unexpected)) }
        )));
    }
    report.not_in_file = missing;
    Ok(report)
}

/// Applies tensors named in PyTorch's conventions (`weight`/`bias` for norms, Linear `[out, in]`)
/// to `model`. Norm parameters are `gamma`/`beta` in Burn; the model's own tensor list says
/// which `weight`/`bias` belong to a norm, so they are renamed exactly there.
fn apply_torch_named<B: Backend>(model: &mut Segmentor<B>, named: Vec<(String, TensorSnapshot)>) -> ApplyResult {
    let model_paths: HashSet<String> = crate::io::params::inventory::<B, _>(model).into_iter().map(|e| e.path).collect();
    let snapshots = named
        .into_iter()
        .map(|(name, mut snap)| {
            // Half- or double-precision checkpoints (`model.half()`, fp16 releases) load as f32,
            // t2s's master weights; burn-store would keep the file's type (and Burn panics on an
            // integer or boolean tensor in a float parameter, which PyTorch's `load_state_dict`
            // casts: so does this). Neither reader yields quantised tensors.
            if !matches!(snap.dtype, DType::F32 | DType::QFloat(_)) {
                let data = snap.clone_data_fn();
                let widened = Rc::new(move || data().map(|d| d.convert::<f32>()));
                snap = TensorSnapshot::from_closure(widened, DType::F32, snap.shape.clone(), Vec::new(), Vec::new(), ParamId::new());
            }
            let burn_name = match name.rsplit_once('.') {
                Some((prefix, "weight")) if model_paths.contains(&format!("{prefix}.gamma")) => format!("{prefix}.gamma"),
                Some((prefix, "bias")) if model_paths.contains(&format!("{prefix}.beta")) => format!("{prefix}.beta"),
                _ => name,
            };
            snap.path_stack = Some(burn_name.split('.').map(str::to_string).collect());
            snap.container_stack = None;
            snap.tensor_id = None;
            snap
        })
        .collect();
    model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), true)
}

fn top_level_names(keys: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = keys.iter().map(|k| k.split('.').next().unwrap_or("").to_string()).collect();
    set.into_iter().collect()
}

/// Writes `model` in t2s's own format: safetensors in PyTorch's conventions (keys as in mmseg
/// checkpoints, e.g. `backbone.layer1.0.bn1.weight`; Linear weights `[out, in]`), so
/// `safetensors.torch.load_file` reads it as a state dict, with the model configuration in the
/// metadata. The file is
/// written next to `path` and renamed over it, so a crash never leaves a half-written file.
pub fn save_t2s<B: Backend>(model: &Segmentor<B>, cfg: &SegmentorConfig, path: &Path) -> Result<()> {
    let write_err = |message: String| ModelError::WeightsWrite { path: path.to_path_buf(), message };
    let json = serde_json::to_string(cfg).map_err(|e| write_err(e.to_string()))?;
    // Burn's batch norm statistics keep each thread's latest update aside until something syncs
    // them; saving reads the synced value, which would be one training update behind. Taking a
    // record syncs them (clones share the statistics).
    drop(burn::module::Module::into_record(model.clone()));
    if path.is_dir() {
        return Err(write_err("it is a folder; give a file name (e.g. model.safetensors)".into()));
    }
    let tmp = tmp_path(path);
    let mut store = SafetensorsStore::from_file(&tmp)
        .skip_enum_variants(true)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata(CONFIG_METADATA_KEY, json);
    // The temporary file goes whatever fails: a MiT-B5 one is 340 MB.
    let written = model.save_into(&mut store).map_err(|e| write_err(e.to_string()));
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| write_err(format!("rename from {}: {e}", tmp.display()))));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The model configuration stored in a t2s weight file, `None` if the file is not one (e.g. a
/// PyTorch checkpoint).
pub fn read_t2s_config(path: &Path) -> Result<Option<SegmentorConfig>> {
    let Ok(header) = safetensors_header(path)? else { return Ok(None) };
    let read_err = |message: String| ModelError::WeightsRead { path: path.to_path_buf(), message };
    let Some(cfg) = header.get("__metadata__").and_then(|m| m.get(CONFIG_METADATA_KEY)).and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    serde_json::from_str(cfg).map(Some).map_err(|e| read_err(format!("its model configuration is invalid: {e}")))
}

/// The JSON header of a safetensors file, or why `path` is not one (empty, shorter than its
/// header, a header that is not JSON); the outer error is a file that cannot be opened.
pub fn safetensors_header(path: &Path) -> Result<std::result::Result<serde_json::Value, String>> {
    let read_err = |message: String| ModelError::WeightsRead { path: path.to_path_buf(), message };
    let mut file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
    // A safetensors file starts with an 8-byte little-endian header length and a JSON header.
    let mut len = [0u8; 8];
    if std::io::Read::read_exact(&mut file, &mut len).is_err() {
        return Ok(Err("it is shorter than 8 bytes".into()));
    }
    let n = u64::from_le_bytes(len);
    if n == 0 || n > 100 << 20 {
        return Ok(Err(format!("its first 8 bytes give a header length of {n}")));
    }
    let mut header = vec![0u8; n as usize];
    if std::io::Read::read_exact(&mut file, &mut header).is_err() {
        return Ok(Err(format!("it ends inside its {n}-byte header")));
    }
    Ok(serde_json::from_slice::<serde_json::Value>(&header).map_err(|e| format!("its header is not JSON: {e}")))
}

/// Loads a t2s weight file written by [`save_t2s`]: builds the network from the stored
/// configuration and fills every tensor (all must be present with the right shapes).
pub fn load_t2s<B: Backend>(path: &Path, device: &B::Device) -> Result<(SegmentorConfig, Segmentor<B>)> {
    let cfg = read_t2s_config(path)?.ok_or_else(|| ModelError::WeightsRead {
        path: path.to_path_buf(),
        message: "not a t2s weight file (no model configuration in its metadata); for a PyTorch checkpoint give the model with --model"
            .into(),
    })?;
    let mut model = cfg.init::<B>(device)?;
    load_t2s_into(&mut model, &cfg, path)?;
    Ok((cfg, model))
}

/// Fills `model` from a t2s weight file, which must hold exactly the model's tensors; reports
/// what it loaded as a PyTorch import does (nothing can be missing or unexpected).
pub fn load_t2s_into<B: Backend>(model: &mut Segmentor<B>, cfg: &SegmentorConfig, path: &Path) -> Result<LoadReport> {
    let read_err = |message: String| ModelError::WeightsRead { path: path.to_path_buf(), message };
    let mut store = SafetensorsStore::from_file(path);
    let named: Vec<(String, TensorSnapshot)> =
        store.get_all_snapshots().map_err(|e| read_err(e.to_string()))?.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let result = apply_torch_named(model, named);
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(result.missing.iter().map(|(p, _)| format!("missing {p}")));
    problems.extend(result.unused.iter().map(|p| format!("unexpected {p}")));
    if !problems.is_empty() {
        return Err(ModelError::WeightsMismatch { path: path.to_path_buf(), arch: arch_name(cfg), details: preview(&problems) });
    }
    Ok(LoadReport {
        prefix: String::new(),
        backbone_only: false,
        loaded: result.applied.len(),
        not_in_file: Vec::new(),
        unexpected: Vec::new(),
        ignored: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tensor, TensorData};

    use crate::nets::segmentor::Backbone;

    #[test]
    fn t2s_files_round_trip_exactly_with_pytorch_names() {
        let dir = std::env::temp_dir().join(format!("t2s-weights-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("net.safetensors");
        let cfg: SegmentorConfig = serde_json::from_str(
            r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1]},
                "decode_head":{"type":"segformer","embed_dim":8},"num_classes":3,"projection":{"dim":4}}"#,
        )
        .unwrap();
        let device = Default::default();
        let net = cfg.init::<Flex>(&device).unwrap();
        save_t2s(&net, &cfg, &path).unwrap();
        assert!(!tmp_path(&path).exists(), "the temporary file is renamed away");

        // PyTorch conventions in the file: norm `weight`, Linear `[out, in]`.
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
        assert!(names.contains(&"backbone.stages.0.norm.weight".to_string()), "{names:?}");
        assert!(names.contains(&"decode_head.linear_fuse.bn.running_var".to_string()));
        assert_eq!(st.tensor("backbone.stages.0.blocks.0.attn.kv.weight").unwrap().shape(), &[16, 8]);

        let (cfg2, net2) = load_t2s::<Flex>(&path, &device).unwrap();
        assert_eq!(cfg2, cfg);
        let x = Tensor::<Flex, 4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let (a, b) = (net.forward(x.clone()), net2.forward(x));
        assert_eq!(a.logits.into_data(), b.logits.into_data());
        assert_eq!(a.embedding.unwrap().into_data(), b.embedding.unwrap().into_data());

        // A folder as the target is named before anything is written (its rename failed, and
        // left the model-sized out.tmp behind).
        let folder = dir.join("out");
        std::fs::create_dir(&folder).unwrap();
        let e = save_t2s(&net, &cfg, &folder).unwrap_err().to_string();
        assert!(e.contains("it is a folder"), "{e}");
        assert!(!tmp_path(&folder).exists(), "out.tmp left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn half_double_integer_and_boolean_tensors_load_as_f32() {
        let cfg: SegmentorConfig = serde_json::from_str(
            r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1]},
                "decode_head":{"type":"segformer","embed_dim":8},"num_classes":3}"#,
        )
        .unwrap();
        let mut net = cfg.init::<Flex>(&Default::default()).unwrap();
        // The first stage's closing norm (PyTorch `weight`, Burn `gamma`), 8 channels, and its
        // bias, in bf16 and f64; 0.375 and -1.25 are exact in every float type.
        let snapshot = |values: f32, dtype: DType| {
            let data = TensorData::new(vec![values; 8], [8]).convert_dtype(dtype);
            assert_eq!(data.dtype, dtype);
            TensorSnapshot::from_data(data, Vec::new(), Vec::new(), ParamId::new())
        };
        let named = vec![
            ("backbone.stages.0.norm.weight".to_string(), snapshot(0.375, DType::BF16)),
            ("backbone.stages.0.norm.bias".to_string(), snapshot(-1.25, DType::F64)),
        ];
        let result = apply_torch_named(&mut net, named);
        assert!(result.errors.is_empty() && result.applied.len() == 2, "{:?}", result.errors);
        let Backbone::Mit(mit) = &net.backbone else { unreachable!("a MiT configuration") };
        let norm = &mit.stages[0].norm;
        for (p, want) in [(norm.gamma.val(), 0.375f32), (norm.beta.val(), -1.25)] {
            assert_eq!(p.dtype(), DType::F32);
            assert_eq!(p.into_data().to_vec::<f32>().unwrap(), vec![want; 8]);
        }
        // Integer and boolean tensors in float parameters are cast, as `load_state_dict` casts
        // them (Burn would panic): -3 as i64 and true as a bool.
        let data = |d: TensorData| TensorSnapshot::from_data(d, Vec::new(), Vec::new(), ParamId::new());
        let named = vec![
            ("backbone.stages.0.norm.weight".to_string(), data(TensorData::new(vec![-3i64; 8], [8]))),
            ("backbone.stages.0.norm.bias".to_string(), data(TensorData::new(vec![true; 8], [8]))),
        ];
        let result = apply_torch_named(&mut net, named);
        assert!(result.errors.is_empty() && result.applied.len() == 2, "{:?}", result.errors);
        let Backbone::Mit(mit) = &net.backbone else { unreachable!("a MiT configuration") };
        let norm = &mit.stages[0].norm;
        for (p, want) in [(norm.gamma.val(), -3.0f32), (norm.beta.val(), 1.0)] {
            assert_eq!(p.dtype(), DType::F32);
            assert_eq!(p.into_data().to_vec::<f32>().unwrap(), vec![want; 8]);
        }
    }
}
