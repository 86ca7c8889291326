//! Checks of arguments that several commands share, made before any work.

use anyhow::{bail, Context, Result};
use t2s_model::T2sBackend;

/// Refuses an `--output` that is a file, before any work (creating the folder failed late, with
/// the system's message twice).
pub(crate) fn output_folder(output: Option<&std::path::Path>) -> Result<()> {
    match output {
        Some(o) if o.exists() && !o.is_dir() => bail!("--output {}: a file, not a folder; give a folder (created if missing)", o.display()),
        _ => Ok(()),
    }
}

/// Refuses `--prefix` with a t2s weight file, whose keys are the network's own: it would select
/// nothing and be ignored.
pub(crate) fn prefix_selects_pytorch_keys(prefix: Option<&str>, weights: Option<&std::path::Path>) -> Result<()> {
    if let (Some(prefix), Some(w)) = (prefix, weights) {
        if matches!(t2s_model::read_t2s_config(w), Ok(Some(_))) {
            bail!("--prefix {prefix}: {} is a t2s weight file, whose keys have no prefix to select; leave out --prefix", w.display());
        }
    }
    Ok(())
}

/// `model` as `predict` and `eval` run it: computing in `precision` (`--precision`) and giving
/// HRDA's `branch` prediction (`--hrda-output`), or why the device or the network cannot.
pub(crate) fn for_inference<B: T2sBackend>(
    model: &t2s_model::Segmentor<B>,
    precision: t2s_model::Precision,
    branch: t2s_model::HrdaBranch,
    device: &B::Device,
) -> Result<t2s_model::Segmentor<B>> {
    if let Err(why) = precision.require_on::<B>(device) {
        bail!("--precision {precision}: {why}; use --precision f32");
    }
    model.at_precision(precision).with_hrda_branch(branch).with_context(|| format!("--hrda-output {branch}"))
}
