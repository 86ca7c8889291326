//! Per-image class pixel counts for rare class sampling (method.md §3): from the cache `t2s
//! prepare` writes next to a dataset when it covers every sample, otherwise counted from the
//! labels at start-up (in parallel; the synthetic benchmark renders its labels in milliseconds).

use rayon::prelude::*;
use t2s_data::class_stats::read_class_stats;
use t2s_data::Dataset;

use t2s_data::{RareClassSampler, RcsConfig};

use crate::config::RunConfig;
use crate::data_sets::OpenedSet;
use crate::{Result, TrainError};

/// Counts `[image][class]` for every sample of `set`, and a line saying where they came from.
pub fn class_counts(set: &OpenedSet, num_classes: usize) -> Result<(Vec<Vec<u64>>, String)> {
    let ds: &dyn Dataset = set.dataset.as_ref();
    if let Some(path) = &set.stats_cache {
        if let Ok(Some(stats)) = read_class_stats(path) {
            let counts: Option<Vec<Vec<u64>>> = (0..ds.len())
                .map(|i| stats.images.get(&ds.name(i)).filter(|e| e.counts.len() == num_classes).map(|e| e.counts.clone()))
                .collect();
            if let Some(counts) = counts {
                return Ok((counts, format!("class statistics from {}", path.display())));
            }
        }
    }
    let counts = (0..ds.len())
        .into_par_iter()
        .map(|i| {
            let label = ds.label(i).map_err(|e| TrainError::Usage(format!("{}: {e}", set.name)))?;
            let label = label.ok_or_else(|| TrainError::Usage(format!("{}: sample {} has no label", set.name, ds.name(i))))?;
            let mut c = vec![0u64; num_classes];
            for &v in label.as_raw() {
                if (v as usize) < num_classes {
                    c[v as usize] += 1;
                }
            }
            Ok(c)
        })
        .collect::<Result<Vec<_>>>()?;
    let hint = match &set.stats_cache {
        Some(p) => format!(" (`t2s prepare` caches them in {})", p.display()),
        None => String::new(),
    };
    Ok((counts, format!("class statistics counted from {} labels{hint}", ds.len())))
}

/// The source's rare class sampler (method.md §3) as `cfg.data.rcs` sets it, with the notes a run
/// starts with (where the statistics came from, the effective pool) and a warning when the pool
/// is so small that training would see a few images over and over.
pub fn rare_class_sampler(
    cfg: &RunConfig,
    source: &OpenedSet,
    num_classes: usize,
) -> Result<(RareClassSampler, Vec<String>, Option<String>)> {
    let (counts, from) = class_counts(source, num_classes)?;
    let rcs = RcsConfig { temperature: cfg.data.rcs.temperature, min_pixels: cfg.data.rcs.min_pixels };
    let sampler = RareClassSampler::new(&counts, rcs).map_err(|e| TrainError::Usage(format!("data.rcs: {e}")))?;
    let pool = sampler.effective_pool();
    let notes = vec![
        format!("rare class sampling on {}: {from}", source.name),
        format!("rare class sampling: an effective pool of {pool:.0} of {} images", counts.len()),
    ];
    // The failure this guards against is silent: the loss drops fast on a few repeated images
    // while the model generalises badly (docs/results.md, "Rare class sampling").
    let warning = (pool < 0.05 * counts.len() as f64).then(|| {
        format!(
            "rare class sampling draws most of its images from about {pool:.0} of {}; data.rcs.min_pixels = {} is probably \
             too high for images of this size (DAFormer's 3,000 is 0.15 % of a 1914×1052 GTA5 label), or data.rcs.temperature too low",
            counts.len(),
            cfg.data.rcs.min_pixels
        )
    });
    Ok((sampler, notes, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use t2s_data::synth::{Domain, Split, SynthConfig, SyntheticDataset};

    #[test]
    fn synthetic_counts_cover_every_pixel_of_every_image() {
        let cfg = SynthConfig { domain: Domain::Source, split: Split::Train, len: 6, width: 64, height: 32, seed: 3 };
        let ds = SyntheticDataset::new(cfg).unwrap();
        let set = OpenedSet { dataset: Box::new(ds), name: "s".into(), notes: vec![], stats_cache: None };
        let (counts, _) = class_counts(&set, 19).unwrap();
        assert_eq!(counts.len(), 6);
        for (i, c) in counts.iter().enumerate() {
            let label = set.dataset.get(i).unwrap().label.unwrap();
            let labelled = label.as_raw().iter().filter(|&&v| v < 19).count() as u64;
            assert_eq!(c.iter().sum::<u64>(), labelled);
            assert_eq!(c[0], label.as_raw().iter().filter(|&&v| v == 0).count() as u64);
        }
    }
}
