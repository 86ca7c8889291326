//! End-to-end test of `--profile-host`: a command run under it writes the flamegraph and the
//! per-thread table, with the command's own functions in them; bad windows are refused.

mod common;

use common::t2s_program;

#[test]
fn profile_host_samples_the_command_it_wraps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("profile").join("host.svg");
    // Rendering synthetic scenes keeps the CPU busy for about a second in a debug build.
    let out = t2s_program()
        .arg("--profile-host")
        .arg(&svg)
        .args(["synth", "--out"])
        .arg(dir.path().join("synth"))
        .args(["--count", "40", "--width", "256", "--height", "128"])
        .output()
        .expect("t2s runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let flamegraph = std::fs::read_to_string(&svg).expect("flamegraph written");
    assert!(flamegraph.contains("<svg"));
    let table = std::fs::read_to_string(svg.with_extension("txt")).expect("table written");
    assert!(table.contains(" samples at 199 Hz"), "{table}");
    // The renderer is what the command spends its time on: it must be on the sampled stacks.
    assert!(table.contains("t2s_data::synth"), "{table}");
}

#[test]
fn profile_host_refuses_a_window_that_is_not_a_duration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("host.svg");
    let out = t2s_program().arg("--profile-host").arg(&svg).args(["--profile-host-start", "NaN", "models"]).output().expect("t2s runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--profile-host-start NaN: must be a number of seconds"), "{err}");
    assert!(!svg.exists());
    // The window flags mean nothing without --profile-host: clap says so.
    let out = t2s_program().args(["--profile-host-seconds", "3", "models"]).output().expect("t2s runs");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--profile-host <SVG>"));
}
