//! `t2s models`: the presets with their trainable parameter counts, and a reader that stops early.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::t2s_program;

/// The counts the PyTorch reference builds for the same networks (docs/gpu.md: `torch_step.py`'s
/// MiT-B5 and B0 with the DAFormer and projection heads).
#[test]
fn models_lists_the_presets_with_their_parameter_counts() {
    let out = t2s_program().arg("models").output().expect("t2s runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |preset: &str| -> u64 {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(preset)).unwrap_or_else(|| panic!("{preset}: {text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(count("daformer-mitb5"), 85_287_379);
    assert_eq!(count("daformer-mitb0"), 7_032_691);
}

/// Commands that run on the CPU refuse a --device, which would do nothing.
#[test]
fn a_device_for_a_cpu_command_is_refused() {
    let out = t2s_program().args(["--device", "cuda:7", "models"]).output().expect("t2s runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--device cuda:7: `t2s models` runs on the CPU; leave out --device"), "{err}");
    assert!(out.stdout.is_empty());
    let out = t2s_program().args(["--device", "cpu", "models"]).output().expect("t2s runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `t2s models | head -1`: the closed pipe ends the program quietly, as it ends other Unix tools
/// (Rust ignores SIGPIPE, and `println!` panicked with a backtrace).
#[cfg(unix)]
#[test]
fn a_reader_that_stops_early_ends_it_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = t2s_program().arg("models").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("t2s runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("preset"), "{first}");
    // The reader is dropped: every later line meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    // Ended by SIGPIPE (13 on Linux and macOS), or done before the pipe closed.
    assert!(out.status.success() || out.status.signal() == Some(13), "{:?}: {err}", out.status);
}
