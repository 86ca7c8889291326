//! How the training loop is driven and what it reports: the library prints nothing; the caller
//! (the command line, the demo, a user's own program) receives [`TrainEvent`]s and shows them
//! as it likes.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use t2s_model::DeviceMemory;

/// Something the training loop tells its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent<'a> {
    /// A fact about the run worth a line at its start: what a dataset scan skipped, where rare
    /// class sampling's statistics came from, what the pretrained weights filled, a resume.
    Note(String),
    /// Something that is probably not what the user wants, though the run goes on.
    Warning(String),
    /// An iteration finished: iterations done, the iteration the run stops at, the loss terms
    /// read back, and the device memory the allocator holds after it (GPU backends; `None` on
    /// the CPU).
    Iteration { done: usize, until: usize, losses: &'a [(String, f64)], memory: Option<DeviceMemory> },
    /// Every start-up check has passed (datasets scanned, networks loaded, replicas joined) and
    /// the run folder is about to be written: before this a stop request has nothing to save and
    /// may end the process at once; from here it should let the loop save a checkpoint.
    Opened,
}

/// How the loop is driven (from the command line).
pub struct TrainOptions<'a> {
    /// Run folder to create (from the config) or to resume.
    pub run_dir: PathBuf,
    /// Continue from the run folder's latest checkpoint.
    pub resume: bool,
    /// The command line to record in the run folder once every start-up check has passed: a new
    /// run's folder is created then (`run_dir::write_run_files`), a resumed run's `config.toml` is
    /// rewritten and the line appended to `command.txt` (`run_dir::record_resume`). `None`: the
    /// caller created the folder (`run_dir::create_run_dir`) and a resume records nothing.
    pub record: Option<String>,
    /// Stop (with a checkpoint) after this many iterations, before `schedule.max_iters`.
    pub until: Option<usize>,
    /// Set by Ctrl-C: save and stop at the end of the current iteration.
    pub stop: Arc<AtomicBool>,
    /// Receives the run's notes, warnings and progress.
    pub events: &'a dyn Fn(TrainEvent),
    /// This process's replica of a data-parallel run (`t2s train --device a,b`); `None` trains
    /// alone. Every replica runs `train` with the same configuration and run folder; rank 0
    /// writes it.
    pub replica: Option<crate::replicas::Replica>,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Iterations completed.
    pub iter: usize,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
    /// Best headline mIoU (and its iteration) on `selected_on`.
    pub best: Option<(f64, usize)>,
    /// The evaluation set that picked `best.safetensors` (`eval.select_on`); None without one.
    pub selected_on: Option<String>,
    /// Whether the run stopped before `schedule.max_iters` (Ctrl-C or `until`).
    pub interrupted: bool,
    /// Whether it stopped because another replica was asked to (a signal to another node), not
    /// this process.
    pub stopped_elsewhere: bool,
    /// The reports of the last evaluation, one per evaluation set.
    pub last_eval: Vec<crate::EvalReport>,
}
