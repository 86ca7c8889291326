//! `t2s demo`: the README's first command. Trains source-only, self-training (dacs) and T2S-DA
//! with the same small network and iteration budget on the built-in synthetic benchmark,
//! evaluates each on the synthetic target's validation split, and writes a report folder:
//! results.json, the per-class table (Markdown and JSON), loss and mIoU curves, per-class bars
//! and a picture grid of predictions.
//!
//! Every method trains `iters` iterations; the adaptation methods' first quarter is source-only
//! (`--adapt-from`), shared by all three: why, in docs/method-notes.md "The demo's own choices".

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use t2s_model::T2sBackend;

use anyhow::{bail, Context, Result};
use burn::backend::Autodiff;
use clap::Args;
use t2s_data::synth::Domain;
use t2s_train::config::SetReader;
use t2s_train::config::{sets_key, EvalWeights, Method};
use t2s_train::train::run_dir::create_run_dir;
use t2s_train::{RunConfig, TrainEvent, TrainOptions};

use crate::demo_report::{DemoReport, Trained};
use crate::device::BackendTask;
use crate::progress::Progress;
use crate::train_cmd::show_notice;

/// The demo's configuration (configs/synthetic_demo.toml), built into the binary.
const DEMO_CONFIG: &str = include_str!("../configs/synthetic_demo.toml");

/// Arguments of `t2s demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Report folder (default: runs/demo-<unix time>).
    #[arg(long)]
    pub output: Option<PathBuf>,

    /// A two-minute version (60 iterations per method, for CI and a first look).
    #[arg(long)]
    pub quick: bool,

    /// Also train on the target's own labels: the upper bound adaptation works toward.
    #[arg(long)]
    pub with_oracle: bool,

    /// Seeds, comma-separated, each once; every method trains once per seed and the report gives
    /// the mean.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,

    /// Iterations per method, at least 4 (default 800, --quick 60).
    #[arg(long)]
    pub iters: Option<usize>,

    /// Iteration at which dacs and t2s switch from their source-only warm-up to adaptation
    /// (`uda.adapt_from`; default: a quarter of the iterations).
    #[arg(long, value_name = "ITER")]
    pub adapt_from: Option<usize>,

    /// Methods to train, comma-separated, among source_only, dacs, t2s, dacs_mic and t2s_mic (the
    /// last two with MIC's masked image consistency, `uda.mic`).
    #[arg(long, value_delimiter = ',', default_value = "source_only,dacs,t2s")]
    pub methods: Vec<String>,

    /// Override a key of the demo configuration (repeatable), e.g. `--set t2s.fda_beta=0.05`. The
    /// keys the demo sets per run are its flags' and refused here: uda.method and uda.mic
    /// (--methods), uda.adapt_from (--adapt-from), schedule.max_iters (--iters), run.seed
    /// (--seeds), run.name (--methods) and run.output (--output). eval.interval,
    /// schedule.warmup_iters and run.debug_interval, which the demo fits to the iterations, keep
    /// a value set here.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// The methods `--methods` accepts, in the order they train.
const DEMO_METHODS: [&str; 5] = ["source_only", "dacs", "t2s", "dacs_mic", "t2s_mic"];

/// The command on the selected backend.
pub struct Demo {
    pub args: DemoArgs,
    pub command_line: String,
    pub device_name: String,
}

impl BackendTask for Demo {
    type Output = ();

    fn run<B: T2sBackend>(self, device: B::Device) -> Result<()> {
        let a = &self.args;
        let started = Instant::now();
        crate::arg_checks::output_folder(a.output.as_deref())?;
        refuse_per_run_keys(&a.overrides)?;
        // The built-in file's length and warm-up: a `--set` of a whole table (`schedule={…}`)
        // resets the keys it leaves out to the library's defaults (40,000 iterations).
        let file = RunConfig::parse(DEMO_CONFIG, &[]).context("the demo configuration")?;
        let mut base = RunConfig::parse(DEMO_CONFIG, &a.overrides).context("the demo configuration")?;
        let iters = a.iters.unwrap_or(if a.quick { 60 } else { file.schedule.max_iters });
        if iters < 4 {
            bail!("--iters {iters}: give at least 4 iterations");
        }
        // The configuration's warm-up (a quarter of its 800 iterations) when its length is kept.
        let configured = Some(file.uda.adapt_from).filter(|&w| w > 0 && iters == file.schedule.max_iters);
        let warm = a.adapt_from.or(configured).unwrap_or(iters / 4);
        if warm == 0 || warm >= iters {
            bail!("--adapt-from {warm}: give an iteration between 1 and {} (below --iters)", iters - 1);
        }
        for m in &a.methods {
            if !DEMO_METHODS.contains(&m.as_str()) {
                bail!("--methods: unknown method `{m}`; choose among {}", DEMO_METHODS.join(", "));
            }
        }
        if a.seeds.is_empty() {
            bail!("--seeds: give at least one seed");
        }
        // A repeated seed's runs would go to the folders its first runs wrote.
        if let Some(s) = a.seeds.iter().enumerate().find_map(|(i, s)| a.seeds[..i].contains(s).then_some(s)) {
            bail!("--seeds: seed {s} is given twice; give each seed once");
        }
        let user_sets = |key: &str| a.overrides.iter().any(|o| sets_key(o, key));
        base.schedule.max_iters = iters;
        base.uda.adapt_from = warm;
        // The demo's defaults follow the iteration count; a value the user sets is kept.
        if !user_sets("schedule.warmup_iters") {
            base.schedule.warmup_iters = base.schedule.warmup_iters.min(warm / 2);
        }
        if !user_sets("eval.interval") {
            // --quick evaluates three times after the warm-up, so its mIoU curves have a shape.
            base.eval.interval = if a.quick { ((iters - warm) / 3).max(1) } else { base.eval.interval.min(warm).max(1) };
        }
        if a.quick && !user_sets("run.debug_interval") {
            base.run.debug_interval = 0;
        }
        let output = a.output.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            PathBuf::from("runs").join(format!("demo-{secs}"))
        });

        // Every run's configuration, checked before any of them trains.
        let mut plan: Vec<(u64, &str, RunConfig)> = Vec::new();
        for &seed in &a.seeds {
            let methods = DEMO_METHODS.into_iter().filter(|m| a.methods.iter().any(|x| x == m));
            for method in methods.chain(a.with_oracle.then_some("oracle")) {
                let cfg = run_config(&base, &output, seed, method, warm)?;
                cfg.validate().map_err(|e| anyhow::anyhow!("the demo's {method} run: {e}"))?;
                plan.push((seed, method, cfg));
            }
        }

        if output.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            bail!("{}: the report folder exists and is not empty; choose another --output", output.display());
        }
        std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;
        let config_path = output.join("demo_config.toml");
        let shared = shared_config(&base, warm, plan.iter().map(|(_, m, _)| *m));
        std::fs::write(&config_path, shared).with_context(|| format!("writing {}", config_path.display()))?;

        let stop = crate::stop_signal::stop_on_signals()?;

        eprintln!(
            "demo: {} runs on {} ({} iterations per method; adaptation from iteration {warm}); report in {}",
            plan.len(),
            self.device_name,
            iters,
            output.display()
        );
        let mut trained: Vec<Trained> = Vec::new();
        for (k, (seed, method, cfg)) in plan.iter().enumerate() {
            let (seed, method) = (*seed, *method);
            let label = format!("[{}/{}] seed {seed} {method}", k + 1, plan.len());
            let run_dir = create_run_dir(cfg, &config_path, &self.command_line)?;
            let summary = train_with_bar::<B>(cfg, run_dir.clone(), iters, &label, stop.flag.clone(), &device)?;
            if stop.flag.load(Ordering::SeqCst) {
                bail!("stopped by {}; the runs so far are in {}", stop.name(), output.display());
            }
            let report = summary.last_eval.into_iter().next().context("the run did not evaluate on the synthetic target")?;
            eprintln!("{label}: mIoU {:.2}", 100.0 * report.headline().unwrap_or(0.0));
            // The network the table scores (`eval.weights`), for the pictures and similarities.
            let weights = summary.checkpoint.join(format!("{}.safetensors", report.weights));
            trained.push(Trained { method: method.to_string(), seed, run_dir, report, weights });
        }

        let elapsed = started.elapsed().as_secs_f64();
        let report = DemoReport { output: &output, cfg: &base, trained: &trained, iters, warm, elapsed, device_name: &self.device_name };
        report.write::<B>(&device)?;
        eprintln!("\n{}", std::fs::read_to_string(output.join("table.md")).unwrap_or_default());
        eprintln!("demo finished in {:.1} min; report: {}", elapsed / 60.0, output.display());
        Ok(())
    }
}

/// The settings the demo gives each run from its flags, with the flag: a `--set` of one would be
/// replaced, so it is refused.
const PER_RUN_KEYS: [(&str, &str); 7] = [
    ("uda.method", "--methods"),
    ("uda.mic", "--methods (dacs_mic and t2s_mic train with MIC)"),
    ("uda.adapt_from", "--adapt-from"),
    ("schedule.max_iters", "--iters"),
    ("run.seed", "--seeds"),
    ("run.name", "--methods (each run is named after its method)"),
    ("run.output", "--output (each run goes to <output>/seed_<seed>/<method>)"),
];

/// Refuses a `--set` of a key in [`PER_RUN_KEYS`], alone or inside a table it sets.
fn refuse_per_run_keys(overrides: &[String]) -> Result<()> {
    for spec in overrides {
        if let Some((key, flag)) = PER_RUN_KEYS.iter().find(|(key, _)| sets_key(spec, key)) {
            bail!("--set {spec}: {key} is set by {flag}");
        }
    }
    Ok(())
}

/// The configuration of one run of the demo: `base` with the method, seed, name and folder.
fn run_config(base: &RunConfig, output: &Path, seed: u64, method: &str, warm: usize) -> Result<RunConfig> {
    let mut cfg = base.clone();
    cfg.run.seed = seed;
    cfg.run.output = output.join(format!("seed_{seed}"));
    cfg.run.name = Some(method.to_string());
    cfg.uda.adapt_from = 0;
    match method {
        // No teacher to evaluate: a `--set eval.weights="teacher"` is for the others.
        "source_only" => (cfg.uda.method, cfg.uda.mic, cfg.eval.weights) = (Method::SourceOnly, false, EvalWeights::Student),
        "oracle" => {
            (cfg.uda.method, cfg.uda.mic, cfg.eval.weights) = (Method::SourceOnly, false, EvalWeights::Student);
            match &mut cfg.data.source.reader {
                SetReader::Synthetic(s) => s.domain = Some(Domain::Target),
                SetReader::Files(_) => bail!("--with-oracle trains on the synthetic target's labels: keep data.source synthetic"),
            }
        }
        m => {
            cfg.uda.method = if m.starts_with("dacs") { Method::Dacs } else { Method::T2s };
            cfg.uda.mic = m.ends_with("_mic");
            cfg.uda.adapt_from = warm;
        }
    }
    Ok(cfg)
}

/// demo_config.toml: the settings every run shares. The keys that differ between runs are left
/// out (each run's config.toml has them), so the file claims nothing a run did not use.
fn shared_config<'a>(base: &RunConfig, warm: usize, methods: impl Iterator<Item = &'a str>) -> String {
    let omitted = [("uda", "method"), ("uda", "mic"), ("uda", "adapt_from"), ("run", "seed"), ("run", "output"), ("run", "name")];
    let mut text = String::from(
        "# The configuration the demo's runs share. Each run's seed_<seed>/<method>/config.toml adds what\n\
         # differs between them: uda.method and uda.mic (the method), run.seed, run.name, run.output, and\n",
    );
    text.push_str(&format!("# uda.adapt_from ({warm} for the adaptation methods, 0 for source_only and oracle).\n"));
    let methods: Vec<&str> = methods.collect();
    let without_teacher = methods.iter().any(|m| matches!(*m, "source_only" | "oracle"));
    if base.eval.weights == EvalWeights::Teacher && without_teacher {
        text.push_str("# source_only and oracle have no teacher: they evaluate their student (eval.weights = \"student\").\n");
    }
    if methods.contains(&"oracle") {
        text.push_str("# oracle trains on the synthetic target's images and labels (data.source.domain = \"target\").\n");
    }
    text.push('\n');
    // `to_toml` writes one `key = value` line per setting under its `[section]` header.
    let mut section = String::new();
    for line in base.to_toml().lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if let Some((key, _)) = trimmed.split_once('=') {
            if omitted.contains(&(section.as_str(), key.trim())) {
                continue;
            }
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// One training run with its own progress bar (iterations, ETA, throughput, losses).
fn train_with_bar<B: T2sBackend>(
    cfg: &RunConfig,
    run_dir: PathBuf,
    until: usize,
    label: &str,
    stop: Arc<AtomicBool>,
    device: &B::Device,
) -> Result<t2s_train::TrainSummary> {
    let bar = Progress::new(label, until, "{prefix} [{bar:25}] {pos}/{len} {msg} ETA {eta}");
    bar.bar().set_prefix(label.to_string());
    let started = Instant::now();
    let events = |event: TrainEvent| {
        if let TrainEvent::Iteration { done, losses, .. } = event {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let total: f64 = losses.iter().map(|(_, v)| v).sum();
            bar.set_message(format!("{rate:.2} it/s loss {total:.3}"));
            bar.set_position(done as u64);
        }
        show_notice(&bar, &event);
    };
    let opts = TrainOptions { run_dir, resume: false, record: None, until: Some(until), stop, events: &events, replica: None };
    let summary = t2s_train::train::<Autodiff<B>>(cfg, &opts, device)?;
    bar.finish_and_clear();
    Ok(summary)
}
