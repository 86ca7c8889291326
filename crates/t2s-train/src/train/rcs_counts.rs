//! Per-image class pixel counts for rare class sampling (method.md §3): from the cache `t2s
//! prepare` writes next to a dataset when it covers every sample, otherwise counted from the
//! labels at start-up (in parallel; the synthetic benchmark renders its labels in milliseconds).

use rayon::prelude::*;
use t2s_data::Dataset;

use t2s_data::{RareClassSampler, RcsConfig};

use crate::config::RunConfig;
use crate::data_sets::OpenedSet;
use crate::{Result, TrainError};

/// One image's pixels per class, and its label's pixel count (ignored pixels included).
pub type ImageCounts = (Vec<u64>, u64);

/// [`ImageCounts`] for every sample of `set`, and a line saying where they came from.
pub fn class_counts(set: &OpenedSet, num_classes: usize) -> Result<(Vec<ImageCounts>, String)> {
    let ds: &dyn Dataset = set.dataset.as_ref();
    // Checked against the files when the set was opened (`OpenedSet::cached_counts`).
    if let (Some(path), Some(counts)) = (&set.stats_cache, &set.cached_counts) {
        if counts.iter().all(|(c, _)| c.len() == num_classes) {
            return Ok((counts.clone(), format!("class statistics from {}", path.display())));
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
            Ok((c, label.as_raw().len() as u64))
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
    let (counted, from) = class_counts(source, num_classes)?;
    let mut areas: Vec<u64> = counted.iter().map(|(_, area)| *area).collect();
    areas.sort_unstable();
    let median_area = areas.get(areas.len() / 2).copied().unwrap_or(0);
    let counts: Vec<Vec<u64>> = counted.into_iter().map(|(c, _)| c).collect();
    let share = |fraction: f64| (fraction * median_area as f64).round() as u64;
    let rcs = &cfg.data.rcs;
    let min_pixels = rcs.min_fraction.map_or(rcs.min_pixels, share);
    let suggestion = || {
        format!(
            "set data.rcs.min_fraction = {:.4} (DAFormer's 3,000 pixels of a 1914×1052 GTA5 label, {} pixels of these \
             {median_area}-pixel labels)",
            crate::config::DAFORMER_MIN_FRACTION,
            share(crate::config::DAFORMER_MIN_FRACTION)
        )
    };
    let sampler = RareClassSampler::new(&counts, RcsConfig { temperature: rcs.temperature, min_pixels })
        .map_err(|e| TrainError::Usage(format!("data.rcs: {e}; {}", suggestion())))?;
    let pool = sampler.effective_pool();
    let mut notes = vec![format!("rare class sampling on {}: {from}", source.name)];
    if let Some(fraction) = rcs.min_fraction {
        notes.push(format!(
            "rare class sampling: data.rcs.min_fraction = {fraction} of a {median_area}-pixel label (the median) is {min_pixels} pixels"
        ));
    }
    notes.push(format!("rare class sampling: an effective pool of {pool:.0} of {} images", counts.len()));
    // The failure this guards against is silent: the loss drops fast on a few repeated images
    // while the model generalises badly (docs/results.md, "Rare class sampling").
    let warning = (pool < 0.05 * counts.len() as f64).then(|| {
        let setting = match rcs.min_fraction {
            Some(f) => format!("data.rcs.min_fraction = {f} ({min_pixels} pixels)"),
            None => format!("data.rcs.min_pixels = {min_pixels}"),
        };
        format!(
            "rare class sampling draws most of its images from about {pool:.0} of {}: {setting} is too high for labels of \
             {median_area} pixels; {}, or raise data.rcs.temperature",
            counts.len(),
            suggestion()
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
        let set = OpenedSet { dataset: Box::new(ds), name: "s".into(), notes: vec![], stats_cache: None, cached_counts: None };
        let (counts, _) = class_counts(&set, 19).unwrap();
        assert_eq!(counts.len(), 6);
        for (i, (c, area)) in counts.iter().enumerate() {
            let label = set.dataset.get(i).unwrap().label.unwrap();
            assert_eq!(*area, 64 * 32);
            let labelled = label.as_raw().iter().filter(|&&v| v < 19).count() as u64;
            assert_eq!(c.iter().sum::<u64>(), labelled);
            assert_eq!(c[0], label.as_raw().iter().filter(|&&v| v == 0).count() as u64);
        }
    }

    /// `data.rcs.min_fraction` is the same threshold as `min_pixels` at the labels' size, and the
    /// collapse warning names the setting to change and the value to give.
    #[test]
    fn a_fraction_of_the_label_is_a_pixel_threshold_at_its_size() {
        let synth = SynthConfig { domain: Domain::Source, split: Split::Train, len: 40, width: 64, height: 32, seed: 3 };
        let set = || OpenedSet {
            dataset: Box::new(SyntheticDataset::new(synth.clone()).unwrap()),
            name: "s".into(),
            notes: vec![],
            stats_cache: None,
            cached_counts: None,
        };
        let mut cfg = RunConfig::parse("[model]\npreset = \"deeplabv2-r18\"\n[data]\ncrop = [32, 64]\n[data.source]\nkind = \"synthetic\"\ndomain = \"source\"\nsize = [64, 32]\n", &[]).unwrap();
        cfg.data.rcs.min_pixels = 20;
        let (by_pixels, _, _) = rare_class_sampler(&cfg, &set(), 19).unwrap();
        // 20 of 2,048 pixels.
        cfg.data.rcs.min_fraction = Some(20.0 / 2048.0);
        cfg.data.rcs.min_pixels = 3_000;
        let (by_fraction, notes, _) = rare_class_sampler(&cfg, &set(), 19).unwrap();
        for c in 0..19u8 {
            assert_eq!(by_fraction.images_with(c), by_pixels.images_with(c), "class {c}");
        }
        assert!((by_fraction.effective_pool() - by_pixels.effective_pool()).abs() < 1e-9);
        assert!(notes.iter().any(|n| n.contains("of a 2048-pixel label (the median) is 20 pixels")), "{notes:?}");
        // DAFormer's 3,000 pixels on 2,048-pixel labels: no image qualifies for any class. The
        // error says what to set: 0.149 % of 2,048 pixels is 3.
        cfg.data.rcs.min_fraction = None;
        let e = rare_class_sampler(&cfg, &set(), 19).err().unwrap().to_string();
        assert!(e.contains("set data.rcs.min_fraction = 0.0015") && e.contains("3 pixels of these 2048-pixel labels"), "{e}");
        // A threshold that leaves a few images: the warning names the setting and the value.
        let warned = (500..2048).step_by(50).find_map(|px| {
            cfg.data.rcs.min_pixels = px;
            rare_class_sampler(&cfg, &set(), 19).ok().and_then(|(_, _, w)| w).map(|w| (px, w))
        });
        let (px, w) = warned.expect("some threshold collapses the pool");
        assert!(w.contains(&format!("data.rcs.min_pixels = {px} is too high")) && w.contains("set data.rcs.min_fraction = 0.0015"), "{w}");
    }
}
