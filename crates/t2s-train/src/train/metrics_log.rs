//! `metrics.jsonl`: one JSON object per logged iteration or evaluation, appended and flushed so
//! that a crash loses nothing already written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Result, TrainError};

/// The replica count of the last record of `path` that has one (`None`: no such record).
pub fn last_replicas(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["replicas"].as_u64())
        .map(|n| n as usize)
}

/// Cuts a resumed run's `metrics.jsonl` back to its checkpoint: the records of iterations after
/// `iter` (logged before a crash, and about to be logged again) are dropped, and so is a torn last
/// line (a write cut short). Returns a note saying what was dropped, if anything. A missing file
/// is left missing.
pub fn cut_back(path: &Path, iter: usize) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::Io { path: path.into(), message: e.to_string() }),
    };
    let (mut kept, mut later, mut torn) = (String::new(), 0usize, false);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v["iter"].as_u64().is_some_and(|i| i as usize > iter) => later += 1,
            Ok(_) => {
                kept.push_str(line);
                kept.push('\n');
            }
            Err(_) => torn = true,
        }
    }
    if later == 0 && !torn {
        return Ok(None);
    }
    crate::write_atomic(path, kept.as_bytes())?;
    let mut what = Vec::new();
    if later > 0 {
        what.push(format!("{later} record(s) after iteration {iter}, the checkpoint resumed"));
    }
    if torn {
        what.push("a torn line (a write cut short)".to_string());
    }
    Ok(Some(format!("{}: dropped {}", path.display(), what.join(" and "))))
}

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
