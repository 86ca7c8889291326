//! Per-image class pixel counts cached next to a dataset (`t2s prepare` writes them; rare class
//! sampling reads them): the JSON format, reading it, writing it atomically, and deciding
//! whether an entry still describes the files on disk (same size and modification time).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::datasets::{DatasetKind, DatasetReader};
use crate::error::{DataError, Result};

/// Version of the JSON layout; files of another version are recomputed by `t2s prepare`.
pub const CLASS_STATS_VERSION: u32 = 1;

/// File name of the cache in a dataset's root: `t2s_class_stats.json`, or
/// `t2s_class_stats_<split>.json` for datasets with splits.
pub fn class_stats_path(root: &Path, split: Option<&str>) -> PathBuf {
    match split {
        Some(split) => root.join(format!("t2s_class_stats_{split}.json")),
        None => root.join("t2s_class_stats.json"),
    }
}

/// Size and modification time of a file when its entry was computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStamp {
    /// Path relative to the dataset root, `/`-separated (absolute if outside the root).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 where the platform has none).
    pub mtime_ns: u64,
}

impl FileStamp {
    /// The stamp of `path` now, named relative to `root`; errors name the file.
    pub fn of(path: &Path, root: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
        let mtime_ns = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64);
        let rel = path.strip_prefix(root).unwrap_or(path);
        let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        Ok(Self { path: name, size: meta.len(), mtime_ns })
    }
}

/// The counts of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStats {
    /// Pixels per train id (index = train id), at the label's stored resolution (after fitting
    /// it to the image).
    pub counts: Vec<u64>,
    /// Pixels labelled 255 (ignore).
    pub ignored: u64,
    /// The image file.
    pub image: FileStamp,
    /// The label file.
    pub label: FileStamp,
    /// What the reader repaired (a label resized to its image), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
}

/// The cache file: per-image counts, their totals, and what they were computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassStats {
    /// Layout version (`CLASS_STATS_VERSION`).
    pub version: u32,
    /// The reader.
    pub dataset: DatasetKind,
    /// The split, for datasets with splits.
    pub split: Option<String>,
    /// `DatasetReader::mapping_fingerprint` as 16 hex digits (text: JSON numbers lose u64 bits
    /// in many readers).
    pub mapping: String,
    /// Class names in train-id order.
    pub classes: Vec<String>,
    /// Pixels per class over all images.
    pub totals: Vec<u64>,
    /// Ignored pixels over all images.
    pub ignored: u64,
    /// Per sample name (sorted, so identical inputs give identical files).
    pub images: BTreeMap<String, ImageStats>,
}

impl ClassStats {
    /// An empty set of statistics for `ds`.
    pub fn for_reader(ds: &dyn DatasetReader) -> Self {
        let classes = ds.label_space().names.clone();
        Self {
            version: CLASS_STATS_VERSION,
            dataset: ds.kind(),
            split: ds.split().map(str::to_string),
            mapping: format!("{:016x}", ds.mapping_fingerprint()),
            totals: vec![0; classes.len()],
            classes,
            ignored: 0,
            images: BTreeMap::new(),
        }
    }

    /// True when the file was computed by the same reader, split, mapping and class list as `ds`
    /// reads now.
    pub fn matches_reader(&self, ds: &dyn DatasetReader) -> bool {
        self.version == CLASS_STATS_VERSION
            && self.dataset == ds.kind()
            && self.split.as_deref() == ds.split()
            && self.mapping == format!("{:016x}", ds.mapping_fingerprint())
            && self.classes == ds.label_space().names
    }

    /// The entry of `name` if its recorded files are exactly `image` and `label` (path, size,
    /// modification time).
    pub fn entry_if_stamped(&self, name: &str, image: &FileStamp, label: &FileStamp) -> Option<&ImageStats> {
        self.images.get(name).filter(|e| &e.image == image && &e.label == label && e.counts.len() == self.classes.len())
    }

    /// The entry of sample `index` of `ds` if it still describes the files on disk; `None` if the
    /// file is for another reader or mapping, or the sample's files changed.
    pub fn current_entry(&self, ds: &dyn DatasetReader, index: usize) -> Option<&ImageStats> {
        if !self.matches_reader(ds) {
            return None;
        }
        let files = ds.files(index);
        let image = FileStamp::of(files.image, ds.root()).ok()?;
        let label = FileStamp::of(files.label?, ds.root()).ok()?;
        self.entry_if_stamped(&ds.name(index), &image, &label)
    }

    /// Adds an entry and its counts to the totals.
    pub fn insert(&mut self, name: String, entry: ImageStats) {
        // Saturating: a hand-edited cache must not wrap the totals.
        for (t, c) in self.totals.iter_mut().zip(&entry.counts) {
            *t = t.saturating_add(*c);
        }
        self.ignored = self.ignored.saturating_add(entry.ignored);
        self.images.insert(name, entry);
    }

    /// The file's bytes: compact JSON (tens of thousands of entries) and a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs, strings and integers cannot fail.
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Pixels per class of a train-id label map: `(counts, ignored)`; values ≥ `num_classes`
/// (255 and anything a reader let through) count as ignored.
pub fn count_classes(label: &[u8], num_classes: usize) -> (Vec<u64>, u64) {
    let mut hist = [0u64; 256];
    for &v in label {
        hist[v as usize] += 1;
    }
    let counts = hist[..num_classes.min(256)].to_vec();
    let ignored = hist[num_classes.min(256)..].iter().sum();
    (counts, ignored)
}

/// Reads a cache file: `Ok(None)` if there is none, an error naming the file if it cannot be
/// parsed.
pub fn read_class_stats(path: &Path) -> Result<Option<ClassStats>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataError::Io { path: path.to_path_buf(), source }),
    };
    let stats: ClassStats =
        serde_json::from_slice(&bytes).map_err(|e| DataError::ClassStats { path: path.to_path_buf(), message: e.to_string() })?;
    if stats.version != CLASS_STATS_VERSION {
        return Err(DataError::ClassStats {
            path: path.to_path_buf(),
            message: format!("layout version {} (this program reads {CLASS_STATS_VERSION})", stats.version),
        });
    }
    Ok(Some(stats))
}

/// The cache of a dataset root and split (see `class_stats_path`), if `t2s prepare` wrote one.
/// Check entries with `ClassStats::current_entry` before trusting them.
pub fn load_class_stats(root: &Path, split: Option<&str>) -> Result<Option<ClassStats>> {
    read_class_stats(&class_stats_path(root, split))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over `path`, so readers never see a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |message: String| DataError::Write { path: path.to_path_buf(), message };
    let (_, tmp) = hidden_beside(path, "tmp");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    Ok(())
}

/// The folder of `path` and a hidden file of this process beside it, `.<name>.<tag>-<pid>`.
fn hidden_beside<'a>(path: &'a Path, tag: &str) -> (&'a Path, PathBuf) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, dir.join(format!(".{file_name}.{tag}-{}", std::process::id())))
}

/// Fails as [`write_atomically`] would at `path`, without writing it: `path` a folder, or its
/// folder missing or read-only. Checked before the hours of decoding that precede the write.
pub fn check_writable(path: &Path) -> Result<()> {
    let err = |message: String| DataError::Write { path: path.to_path_buf(), message };
    if path.is_dir() {
        return Err(err("it is a folder; give a file name".into()));
    }
    let (dir, probe) = hidden_beside(path, "probe");
    std::fs::File::create(&probe).map_err(|e| err(format!("cannot create a file in {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_output_is_named_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let fine = dir.path().join("stats.json");
        check_writable(&fine).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe is removed");
        let e = check_writable(dir.path()).unwrap_err().to_string();
        assert_eq!(e, DataError::Write { path: dir.path().into(), message: "it is a folder; give a file name".into() }.to_string());
        let missing = dir.path().join("no/such/stats.json");
        let e = check_writable(&missing).unwrap_err().to_string();
        assert!(e.contains(&format!("cannot create a file in {}", dir.path().join("no/such").display())), "{e}");
    }

    #[test]
    fn counting_is_hand_checked() {
        let (counts, ignored) = count_classes(&[0, 0, 2, 255, 1, 2, 2, 7], 3);
        assert_eq!((counts, ignored), (vec![2, 1, 3], 2));
    }

    #[test]
    fn paths_stamps_and_atomic_writes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(class_stats_path(dir.path(), Some("val")).ends_with("t2s_class_stats_val.json"));
        assert!(class_stats_path(dir.path(), None).ends_with("t2s_class_stats.json"));
        std::fs::create_dir(dir.path().join("images")).unwrap();
        let f = dir.path().join("images/a.png");
        std::fs::write(&f, b"12345").unwrap();
        let stamp = FileStamp::of(&f, dir.path()).unwrap();
        assert_eq!((stamp.path.as_str(), stamp.size), ("images/a.png", 5));
        assert!(stamp.mtime_ns > 0);
        let out = dir.path().join("out.json");
        write_atomically(&out, b"{}").unwrap();
        write_atomically(&out, b"[1]").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"[1]");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
        let err = write_atomically(&dir.path().join("no/such/dir/x.json"), b"x").unwrap_err().to_string();
        assert!(err.contains("x.json: cannot write"), "{err}");
    }

    #[test]
    fn reading_missing_corrupt_and_old_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_class_stats(dir.path(), None).unwrap().is_none());
        let path = class_stats_path(dir.path(), None);
        std::fs::write(&path, b"{\"version\": 1, \"dataset\": ").unwrap();
        let err = load_class_stats(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("t2s_class_stats.json: class statistics") && err.contains("rerun `t2s prepare`"), "{err}");
        let old = r#"{"version":0,"dataset":"gta5","split":null,"mapping":"0","classes":[],"totals":[],"ignored":0,"images":{}}"#;
        std::fs::write(&path, old).unwrap();
        let err = load_class_stats(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("layout version 0"), "{err}");
    }
}
