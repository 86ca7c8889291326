//! `--profile-host`: a sampling profile of this process's CPU time, written as a flamegraph SVG
//! and as a per-thread table of the hottest functions.
//!
//! Why in the binary: a MiT-B5 training iteration on CUDA is bound by host work that must be
//! attributed to a layer (autodiff, fusion, CubeCL's device threads, the driver), and the lent GPU
//! machine has neither perf nor gdb (docs/gpu.md). pprof samples with `SIGPROF` and unwinds
//! in-process, so it needs no tool and no permission. Function names need a binary with symbols:
//! the release profile strips them, so build with `CARGO_PROFILE_RELEASE_STRIP=false`
//! (and `CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` for inlined frames).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// Samples per second of CPU time.
const FREQUENCY_HZ: i32 = 199;
/// Rows per thread in the text table.
const TOP_ROWS: usize = 25;

/// A profile being taken by a background thread; [`HostProfile::finish`] writes it.
pub struct HostProfile {
    stop: mpsc::Sender<()>,
    worker: JoinHandle<Result<()>>,
}

/// Where the per-thread table goes: beside the flamegraph, `.txt` instead of `.svg`.
pub fn table_path(svg: &Path) -> PathBuf {
    svg.with_extension("txt")
}

/// Starts sampling `after` from now, for `length` (or until [`HostProfile::finish`]), and writes
/// the flamegraph to `svg` and the table to [`table_path`]`(svg)`.
pub fn start(svg: PathBuf, after: Duration, length: Option<Duration>) -> Result<HostProfile> {
    if svg.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
        anyhow::bail!(
            "--profile-host {}: give the flamegraph's file (e.g. host.svg); the table is written beside it as .txt",
            svg.display()
        );
    }
    if let Some(dir) = svg.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("--profile-host: creating {}", dir.display()))?;
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("t2s-host-profile".into())
        .spawn(move || -> Result<()> {
            // The window opens `after` from start-up, unless the command has ended by then.
            if !matches!(stopped.recv_timeout(after), Err(RecvTimeoutError::Timeout)) {
                eprintln!("--profile-host: the command ended before sampling began ({} s); nothing written", after.as_secs_f64());
                return Ok(());
            }
            // Samples that land in libc are dropped: unwinding from inside malloc can deadlock.
            let guard = pprof::ProfilerGuardBuilder::default()
                .frequency(FREQUENCY_HZ)
                .blocklist(&["libc", "libgcc", "pthread", "vdso"])
                .build()
                .map_err(|e| anyhow!("--profile-host: starting the sampler: {e}"))?;
            eprintln!("--profile-host: sampling at {FREQUENCY_HZ} Hz");
            match length {
                Some(length) => drop(stopped.recv_timeout(length)),
                None => drop(stopped.recv()),
            }
            let report = guard.report().build().map_err(|e| anyhow!("--profile-host: building the report: {e}"))?;
            drop(guard);
            write_report(&report, &svg)
        })
        .context("--profile-host: starting the sampling thread")?;
    Ok(HostProfile { stop, worker })
}

impl HostProfile {
    /// Ends sampling if it is still running and waits until the files are written.
    pub fn finish(self) -> Result<()> {
        // A send error means the sampler already stopped on its own (its window ended).
        let _ = self.stop.send(());
        self.worker.join().map_err(|_| anyhow!("--profile-host: the sampling thread panicked"))?
    }
}

fn write_report(report: &pprof::Report, svg: &Path) -> Result<()> {
    let file = std::fs::File::create(svg).with_context(|| format!("--profile-host: creating {}", svg.display()))?;
    report.flamegraph(file).map_err(|e| anyhow!("--profile-host: writing {}: {e}", svg.display()))?;
    let seconds = report.timing.duration.as_secs_f64();
    let rows = report.data.iter().map(|(frames, &count)| {
        // frames[0] is the innermost frame; within a frame, symbol 0 is the innermost inlined function.
        let names = frames.frames.iter().flatten().map(|s| s.name()).collect::<Vec<_>>();
        (format!("{} ({})", frames.thread_name_or_id(), frames.thread_id), names, count)
    });
    let table = hot_functions(rows, seconds);
    let txt = table_path(svg);
    std::fs::write(&txt, table).with_context(|| format!("--profile-host: writing {}", txt.display()))?;
    eprintln!("--profile-host: wrote {} and {}", svg.display(), txt.display());
    Ok(())
}

/// The table: threads by samples, and for each the functions with the most samples of their own
/// (self) and on the stack (inclusive, counted once per sample). `stacks` yields
/// `(thread, function names innermost first, samples)`.
fn hot_functions(stacks: impl Iterator<Item = (String, Vec<String>, isize)>, seconds: f64) -> String {
    #[derive(Default)]
    struct Thread {
        samples: isize,
        own: HashMap<String, isize>,
        inclusive: HashMap<String, isize>,
    }
    let mut threads: BTreeMap<String, Thread> = BTreeMap::new();
    for (thread, names, count) in stacks {
        let t = threads.entry(thread).or_default();
        t.samples += count;
        if let Some(leaf) = names.first() {
            *t.own.entry(leaf.clone()).or_default() += count;
        }
        let mut seen = HashSet::new();
        for name in names {
            if seen.insert(name.clone()) {
                *t.inclusive.entry(name).or_default() += count;
            }
        }
    }
    let total: isize = threads.values().map(|t| t.samples).sum();
    let mut out = String::new();
    let _ = writeln!(out, "{total} samples at {FREQUENCY_HZ} Hz over {seconds:.1} s (samples landing in libc are not counted)\n");
    let mut order: Vec<_> = threads.iter().collect();
    order.sort_by(|a, b| b.1.samples.cmp(&a.1.samples).then(a.0.cmp(b.0)));
    let _ = writeln!(out, "{:>8} {:>8}  thread", "samples", "CPU s");
    for (name, t) in &order {
        let _ = writeln!(out, "{:>8} {:>8.2}  {name}", t.samples, t.samples as f64 / f64::from(FREQUENCY_HZ));
    }
    for (name, t) in &order {
        for (title, counts) in [("self", &t.own), ("inclusive", &t.inclusive)] {
            let _ = writeln!(out, "\n== {name}: {title}");
            let mut rows: Vec<_> = counts.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (function, &n) in rows.into_iter().take(TOP_ROWS) {
                let share = 100.0 * n as f64 / t.samples.max(1) as f64;
                let _ = writeln!(out, "{n:>8} {share:>5.1}%  {function}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(thread: &str, names: &[&str], n: isize) -> (String, Vec<String>, isize) {
        (thread.to_string(), names.iter().map(|s| s.to_string()).collect(), n)
    }

    /// A `.txt` name would be both outputs: refused, before any sampling.
    #[test]
    fn the_table_cannot_overwrite_the_flamegraph() {
        let e = start(PathBuf::from("out/host.txt"), Duration::ZERO, None).err().unwrap().to_string();
        assert_eq!(e, "--profile-host out/host.txt: give the flamegraph's file (e.g. host.svg); the table is written beside it as .txt");
    }

    #[test]
    fn table_counts_self_and_inclusive_once_per_sample() {
        // main: 3 samples in leaf_a under run, 1 in a recursive f → f → run; worker: 2 samples.
        let stacks =
            vec![stack("main (1)", &["leaf_a", "run"], 3), stack("main (1)", &["f", "f", "run"], 1), stack("worker (2)", &["spin"], 2)];
        let t = hot_functions(stacks.into_iter(), 1.0);
        assert!(t.starts_with("6 samples at 199 Hz"), "{t}");
        // Threads by samples, main first.
        let main_row = t.find("       4     0.02  main (1)").expect("main row");
        let worker_row = t.find("       2     0.01  worker (2)").expect("worker row");
        assert!(main_row < worker_row, "{t}");
        let section = |title: &str| {
            let start = t.find(title).unwrap_or_else(|| panic!("{title} in {t}"));
            let rest = &t[start + title.len()..];
            rest[..rest.find("\n==").unwrap_or(rest.len())].to_string()
        };
        // Self: leaf_a 3 of 4 (75 %), f 1 (25 %); run is never the leaf.
        let own = section("== main (1): self");
        assert!(own.contains("       3  75.0%  leaf_a") && own.contains("       1  25.0%  f") && !own.contains("run"), "{own}");
        // Inclusive: run on all 4; f once although it appears twice in its stack.
        let inclusive = section("== main (1): inclusive");
        assert!(inclusive.contains("       4 100.0%  run") && inclusive.contains("       1  25.0%  f"), "{inclusive}");
    }

    /// Spends `seconds` in its own instructions: xorshift with plain operators and a `while`
    /// loop, which even a dev build compiles inline, so nearly every sample's innermost frame is
    /// this function. (With `wrapping_mul`, `black_box` and a `for` range, which a dev build
    /// calls, the samples landed in those callees, and in about 1 run in 5 the unwinder lost
    /// this function's frame above them in every sample.)
    #[inline(never)]
    fn busy_loop_for_profile_test(seconds: f64) -> u64 {
        let start = std::time::Instant::now();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        while start.elapsed().as_secs_f64() < seconds {
            let mut i = 0u32;
            while i < 100_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                i += 1;
            }
        }
        x
    }

    /// Sampling is statistical: on a loaded machine (CI once, beside the other tests and two
    /// training runs) one window's samples can all miss the function's frame, so the test takes
    /// up to three windows and needs one that names it, in both the flame graph and the table.
    #[test]
    fn profile_names_the_busy_function() {
        let dir = tempfile::tempdir().unwrap();
        let mut tables = Vec::new();
        for attempt in 0..3 {
            let svg = dir.path().join(format!("sub{attempt}")).join("host.svg");
            let profile = start(svg.clone(), Duration::ZERO, None).unwrap();
            // Let the sampler start before the work it must see.
            std::thread::sleep(Duration::from_millis(200));
            busy_loop_for_profile_test(1.5);
            profile.finish().unwrap();
            let flamegraph = std::fs::read_to_string(&svg).unwrap();
            assert!(flamegraph.contains("<svg"), "{flamegraph}");
            let table = std::fs::read_to_string(table_path(&svg)).unwrap();
            if flamegraph.contains("busy_loop_for_profile_test") && table.contains("busy_loop_for_profile_test") {
                return;
            }
            tables.push(table);
        }
        panic!("three profiles, none names busy_loop_for_profile_test:\n{}", tables.join("\n---\n"));
    }

    #[test]
    fn window_after_the_command_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("late.svg");
        start(svg.clone(), Duration::from_secs(3600), None).unwrap().finish().unwrap();
        assert!(!svg.exists());
    }
}
