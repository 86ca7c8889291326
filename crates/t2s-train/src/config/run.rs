//! `[run]`: seeds, output folder, logging and checkpoints.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bookkeeping of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Seed of every random choice (data order, augmentation, sampling, initialisation).
    pub seed: u64,
    /// Parent folder of run folders (`runs`).
    pub output: PathBuf,
    /// Run folder name (default: config file stem and a timestamp).
    pub name: Option<String>,
    /// Write a checkpoint every this many iterations (4,000; 0: none but the last); the last one
    /// is always written, and one when the run is stopped.
    pub checkpoint_interval: usize,
    /// Periodic checkpoints kept (3), besides the best one.
    pub keep_last: usize,
    /// Log losses every this many iterations (50).
    pub log_interval: usize,
    /// Write a debug picture (source, pseudo-target, target, pseudo-label, mixed image, mixed
    /// label, prediction) to `debug/` every this many iterations (1,000, DAFormer's
    /// `debug_img_interval`); 0 disables. Self-training iterations only: a source-only run or
    /// warm-up has no pseudo-labels or mixed images to show.
    pub debug_interval: usize,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            seed: 0,
            output: PathBuf::from("runs"),
            name: None,
            checkpoint_interval: 4_000,
            keep_last: 3,
            log_interval: 50,
            debug_interval: 1_000,
        }
    }
}
