//! Where a network comes from: a preset name, a TOML configuration, or a t2s weight file (which
//! carries its configuration), plus optional weights (PyTorch or t2s).

use std::path::Path;

use burn::tensor::backend::Backend;
use t2s_model::{load_pytorch, load_t2s_into, read_t2s_config, safetensors_header, LoadReport, Segmentor, SegmentorConfig, PRESETS};

use crate::error::{Result, TrainError};

/// Resolves `--model`: a t2s weight file (its stored configuration), a `.toml` file (its
/// `[model]` table, or the whole file if it has none), or a preset name.
pub fn resolve_model_config(model: &str) -> Result<SegmentorConfig> {
    let path = Path::new(model);
    if path.is_file() {
        if let Some(cfg) = read_t2s_config(path)? {
            return Ok(cfg);
        }
        if is_safetensors_name(path) {
            not_safetensors(path, "--model")?;
            return Err(TrainError::Usage(format!(
                "--model {model}: a safetensors file without a t2s model configuration (not written by t2s); give --model a preset \
                 or a configuration, and this file as --weights"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config { path: path.into(), message: e.to_string() })?;
        let bad = |message: String| TrainError::Config { path: path.into(), message };
        let value: toml::Table = toml::from_str(&text).map_err(|e| bad(format!("not valid TOML: {e}")))?;
        let table = match value.get("model") {
            Some(toml::Value::Table(t)) => t.clone(),
            Some(_) => return Err(bad("`model` must be a table ([model])".into())),
            None => value,
        };
        let cfg: SegmentorConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| bad(format!("invalid model configuration: {e}")))?;
        cfg.validate()?;
        return Ok(cfg);
    }
    if model.ends_with(".toml") || model.ends_with(".safetensors") || model.contains('/') {
        return Err(TrainError::Usage(format!("--model {model}: no such file")));
    }
    Ok(SegmentorConfig::preset(model).map_err(|_| {
        TrainError::Usage(format!(
            "--model {model}: not a file and not a preset; give a configuration (.toml), a t2s weight file (.safetensors) or one of: {}",
            PRESETS.join(", ")
        ))
    })?)
}

fn is_safetensors_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Refuses a `.safetensors` file that is not one (empty, truncated, another format), which would
/// otherwise be tried as a PyTorch checkpoint and reported as an unreadable pickle.
fn not_safetensors(path: &Path, option: &str) -> Result<()> {
    match safetensors_header(path)? {
        Ok(_) => Ok(()),
        Err(why) => Err(TrainError::Usage(format!(
            "{option} {}: not a safetensors file ({why}); t2s weight files are written by `t2s train` and `t2s import-weights`",
            path.display()
        ))),
    }
}

/// A network ready for use, with what was loaded into it.
pub struct LoadedModel<B: Backend> {
    pub config: SegmentorConfig,
    pub model: Segmentor<B>,
    /// Report of a PyTorch import (None for t2s files or fresh networks).
    pub report: Option<LoadReport>,
}

/// Builds the network named by `model` (or stored in `weights` when it is a t2s file) and loads
/// `weights`: a t2s `.safetensors` file or a PyTorch checkpoint (`prefix` picks a sub-model of
/// the latter, e.g. `state_dict.ema_model.`). Weights no file gives are drawn from seed 0.
pub fn load_model<B: Backend>(
    model: Option<&str>,
    weights: Option<&Path>,
    prefix: Option<&str>,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let config = model.map(resolve_model_config).transpose()?;
    load_model_from(config, weights, prefix, 0, device)
}

/// [`load_model`] with the network already resolved (e.g. from a run configuration's `[model]`).
/// Weights that no file gives (a fresh network, the heads of a backbone-only checkpoint) are
/// drawn from `seed` on the host, the same on every backend
/// ([`SegmentorConfig::init_seeded`]).
pub fn load_model_from<B: Backend>(
    model: Option<SegmentorConfig>,
    weights: Option<&Path>,
    prefix: Option<&str>,
    seed: u64,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let stored = match weights {
        Some(w) if w.is_file() => {
            if is_safetensors_name(w) {
                not_safetensors(w, "--weights")?;
            }
            read_t2s_config(w)?
        }
        Some(w) => return Err(TrainError::Usage(format!("--weights {}: no such file", w.display()))),
        None => None,
    };
    let config =
        match (model, &stored) {
            (Some(m), _) => m,
            (None, Some(cfg)) => cfg.clone(),
            (None, None) => return Err(TrainError::Usage(
                "give --model (a preset, a configuration or a t2s weight file); a PyTorch checkpoint does not say which network it is for"
                    .into(),
            )),
        };
    if let (Some(stored), Some(w)) = (&stored, weights) {
        if stored != &config {
            return Err(TrainError::Usage(format!(
                "--weights {} was saved for another network than --model describes; leave out --model to use the network stored in the file",
                w.display()
            )));
        }
    }
    // A t2s file gives every weight: nothing to draw.
    let mut net = if stored.is_some() { config.init::<B>(device)? } else { config.init_seeded::<B>(seed, device)? };
    let report = match (weights, &stored) {
        (Some(w), Some(_)) => {
            load_t2s_into(&mut net, &config, w)?;
            None
        }
        (Some(w), None) => Some(load_pytorch(&mut net, &config, w, prefix)?),
        (None, _) => None,
    };
    Ok(LoadedModel { config, model: net, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safetensors_name_that_is_not_one_is_called_so() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.safetensors");
        std::fs::write(&empty, b"").unwrap();
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"garbage, not weights").unwrap();
        for (path, why) in [(&empty, "shorter than 8 bytes"), (&garbage, "header length")] {
            let e =
                load_model::<burn::backend::Flex>(Some("deeplabv2-r18"), Some(path), None, &Default::default()).err().unwrap().to_string();
            assert!(e.contains("not a safetensors file") && e.contains(why) && !e.contains("PyTorch"), "{e}");
            let e = resolve_model_config(path.to_str().unwrap()).err().unwrap().to_string();
            assert!(e.starts_with("--model ") && e.contains("not a safetensors file"), "{e}");
        }
    }

    #[test]
    fn presets_and_files_resolve() {
        assert!(matches!(resolve_model_config("daformer-mitb5").unwrap().backbone, t2s_model::BackboneConfig::Mit(_)));
        let err = resolve_model_config("nonsense").unwrap_err().to_string();
        assert!(err.contains("daformer-mitb5") && err.contains("nonsense"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(
            &p,
            "[model]\nnum_classes = 7\n[model.backbone]\ntype = \"resnet\"\ndepth = 18\n[model.decode_head]\ntype = \"deeplabv2\"\n",
        )
        .unwrap();
        let cfg = resolve_model_config(p.to_str().unwrap()).unwrap();
        assert_eq!(cfg.num_classes, 7);
        std::fs::write(&p, "[model]\nnum_classes = 7\nbogus = 1\n[model.backbone]\ntype = \"resnet\"\ndepth = 18\n[model.decode_head]\ntype = \"deeplabv2\"\n").unwrap();
        let err = resolve_model_config(p.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("m.toml"), "{err}");
    }

    #[test]
    fn shipped_model_configs_equal_their_presets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/models");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let from_file = resolve_model_config(path.to_str().unwrap()).unwrap();
            assert_eq!(from_file, SegmentorConfig::preset(&name).unwrap(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 2);
    }
}
