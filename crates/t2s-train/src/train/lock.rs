//! One training process per run folder: `train.lock` holds the trainer's process id and host
//! while it runs. A second `t2s train` (or `--resume`) into the same folder is refused with the
//! holder named; a lock left by a process that no longer runs (killed with `kill -9`, a node
//! that rebooted) is replaced, with a note.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::events::TrainEvent;
use crate::{Result, TrainError};

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = "train.lock";

/// Held while training; removes the lock file when dropped (normal end, error, Ctrl-C).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    pid: u32,
    host: String,
}

impl RunLock {
    /// Takes the lock of `run_dir`, replacing a stale one (with a note through `events`).
    pub fn acquire(run_dir: &Path, events: &dyn Fn(TrainEvent)) -> Result<Self> {
        let path = run_dir.join(LOCK_FILE);
        let me = Holder { pid: std::process::id(), host: host_name() };
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let text = format!("pid {}\nhost {}\n", me.pid, me.host);
                    file.write_all(text.as_bytes()).map_err(|e| TrainError::Io { path: path.clone(), message: e.to_string() })?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match parse(&text) {
                        Some(other) if other.host == me.host && !is_running(other.pid) => {
                            events(TrainEvent::Note(format!(
                                "{}: replacing the lock of process {} on {}, which no longer runs",
                                path.display(),
                                other.pid,
                                other.host
                            )));
                            std::fs::remove_file(&path).map_err(|e| TrainError::Io { path: path.clone(), message: e.to_string() })?;
                        }
                        Some(other) => return Err(TrainError::Usage(other.training(run_dir, &path))),
                        None => {
                            return Err(TrainError::Usage(format!(
                                "{}: unreadable lock file; if no other t2s process trains this run, delete it",
                                path.display()
                            )))
                        }
                    }
                }
                Err(e) => return Err(TrainError::Io { path, message: e.to_string() }),
            }
        }
        Err(TrainError::Usage(format!("{}: another process took the lock as it was being replaced", path.display())))
    }
}

impl Holder {
    /// The refusal that names this holder of `run_dir`'s lock file `path`.
    fn training(&self, run_dir: &Path, path: &Path) -> String {
        format!(
            "{}: process {} on {} is training this run (lock file {}); wait for it or stop it \
             (Ctrl-C or SIGTERM save a checkpoint); if no such process runs, delete the lock file",
            run_dir.display(),
            self.pid,
            self.host,
            path.display()
        )
    }
}

/// The refusal naming the live process that holds `run_dir`'s lock, if one does: a resume of a
/// run still starting has no checkpoint yet, and that is not what to tell its user.
pub fn held_by_another(run_dir: &Path) -> Option<String> {
    let path = run_dir.join(LOCK_FILE);
    let other = parse(&std::fs::read_to_string(&path).ok()?)?;
    let me = other.host == host_name() && other.pid == std::process::id();
    let live = other.host != host_name() || is_running(other.pid);
    (live && !me).then(|| other.training(run_dir, &path))
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `pid N` and `host H` lines.
fn parse(text: &str) -> Option<Holder> {
    let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string());
    Some(Holder { pid: field("pid ")?.parse().ok()?, host: field("host ")? })
}

/// This machine's name (`/etc/hostname` or `$HOSTNAME`), for locks on shared file systems.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` runs on this machine. Without `/proc` (not Linux) it cannot tell, and
/// says yes: the lock is then only removed by hand, never taken from a live trainer.
fn is_running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_live_holder_is_named_a_dead_one_replaced_and_the_lock_released() {
        let dir = tempfile::tempdir().unwrap();
        let notes = RefCell::new(Vec::new());
        let events = |e: TrainEvent| {
            if let TrainEvent::Note(n) = e {
                notes.borrow_mut().push(n)
            }
        };
        let lock = RunLock::acquire(dir.path(), &events).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(parse(&text), Some(Holder { pid: std::process::id(), host: host_name() }));
        // A second trainer (this process is alive) is refused, with the holder named.
        let e = RunLock::acquire(dir.path(), &events).unwrap_err().to_string();
        assert!(e.contains(&format!("process {} on {}", std::process::id(), host_name())) && e.contains("train.lock"), "{e}");
        assert_eq!(held_by_another(dir.path()), None, "this process is not another");
        drop(lock);
        assert_eq!(held_by_another(dir.path()), None);
        assert!(!dir.path().join(LOCK_FILE).exists(), "released on drop");
        // A lock whose process has exited (a finished child's id) is replaced, with a note.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), format!("pid {dead}\nhost {}\n", host_name())).unwrap();
        assert_eq!(held_by_another(dir.path()), None, "a dead holder holds nothing");
        let _lock = RunLock::acquire(dir.path(), &events).unwrap();
        assert!(notes.borrow().iter().any(|n| n.contains(&format!("process {dead}")) && n.contains("no longer runs")), "{notes:?}");
        // Another host's lock is never taken: its process cannot be checked from here.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(LOCK_FILE), format!("pid {dead}\nhost another-node\n")).unwrap();
        let e = RunLock::acquire(other.path(), &events).unwrap_err().to_string();
        assert!(e.contains(&format!("process {dead} on another-node")), "{e}");
        assert_eq!(held_by_another(other.path()).as_deref(), Some(e.as_str()));
    }
}
