//! `t2s import-weights` (a PyTorch checkpoint to a t2s weight file) and `t2s models` (the
//! presets with their parameter counts).

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;

use crate::cli::ImportArgs;
use crate::device::BackendTask;

pub struct ImportWeights(pub ImportArgs);

impl BackendTask for ImportWeights {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        if a.output.is_dir() {
            bail!("--output {}: a folder; give the weight file to write (e.g. model.safetensors)", a.output.display());
        }
        let same = |x: &std::path::Path, y: &std::path::Path| matches!((x.canonicalize(), y.canonicalize()), (Ok(p), Ok(q)) if p == q);
        if same(&a.output, &a.weights) {
            bail!(
                "--output {}: the checkpoint being imported; give another file (it would be replaced by one sub-model)",
                a.output.display()
            );
        }
        if t2s_model::read_t2s_config(&a.weights).ok().flatten().is_some() {
            bail!("--weights {}: already a t2s weight file", a.weights.display());
        }
        let loaded = t2s_train::load_model::<B>(Some(&a.model), Some(&a.weights), a.prefix.as_deref(), &device)
            .context("importing the checkpoint")?;
        if let Some(report) = &loaded.report {
            eprintln!("{report}");
        }
        t2s_model::save_t2s(&loaded.model, &loaded.config, &a.output)?;
        eprintln!("wrote {}", a.output.display());
        Ok(())
    }
}

/// `t2s models`: every preset with its number of trainable parameters.
pub fn list_models() -> Result<()> {
    println!("{:<22} {:>14}", "preset", "parameters");
    for name in t2s_model::PRESETS {
        let cfg = t2s_model::SegmentorConfig::preset(name)?;
        let net = cfg.init::<burn::backend::Flex>(&Default::default())?;
        println!("{:<22} {:>14}", name, t2s_model::count_trainable::<burn::backend::Flex, _>(&net));
    }
    Ok(())
}
