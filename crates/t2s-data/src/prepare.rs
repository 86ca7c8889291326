//! `t2s prepare`'s work: decode every sample of a dataset in parallel (validating it), count
//! each image's class pixels, and write the counts next to the data as JSON. Entries whose
//! files kept their size and modification time are taken from the previous file, so a second
//! run over unchanged data decodes nothing.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::class_stats::{class_stats_path, count_classes, read_class_stats, write_atomically, ClassStats, FileStamp, ImageStats};
use crate::datasets::DatasetReader;
use crate::error::{DataError, Result};

/// Options of `prepare_dataset`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Where to write the statistics; default `class_stats_path(root, split)`.
    pub output: Option<PathBuf>,
    /// Worker threads; default: rayon's (one per core).
    pub jobs: Option<usize>,
    /// Decode everything even where the previous file has a current entry.
    pub force: bool,
}

/// What `prepare_dataset` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareReport {
    /// Samples in the dataset.
    pub samples: usize,
    /// Samples decoded successfully in this run.
    pub decoded: usize,
    /// Samples whose counts were taken from the previous file.
    pub reused: usize,
    /// `(sample name, what was repaired)`, e.g. labels resized to their image.
    pub repaired: Vec<(String, String)>,
    /// `(sample name, error)` of samples that could not be read; they have no entry.
    pub failed: Vec<(String, String)>,
    /// Observations (a previous file that could not be used, a dataset without labels).
    pub notes: Vec<String>,
    /// The statistics file, when the dataset has labels.
    pub output: Option<PathBuf>,
    /// Whether the file was (re)written; false when its content would not change.
    pub written: bool,
    /// The statistics written (`None` for datasets without labels).
    pub stats: Option<ClassStats>,
}

/// The outcome for one sample.
enum Outcome {
    Reused(ImageStats),
    Decoded(Option<ImageStats>),
    Failed(String),
}

/// Validates `ds` and, if it has labels, writes its class statistics (see the module doc).
/// `progress` is called with the number of samples finished since its last call, from worker
/// threads. Samples that fail to decode are listed in the report (the file is still written
/// for the rest); errors are returned only for the output file and the options.
pub fn prepare_dataset(ds: &dyn DatasetReader, options: &PrepareOptions, progress: &(dyn Fn(usize) + Sync)) -> Result<PrepareReport> {
    let mut report = PrepareReport { samples: ds.len(), ..Default::default() };
    let output = options.output.clone().unwrap_or_else(|| class_stats_path(ds.root(), ds.split()));
    let previous = if !ds.has_labels() || options.force {
        None
    } else {
        match read_class_stats(&output) {
            Ok(Some(stats)) if stats.matches_reader(ds) => Some(stats),
            Ok(Some(_)) => {
                report.notes.push(format!("{} was computed with another reader, split or label mapping: recomputing", output.display()));
                None
            }
            Ok(None) => None,
            Err(e) => {
                report.notes.push(format!("{e}: recomputing"));
                None
            }
        }
    };
    // Without a statistics file every entry is decoded and the file written at the end: a
    // folder that cannot take it is named now. (An existing file may come out unchanged, which
    // needs no write: a read-only dataset is re-checked as before.)
    if ds.has_labels() && !output.exists() {
        crate::class_stats::check_writable(&output).map_err(|e| match e {
            DataError::Write { path, message } => {
                DataError::Write { path, message: format!("{message}; give another place with --output") }
            }
            other => other,
        })?;
    }
    let work = || -> Vec<(usize, Outcome)> {
        (0..ds.len())
            .into_par_iter()
            .map(|index| {
                let outcome = process(ds, index, previous.as_ref());
                progress(1);
                (index, outcome)
            })
            .collect()
    };
    let outcomes = match options.jobs {
        None => work(),
        Some(0) => return Err(DataError::Setting { setting: "jobs 0".into(), message: "give at least 1 worker thread".into() }),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| DataError::Setting { setting: format!("jobs {n}"), message: e.to_string() })?
            .install(work),
    };

    let mut stats = ClassStats::for_reader(ds);
    for (index, outcome) in outcomes {
        let name = ds.name(index);
        let entry = match outcome {
            Outcome::Reused(e) => {
                report.reused += 1;
                Some(e)
            }
            Outcome::Decoded(e) => {
                report.decoded += 1;
                e
            }
            Outcome::Failed(message) => {
                report.failed.push((name.clone(), message));
                None
            }
        };
        if let Some(entry) = entry {
            if let Some(repair) = &entry.repair {
                report.repaired.push((name.clone(), repair.clone()));
            }
            stats.insert(name, entry);
        }
    }

    if !ds.has_labels() {
        report.notes.push("the dataset has no labels: images validated, no class statistics written".into());
        return Ok(report);
    }
    let bytes = stats.to_json();
    let unchanged = std::fs::read(&output).is_ok_and(|old| old == bytes);
    if !unchanged {
        write_atomically(&output, &bytes)?;
    }
    report.written = !unchanged;
    report.output = Some(output);
    report.stats = Some(stats);
    Ok(report)
}

/// Reuses sample `index`'s previous entry if its files are unchanged, else decodes it.
fn process(ds: &dyn DatasetReader, index: usize, previous: Option<&ClassStats>) -> Outcome {
    let files = ds.files(index);
    let stamps = match files.label {
        None => None,
        Some(label) => match FileStamp::of(files.image, ds.root()).and_then(|i| Ok((i, FileStamp::of(label, ds.root())?))) {
            Ok(s) => Some(s),
            Err(e) => return Outcome::Failed(e.to_string()),
        },
    };
    if let (Some(prev), Some((image, label))) = (previous, &stamps) {
        if let Some(entry) = prev.entry_if_stamped(&ds.name(index), image, label) {
            return Outcome::Reused(entry.clone());
        }
    }
    let checked = match ds.get_checked(index) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match (checked.sample.label, stamps) {
        (Some(label), Some((image, label_stamp))) => {
            let (counts, ignored) = count_classes(label.as_raw(), ds.label_space().len());
            Outcome::Decoded(Some(ImageStats { counts, ignored, image, label: label_stamp, repair: checked.repair }))
        }
        _ => Outcome::Decoded(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_image, write_palette};
    use crate::datasets::{open_dataset, DatasetKind, DatasetOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Two 4×2 pairs, one 2×1 label on a 4×2 image (resized), one corrupt label.
    fn fixture(root: &std::path::Path) {
        write_image(&root.join("images/00001.png"), 4, 2);
        write_palette(&root.join("labels/00001.png"), 4, 2, &[7, 7, 7, 26, 26, 0, 33, 34]);
        write_image(&root.join("images/00002.png"), 4, 2);
        write_palette(&root.join("labels/00002.png"), 2, 1, &[8, 26]);
        write_image(&root.join("images/00003.png"), 4, 2);
        std::fs::write(root.join("labels/00003.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    }

    #[test]
    fn counts_are_hand_checked_and_reruns_reuse_them() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let (ds, _) = open_dataset(DatasetKind::Gta5, dir.path(), &DatasetOptions::default()).unwrap();
        let done = AtomicUsize::new(0);
        let tick = |n: usize| {
            done.fetch_add(n, Ordering::Relaxed);
        };
        let opts = PrepareOptions { jobs: Some(2), ..Default::default() };
        let r = prepare_dataset(ds.as_ref(), &opts, &tick).unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 3);
        assert_eq!((r.samples, r.decoded, r.reused, r.written), (3, 2, 0, true));
        assert_eq!(r.failed.len(), 1);
        assert!(r.failed[0].0 == "00003" && r.failed[0].1.contains("labels/00003.png"), "{:?}", r.failed);
        assert_eq!(r.repaired.len(), 1);
        assert_eq!(r.repaired[0].0, "00002");
        let stats = r.stats.unwrap();
        // 00001: road ×3 (labelId 7), car ×2 (26), bicycle ×1 (33), ignored ×2 (0, 34).
        let a = &stats.images["00001"];
        let mut want = vec![0u64; 19];
        want[0] = 3;
        want[13] = 2;
        want[18] = 1;
        assert_eq!((&a.counts, a.ignored), (&want, 2));
        // 00002: 2×1 [sidewalk, car] resized to 4×2: 4 sidewalk, 4 car.
        let b = &stats.images["00002"];
        assert_eq!((b.counts[1], b.counts[13], b.ignored), (4, 4, 0));
        assert_eq!(stats.totals[0], 3);
        assert_eq!(stats.totals[13], 6);
        assert_eq!(stats.ignored, 2);
        assert!(!stats.images.contains_key("00003"));
        let path = dir.path().join("t2s_class_stats.json");
        let first = std::fs::read(&path).unwrap();

        let r2 = prepare_dataset(ds.as_ref(), &PrepareOptions::default(), &|_| {}).unwrap();
        assert_eq!((r2.decoded, r2.reused, r2.failed.len(), r2.written), (0, 2, 1, false));
        assert_eq!(r2.repaired.len(), 1, "repairs are remembered with the entry");
        assert_eq!(std::fs::read(&path).unwrap(), first);

        let loaded = crate::class_stats::load_class_stats(dir.path(), None).unwrap().unwrap();
        assert_eq!(loaded, r2.stats.unwrap());
        assert!(loaded.current_entry(ds.as_ref(), 0).is_some());

        // A changed label is decoded again.
        write_palette(&dir.path().join("labels/00001.png"), 4, 2, &[7; 8]);
        let r3 = prepare_dataset(ds.as_ref(), &PrepareOptions::default(), &|_| {}).unwrap();
        assert_eq!((r3.decoded, r3.reused), (1, 1));
        assert_eq!(r3.stats.unwrap().images["00001"].counts[0], 8);
        let r4 = prepare_dataset(ds.as_ref(), &PrepareOptions { force: true, ..Default::default() }, &|_| {}).unwrap();
        assert_eq!((r4.decoded, r4.reused), (2, 0));
    }

    #[test]
    fn unlabelled_sets_are_validated_only() {
        let dir = tempfile::tempdir().unwrap();
        write_image(&dir.path().join("images/a.png"), 2, 1);
        std::fs::write(dir.path().join("images/b.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        let (ds, _) = open_dataset(DatasetKind::Folder, dir.path(), &DatasetOptions::default()).unwrap();
        let r = prepare_dataset(ds.as_ref(), &PrepareOptions::default(), &|_| {}).unwrap();
        assert_eq!((r.decoded, r.failed.len(), r.written, r.output), (1, 1, false, None));
        assert!(r.failed[0].1.contains("images/b.png"));
        assert!(r.notes[0].contains("no labels"));
        assert!(!dir.path().join("t2s_class_stats.json").exists());
        let err = prepare_dataset(ds.as_ref(), &PrepareOptions { jobs: Some(0), ..Default::default() }, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("jobs 0"));
    }
}
