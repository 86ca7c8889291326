//! `t2s train` end to end on the CPU with a tiny network on the synthetic benchmark: the run
//! folder, checkpoints, evaluation, and exact continuation with `--until` + `--resume`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{t2s, tiny_source_only_run as config, training_records, weight_file, SYNTHETIC_TARGET};

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| Some((v["iter"].as_u64()?, v.get("loss_source")?.as_f64()?)))
        .collect()
}

#[test]
fn train_writes_a_run_and_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), config()).unwrap();
    let run = |args: &[&str]| {
        let o = t2s(dir.path()).arg("train").args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let said = run(&["--config", "tiny.toml", "--set", "run.name=straight"]);
    // The run's last evaluation says over which classes its mean was taken.
    let last = said.lines().find(|l| l.starts_with("last evaluation, synthetic target val: mIoU19 ")).unwrap_or_else(|| panic!("{said}"));
    assert!(last.contains(" over ") && last.contains("classes"), "{last}");
    let straight = dir.path().join("runs/straight");
    // eval.save_images (4 by default) pictures of each evaluation, in the run folder: both of the
    // two evaluation images, prediction and ground truth.
    let pictures = straight.join("eval/iter_000004_synthetic_target_val");
    let mut names: Vec<String> =
        std::fs::read_dir(&pictures).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names.iter().filter(|n| n.ends_with("_pred.png")).count() == 2 && names.iter().filter(|n| n.ends_with("_gt.png")).count() == 2,
        "{names:?}"
    );
    for f in [
        "config.toml",
        "command.txt",
        "metrics.jsonl",
        "checkpoints/latest",
        "checkpoints/iter_000004/student.safetensors",
        "best.safetensors",
    ] {
        assert!(straight.join(f).is_file(), "{f} missing");
    }
    // The build's revision, also outside the checkout (the run ran in a temporary folder), as
    // `t2s --version` says it.
    let command = std::fs::read_to_string(straight.join("command.txt")).unwrap();
    let recorded = command.lines().find_map(|l| l.strip_prefix("git revision: ")).unwrap_or_else(|| panic!("{command}"));
    let version = String::from_utf8(t2s(dir.path()).arg("--version").output().unwrap().stdout).unwrap();
    assert_eq!(version.trim(), format!("t2s {} (git {recorded})", env!("CARGO_PKG_VERSION")));
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    if head.status.success() {
        assert!(recorded.starts_with(String::from_utf8_lossy(&head.stdout).trim()), "{recorded} is not this checkout's HEAD");
    }
    let a = losses(&straight);
    assert_eq!(a.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(a.iter().all(|(_, l)| l.is_finite() && *l > 0.0));

    // Half, then resume: the same four losses.
    let stderr = run(&["--config", "tiny.toml", "--set", "run.name=halves", "--until", "2"]);
    assert!(stderr.contains("--resume"), "{stderr}");
    let halves = dir.path().join("runs/halves");
    assert_eq!(std::fs::read_to_string(halves.join("checkpoints/latest")).unwrap().trim(), "iter_000002");
    // A run folder that another live process trains (here: this test's process id) is refused
    // with that process named, and nothing is written.
    let lock = halves.join("train.lock");
    assert!(!lock.exists(), "the lock is released when a run stops");
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into());
    std::fs::write(&lock, format!("pid {}\nhost {host}\n", std::process::id())).unwrap();
    let o = t2s(dir.path()).args(["train", "--resume", "runs/halves"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains(&format!("process {} on {host} is training this run", std::process::id())), "{e}");
    std::fs::remove_file(&lock).unwrap();
    // `--resume --set` is recorded: config.toml holds the change, command.txt both commands.
    let stderr = run(&["--resume", "runs/halves", "--set", "run.keep_last=5"]);
    let saved = t2s_train::RunConfig::load(&halves.join("config.toml"), &[]).unwrap();
    assert_eq!(saved.run.keep_last, 5);
    let command = std::fs::read_to_string(halves.join("command.txt")).unwrap();
    assert!(
        command.contains("--until 2") && command.contains("resumed at iteration 2: ") && command.contains("run.keep_last=5"),
        "{command}"
    );
    assert!(!lock.exists());
    // Standard error is a pipe here, as in a batch job's log: plain progress lines, the first
    // update and the last (`T2S_PROGRESS_INTERVAL`, 30 s by default, lies between), with losses.
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("train ")).collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("train 3/4 (75.0 %) "), "{stderr}");
    assert!(
        lines[1].starts_with("train 4/4 (100.0 %) ") && lines[1].contains(" it/s ETA 0s ") && lines[1].contains("loss_source "),
        "{stderr}"
    );
    let b = losses(&halves);
    assert_eq!(b.len(), 4, "{b:?}");
    for ((ia, la), (ib, lb)) in a.iter().zip(&b) {
        assert_eq!(ia, ib);
        assert!((la - lb).abs() <= 1e-6 * la.abs().max(1.0), "iteration {ia}: {la} straight vs {lb} resumed");
    }
    // The eval report of the last iteration exists, and the weights load in `t2s eval`.
    assert!(halves.join("eval").read_dir().unwrap().count() >= 2);

    // A finished run resumed has nothing to train: said, a success, and nothing recorded. An end
    // below the checkpoint, a new folder for it or a damaged `latest` is refused, naming why.
    let stderr = run(&["--resume", "runs/halves"]);
    assert!(stderr.contains("checkpoint is at iteration 4: nothing to train (schedule.max_iters)"), "{stderr}");
    assert!(stderr.contains("finished after 4 iterations"), "{stderr}");
    assert_eq!(std::fs::read_to_string(halves.join("command.txt")).unwrap(), command);
    let refused = |args: &[&str], says: &str| {
        let o = t2s(dir.path()).args(["train", "--resume", "runs/halves"]).args(args).output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(1) && e.contains(says), "{args:?}: {e}");
    };
    refused(&["--until", "3"], "--until 3: the run's latest checkpoint");
    refused(&["--set", "schedule.max_iters=3"], "schedule.max_iters = 3 is below iteration 4 of the run's latest checkpoint");
    refused(&["--set", "run.name=elsewhere"], "--set run.name=elsewhere: a resumed run stays in its folder");
    refused(&["--set", "run={ output = \"x\" }"], "a resumed run stays in its folder");
    refused(
        &["--set", "schedule.max_iters=6", "--set", "model.network.backbone.base_width=8"],
        "the run's latest checkpoint holds a ResNet with [1, 1, 1, 1] blocks + DeepLabV2 head, 19 classes with other settings than the configuration's: a resumed run keeps the network it started with",
    );
    std::fs::write(halves.join("checkpoints/latest"), "\n").unwrap();
    refused(
        &[],
        "names \"\", not a checkpoint folder beside it\nother checkpoints of this run: iter_000002, iter_000004; to resume from one",
    );
    assert_eq!(std::fs::read_to_string(halves.join("command.txt")).unwrap(), command);

    // A crash after iteration 4 was logged but before its checkpoint was complete (`latest` still
    // names iteration 2), mid-way through writing a line: the resumed run cuts the log back to
    // iteration 2 and drops the torn line, so every iteration is logged once.
    std::fs::write(straight.join("checkpoints/latest"), "iter_000002").unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(straight.join("metrics.jsonl")).unwrap();
    std::io::Write::write_all(&mut log, br#"{"iter": 5, "loss_sou"#).unwrap();
    let stderr = run(&["--resume", "runs/straight"]);
    assert!(stderr.contains("after iteration 2, the checkpoint resumed") && stderr.contains("a torn line"), "{stderr}");
    let c = losses(&straight);
    assert_eq!(c.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2, 3, 4], "{c:?}");
    for ((ia, la), (_, lc)) in a.iter().zip(&c) {
        assert!((la - lc).abs() <= 1e-6 * la.abs().max(1.0), "iteration {ia}: {la} straight vs {lc} after the crash");
    }
}

#[test]
fn bad_runs_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), config()).unwrap();
    // Resuming a folder that is not a run.
    let o = t2s(dir.path()).args(["train", "--resume", "nowhere"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--resume nowhere: no config.toml there"), "{e}");
    // A missing dataset root is named before any iteration.
    let with_source = |name: &str, source: &str| {
        let text = config();
        let (head, rest) = text.split_once("[data.source]").unwrap();
        let rest = &rest[rest.find("\n[").unwrap()..];
        std::fs::write(dir.path().join(name), format!("{head}{source}{rest}")).unwrap();
    };
    with_source("gta.toml", "[data.source]\nkind = \"gta5\"\nroot = \"/no/gta\"\n");
    let o = t2s(dir.path()).args(["train", "--config", "gta.toml"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("data.source: /no/gta/images: folder not found"), "{e}");
    // A failed start leaves no run folder behind: the corrected command simply works.
    assert!(!dir.path().join("runs").exists() || dir.path().join("runs").read_dir().unwrap().next().is_none(), "{e}");
    // A missing model.pretrained is named before the datasets are scanned (minutes on GTA5):
    // here before the missing source root.
    let o = t2s(dir.path()).args(["train", "--config", "gta.toml", "--set", "model.pretrained=/no/weights.pth"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("model.pretrained /no/weights.pth: no such file") && !e.contains("/no/gta"), "{e}");
    // A crop larger than a folder dataset's images in both sides (known once the first image is
    // read) is refused, naming the image, before the run folder exists.
    let folder = dir.path().join("mine");
    std::fs::create_dir_all(folder.join("images")).unwrap();
    std::fs::create_dir_all(folder.join("labels")).unwrap();
    image::RgbImage::from_pixel(48, 24, image::Rgb([90, 90, 90])).save(folder.join("images/a.png")).unwrap();
    image::GrayImage::from_pixel(48, 24, image::Luma([0])).save(folder.join("labels/a.png")).unwrap();
    with_source("folder.toml", &format!("[data.source]\nkind = \"folder\"\nroot = \"{}\"\n", folder.display()));
    let o =
        t2s(dir.path()).args(["train", "--config", "folder.toml", "--set", "run.name=f", "--set", "data.crop=[32, 64]"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("data.crop = [32, 64] is larger than data.source's 48×24 images") && e.contains("a is 48×24"),
        "{e}"
    );
    assert!(!dir.path().join("runs/f").exists(), "no run folder for a crop that does not fit");
    // Counts whose buffers could not fit in any machine's memory are named, not an aborted
    // allocation (a billion batches ahead asked for 176 GB of queue slots).
    let o = t2s(dir.path())
        .args(["train", "--config", "tiny.toml", "--set", "run.name=p", "--set", "data.prefetch=1000000000"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("data.prefetch = 1000000000 batches ahead") && e.contains("of host memory"), "{e}");
    assert!(!dir.path().join("runs/p").exists(), "no run folder for a queue that cannot fit");
    // 100,000 decoding threads ran out of memory maps for their stacks and aborted.
    let o =
        t2s(dir.path()).args(["train", "--config", "tiny.toml", "--set", "run.name=w", "--set", "data.workers=100000"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("data.workers = 100000 decoding threads is more than the 1024"), "{e}");
    // Self-training without a target set, and T2S without a projection head, are named.
    std::fs::write(dir.path().join("dacs.toml"), config().replace("source_only", "dacs")).unwrap();
    let o = t2s(dir.path()).args(["train", "--config", "dacs.toml", "--set", "run.name=d"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("uda.method = \"dacs\" needs a target set: add a [data.target] table"), "{e}");
    assert!(!dir.path().join("runs/d").exists(), "no run folder for a configuration that fails its checks");
    std::fs::write(dir.path().join("t2s.toml"), config().replace("source_only", "t2s") + SYNTHETIC_TARGET).unwrap();
    let o = t2s(dir.path()).args(["train", "--config", "t2s.toml", "--set", "run.name=t"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("uda.method = \"t2s\" needs a projection head: add [model.network.projection]"), "{e}");
    assert!(!dir.path().join("runs/t").exists());
}

/// `eval.select_on` picks the evaluation set whose mIoU chooses best.safetensors: the best of
/// that set's logged evaluations, said at the end; an unknown name stops before the run folder.
#[test]
fn the_selected_evaluation_set_picks_the_best_weights() {
    let dir = tempfile::tempdir().unwrap();
    let second = "\n[[data.eval]]\nkind = \"synthetic\"\ndomain = \"source\"\nlen = 2\nsize = [64, 32]\n";
    std::fs::write(dir.path().join("two.toml"), config() + second).unwrap();
    let train = |name: &str, select: &str| {
        t2s(dir.path())
            .args(["train", "--config", "two.toml", "--set", &format!("run.name={name}"), "--set", "eval.interval=1"])
            .args(["--set", &format!("eval.select_on=\"{select}\"")])
            .output()
            .unwrap()
    };
    let o = train("sel", "synthetic source val");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    // The selected set's evaluations, from the log: the first best one.
    let metrics = std::fs::read_to_string(dir.path().join("runs/sel/metrics.jsonl")).unwrap();
    let evals: Vec<(u64, f64)> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["eval"] == "synthetic source val")
        .map(|v| (v["iter"].as_u64().unwrap(), v["mIoU19"].as_f64().unwrap()))
        .collect();
    assert_eq!(evals.len(), 4);
    let best = evals.iter().fold(evals[0], |b, e| if e.1 > b.1 { *e } else { b });
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/sel/checkpoints/iter_000004/state.json")).unwrap()).unwrap();
    assert_eq!((state["best"][0].as_f64().unwrap(), state["best"][1].as_u64().unwrap()), (best.1, best.0));
    let line = format!("best mIoU {:.2} on synthetic source val at iteration {}", 100.0 * best.1, best.0);
    assert!(said.contains(&line), "{line}: {said}");
    // An unknown set is named with the ones there are, and nothing is left behind.
    let o = train("typo", "synthetic source");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("\"synthetic target val\", \"synthetic source val\""), "{e}");
    assert!(!dir.path().join("runs/typo").exists());
}

/// An evaluation set of other classes than the network's is refused at start-up, by name, not at
/// the first evaluation thousands of iterations in.
#[test]
fn an_evaluation_set_of_other_classes_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mine");
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    image::RgbImage::from_pixel(64, 32, image::Rgb([90, 90, 90])).save(root.join("images/a.png")).unwrap();
    image::GrayImage::from_pixel(64, 32, image::Luma([1])).save(root.join("labels/a.png")).unwrap();
    let mapping = "[[classes]]\nname = \"road\"\ncolor = [128, 64, 128]\nvalues = [0]\n\n[[classes]]\nname = \"car\"\ncolor = [0, 0, 142]\nvalues = [1]\n";
    std::fs::write(root.join("mapping.toml"), mapping).unwrap();
    let extra = format!("\n[[data.eval]]\nkind = \"folder\"\nroot = {:?}\nname = \"mine\"\n", root.display().to_string());
    std::fs::write(dir.path().join("two.toml"), config() + &extra).unwrap();
    let o = t2s(dir.path()).args(["train", "--config", "two.toml", "--set", "run.name=two"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("data.eval[1] (mine) has 2 classes but the network predicts 19"), "{e}");
    assert!(!dir.path().join("runs/two/metrics.jsonl").exists(), "it trained");
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), config()).unwrap();
    // A learning rate of 1e30 (1e24 after the warm-up ratio): AdamW moves every weight by about
    // the learning rate, batch norm's γ and β too, so the second iteration's logits overflow f32
    // and its loss is not finite. The first iteration's loss, before any step, is.
    let o = t2s(dir.path())
        .args(["train", "--config", "tiny.toml", "--set", "run.name=overflow"])
        .args(["--set", "optim.lr=1e30", "--set", "run.checkpoint_interval=1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("the loss became") && e.contains("at iteration 2") && e.contains("iter_000001"), "{e}");
    let run = dir.path().join("runs/overflow");
    // The checkpoint of iteration 1 is the latest, complete, and no partial one is left behind.
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), "iter_000001");
    for f in ["student.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(run.join("checkpoints/iter_000001").join(f).is_file(), "{f} missing");
    }
    let names: Vec<String> =
        std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n == "latest" || n == "iter_000001"), "{names:?}");
}

/// A damaged file met during training (here an evaluation image) stops the run with a checkpoint
/// of the iterations done, naming the file and how to continue; repaired, the run resumes.
#[test]
fn a_damaged_file_met_in_training_saves_the_iterations_done() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), config()).unwrap();
    let val = dir.path().join("val");
    std::fs::create_dir_all(val.join("images")).unwrap();
    std::fs::create_dir_all(val.join("labels")).unwrap();
    image::RgbImage::from_pixel(64, 32, image::Rgb([90, 90, 90])).save(val.join("images/a.png")).unwrap();
    image::GrayImage::from_pixel(64, 32, image::Luma([0])).save(val.join("labels/a.png")).unwrap();
    let good = std::fs::read(val.join("images/a.png")).unwrap();
    // The header (and so the scan) intact, the pixels cut short.
    std::fs::write(val.join("images/a.png"), &good[..good.len() - 12]).unwrap();
    let eval = format!("data.eval=[{{ kind = \"folder\", root = {:?} }}]", val.display().to_string());
    let args = ["--set", "run.name=d", "--set", "schedule.max_iters=4", "--set", "eval.interval=2", "--set", "run.checkpoint_interval=0"];
    let o = t2s(dir.path()).args(["train", "--config", "tiny.toml", "--set", &eval]).args(args).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("a.png") && e.contains("saved a checkpoint of iteration 2"), "{e}");
    assert!(e.contains("t2s train --resume"), "{e}");
    let run = dir.path().join("runs/d");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), "iter_000002");
    std::fs::write(val.join("images/a.png"), &good).unwrap();
    let o = t2s(dir.path()).args(["train", "--resume", "runs/d"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(losses(&run).into_iter().map(|(i, _)| i).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[test]
fn ctrl_c_and_sigterm_save_a_checkpoint_that_resume_continues() {
    // SIGINT is Ctrl-C; SIGTERM is what SLURM, Kubernetes and `docker stop` send. Both end the run
    // with a checkpoint and the status a shell gives a process ended by that signal.
    for (signal, status) in [("INT", 130), ("TERM", 143)] {
        stop_resume_and_continue(signal, status);
    }
}

/// Before the run is open there is nothing to save: a signal during start-up (here rare class
/// sampling counting a million labels) ends the process at once and leaves no run folder.
#[test]
fn a_signal_during_start_up_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), config()).unwrap();
    let child = t2s(dir.path())
        .args(["train", "--config", "tiny.toml", "--set", "run.name=early", "--set", "data.source.len=1000000"])
        // Its note is the first thing the run says, right after the handlers are installed.
        .args(["--set", "uda.adapt_from=1"])
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    let started = std::time::Instant::now();
    while !log().contains("uda.adapt_from = 1 has nothing to switch to") {
        assert!(started.elapsed().as_secs() < 120, "no start within 120 s: {}", log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait_with_output().unwrap().status;
    let e = log();
    assert_eq!(status.code(), Some(143), "{e}");
    assert!(e.contains("SIGTERM: stopping during start-up (nothing to save yet)") && !e.contains("run folder:"), "{e}");
    assert!(!dir.path().join("runs/early").exists(), "{e}");
}

fn stop_resume_and_continue(signal: &str, exit_status: i32) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), config()).unwrap();
    // A long schedule with no periodic checkpoint: only the signal writes one.
    let child = t2s(dir.path())
        .args(["train", "--config", "tiny.toml", "--set", "run.name=int", "--set", "schedule.max_iters=100000"])
        .args(["--set", "run.checkpoint_interval=0"])
        // A file, not a pipe: nothing reads a pipe while the run goes on, and a full one would block it.
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let run = dir.path().join("runs/int");
    let started = std::time::Instant::now();
    // Whole lines only: the log may be read mid-write.
    let logged = || std::fs::read_to_string(run.join("metrics.jsonl")).map(|t| t.matches('\n').count()).unwrap_or(0);
    while logged() < 2 {
        assert!(started.elapsed().as_secs() < 300, "no two logged iterations within 300 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let sent = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status = child.wait_with_output().unwrap().status;
    let e = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
    assert_eq!(status.code(), Some(exit_status), "SIG{signal}: {e}");
    // "stopped after N iterations; checkpoint …/iter_N" and how to continue.
    let n: usize = e.split("stopped after ").nth(1).and_then(|t| t.split(' ').next()).and_then(|t| t.parse().ok()).expect(&e);
    assert!(n >= 2 && e.contains("--resume"), "{e}");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), format!("iter_{n:06}"));
    // The resumed run starts at iteration n + 1, and finishing its `--until` is a success.
    let o = t2s(dir.path()).args(["train", "--resume", "runs/int", "--until", &(n + 2).to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let iters: Vec<u64> = losses(&run).into_iter().map(|(i, _)| i).collect();
    assert_eq!(iters[iters.len() - 2..], [n as u64 + 1, n as u64 + 2], "{iters:?}");
}

/// Every logged number of every iteration, by name.
#[test]
fn t2s_trains_every_term_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // A debug picture every 2 iterations.
    let config = t2s_config().replace("checkpoint_interval = 2", "checkpoint_interval = 2\ndebug_interval = 2");
    std::fs::write(dir.path().join("t2s.toml"), config).unwrap();
    let run = |args: &[&str]| {
        let o = t2s(dir.path()).arg("train").args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["--config", "t2s.toml", "--set", "run.name=straight"]);
    let straight = dir.path().join("runs/straight");
    let a = training_records(&straight);
    assert_eq!(a.len(), 4);
    for r in &a {
        for k in ["loss_source", "loss_mix", "loss_pseudo_target", "loss_t2s"] {
            let v = r[k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{k} = {v} in {r:?}");
        }
        assert!(r["t2s_queries"].as_f64().unwrap() > 0.0);
    }
    // Teacher weights and the T2S state (prototypes, statistics, π) are in the checkpoint.
    let ckpt = straight.join("checkpoints/iter_000004");
    for f in ["teacher.safetensors", "student.safetensors"] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }
    // Each network is stored once (no Burn record beside the weight file).
    let files: Vec<String> = std::fs::read_dir(&ckpt).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!files.iter().any(|f| f.ends_with(".mpk")), "{files:?}");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ckpt.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["t2s"]["prototypes"]["dim"], 8);
    assert!(state["t2s"]["prototypes"]["seen"].as_array().unwrap().iter().any(|s| s == true));
    let pi: f64 = state["t2s"]["distribution"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((pi - 1.0).abs() < 1e-9, "π sums to {pi}");
    // Debug strips: 8 columns (source, label, pseudo-target, target, pseudo-label, mixed, mixed
    // label, prediction) of 64 + 2 pixels, one row per sample (2 × (32 + 2)).
    let strip = image::open(straight.join("debug/iter_000004.png")).unwrap();
    assert_eq!((strip.width(), strip.height()), (8 * 66, 2 * 34));

    // Without a target set, t2s is domain generalisation: no pseudo-labels or mixing, pseudo-
    // targets styled after other source images, the contrastive term still on.
    let dg_config = std::fs::read_to_string(dir.path().join("t2s.toml")).unwrap().replace(SYNTHETIC_TARGET, "");
    std::fs::write(dir.path().join("dg.toml"), dg_config).unwrap();
    run(&["--config", "dg.toml", "--set", "run.name=dg", "--set", "schedule.max_iters=2"]);
    let dg = training_records(&dir.path().join("runs/dg"));
    assert_eq!(dg.len(), 2);
    for r in &dg {
        assert!(r.get("loss_mix").is_none() && r.get("pseudo_confidence").is_none(), "{r:?}");
        for k in ["loss_source", "loss_pseudo_target", "loss_t2s"] {
            assert!(r[k].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{k} in {r:?}");
        }
    }
    // Debug strip: source, label, pseudo-target.
    let strip = image::open(dir.path().join("runs/dg/debug/iter_000002.png")).unwrap();
    assert_eq!(strip.width(), 3 * 66);

    // Two iterations, then resume: every logged number is the same.
    run(&["--config", "t2s.toml", "--set", "run.name=halves", "--until", "2"]);
    run(&["--resume", "runs/halves"]);
    assert_same_records(&a, &training_records(&dir.path().join("runs/halves")), 1e-5, "resumed");

    // The student's sub-batches one after another, each with its own backward pass and the
    // gradients summed: the same step as the joint pass (this network has no dropout), so the
    // same numbers up to the order of float sums. Iteration 3 shows the second step's gradients
    // (the first step's rate is warm-up's 1e-6 of the base: a run that drops the mixed part's
    // gradient fails at iteration 3 with loss_mix 1.7895 against 1.7619); later, a rounding
    // difference can make the contrastive term's sampling take another pixel (at iteration 4:
    // loss_t2s 1.6856 against 1.6846).
    run(&["--config", "t2s.toml", "--set", "run.name=sequential", "--set", "uda.student_passes=sequential", "--until", "3"]);
    let sequential = dir.path().join("runs/sequential");
    let s = training_records(&sequential);
    assert_same_records(&a[..3], &s, 1e-5, "sequential");
    for (ra, rs) in a.iter().zip(&s) {
        assert_eq!((ra["student_backward_passes"].as_f64(), rs["student_backward_passes"].as_f64()), (Some(1.0), Some(3.0)));
    }
    // The debug picture's prediction on the mixed images comes from the mixed pass alone.
    let picture = |run: &Path| image::open(run.join("debug/iter_000002.png")).unwrap().to_rgb8().into_raw();
    assert!(picture(&straight) == picture(&sequential), "the debug pictures of iteration 2 differ");
}

/// A safetensors file's tensor table (names, types, shapes, offsets) and data, without its
/// `__metadata__` (whose key order is not fixed).
fn tensors(path: &Path) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header.remove("__metadata__");
    (header, bytes[8 + n..].to_vec())
}

/// The tiny run as `t2s` (with the projection head the term needs) on the synthetic target.
fn t2s_config() -> String {
    config()
        .replace("source_only", "t2s")
        .replace("[model.network.decode_head]", "[model.network.projection]\ndim = 8\n[model.network.decode_head]")
        + SYNTHETIC_TARGET
        + "\n[t2s]\nqueries = 32\nmin_queries_per_class = 2\nnegatives = 4\nlabel_min_fraction = 0.5\n"
}

/// Every logged number of `b` equals `a`'s to `tol` (relative, absolute below 1), but the timings.
fn assert_same_records(
    a: &[serde_json::Map<String, serde_json::Value>],
    b: &[serde_json::Map<String, serde_json::Value>],
    tol: f64,
    what: &str,
) {
    assert_eq!(a.len(), b.len(), "{what}: logged iterations");
    for (ra, rb) in a.iter().zip(b) {
        for (k, va) in ra {
            // Timings differ, and the number of backward passes is what the modes differ in.
            if k == "sec_per_iter" || k == "student_backward_passes" || k == "phase" {
                continue;
            }
            let (x, y) = (va.as_f64().unwrap(), rb[k].as_f64().unwrap());
            assert!((x - y).abs() <= tol * x.abs().max(1.0), "iteration {}: {k} {x} straight vs {y} {what}", ra["iter"]);
        }
    }
}

/// `uda.adapt_from`: source-only iterations, then the method, in one run folder; `--resume` is
/// exact on either side of the switch and at the switch itself.
#[test]
fn a_source_only_warm_up_then_adaptation_resumes_exactly_across_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let config = t2s_config()
        .replace("max_iters = 4", "max_iters = 5")
        .replace("checkpoint_interval = 2", "checkpoint_interval = 1\nkeep_last = 10");
    std::fs::write(dir.path().join("t2s.toml"), config).unwrap();
    let run = |args: &[&str]| {
        let o = t2s(dir.path()).arg("train").args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let said = run(&["--config", "t2s.toml", "--set", "run.name=straight", "--set", "uda.adapt_from=2"]);
    assert!(said.contains("iteration 2: source-only warm-up done (uda.adapt_from); t2s from here"), "{said}");
    let straight = dir.path().join("runs/straight");
    let a = training_records(&straight);
    assert_eq!(a.len(), 5);
    for (i, r) in a.iter().enumerate() {
        let warm = i < 2;
        assert_eq!(r["phase"], if warm { "source_only" } else { "t2s" }, "{r:?}");
        for k in ["loss_mix", "loss_pseudo_target", "loss_t2s"] {
            assert_eq!(r.contains_key(k), !warm, "{k} in {r:?}");
        }
    }
    // The warm-up is source-only training (the same numbers as a source-only run of the same
    // configuration), and the learning-rate schedule runs over the whole run.
    run(&["--config", "t2s.toml", "--set", "run.name=so", "--set", "uda.method=source_only"]);
    let so = training_records(&dir.path().join("runs/so"));
    assert_same_records(&so[..2], &a[..2], 0.0, "source-only");
    for (rs, ra) in so.iter().zip(&a) {
        assert_eq!(rs["lr"], ra["lr"], "iteration {}", ra["iter"]);
    }
    // No teacher during the warm-up; the first adaptation step's EMA copies the student (α = 0,
    // counted from the switch), so the teacher after iteration 3 is the student after 2.
    let ckpt = |run: &Path, i: usize| run.join(format!("checkpoints/iter_{i:06}"));
    assert!(!ckpt(&straight, 2).join("teacher.safetensors").exists());
    let (teacher, student) =
        (tensors(&ckpt(&straight, 3).join("teacher.safetensors")), tensors(&ckpt(&straight, 2).join("student.safetensors")));
    assert!(teacher.0.len() > 100 && teacher == student, "the teacher after iteration 3 is not the student after 2");
    // The EMA's warm-up counts from the switch: the second adaptation step blends with
    // α = 1 − 1/2 (0.75 counted from the start of the run).
    let floats = |(header, data): &(serde_json::Map<String, serde_json::Value>, Vec<u8>)| -> Vec<f32> {
        let mut v = Vec::new();
        for t in header.values().filter(|t| t["dtype"] == "F32") {
            let [from, to] = [0, 1].map(|i| t["data_offsets"][i].as_u64().unwrap() as usize);
            v.extend(data[from..to].chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())));
        }
        v
    };
    let s3 = floats(&tensors(&ckpt(&straight, 3).join("student.safetensors")));
    let t4 = floats(&tensors(&ckpt(&straight, 4).join("teacher.safetensors")));
    let s2 = floats(&student);
    let off = s2.iter().zip(&s3).zip(&t4).filter(|((a, b), t)| (0.5 * *a + 0.5 * *b - *t).abs() > 1e-6 * t.abs().max(1.0)).count();
    assert!(off == 0 && s2 != s3, "{off} of {} teacher values after iteration 4 are not the mean of the students after 2 and 3", t4.len());
    // Stopped before, at and after the switch, then resumed: every logged number is the same.
    for until in ["1", "2", "3"] {
        let name = format!("run.name=until{until}");
        run(&["--config", "t2s.toml", "--set", &name, "--set", "uda.adapt_from=2", "--until", until]);
        run(&["--resume", &format!("runs/until{until}")]);
        let b = training_records(&dir.path().join(format!("runs/until{until}")));
        assert_same_records(&a, &b, 1e-5, &format!("resumed at {until}"));
        assert_eq!(a.iter().map(|r| &r["phase"]).collect::<Vec<_>>(), b.iter().map(|r| &r["phase"]).collect::<Vec<_>>());
    }
}

/// `t2s.embedding_scale = 2`: the term samples from embeddings upsampled by 2, four times the
/// pixels, so the unreliable target pixels (a share of them) are about four times as many.
#[test]
fn a_finer_embedding_scale_gives_the_term_four_times_the_pixels() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t2s.toml"), t2s_config()).unwrap();
    let unreliable = |scale: &str| {
        let name = format!("run.name=scale{scale}");
        let o = t2s(dir.path())
            .args(["train", "--config", "t2s.toml", "--until", "1", "--set", &name, "--set", &format!("t2s.embedding_scale={scale}")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        training_records(&dir.path().join(format!("runs/scale{scale}")))[0]["t2s_unreliable"].as_f64().unwrap()
    };
    let (coarse, fine) = (unreliable("1"), unreliable("2"));
    // 2 images of 4×8 embedding pixels at 20 %: about 13; at scale 2, 256 pixels: about 51.
    assert!(coarse > 0.0 && (3.5..=4.5).contains(&(fine / coarse)), "{coarse} → {fine}");
}

/// `t2s.target_queries`: queries from the mixed images' real target pixels add their own
/// logged term; `t2s.head_warmup` runs alongside (the term then trains the projection head only).
#[test]
fn target_queries_add_a_logged_term() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t2s.toml"), t2s_config()).unwrap();
    let sets = ["t2s.target_queries=8", "t2s.target_query_confidence=0", "t2s.head_warmup=1", "run.name=tq"];
    let mut cmd = t2s(dir.path());
    cmd.args(["train", "--config", "t2s.toml", "--until", "2"]);
    sets.iter().for_each(|s| {
        cmd.args(["--set", s]);
    });
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for r in training_records(&dir.path().join("runs/tq")) {
        // Every unpasted pixel qualifies at confidence 0: all 8 queries are drawn. (The term's
        // value is 0 here: the untrained teacher predicts one class everywhere, and a single
        // class gives the term no cross-class signal; t2s_term's tests check its values.)
        assert_eq!(r["t2s_target_queries"].as_f64(), Some(8.0), "{r:?}");
        assert!(r["loss_t2s_target"].as_f64().is_some_and(|v| v.is_finite() && v >= 0.0), "{r:?}");
    }
}

/// `uda.mic`: MIC's masked target images, learnt against the teacher's pseudo-labels of the
/// unmasked ones, composed with t2s.
#[test]
fn mic_learns_the_teachers_labels_from_masked_targets_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = t2s_config().replace("checkpoint_interval = 2", "checkpoint_interval = 2\ndebug_interval = 2");
    std::fs::write(dir.path().join("t2s.toml"), config).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = t2s(dir.path());
        // Pseudo-label threshold 0: every pixel counts as confident (an untrained teacher's
        // pseudo-label weights would all be 0, and so would MIC's loss).
        cmd.args([
            "train",
            "--config",
            "t2s.toml",
            "--set",
            "uda.mic=true",
            "--set",
            "uda.mic_block_size=8",
            "--set",
            "uda.pseudo_threshold=0",
        ]);
        let o = cmd.args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    // Nothing masked, no augmentation and no ClassMix: the masked image is the target image and
    // the mixed image too, with the same pseudo-labels and weights, so MIC's loss is the mixed
    // loss (each sub-batch has its own batch-norm statistics).
    let plain = ["uda.mic_mask_ratio=0", "uda.mic_color_aug=false", "uda.classmix=false", "uda.color_jitter_prob=0", "uda.blur_prob=0"];
    let mut args = vec!["--set", "run.name=plain", "--until", "2"];
    plain.iter().for_each(|s| args.extend(["--set", s]));
    run(&args);
    for r in training_records(&dir.path().join("runs/plain")) {
        let (mic, mix) = (r["loss_mic"].as_f64().unwrap(), r["loss_mix"].as_f64().unwrap());
        assert!(mix > 0.0 && (mic - mix).abs() <= 1e-6 * mix, "loss_mic {mic} vs loss_mix {mix}");
        assert_eq!(r["mic_masked_fraction"].as_f64(), Some(0.0));
    }
    // MIC's defaults but the block: 4×8 blocks of 8 pixels on the 32×64 crops, ~70 % masked.
    run(&["--set", "run.name=mic"]);
    let a = training_records(&dir.path().join("runs/mic"));
    assert_eq!(a.len(), 4);
    for r in &a {
        assert!(r["loss_mic"].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{r:?}");
        let f = r["mic_masked_fraction"].as_f64().unwrap();
        // The mean of two images' shares of 32 blocks each: a multiple of 1/64.
        assert!((f * 64.0 - (f * 64.0).round()).abs() < 1e-4 && f > 0.25 && f < 1.0, "masked fraction {f}: not whole blocks");
    }
    // λ scales the term: iteration 1 is computed from the same weights and the same draws.
    run(&["--set", "run.name=double", "--set", "uda.mic_lambda=2", "--until", "1"]);
    let double = training_records(&dir.path().join("runs/double"));
    let (one, two) = (a[0]["loss_mic"].as_f64().unwrap(), double[0]["loss_mic"].as_f64().unwrap());
    assert!((two - 2.0 * one).abs() <= 1e-6 * two, "λ = 2: {two} vs 2 × {one}");
    // Debug strips gain a ninth column, the masked target.
    let strip = image::open(dir.path().join("runs/mic/debug/iter_000004.png")).unwrap();
    assert_eq!(strip.width(), 9 * 66);
    // Two iterations, then resume: every logged number is the same.
    run(&["--set", "run.name=halves", "--until", "2"]);
    let o = t2s(dir.path()).args(["train", "--resume", "runs/halves"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_records(&a, &training_records(&dir.path().join("runs/halves")), 1e-5, "resumed");
}

/// `t2s.reweight_targets`: each listed loss, and only those, takes the class weights. Iteration 1
/// has no statistics yet (every weight 1), so every run below enters iteration 2 with the same
/// network and the same weights, and its terms there can be compared across runs. As in the MIC
/// test above, nothing is masked or mixed, so MIC's term is the mixed term when both are weighted
/// alike.
#[test]
fn reweight_targets_choose_which_losses_the_class_weights_scale() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t2s.toml"), t2s_config()).unwrap();
    let second = |name: &str, sets: &[&str]| {
        let mut cmd = t2s(dir.path());
        cmd.args(["train", "--config", "t2s.toml", "--until", "2", "--set", &format!("run.name={name}")]);
        let plain = ["uda.mic=true", "uda.mic_block_size=8", "uda.pseudo_threshold=0", "uda.mic_mask_ratio=0", "uda.mic_color_aug=false"];
        let more = ["uda.classmix=false", "uda.color_jitter_prob=0", "uda.blur_prob=0"];
        plain.iter().chain(&more).chain(sets).for_each(|s| {
            cmd.args(["--set", s]);
        });
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{sets:?}: {}", String::from_utf8_lossy(&o.stderr));
        let records = training_records(&dir.path().join("runs").join(name));
        let value = |k: &str| records[1][k].as_f64().unwrap_or_else(|| panic!("{name}: no {k} in {:?}", records[1]));
        (value("loss_mix"), value("loss_mic"), value("loss_t2s"))
    };
    let (all_mix, all_mic, all_t2s) = second("all", &[r#"t2s.reweight_targets=["contrastive","cross_entropy","mic"]"#]);
    let (ce_mix, ce_mic, ce_t2s) = second("ce", &[r#"t2s.reweight_targets=["cross_entropy"]"#]);
    let (off_mix, off_mic, off_t2s) = second("off", &["t2s.reweight=false"]);
    let (mic_mix, mic_mic, _) = second("mic", &[r#"t2s.reweight_targets=["mic"]"#]);
    let same = |a: f64, b: f64, what: &str| assert!((a - b).abs() <= 1e-6 * a.abs().max(1e-3), "{what}: {a} vs {b}");
    // The weights matter at iteration 2, for the cross-entropy and for the contrastive term.
    assert!((all_mix - off_mix).abs() > 1e-4 * off_mix, "mixed term {all_mix} weighted vs {off_mix}");
    assert!((all_t2s - off_t2s).abs() > 1e-4 * off_t2s, "contrastive term {all_t2s} weighted vs {off_t2s}");
    same(off_mic, off_mix, "MIC's term is the mixed term unweighted");
    same(all_mic, all_mix, "\"mic\" weights MIC's term as the mixed term");
    same(ce_mix, all_mix, "\"cross_entropy\" weights the mixed term");
    same(ce_mic, off_mic, "without \"mic\", MIC's term is unweighted");
    same(ce_t2s, off_t2s, "without \"contrastive\", the contrastive term is unweighted");
    same(mic_mic, all_mic, "\"mic\" alone weights MIC's term");
    same(mic_mix, off_mix, "without \"cross_entropy\", the mixed term is unweighted");
}

/// `eval.weights = "teacher"`: the evaluations during training score the EMA teacher and say so,
/// `best.safetensors` keeps it, and `t2s eval` of the checkpoint's teacher counts the same pixels.
#[test]
fn evaluations_score_the_ema_teacher_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t2s.toml"), t2s_config()).unwrap();
    let o = t2s(dir.path())
        .args(["train", "--config", "t2s.toml", "--set", "run.name=teacher", "--set", "eval.weights=\"teacher\""])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = dir.path().join("runs/teacher");
    let json = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    // The one evaluation, at the end (iteration 4): the teacher's.
    let during = json(&run.join("eval/iter_000004_synthetic_target_val.json"));
    assert_eq!(during["weights"], "teacher");
    let ckpt = run.join("checkpoints/iter_000004");
    let teacher = weight_file(&ckpt.join("teacher.safetensors"));
    assert_eq!(weight_file(&run.join("best.safetensors")), teacher);
    assert_ne!(weight_file(&ckpt.join("student.safetensors")), teacher, "after 4 EMA steps the teacher is not the student");
    // `t2s eval` of the checkpoint's network `name`, into folder `name`.
    let eval_of = |name: &str| {
        let o = t2s(dir.path())
            .args(["eval", "--config", "t2s.toml", "--output", name, "--weights"])
            .arg(ckpt.join(format!("{name}.safetensors")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        json(&dir.path().join(name).join("eval_synthetic_target_val.json"))
    };
    assert_eq!(eval_of("teacher")["confusion"], during["confusion"]);
    // The student predicts otherwise.
    assert_ne!(eval_of("student")["confusion"], during["confusion"]);
}

/// HRDA (`[model.network.hrda]`) with MIC and T2S-DA: every term and its detail twin logged,
/// from the source-only warm-up on; `--resume` exact; the sequential passes draw the same
/// detail crops as the joint pass.
#[test]
fn hrda_with_mic_and_t2s_trains_every_term_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Logit stride 8: crops on multiples of 16; a 16×32 detail crop of the 32×64 training crop.
    let config = t2s_config() + "\n[model.network.hrda]\ndetail_crop = [16, 32]\ncrop_divisible = 16\n";
    std::fs::write(dir.path().join("hrda.toml"), config).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = t2s(dir.path());
        cmd.args(["train", "--config", "hrda.toml", "--set", "uda.adapt_from=1", "--set", "uda.mic=true"]);
        cmd.args(["--set", "uda.mic_block_size=8", "--set", "uda.pseudo_threshold=0"]);
        let o = cmd.args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["--set", "run.name=straight"]);
    let a = training_records(&dir.path().join("runs/straight"));
    assert_eq!(a.len(), 4);
    let positive = |r: &serde_json::Map<String, serde_json::Value>, k: &str| r[k].as_f64().is_some_and(|v| v.is_finite() && v > 0.0);
    // The warm-up: the source term and its detail twin alone.
    assert!(positive(&a[0], "loss_source") && positive(&a[0], "loss_source_detail") && a[0].get("loss_mix").is_none(), "{:?}", a[0]);
    for r in &a[1..] {
        for k in ["loss_source", "loss_mix", "loss_pseudo_target", "loss_mic"] {
            assert!(positive(r, k) && positive(r, &format!("{k}_detail")), "{k} in {r:?}");
        }
        assert!(r["loss_t2s"].as_f64().is_some_and(f64::is_finite), "{r:?}");
    }
    // The run evaluated at its end with HRDA's whole-image prediction.
    let metrics = std::fs::read_to_string(dir.path().join("runs/straight/metrics.jsonl")).unwrap();
    assert!(metrics.lines().any(|l| l.contains("\"eval\"") && l.contains("mIoU19")), "{metrics}");
    run(&["--set", "run.name=halves", "--until", "2"]);
    let o = t2s(dir.path()).args(["train", "--resume", "runs/halves"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_records(&a, &training_records(&dir.path().join("runs/halves")), 1e-5, "resumed");
    run(&["--set", "run.name=sequential", "--set", "uda.student_passes=sequential", "--until", "3"]);
    // Iteration 3 shows the first adaptation step's summed gradients in every segmentation
    // term; the contrastive term's pixel sampling can already tip over a rounding difference
    // there (as in `t2s_trains_every_term_and_resumes_exactly` at iteration 4), so it is left out.
    let without_t2s = |mut r: serde_json::Map<String, serde_json::Value>| {
        r.retain(|k, _| !k.starts_with("loss_t2s") && !k.starts_with("t2s_"));
        r
    };
    let s: Vec<_> = training_records(&dir.path().join("runs/sequential")).into_iter().map(without_t2s).collect();
    let a3: Vec<_> = a[..3].iter().cloned().map(without_t2s).collect();
    assert_same_records(&a3, &s, 1e-5, "sequential");
}
