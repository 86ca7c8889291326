//! Where a network comes from: a preset name, a TOML configuration, or a t2s weight file (which
//! carries its configuration), plus optional weights (PyTorch or t2s).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use t2s_model::{load_pytorch, load_t2s_into, read_t2s_config, safetensors_header, LoadReport, Segmentor, SegmentorConfig, PRESETS};

use crate::error::{Result, TrainError};

/// How a command names the network and the weights it loads, for messages (`--model` and
/// `--weights` on the command line; `[model]` and `model.pretrained` in a run configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources<'a> {
    /// What names the network.
    pub model: &'a str,
    /// What names the weights.
    pub weights: &'a str,
}

impl Sources<'static> {
    /// `predict` and `import-weights`.
    pub const CLI: Sources<'static> = Sources { model: "--model", weights: "--weights" };
    /// A run configuration (`train`).
    pub const RUN: Sources<'static> = Sources { model: "[model]", weights: "model.pretrained" };
}

/// Resolves `--model`: a t2s weight file (its stored configuration), a `.toml` file (a run
/// configuration's `[model]`, with `preset` or `[model.network]`; a `configs/models/` file's
/// `[model]` table; or the whole file if it has no `[model]`), or a preset name.
pub fn resolve_model_config(model: &str) -> Result<SegmentorConfig> {
    resolve_model_source(model).map(|(network, _)| network)
}

/// `model.pretrained` and `model.pretrained_prefix` of a run configuration's `[model]`.
type Pretrained = (PathBuf, Option<String>);

/// [`resolve_model_config`], with the weights a run configuration's `[model]` names.
fn resolve_model_source(model: &str) -> Result<(SegmentorConfig, Option<Pretrained>)> {
    let path = Path::new(model);
    if path.is_file() {
        if let Some(cfg) = read_t2s_config(path)? {
            return Ok((cfg, None));
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
        // A run configuration's [model] names a preset or holds [model.network] (the rest of
        // the file is not needed).
        if ["preset", "network", "pretrained", "pretrained_prefix", "hrda"].iter().any(|k| table.contains_key(*k)) {
            let section: crate::config::ModelSection =
                toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| bad(format!("[model]: {e}")))?;
            let network = match (&section.network, &section.preset) {
                (Some(network), _) => network.clone(),
                (None, Some(preset)) => resolve_model_config(preset).map_err(|e| bad(format!("[model] preset: {e}")))?,
                (None, None) => return Err(bad("[model] has neither `preset` nor [model.network]: it does not say which network".into())),
            };
            let network = section.with_hrda(network);
            network.validate()?;
            return Ok((network, section.pretrained.map(|p| (p, section.pretrained_prefix))));
        }
        let cfg: SegmentorConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| bad(format!("invalid model configuration: {e}")))?;
        cfg.validate()?;
        return Ok((cfg, None));
    }
    if model.ends_with(".toml") || model.ends_with(".safetensors") || model.contains('/') {
        return Err(TrainError::Usage(format!("--model {model}: no such file")));
    }
    let network = SegmentorConfig::preset(model).map_err(|_| {
        TrainError::Usage(format!(
            "--model {model}: not a file and not a preset; give a configuration (.toml), a t2s weight file (.safetensors) or one of: {}",
            PRESETS.join(", ")
        ))
    })?;
    Ok((network, None))
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
    /// What the weights file gave (a PyTorch import or a t2s file); None for a fresh network.
    pub report: Option<LoadReport>,
    /// The weights file read (`--weights`, or a t2s file given as `--model`).
    pub weights: Option<std::path::PathBuf>,
}

/// Builds the network named by `model` (or stored in `weights` when it is a t2s file) and loads
/// `weights`: a t2s `.safetensors` file or a PyTorch checkpoint (`prefix` picks a sub-model of
/// the latter, e.g. `state_dict.ema_model.`). Weights no file gives are drawn from seed 0.
/// Without `weights`, `--model` gives them too: a t2s weight file its own, a run configuration
/// its `model.pretrained` (and `model.pretrained_prefix` unless `prefix` is given), as `t2s eval`
/// takes them.
pub fn load_model<B: Backend>(
    model: Option<&str>,
    weights: Option<&Path>,
    prefix: Option<&str>,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let (config, pretrained) = match model.map(resolve_model_source).transpose()? {
        Some((network, pretrained)) => (Some(network), pretrained),
        None => (None, None),
    };
    let model_file = model.map(Path::new).filter(|p| p.is_file() && read_t2s_config(p).ok().flatten().is_some());
    match (weights, model_file, &pretrained) {
        (None, Some(file), _) => load_model_from(config, Some(file), prefix, 0, Sources::CLI, device),
        (None, None, Some((file, file_prefix))) => {
            let names = Sources { model: "--model", weights: "model.pretrained of the --model file" };
            load_model_from(config, Some(file), prefix.or(file_prefix.as_deref()), 0, names, device)
        }
        _ => load_model_from(config, weights, prefix, 0, Sources::CLI, device),
    }
}

/// Refuses weights `w` (given as `setting`) that are a folder or no file at all.
pub fn weight_file_exists(w: &Path, setting: &str) -> Result<()> {
    if w.is_dir() {
        return Err(TrainError::Usage(format!(
            "{setting} {}: a folder; give a weight file (a checkpoint's student.safetensors or teacher.safetensors, or a .pth)",
            w.display()
        )));
    }
    if !w.is_file() {
        return Err(TrainError::Usage(format!("{setting} {}: no such file", w.display())));
    }
    Ok(())
}

/// [`load_model`] with the network already resolved (e.g. from a run configuration's `[model]`).
/// Weights that no file gives (a fresh network, the heads of a backbone-only checkpoint) are
/// drawn from `seed` on the host, the same on every backend
/// ([`SegmentorConfig::init_seeded`]).
/// `names` says how the command calls the network and the weights in messages.
pub fn load_model_from<B: Backend>(
    model: Option<SegmentorConfig>,
    weights: Option<&Path>,
    prefix: Option<&str>,
    seed: u64,
    names: Sources,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let stored = match weights {
        Some(w) => {
            weight_file_exists(w, names.weights)?;
            if is_safetensors_name(w) {
                not_safetensors(w, names.weights)?;
            }
            read_t2s_config(w)?
        }
        None => None,
    };
    let config = match (model, &stored, weights) {
        (Some(m), _, _) => m,
        (None, Some(cfg), _) => cfg.clone(),
        (None, None, Some(w)) => {
            return Err(TrainError::Usage(format!(
                "{} {} is a PyTorch checkpoint, which does not say which network it is for: name the network with {} (a preset, \
                 a configuration or a t2s weight file)",
                names.weights,
                w.display(),
                names.model
            )))
        }
        (None, None, None) => {
            return Err(TrainError::Usage(format!(
                "no network: give {} (a preset, a configuration or a t2s weight file) or {} (a t2s weight file)",
                names.model, names.weights
            )))
        }
    };
    if let (Some(stored), Some(w)) = (&stored, weights) {
        if stored != &config {
            return Err(TrainError::Usage(format!(
                "{} {} was saved for another network than {} describes; leave out {} to use the network stored in the file",
                names.weights,
                w.display(),
                names.model,
                names.model
            )));
        }
    }
    // A t2s file gives every weight: nothing to draw.
    let mut net = if stored.is_some() { config.init::<B>(device)? } else { config.init_seeded::<B>(seed, device)? };
    let report = match (weights, &stored) {
        (Some(w), Some(_)) => Some(load_t2s_into(&mut net, &config, w)?),
        (Some(w), None) => Some(load_pytorch(&mut net, &config, w, prefix)?),
        (None, _) => None,
    };
    Ok(LoadedModel { config, model: net, report, weights: weights.map(Path::to_path_buf) })
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
    fn run_configurations_and_model_files_name_their_network() {
        let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        // A run configuration: the network it trains ([model] preset, or [model.network]).
        for name in ["gta2cs_daformer_t2s.toml", "synthetic_demo.toml"] {
            let path = configs.join(name);
            let want = crate::RunConfig::load(&path, &[]).unwrap().network().unwrap().unwrap();
            assert_eq!(resolve_model_config(path.to_str().unwrap()).unwrap(), want, "{name}");
        }
        // A file with only a run configuration's [model].
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.toml");
        std::fs::write(&short, "[model]\npreset = \"deeplabv2-r18\"\n").unwrap();
        assert_eq!(resolve_model_config(short.to_str().unwrap()).unwrap(), SegmentorConfig::preset("deeplabv2-r18").unwrap());
        std::fs::write(&short, "[model]\npreset = \"daformer-mitb9\"\n").unwrap();
        let e = resolve_model_config(short.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("short.toml") && e.contains("daformer-mitb9") && e.contains("daformer-mitb5"), "{e}");
        // The configs/models/ layout: the same network as its preset.
        let file = configs.join("models/daformer-mitb5.toml");
        assert_eq!(resolve_model_config(file.to_str().unwrap()).unwrap(), SegmentorConfig::preset("daformer-mitb5").unwrap());
    }

    #[test]
    fn a_t2s_file_as_model_alone_gives_its_weights() {
        use burn::backend::Flex;
        let device = Default::default();
        let cfg = SegmentorConfig::preset("deeplabv2-r18").unwrap();
        let saved = cfg.init_seeded::<Flex>(9, &device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("net.safetensors");
        t2s_model::save_t2s(&saved, &cfg, &file).unwrap();
        let loaded = load_model::<Flex>(Some(file.to_str().unwrap()), None, None, &device).unwrap();
        // The same report as a PyTorch import: every tensor of the network, none missing or ignored.
        let report = loaded.report.as_ref().expect("a report for a t2s file");
        assert_eq!(report.loaded, t2s_model::io::params::inventory::<Flex, _>(&saved).len());
        assert!(report.not_in_file.is_empty() && report.unexpected.is_empty() && report.ignored == 0);
        assert_eq!(report.to_string(), format!("loaded {} tensors", report.loaded));
        struct Values(Vec<f32>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Values {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
                self.0.extend(p.val().into_data().iter::<f32>());
            }
        }
        let first = |net: &Segmentor<Flex>| {
            let mut v = Values(Vec::new());
            burn::module::Module::visit(net, &mut v);
            v.0
        };
        assert_eq!(first(&loaded.model), first(&saved));
        // A fresh network of the same configuration (seed 0) has other weights.
        assert_ne!(first(&cfg.init_seeded::<Flex>(0, &device).unwrap()), first(&saved));
    }

    #[test]
    fn messages_name_the_options_the_command_has() {
        use burn::backend::Flex;
        let dir = tempfile::tempdir().unwrap();
        let pth = dir.path().join("model.pth");
        std::fs::write(&pth, b"not read").unwrap();
        let load = |names| load_model_from::<Flex>(None, Some(&pth), None, 0, names, &Default::default()).err().unwrap().to_string();
        let e = load(Sources::RUN);
        assert!(e.starts_with("model.pretrained ") && e.contains("name the network with [model]") && !e.contains("--"), "{e}");
        let e = load(Sources::CLI);
        assert!(e.starts_with("--weights ") && e.contains("name the network with --model"), "{e}");
        let missing = dir.path().join("none.pth");
        let e = load_model_from::<Flex>(None, Some(&missing), None, 0, Sources::RUN, &Default::default()).err().unwrap().to_string();
        assert!(e.starts_with("model.pretrained ") && e.ends_with("no such file"), "{e}");
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
