//! `t2s train`: trains as a run configuration says, with a progress bar, Ctrl-C and SIGTERM that
//! save and stop (exit status 130 / 143), and `--resume` to continue a run folder exactly.

use std::path::PathBuf;
use std::time::Instant;
use t2s_model::T2sBackend;

use anyhow::{bail, Context, Result};
use burn::backend::Autodiff;
use clap::Args;
use t2s_train::config::sets_key;
use t2s_train::replicas::{self, Replica};
use t2s_train::train::run_dir::run_dir_path;
use t2s_train::{RunConfig, TrainEvent, TrainOptions};

use crate::device::ReplicaTask;
use crate::progress::Progress;
use crate::stop_signal::stop_on_signals_until_opened;

/// Prints a run's notes and warnings (above `bar`, so that it does not garble them).
pub fn show_notice(bar: &Progress, event: &TrainEvent) {
    match event {
        TrainEvent::Note(note) => bar.suspend(|| eprintln!("{note}")),
        TrainEvent::Warning(warning) => bar.suspend(|| eprintln!("warning: {warning}")),
        TrainEvent::Iteration { .. } | TrainEvent::Opened => {}
    }
}

/// Arguments of `t2s train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run configuration (TOML; see configs/). Not needed with --resume.
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,

    /// Override a configuration key (repeatable), e.g. `--set schedule.max_iters=2000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,

    /// Continue the run in this folder from its latest checkpoint, with its saved configuration
    /// (`--set` changes it, and the change is saved in the run's config.toml for later resumes).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,

    /// Stop after this many iterations (with a checkpoint); continue later with --resume.
    #[arg(long, value_name = "ITER")]
    pub until: Option<usize>,

    /// With several devices (`--device cuda:0,cuda:1`): how long a replica waits for the others
    /// at each exchange before it fails, saying that one has stopped (PyTorch's default, 30 min;
    /// it must cover an evaluation, which rank 0 runs while the others wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800.0)]
    pub replica_timeout: f64,

    /// Train across this many machines (processes), each with the devices of its --device list
    /// (the same number on each); start the same command on each with its --node-rank.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes: usize,

    /// This machine's 0-based rank among --nodes; node 0 runs the coordinator and writes the run
    /// folder (which the others must see, for --resume: a shared file system).
    #[arg(long, value_name = "R", default_value_t = 0, requires = "coordinator")]
    pub node_rank: usize,

    /// `host:port` where node 0 runs the coordinator the machines meet at (with --nodes).
    #[arg(long, value_name = "HOST:PORT")]
    pub coordinator: Option<String>,

    /// `host:port` at which the other machines reach this one (default: the address this machine
    /// reaches the coordinator from, port = the coordinator's + 1 + --node-rank).
    #[arg(long, value_name = "HOST:PORT", requires = "coordinator")]
    pub node_address: Option<String>,
}

/// A replica's error, with its rank unless the message names it already.
fn named(rank: usize, e: &t2s_train::TrainError) -> String {
    let text = e.to_string();
    if text.starts_with("replica ") {
        text
    } else {
        format!("replica {rank}: {text}")
    }
}

/// The exit status of a node that stopped because another node was asked to: SIGTERM's, the
/// usual request of a scheduler that ends a job.
const STOPPED_ELSEWHERE: i32 = 143;

/// The most machines `--nodes` takes (one port each above the coordinator's).
const MAX_NODES: usize = 65535;

/// This process's place among `--nodes` machines, or `None` for one machine; node 0 starts the
/// coordinator.
fn nodes(a: &TrainArgs) -> Result<Option<replicas::Nodes>> {
    if a.nodes == 0 {
        bail!("--nodes 0: give the number of machines, 1 or more");
    }
    // Burn counts nodes in a u32; more machines than ports could not each have one anyway.
    if a.nodes > MAX_NODES {
        bail!("--nodes {}: at most {MAX_NODES} machines", a.nodes);
    }
    if a.node_rank >= a.nodes {
        bail!("--node-rank {}: must be below --nodes {}", a.node_rank, a.nodes);
    }
    if a.nodes == 1 {
        if a.coordinator.is_some() {
            bail!("--coordinator is for several machines: give --nodes N as well");
        }
        return Ok(None);
    }
    let Some(coordinator) = a.coordinator.clone() else { bail!("--nodes {}: give --coordinator HOST:PORT (node 0's)", a.nodes) };
    let (host, port) = coordinator
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--coordinator {coordinator}: give host:port, e.g. node0.cluster:29500"))?;
    let address = match &a.node_address {
        Some(address) => address.clone(),
        None => {
            // The local address of a route to the coordinator (no packet is sent).
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").context("finding this machine's address")?;
            socket.connect((host.as_str(), port)).with_context(|| format!("--coordinator {coordinator}: cannot resolve {host}"))?;
            let ip = socket.local_addr().context("finding this machine's address")?.ip();
            if let Some(warning) = loopback_warning(&host, ip) {
                eprintln!("warning: {warning}");
            }
            let own = u16::try_from(usize::from(port) + 1 + a.node_rank)
                .ok()
                .with_context(|| format!("--coordinator {coordinator}: the port leaves no room for node ports; give --node-address"))?;
            format!("{ip}:{own}")
        }
    };
    // Burn's node server binds this port on a task of its own and reports nothing when it is
    // taken: the other machines would only see that it cannot be reached.
    if let Some(port) = address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()) {
        std::net::TcpListener::bind(("0.0.0.0", port)).with_context(|| {
            format!("this node's port {port} (of {address}, where the other machines reach it) is taken: give --node-address HOST:PORT with a free port")
        })?;
    }
    // burn-communication's servers install a subscriber printing every connection and transfer
    // (INFO) unless one is installed: this one keeps warnings and errors.
    let _ = tracing_subscriber::fmt().with_max_level(tracing_subscriber::filter::LevelFilter::WARN).with_writer(std::io::stderr).try_init();
    if a.node_rank == 0 {
        replicas::start_coordinator(port)?;
    }
    Ok(Some(replicas::Nodes { count: a.nodes, coordinator, address }))
}

/// A warning when this node would be reached at a loopback address although the coordinator is
/// named, not a loopback address itself: the hostname resolves to 127.0.0.1 or 127.0.1.1 (as in
/// Debian's /etc/hosts), and the other machines could not reach this one there.
fn loopback_warning(coordinator_host: &str, ip: std::net::IpAddr) -> Option<String> {
    let host_is_loopback = coordinator_host == "localhost"
        || coordinator_host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
    (ip.is_loopback() && !host_is_loopback).then(|| {
        format!(
            "this node would be reached at {ip}, a loopback address ({coordinator_host} resolves to this machine's loopback): other machines cannot reach it there; give --node-address HOST:PORT with an address they can"
        )
    })
}

/// The command, run on the selected backend (with autodiff).
pub struct Train {
    pub args: TrainArgs,
    pub command_line: String,
}

impl ReplicaTask for Train {
    type Output = ();

    fn run<B: T2sBackend>(self, devices: Vec<B::Device>) -> Result<()> {
        let a = self.args;
        let timeout = std::time::Duration::try_from_secs_f64(a.replica_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| anyhow::anyhow!("--replica-timeout {}: must be a number of seconds above 0", a.replica_timeout))?;
        let (cfg, run_dir) = match &a.resume {
            Some(dir) => {
                let path = dir.join("config.toml");
                if !path.is_file() {
                    bail!("--resume {}: no config.toml there; is this a t2s run folder?", dir.display());
                }
                // The folder is --resume's: a new name or place would be saved but never used.
                if let Some(spec) = a.overrides.iter().find(|s| sets_key(s, "run.name") || sets_key(s, "run.output")) {
                    bail!(
                        "--set {spec}: a resumed run stays in its folder ({}); to move it, move the folder and --resume it there",
                        dir.display()
                    );
                }
                // The saved file read, a --set of it that fails names the key, not the folder.
                (RunConfig::load(&path, &a.overrides).with_context(|| format!("resuming {}", dir.display()))?, dir.clone())
            }
            None => {
                let path = a.config.as_ref().expect("clap requires --config without --resume");
                let cfg = RunConfig::load(path, &a.overrides)?;
                // Every node names the folder itself: the default name has the time of each start.
                if a.nodes > 1 && cfg.run.name.is_none() {
                    bail!(
                        "--nodes {}: give the run a name every node shares, --set run.name=NAME (the default name holds each node's start time)",
                        a.nodes
                    );
                }
                // Created by the trainer once every start-up check has passed.
                let dir = run_dir_path(&cfg, path)?;
                (cfg, dir)
            }
        };
        if let Some(u) = a.until {
            if u == 0 {
                bail!("--until 0: give the number of iterations to stop after");
            }
        }
        let stop = stop_on_signals_until_opened()?;

        let len = a.until.unwrap_or(cfg.schedule.max_iters).min(cfg.schedule.max_iters);
        let bar = Progress::new("train", len, "{spinner} train [{bar:30}] {pos}/{len} {msg} ETA {eta}");
        let started = Instant::now();
        let first = std::cell::Cell::new(None::<usize>);
        let events = |event: TrainEvent| {
            if let TrainEvent::Iteration { done, losses, memory, .. } = event {
                let start = first.get().unwrap_or_else(|| {
                    first.set(Some(done - 1));
                    done - 1
                });
                let rate = (done - start) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let l: Vec<String> = losses.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                let mem = memory.map(|m| format!(" mem {:.1} GiB", m.reserved as f64 / (1u64 << 30) as f64)).unwrap_or_default();
                bar.set_message(format!("{rate:.2} it/s{mem} {}", l.join(" ")));
                bar.set_position(done as u64);
            }
            if event == TrainEvent::Opened {
                // First, so that a start-up signal that won the race exits before the print.
                stop.mark_opened();
                // Said once the start-up checks have passed (a start that fails them writes no folder).
                bar.suspend(|| eprintln!("run folder: {}", run_dir.display()));
            }
            show_notice(&bar, &event);
        };
        let local = devices.len();
        let nodes = nodes(&a)?;
        let (count, first) = (a.nodes * local, a.node_rank * local);
        if let Some(n) = &nodes {
            eprintln!("node {} of {}: reached at {}, coordinator {}", a.node_rank, n.count, n.address, n.coordinator);
        }
        replicas::set_nodes(nodes);
        if count > 1 {
            bar.suspend(|| {
                eprintln!(
                    "{count} data-parallel replicas: data.batch_size = {} per replica, {} images per iteration",
                    cfg.data.batch_size,
                    count * cfg.data.batch_size
                )
            });
        }
        // Global ranks: this machine's replicas are `first .. first + local`.
        let replica = |i: usize| (count > 1).then_some(Replica { rank: first + i, count, local, timeout });
        if count > 1 {
            replicas::start_group::<B>();
        }
        let outcome = std::thread::scope(|scope| {
            let others: Vec<_> = devices
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, device)| {
                    let (cfg, run_dir, stop) = (&cfg, run_dir.clone(), stop.flag.clone());
                    let (resume, until, replica) = (a.resume.is_some(), a.until, replica(i));
                    scope.spawn(move || {
                        let events = |_: TrainEvent| {};
                        let opts = TrainOptions { run_dir, resume, record: None, until, stop, events: &events, replica };
                        // A replica that fails or panics releases the others at once.
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t2s_train::train::<Autodiff<B>>(cfg, &opts, device)));
                        if !matches!(outcome, Ok(Ok(_))) {
                            replicas::abandon();
                        }
                        outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                })
                .collect();
            // This machine's first replica, on this thread, shows progress; rank 0 also records
            // the command and writes the run folder.
            let opts = TrainOptions {
                run_dir: run_dir.clone(),
                resume: a.resume.is_some(),
                record: (first == 0).then(|| self.command_line.clone()),
                until: a.until,
                stop: stop.flag.clone(),
                events: &events,
                replica: replica(0),
            };
            let mine = t2s_train::train::<Autodiff<B>>(&cfg, &opts, &devices[0]);
            if mine.is_err() {
                replicas::abandon();
            }
            let failed: Vec<String> = others
                .into_iter()
                .enumerate()
                .filter_map(|(i, h)| match h.join() {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(named(first + i + 1, &e)),
                    Err(_) => Some(format!("replica {}: panicked (see above)", first + i + 1)),
                })
                .collect();
            (mine, failed)
        });
        let summary = match outcome {
            (Ok(summary), failed) if failed.is_empty() => summary,
            (Ok(_), failed) => bail!("{}", failed.join("\n")),
            (Err(e), failed) if count == 1 && failed.is_empty() => return Err(e.into()),
            (Err(e), mut failed) => {
                // Replicas that only stopped waiting for the failed one add nothing to its error.
                failed.retain(|f| !f.contains("another replica of this process failed"));
                failed.insert(0, named(first, &e));
                bail!("{}", failed.join("\n"))
            }
        };
        bar.finish_and_clear();
        eprintln!(
            "{} after {} iterations; checkpoint {}",
            if summary.interrupted { "stopped" } else { "finished" },
            summary.iter,
            summary.checkpoint.display()
        );
        for report in &summary.last_eval {
            for p in &report.miou {
                eprintln!("last evaluation, {}: {}", report.dataset, p.describe());
            }
        }
        if let Some((m, it)) = summary.best {
            let on = summary.selected_on.as_deref().map(|s| format!(" on {s}")).unwrap_or_default();
            eprintln!("best mIoU {:.2}{on} at iteration {it} (best.safetensors; eval.select_on)", 100.0 * m);
        }
        if summary.interrupted {
            eprintln!("continue with: t2s train --resume {}", run_dir.display());
        }
        if let Some(status) = stop.exit_status() {
            // Everything is written; the status tells a scheduler or script that the run was stopped.
            std::process::exit(status);
        }
        if summary.stopped_elsewhere {
            // Not a success: a scheduler would count this node's part of the run as done.
            eprintln!("stopped because another node was asked to stop (Ctrl-C or SIGTERM there); exit status {STOPPED_ELSEWHERE}");
            std::process::exit(STOPPED_ELSEWHERE);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{loopback_warning, nodes, TrainArgs};
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        train: TrainArgs,
    }

    /// `--nodes` counts are checked before any network is touched.
    #[test]
    fn node_counts_are_checked() {
        let refused = |args: &[&str]| {
            let line = Line::try_parse_from(["t2s", "--config", "run.toml"].iter().chain(args)).unwrap();
            nodes(&line.train).unwrap_err().to_string()
        };
        assert_eq!(refused(&["--nodes", "0"]), "--nodes 0: give the number of machines, 1 or more");
        assert_eq!(refused(&["--nodes", "70000"]), "--nodes 70000: at most 65535 machines");
        assert_eq!(
            refused(&["--nodes", "2", "--node-rank", "2", "--coordinator", "node0:29500"]),
            "--node-rank 2: must be below --nodes 2"
        );
        assert_eq!(refused(&["--nodes", "2"]), "--nodes 2: give --coordinator HOST:PORT (node 0's)");
    }

    #[test]
    fn a_named_coordinator_resolving_to_loopback_is_warned_about() {
        let loopback: std::net::IpAddr = "127.0.1.1".parse().unwrap();
        let w = loopback_warning("node0", loopback).unwrap();
        assert!(w.starts_with("this node would be reached at 127.0.1.1, a loopback address (node0 resolves"), "{w}");
        // One machine on purpose (tests, a laptop), or a real address: nothing to say.
        assert_eq!(loopback_warning("127.0.0.1", "127.0.0.1".parse().unwrap()), None);
        assert_eq!(loopback_warning("localhost", "127.0.0.1".parse().unwrap()), None);
        assert_eq!(loopback_warning("[::1]", "::1".parse().unwrap()), None);
        assert_eq!(loopback_warning("node0", "10.0.0.5".parse().unwrap()), None);
    }
}
