//! What opening a dataset left out, and why: unpaired and duplicate files.

use std::fmt;
use std::path::PathBuf;

/// A file the reader found but does not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file left out.
    pub path: PathBuf,
    /// Why, in words ("no label labels/00003.png").
    pub reason: String,
}

/// The findings of scanning a dataset's folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files left out, in folder order.
    pub skipped: Vec<Skipped>,
    /// Observations that leave nothing out (e.g. which label variant was read).
    pub notes: Vec<String>,
}

impl ScanReport {
    /// Records a skipped file.
    pub fn skip(&mut self, path: impl Into<PathBuf>, reason: impl Into<String>) {
        self.skipped.push(Skipped { path: path.into(), reason: reason.into() });
    }

    /// Records a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// True when nothing was skipped and nothing noted.
    pub fn is_empty(&self) -> bool {
        self.skipped.is_empty() && self.notes.is_empty()
    }
}

impl fmt::Display for ScanReport {
    /// One line per note and per skipped file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped {}: {}", s.path.display(), s.reason)?;
        }
        Ok(())
    }
}
