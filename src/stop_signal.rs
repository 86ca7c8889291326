//! Stopping a training run cleanly on a signal: the first SIGINT (Ctrl-C) or SIGTERM (what SLURM,
//! Kubernetes and `docker stop` send before killing) lets the run finish its iteration, write a
//! checkpoint and exit with 128 + the signal's number (130, 143), as shells report a process
//! ended by that signal, so a script can tell "stopped" from "finished"; a second signal exits at
//! once with that status. During start-up (datasets scanned, networks loaded: minutes on a large
//! set) there is nothing to save, so `t2s train` exits at the first signal until the run opens.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// The stop request of a run: the flag the training loop polls, and the signal that set it.
#[derive(Clone)]
pub struct StopSignal {
    /// Set by the first signal; the loop saves and stops after the current iteration.
    pub flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    /// [`STARTING`], [`OPENED`] or [`EXITING`]: one value that the signal thread and the main
    /// thread change by compare-and-swap, so a signal at the moment the run opens either exits
    /// before anything is written or lets the run save, never both.
    phase: Arc<AtomicU8>,
}

/// Start-up: a signal exits at once.
const STARTING: u8 = 0;
/// The run is open: a signal lets it save a checkpoint.
const OPENED: u8 = 1;
/// A start-up signal is ending the process.
const EXITING: u8 = 2;

impl StopSignal {
    fn new(phase: u8) -> Self {
        Self { flag: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicI32::new(0)), phase: Arc::new(AtomicU8::new(phase)) }
    }

    /// From now on a signal lets the run save a checkpoint (`TrainEvent::Opened`, before the run
    /// folder is written). If a start-up signal got here first, this thread waits for its exit
    /// instead of writing the folder.
    pub fn mark_opened(&self) {
        if self.phase.compare_exchange(STARTING, OPENED, Ordering::SeqCst, Ordering::SeqCst) == Err(EXITING) {
            loop {
                std::thread::park();
            }
        }
    }

    /// What a signal does: exit at once (the second one, or any before the run is open), or ask
    /// the loop to save and stop.
    fn receive(&self, signal: i32) {
        if self.flag.swap(true, Ordering::SeqCst) {
            std::process::exit(128 + signal);
        }
        self.signal.store(signal, Ordering::SeqCst);
        if self.phase.compare_exchange(STARTING, EXITING, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            eprintln!("\n{}: stopping during start-up (nothing to save yet)", name(signal));
            std::process::exit(128 + signal);
        }
        eprintln!("\n{}: finishing this iteration, saving a checkpoint, then stopping (a second signal aborts)", name(signal));
    }

    /// The exit status a stopped run ends with: 128 + the signal's number, or `None` when no
    /// signal arrived.
    pub fn exit_status(&self) -> Option<i32> {
        let s = self.signal.load(Ordering::SeqCst);
        (s != 0).then_some(128 + s)
    }

    /// What the first signal was, for messages (`Ctrl-C`, `SIGTERM`).
    pub fn name(&self) -> &'static str {
        name(self.signal.load(Ordering::SeqCst))
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        2 => "Ctrl-C",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// Installs the handlers (once per process) and returns the run's stop request; every signal
/// but a second one lets the run save.
pub fn stop_on_signals() -> Result<StopSignal> {
    install(StopSignal::new(OPENED))
}

/// [`stop_on_signals`], except that a signal exits at once until [`StopSignal::mark_opened`].
pub fn stop_on_signals_until_opened() -> Result<StopSignal> {
    install(StopSignal::new(STARTING))
}

#[cfg(unix)]
fn install(stop: StopSignal) -> Result<StopSignal> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing the SIGINT/SIGTERM handlers")?;
    let seen = stop.clone();
    std::thread::Builder::new()
        .name("t2s-signals".into())
        .spawn(move || signals.forever().for_each(|signal| seen.receive(signal)))
        .context("starting the signal thread")?;
    Ok(stop)
}

/// Ctrl-C only (SIGTERM is Unix's).
#[cfg(not(unix))]
fn install(stop: StopSignal) -> Result<StopSignal> {
    let seen = stop.clone();
    ctrlc::set_handler(move || seen.receive(2)).context("installing the Ctrl-C handler")?;
    Ok(stop)
}
