//! Stopping a training run cleanly on a signal: the first SIGINT (Ctrl-C) or SIGTERM (what SLURM,
//! Kubernetes and `docker stop` send before killing) lets the run finish its iteration, write a
//! checkpoint and exit with 128 + the signal's number (130, 143), as shells report a process
//! ended by that signal, so a script can tell "stopped" from "finished"; a second signal exits at
//! once with that status.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// The stop request of a run: the flag the training loop polls, and the signal that set it.
#[derive(Clone)]
pub struct StopSignal {
    /// Set by the first signal; the loop saves and stops after the current iteration.
    pub flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl StopSignal {
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

/// Installs the handlers (once per process) and returns the run's stop request.
#[cfg(unix)]
pub fn stop_on_signals() -> Result<StopSignal> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = StopSignal { flag: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicI32::new(0)) };
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing the SIGINT/SIGTERM handlers")?;
    let seen = stop.clone();
    std::thread::Builder::new()
        .name("t2s-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if seen.flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(128 + signal);
                }
                seen.signal.store(signal, Ordering::SeqCst);
                eprintln!("\n{}: finishing this iteration, saving a checkpoint, then stopping (a second signal aborts)", name(signal));
            }
        })
        .context("starting the signal thread")?;
    Ok(stop)
}

/// Installs the Ctrl-C handler and returns the run's stop request (SIGTERM is Unix's).
#[cfg(not(unix))]
pub fn stop_on_signals() -> Result<StopSignal> {
    let stop = StopSignal { flag: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicI32::new(0)) };
    let seen = stop.clone();
    ctrlc::set_handler(move || {
        if seen.flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        seen.signal.store(2, Ordering::SeqCst);
        eprintln!("\nCtrl-C: finishing this iteration, saving a checkpoint, then stopping (press again to abort)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}
