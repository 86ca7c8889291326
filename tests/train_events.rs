//! The library reports through events, not standard error: a two-iteration `dacs` run of a tiny
//! network on the synthetic benchmark, called as a library, hands its caller the start-up notes
//! and one `Iteration` event per iteration carrying the step's loss terms.

mod common;

use std::cell::RefCell;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use burn::backend::{Autodiff, Flex};
use t2s_train::train::run_dir::create_run_dir;
use t2s_train::{train, RunConfig, TrainEvent, TrainOptions};

use common::{short_schedule, tiny_network, SYNTHETIC_DATA, SYNTHETIC_TARGET};

/// The tiny network trained `dacs` for 2 iterations on the synthetic benchmark.
fn config() -> String {
    format!("{}\n[uda]\nmethod = \"dacs\"\n{SYNTHETIC_DATA}{SYNTHETIC_TARGET}{}", tiny_network(), short_schedule(2, 0))
}

#[test]
fn a_run_reports_notes_and_iterations_as_events() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig::parse(&config(), &[format!("run.output=\"{}\"", dir.path().display())]).unwrap();
    let run_dir = create_run_dir(&cfg, std::path::Path::new("events.toml"), "test").unwrap();
    let seen: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let events = |event: TrainEvent| {
        let line = match event {
            TrainEvent::Note(n) => format!("note: {n}"),
            TrainEvent::Warning(w) => format!("warning: {w}"),
            TrainEvent::Opened => "opened".into(),
            TrainEvent::Iteration { done, until, losses, memory } => {
                // The CPU backend has no device allocator to report.
                assert_eq!(memory, None);
                let names: Vec<&str> = losses.iter().map(|(k, _)| k.as_str()).collect();
                assert!(losses.iter().all(|(_, v)| v.is_finite()), "{losses:?}");
                format!("iteration {done}/{until}: {}", names.join(" "))
            }
        };
        seen.borrow_mut().push(line);
    };
    let opts = TrainOptions {
        run_dir,
        resume: false,
        record: None,
        until: None,
        stop: Arc::new(AtomicBool::new(false)),
        events: &events,
        replica: None,
    };
    let summary = train::<Autodiff<Flex>>(&cfg, &opts, &Default::default()).unwrap();
    assert_eq!((summary.iter, summary.interrupted), (2, false));
    let seen = seen.into_inner();
    // No pretrained weights: the default feature distance is off, and the run says so first.
    assert!(seen[0].starts_with("note: uda.fdist_lambda = 0.005") && seen[0].contains("is off"), "{seen:?}");
    let iterations: Vec<&String> = seen.iter().filter(|l| l.starts_with("iteration")).collect();
    // Once, after the start-up notes and before the first iteration.
    let opened: Vec<usize> = seen.iter().enumerate().filter(|(_, l)| *l == "opened").map(|(i, _)| i).collect();
    assert_eq!(opened.len(), 1, "{seen:?}");
    assert!(seen[..opened[0]].iter().all(|l| l.starts_with("note")) && seen[opened[0] + 1].starts_with("iteration 1/"), "{seen:?}");
    assert_eq!(iterations, ["iteration 1/2: loss_source loss_mix", "iteration 2/2: loss_source loss_mix"], "{seen:?}");
}

/// A configuration changed in code after it was loaded is checked by `train` as a loaded one is:
/// here `dacs` without a target set, refused before any event or file.
#[test]
fn a_configuration_changed_in_code_is_checked_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::parse(&config(), &[format!("run.output=\"{}\"", dir.path().display())]).unwrap();
    cfg.data.target = None;
    let seen = RefCell::new(0);
    let events = |_: TrainEvent| *seen.borrow_mut() += 1;
    let run_dir = dir.path().join("never");
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        resume: false,
        record: Some("test".into()),
        until: None,
        stop: Arc::new(AtomicBool::new(false)),
        events: &events,
        replica: None,
    };
    let e = train::<Autodiff<Flex>>(&cfg, &opts, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("uda.method = \"dacs\" needs a target set"), "{e}");
    assert_eq!((seen.into_inner(), run_dir.exists()), (0, false));
}
