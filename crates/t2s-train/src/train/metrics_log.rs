//! `metrics.jsonl`: one JSON object per logged iteration or evaluation, appended and flushed so
//! that a crash loses nothing already written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Result, TrainError};

/// An append-only JSON-lines file.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens (creating or appending to) `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::Io { path: path.into(), message: e.to_string() })?;
        Ok(Self { path: path.into(), file })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &serde_json::Value) -> Result<()> {
        let io = |e: std::io::Error| TrainError::Io { path: self.path.clone(), message: e.to_string() };
        writeln!(self.file, "{record}").map_err(io)?;
        self.file.flush().map_err(io)
    }
}

/// Reads every record of a metrics file (for resuming and for plots).
pub fn read_metrics(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Io { path: path.into(), message: e.to_string() })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| TrainError::Io { path: path.into(), message: format!("bad line: {e}") }))
        .collect()
}
