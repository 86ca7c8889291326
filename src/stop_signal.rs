//! Stopping a training run cleanly on a signal: the first SIGINT (Ctrl-C) or SIGTERM (what SLURM,
//! Kubernetes and `docker stop` send before killing) lets the run finish its iteration, write a
//! checkpoint and exit with 128 + the signal's number (130, 143), as shells report a process
//! ended by that signal, so a script can tell "stopped" from "finished"; a second signal exits at
//! once with that status. Before the run is open (datasets scanned, networks loaded: minutes on
//! a large set) there is nothing to save, so `t2s train` exits at the first signal until then.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// The stop request of a run: the flag the training loop polls, and the signal that set it.
#[derive(Clone)]
pub struct StopSignal {
    /// Set by the first signal; the loop saves and stops after the current iteration.
    pub flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    /// Whether the run is open; a signal before that exits at once.
    opened: Arc<AtomicBool>,
}

impl StopSignal {
    fn new(opened: bool) -> Self {
        Self { flag: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicI32::new(0)), opened: Arc::new(AtomicBool::new(opened)) }
    }

    /// From now on a signal lets the run save a checkpoint (`TrainEvent::Opened`).
    pub fn mark_opened(&self) {
        self.opened.store(true, Ordering::SeqCst);
    }

    /// What a signal does: exit at once (the second one, or any before the run is open), or ask
    /// the loop to save and stop.
    fn receive(&self, signal: i32) {
        if self.flag.swap(true, Ordering::SeqCst) {
            std::process::exit(128 + signal);
        }
        self.signal.store(signal, Ordering::SeqCst);
        if !self.opened.load(Ordering::SeqCst) {
            eprintln!("\n{}: stopping before the first iteration (nothing to save yet)", name(signal));
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
    install(StopSignal::new(true))
}

/// [`stop_on_signals`], except that a signal exits at once until [`StopSignal::mark_opened`].
pub fn stop_on_signals_until_opened() -> Result<StopSignal> {
    install(StopSignal::new(false))
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
