//! The run folder: resolved configuration, command line and git revision, metrics log,
//! checkpoints, evaluation reports.

use std::path::{Path, PathBuf};

use crate::eval_report::write_atomic;
use crate::{Result, RunConfig, TrainError};

/// Creates `<run.output>/<name>` (name: `run.name`, else `<config stem>-<unix seconds>`) and
/// writes `config.toml` (the resolved configuration) and `command.txt` (command line and git
/// revision). Refuses an existing non-empty folder so that nothing is overwritten: resume it
/// with `--resume` instead.
pub fn create_run_dir(cfg: &RunConfig, config_path: &Path, command_line: &str) -> Result<PathBuf> {
    let name = cfg.run.name.clone().unwrap_or_else(|| {
        let stem = config_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        format!("{stem}-{secs}")
    });
    let dir = cfg.run.output.join(name);
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(TrainError::Usage(format!(
            "{}: the run folder exists and is not empty; continue it with `--resume {}` or choose another run.name",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| TrainError::Io { path: dir.clone(), message: e.to_string() })?;
    write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    write_atomic(&dir.join("command.txt"), format!("{command_line}\ngit revision: {}\n", git_revision()).as_bytes())?;
    Ok(dir)
}

/// The current git revision (with `-dirty` when the tree has changes), or `unknown`.
pub fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) => match run(&["status", "--porcelain"]) {
            Some(s) if !s.is_empty() => format!("{rev}-dirty"),
            _ => rev,
        },
        None => "unknown".into(),
    }
}
