//! The `t2s` program: parses the command line, picks the device, and calls into the library
//! crates.

mod arg_checks;
mod cli;
mod demo_cmd;
mod demo_report;
mod device;
mod eval_cmd;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu_cache;
#[cfg(unix)]
mod host_profile;
mod import_cmd;
mod plots;
mod predict_cmd;
mod prepare_cmd;
mod progress;
mod similarity_cmd;
mod stop_signal;
mod synth_cmd;
mod train_cmd;

use anyhow::{bail, Result};
use clap::Parser;

use cli::{Cli, Command};
use device::{dispatch, BackendTask};
use import_cmd::{list_models, ImportWeights};
use predict_cmd::Predict;

fn main() {
    #[cfg(all(target_os = "linux", feature = "wgpu"))]
    device::ensure_runtime_dir();
    let cli = Cli::parse();
    #[cfg(unix)]
    if matches!(cli.command, Command::Models) {
        // Rust ignores SIGPIPE, so `t2s models | head` panicked on the closed pipe; a listing
        // should end quietly as other Unix tools do. Not the commands that write files after
        // printing (eval, similarity): the pipe's end must not cut their reports short.
        // SAFETY: `signal` with SIG_DFL is async-signal-safe and runs before any other thread.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    t2s_train::train::run_dir::set_program_revision(env!("T2S_REVISION"));
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Err(err) = gpu_cache::configure() {
        eprintln!("error: {}", error_chain(&err));
        std::process::exit(1);
    }
    if let Err(err) = with_host_profile(cli) {
        eprintln!("error: {}", error_chain(&err));
        std::process::exit(1);
    }
}

/// `err` and its causes, `: `-separated as anyhow's `{:#}` gives them, but without a cause that
/// its parent's message already ends with (an I/O error a library message quotes was printed twice).
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Runs the command, inside a `--profile-host` window when one is asked for; the profile is
/// written whether the command succeeds or fails.
fn with_host_profile(mut cli: Cli) -> Result<()> {
    let Some(svg) = cli.profile_host.take() else { return run(cli) };
    let seconds = |flag: &str, v: f64| -> Result<std::time::Duration> {
        std::time::Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("{flag} {v}: must be a number of seconds, 0 or more"))
    };
    let after = seconds("--profile-host-start", cli.profile_host_start)?;
    let length = cli.profile_host_seconds.map(|s| seconds("--profile-host-seconds", s)).transpose()?;
    #[cfg(unix)]
    {
        let profile = host_profile::start(svg, after, length)?;
        let outcome = run(cli);
        let written = profile.finish();
        outcome.and(written)
    }
    #[cfg(not(unix))]
    {
        let _ = (svg, after, length);
        bail!("--profile-host: sampling is only available on Linux and macOS builds")
    }
}

fn run(cli: Cli) -> Result<()> {
    // These run on the CPU whatever the device: a --device given to them would do nothing.
    let cpu_only = match &cli.command {
        Command::ImportWeights(_) => Some("import-weights"),
        Command::Models => Some("models"),
        Command::Synth(_) => Some("synth"),
        Command::Prepare(_) => Some("prepare"),
        _ => None,
    };
    if let (Some(name), false) = (cpu_only, matches!(cli.device.as_str(), "auto" | "cpu")) {
        bail!("--device {}: `t2s {name}` runs on the CPU; leave out --device (or give cpu)", cli.device);
    }
    // The device of a one-device command, said before it runs.
    let on_one = |device: &str| -> Result<device::Selected> {
        let selected = device::select(device)?;
        eprintln!("device: {selected}");
        Ok(selected)
    };
    // `args_os`: a path argument need not be UTF-8 (`args` would panic on it); command.txt
    // records such a name lossily.
    let command_line = || std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
    match cli.command {
        Command::Predict(args) => dispatch(&on_one(&cli.device)?, Predict(args)),
        // Conversion is pure data movement: always on the CPU.
        Command::ImportWeights(args) => ImportWeights(args).run::<burn::backend::Flex>(Default::default()),
        Command::Models => list_models(),
        Command::Synth(args) => synth_cmd::run(args),
        Command::Prepare(args) => prepare_cmd::run(args),
        Command::Train(args) => {
            let selected = device::select_many(&cli.device)?;
            let names: Vec<String> = selected.iter().map(|s| s.to_string()).collect();
            eprintln!("device: {}", names.join(", "));
            device::dispatch_replicas(&selected, train_cmd::Train { args, command_line: command_line() })
        }
        Command::Demo(args) => {
            let selected = on_one(&cli.device)?;
            dispatch(&selected, demo_cmd::Demo { args, command_line: command_line(), device_name: selected.to_string() })
        }
        Command::Eval(args) => dispatch(&on_one(&cli.device)?, eval_cmd::Eval(args)),
        Command::Similarity(args) => dispatch(&on_one(&cli.device)?, similarity_cmd::Similarity(args)),
    }
}
