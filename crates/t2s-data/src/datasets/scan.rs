//! Finding a dataset's files: listing folders, pairing images with labels by name, and the
//! errors for missing or empty folders (each names the folder and the expected layout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::options::LabelUse;
use super::paired_files::SampleEntry;
use super::scan_report::ScanReport;
use crate::error::{DataError, Result};

/// An error for a folder that is not there or has nothing to read.
pub(crate) fn layout_error(path: &Path, problem: impl Into<String>, expected: &str) -> DataError {
    DataError::Layout { path: path.to_path_buf(), problem: problem.into(), expected: expected.to_string() }
}

/// Checks that `dir` is a folder.
pub(crate) fn require_dir(dir: &Path, expected: &str) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else if dir.exists() {
        Err(layout_error(dir, "not a folder", expected))
    } else {
        Err(layout_error(dir, "folder not found", expected))
    }
}

/// Files directly in `dir` whose extension is one of `exts` (compared case-insensitively),
/// sorted by name.
pub(crate) fn list_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?.path();
        let ext_ok = path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)));
        if ext_ok && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Sub-folders of `dir`, sorted by name.
pub(crate) fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The file stem as text (`None` for names that are not valid Unicode).
pub(crate) fn stem(path: &Path) -> Option<&str> {
    path.file_stem().and_then(|s| s.to_str())
}

/// A dataset with one image folder and one label folder, paired by file stem.
pub(crate) struct FlatLayout<'a> {
    /// Folder of images.
    pub images: PathBuf,
    /// Image extensions read.
    pub image_exts: &'a [&'a str],
    /// Folder of labels.
    pub labels: PathBuf,
    /// Stems of label files that are derived copies to leave alone (e.g. mmseg's
    /// `_labelTrainIds` conversions next to GTA5's originals); they are counted in a note.
    pub ignored_label_suffix: Option<&'a str>,
    /// The expected layout, for error messages.
    pub expected: &'a str,
}

/// Scans a flat layout: every image with its label (same stem, `.png`), unless labels are not
/// used. Returns the entries (label format index 0) and whether they have labels. Unpaired
/// files and duplicate stems are reported and left out; no images, or no pairs at all, is an
/// error.
pub(crate) fn scan_flat(layout: &FlatLayout<'_>, labels: LabelUse, report: &mut ScanReport) -> Result<(Vec<SampleEntry>, bool)> {
    require_dir(&layout.images, layout.expected)?;
    let images = list_files(&layout.images, layout.image_exts)?;
    if images.is_empty() {
        let exts = layout.image_exts.iter().map(|e| format!("*.{e}")).collect::<Vec<_>>().join(", ");
        return Err(layout_error(&layout.images, format!("no images ({exts})"), layout.expected));
    }
    let images = unique_by_stem(images, report);
    let use_labels = match labels {
        LabelUse::Ignore => false,
        LabelUse::Require => {
            require_dir(&layout.labels, layout.expected)?;
            true
        }
        LabelUse::Auto => {
            if !layout.labels.exists() {
                report.note(format!("no label folder {}: images only", layout.labels.display()));
            }
            layout.labels.exists()
        }
    };
    if !use_labels {
        let entries = images.into_iter().map(|(name, image)| SampleEntry { name, image, label: None }).collect();
        return Ok((entries, false));
    }
    require_dir(&layout.labels, layout.expected)?;
    let mut label_files = list_files(&layout.labels, &["png"])?;
    if let Some(suffix) = layout.ignored_label_suffix {
        let before = label_files.len();
        label_files.retain(|p| !stem(p).is_some_and(|s| s.ends_with(suffix)));
        let derived = before - label_files.len();
        if derived > 0 {
            report.note(format!("{derived} files *{suffix}.png in {} are derived copies and not read", layout.labels.display()));
        }
    }
    if label_files.is_empty() {
        return Err(layout_error(
            &layout.labels,
            "the label folder holds no label files (*.png); remove it or use labels = \"ignore\" to load images only",
            layout.expected,
        ));
    }
    let mut labels = unique_by_stem(label_files, report);
    let mut entries = Vec::with_capacity(images.len());
    for (name, image) in images {
        match labels.remove(&name) {
            Some(label) => entries.push(SampleEntry { name, image, label: Some((label, 0)) }),
            None => report.skip(&image, format!("no label {name}.png in {}", layout.labels.display())),
        }
    }
    for label in labels.into_values() {
        let reason = format!("no image with this name in {}", layout.images.display());
        report.skip(label, reason);
    }
    if entries.is_empty() {
        return Err(layout_error(&layout.images, "no image has a label with the same name", layout.expected));
    }
    Ok((entries, true))
}

/// Files keyed by stem; a second file with the same stem (e.g. `a.png` and `a.jpg`) is reported
/// and left out, as is a name that is not valid Unicode.
fn unique_by_stem(files: Vec<PathBuf>, report: &mut ScanReport) -> BTreeMap<String, PathBuf> {
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in files {
        let Some(name) = stem(&path).map(str::to_string) else {
            report.skip(&path, "file name is not valid Unicode");
            continue;
        };
        if let Some(first) = out.get(&name) {
            let reason = format!("same name as {}", first.display());
            report.skip(&path, reason);
        } else {
            out.insert(name, path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_filters_extensions_case_insensitively_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.png", "c.jpg", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let files = list_files(dir.path(), &["png"]).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["a.png", "b.PNG"]);
    }

    #[test]
    fn missing_and_non_folders_name_the_path_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = require_dir(&dir.path().join("images"), "root/images/*.png").unwrap_err().to_string();
        assert!(err.contains("images: folder not found; expected layout: root/images/*.png"), "{err}");
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = require_dir(&dir.path().join("file"), "L").unwrap_err().to_string();
        assert!(err.contains("not a folder"), "{err}");
    }
}
