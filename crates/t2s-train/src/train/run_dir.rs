//! The run folder: resolved configuration, command line and git revision, metrics log,
//! checkpoints, evaluation reports.

use std::path::{Path, PathBuf};

use crate::eval_report::write_atomic;
use crate::{Result, RunConfig, TrainError};

/// Creates the run folder of [`run_dir_path`] and writes its files ([`write_run_files`]).
pub fn create_run_dir(cfg: &RunConfig, config_path: &Path, command_line: &str) -> Result<PathBuf> {
    let dir = run_dir_path(cfg, config_path)?;
    write_run_files(&dir, cfg, command_line)?;
    Ok(dir)
}

/// The run folder `<run.output>/<name>` (name: `run.name`, else `<config stem>-<unix seconds>`),
/// not created yet: `t2s train` creates it once every start-up check has passed
/// (`TrainOptions::record`), so that a failed start leaves nothing behind. Refuses an existing
/// non-empty folder so that nothing is overwritten: resume it with `--resume` instead.
pub fn run_dir_path(cfg: &RunConfig, config_path: &Path) -> Result<PathBuf> {
    let name = cfg.run.name.clone().unwrap_or_else(|| {
        let stem = config_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        format!("{stem}-{secs}")
    });
    // Checked where a run folder is made, not on every load: a resume reads what was made.
    let inside = Path::new(&name).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if name.is_empty() || !inside {
        return Err(TrainError::Usage(format!(
            "run.name = {name:?} must name a folder inside run.output: not empty, absolute, \".\" or with \"..\" (set run.output for another place)"
        )));
    }
    let dir = cfg.run.output.join(name);
    refuse_non_empty(&dir)?;
    Ok(dir)
}

fn refuse_non_empty(dir: &Path) -> Result<()> {
    let non_empty = dir.read_dir().is_ok_and(|mut d| d.next().is_some());
    // A run that stopped before its first checkpoint cannot be resumed: say what to do instead.
    if non_empty && !dir.join("checkpoints").join("latest").is_file() && super::lock::held_by_another(dir).is_none() {
        return Err(TrainError::Usage(format!(
            "{}: the run folder exists but holds no checkpoint (the run stopped before its first): delete the folder or choose another run.name",
            dir.display()
        )));
    }
    if non_empty {
        return Err(TrainError::Usage(format!(
            "{}: the run folder exists and is not empty; continue it with `--resume {}` or choose another run.name",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Creates `dir` (refused if it is not empty) and writes `config.toml` (the resolved
/// configuration) and `command.txt` (command line and git revision).
pub fn write_run_files(dir: &Path, cfg: &RunConfig, command_line: &str) -> Result<()> {
    refuse_non_empty(dir)?;
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| TrainError::Io { path: dir.to_path_buf(), message: e.to_string() })?;
    write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    write_atomic(&dir.join("command.txt"), format!("{command_line}\ngit revision: {}\n", git_revision()).as_bytes())?;
    Ok(())
}

/// Records a resume of `dir` at iteration `iter`: `config.toml` becomes the configuration the run
/// continues with (`--resume --set k=v` changes stay for later resumes), and the command line is
/// appended to `command.txt`, whose earlier lines are kept.
pub fn record_resume(dir: &Path, cfg: &RunConfig, command_line: &str, iter: usize) -> Result<()> {
    write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    let path = dir.join("command.txt");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("resumed at iteration {iter}: {command_line}\ngit revision: {}\n", git_revision()));
    write_atomic(&path, text.as_bytes())
}

/// The revision the program was built from, when the program says (`set_program_revision`).
static PROGRAM_REVISION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the git revision the program was built from (the `t2s` binary embeds it at build
/// time), for `command.txt`: a run started outside the checkout, or in another repository,
/// still names the code that trained it. Later calls are ignored.
pub fn set_program_revision(revision: &str) {
    let _ = PROGRAM_REVISION.set(revision.to_string());
}

/// The program's revision ([`set_program_revision`]) unless it is unknown; else the git
/// revision of the working directory (with `-dirty` when the tree has changes), or `unknown`.
pub fn git_revision() -> String {
    if let Some(rev) = PROGRAM_REVISION.get().filter(|r| r.as_str() != "unknown") {
        return rev.clone();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_name_is_a_folder_inside_run_output() {
        let out = tempfile::tempdir().unwrap();
        let cfg = |name: &str| {
            let sets = [format!("run.output={:?}", out.path().display().to_string()), format!("run.name={name:?}")];
            RunConfig::parse("[data.source]\nkind = \"synthetic\"\nsize = [1024, 512]\n", &sets).unwrap()
        };
        for name in ["", ".", "..", "../escape", "a/../../b", "/abs"] {
            let e = run_dir_path(&cfg(name), Path::new("c.toml")).unwrap_err().to_string();
            assert!(e.contains("must name a folder inside run.output"), "{name}: {e}");
        }
        // A folder left without a checkpoint is named as such; one with a checkpoint is resumable.
        std::fs::create_dir_all(out.path().join("failed")).unwrap();
        std::fs::write(out.path().join("failed/config.toml"), "").unwrap();
        let e = run_dir_path(&cfg("failed"), Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.contains("holds no checkpoint") && e.contains("delete the folder"), "{e}");
        std::fs::create_dir_all(out.path().join("failed/checkpoints")).unwrap();
        std::fs::write(out.path().join("failed/checkpoints/latest"), "iter_000002").unwrap();
        let e = run_dir_path(&cfg("failed"), Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.contains("continue it with `--resume"), "{e}");
        // Nested names stay inside (earlier runs used them).
        for name in ["a.b-c", "ablation/s0"] {
            assert_eq!(run_dir_path(&cfg(name), Path::new("c.toml")).unwrap(), out.path().join(name));
        }
    }
}
