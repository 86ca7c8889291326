//! `t2s train` on the wgpu backend (lavapipe in CI): a few T2S-DA iterations, every term, from the
//! same seed as a CPU run; the first iteration's losses must agree with the CPU's (the initial
//! weights, data, augmentation and sampling are drawn on the host from the seed, so only the
//! arithmetic differs).

#![cfg(feature = "wgpu")]

mod common;

use common::{resnet_network, short_schedule, t2s_program, training_records, SYNTHETIC_DATA, SYNTHETIC_TARGET};

/// A small ResNet-18-shaped network (one block per stage) with a projection head, trained with
/// every T2S-DA term for 3 iterations.
fn config() -> String {
    let backbone = "depth = 18\nstem_width = 16\nbase_width = 16\nwidths = [16, 24, 32, 48]\noutput_stride = 8";
    let network = resnet_network(backbone) + "[model.network.projection]\ndim = 16\n\n[uda]\nmethod = \"t2s\"\n";
    let t2s = "
[t2s]
fda_beta = 0.05
queries = 32
min_queries_per_class = 2
negatives = 4
label_min_fraction = 0.5
";
    format!("{network}{SYNTHETIC_DATA}{SYNTHETIC_TARGET}{}{t2s}", short_schedule(3, 3))
}

#[test]
fn wgpu_trains_t2s_like_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t2s.toml"), config()).unwrap();
    let train = |device: &str, args: &[&str]| {
        t2s_program()
            .current_dir(dir.path())
            // In builds with `--features autotune`: tuning every kernel variant is slow on lavapipe
            // (docs/burn-notes.md). The default build does not autotune.
            .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
            .args(["--device", device, "train", "--config", "t2s.toml"])
            .args(args)
            .output()
            .unwrap()
    };
    // No shared weight file: the initial weights are drawn on the host from run.seed, so both
    // backends start from the same network (each backend's own generator would differ).
    let o = train("wgpu", &["--set", "run.name=wgpu"]);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("no wgpu adapter") && std::env::var_os("T2S_REQUIRE_WGPU").is_none() {
        eprintln!("skipped: no wgpu adapter on this machine ({err})");
        return;
    }
    assert!(o.status.success(), "{err}");
    let o = train("cpu", &["--set", "run.name=cpu"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let gpu = training_records(&dir.path().join("runs/wgpu"));
    let cpu = training_records(&dir.path().join("runs/cpu"));
    assert_eq!(gpu.len(), 3, "{gpu:?}");
    assert_eq!(cpu.len(), 3);
    // Device memory on the GPU backend's lines, none on the CPU's. The allocator holds at least
    // the student and the EMA teacher (plus AdamW's moments, batches and the prototypes): two
    // f32 copies of the checkpoint's tensors, a bound that fails if another stream's pools
    // (empty) were asked.
    let values: usize =
        common::weight_file(&dir.path().join("runs/wgpu/checkpoints/iter_000003/student.safetensors")).values().map(Vec::len).sum();
    let mib = |r: &serde_json::Map<String, serde_json::Value>, k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k}: {r:?}")) as f64;
    for r in &gpu {
        let (reserved, in_use) = (mib(r, "mem_mib"), mib(r, "mem_in_use_mib"));
        assert!((in_use + 0.5) * (1u64 << 20) as f64 >= 2.0 * 4.0 * values as f64, "{in_use} MiB in use for {values} weights: {r:?}");
        assert!(reserved >= in_use, "{r:?}");
    }
    assert!(cpu.iter().all(|r| !r.contains_key("mem_mib") && !r.contains_key("mem_in_use_mib")), "{cpu:?}");
    for k in ["loss_source", "loss_mix", "loss_pseudo_target", "loss_t2s"] {
        for r in &gpu {
            assert!(r[k].as_f64().unwrap().is_finite(), "{k}: {r:?}");
        }
        // Iteration 1: same weights, same batches, same samples; only float rounding differs
        // (measured on lavapipe: ~1e-7 relative). Two updates later the runs have drifted by
        // ~2e-4 (a pseudo-label or sample can flip on a near-tie), still well inside 1e-2.
        let (g, c) = (gpu[0][k].as_f64().unwrap(), cpu[0][k].as_f64().unwrap());
        eprintln!("{k} at iteration 1: wgpu {g} cpu {c}; at iteration 3: wgpu {} cpu {}", gpu[2][k], cpu[2][k]);
        assert!((g - c).abs() <= 1e-4 * c.abs().max(1e-3), "{k} at iteration 1: wgpu {g} vs cpu {c}");
        let (g, c) = (gpu[2][k].as_f64().unwrap(), cpu[2][k].as_f64().unwrap());
        assert!((g - c).abs() <= 1e-2 * c.abs().max(1e-3), "{k} at iteration 3: wgpu {g} vs cpu {c}");
    }
    // The student's batches one after another (a backward pass each, the gradients summed on
    // the device): the same steps as the joint pass up to the order of float sums.
    let o = train("wgpu", &["--set", "run.name=sequential", "--set", "uda.student_passes=\"sequential\""]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seq = training_records(&dir.path().join("runs/sequential"));
    assert_eq!(seq.len(), 3);
    assert!(seq.iter().all(|r| r["student_backward_passes"].as_f64() == Some(3.0)), "{seq:?}");
    for k in ["loss_source", "loss_mix", "loss_pseudo_target", "loss_t2s"] {
        for (i, (s, j)) in seq.iter().zip(&gpu).enumerate() {
            let (s, j) = (s[k].as_f64().unwrap(), j[k].as_f64().unwrap());
            eprintln!("{k} at iteration {}: sequential {s} joint {j}", i + 1);
            assert!((s - j).abs() <= 1e-4 * j.abs().max(1e-3), "{k} at iteration {}: sequential {s} vs joint {j}", i + 1);
        }
    }
    // The run ends with a loadable checkpoint and its teacher.
    let last = dir.path().join("runs/wgpu/checkpoints/iter_000003");
    for f in ["student.safetensors", "teacher.safetensors", "state.json"] {
        assert!(last.join(f).is_file(), "{f} missing in {}", last.display());
    }
}

/// `train.precision = "bf16"` on wgpu: adapters with bf16 arithmetic train (every term finite);
/// the others (lavapipe has none) refuse at start-up with a message naming the setting, before
/// any iteration.
#[test]
fn bf16_on_wgpu_trains_or_names_what_the_adapter_lacks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t2s.toml"), config()).unwrap();
    let o = t2s_program()
        .current_dir(dir.path())
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .args(["--device", "wgpu", "train", "--config", "t2s.toml", "--set", "run.name=bf16", "--set", "train.precision=\"bf16\""])
        .args(["--set", "schedule.max_iters=1", "--set", "run.checkpoint_interval=1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("no wgpu adapter") && std::env::var_os("T2S_REQUIRE_WGPU").is_none() {
        eprintln!("skipped: no wgpu adapter on this machine ({err})");
        return;
    }
    eprintln!("{err}");
    if o.status.success() {
        let records = training_records(&dir.path().join("runs/bf16"));
        assert_eq!(records.len(), 1);
        for k in ["loss_source", "loss_mix", "loss_pseudo_target", "loss_t2s"] {
            assert!(records[0][k].as_f64().unwrap().is_finite(), "{k}: {records:?}");
        }
    } else {
        assert!(
            err.contains("train.precision = \"bf16\"") && err.contains("has no bf16 arithmetic") && err.contains("use \"f32\""),
            "{err}"
        );
        assert!(!dir.path().join("runs/bf16/metrics.jsonl").exists() || training_records(&dir.path().join("runs/bf16")).is_empty());
    }
}

/// `train.recompute = "blocks"` on wgpu, where MiT runs on t2s's CubeCL routes (the channels-last
/// depth-wise convolution, the spatial reduction on the tokens as they lie, its LayerNorm and
/// GELU): a tiny MiT `t2s` run (two blocks in the first and last stage, stochastic depth 0.3)
/// logs the same losses with and without recomputation (as on the CPU, `tests/train_recompute.rs`;
/// the contrastive term from iteration 3 on can sample other queries after a rounding difference).
#[test]
fn wgpu_recomputes_mit_blocks_as_it_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let network = common::TINY_MIT_NETWORK.replace("depths = [1, 1, 1, 1]", "depths = [2, 1, 1, 2]\ndrop_path_rate = 0.3");
    let t2s = "\n[t2s]\nqueries = 32\nmin_queries_per_class = 2\nnegatives = 4\nlabel_min_fraction = 0.5\n";
    let config = format!("{network}\n[uda]\nmethod = \"t2s\"\n{SYNTHETIC_DATA}{SYNTHETIC_TARGET}{}{t2s}", short_schedule(3, 0));
    std::fs::write(dir.path().join("mit.toml"), config).unwrap();
    let train = |name: &str, recompute: &str| {
        t2s_program()
            .current_dir(dir.path())
            .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
            .args(["--device", "wgpu", "train", "--config", "mit.toml", "--set", &format!("run.name={name}")])
            .args(["--set", &format!("train.recompute=\"{recompute}\"")])
            .output()
            .unwrap()
    };
    let o = train("kept", "none");
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("no wgpu adapter") && std::env::var_os("T2S_REQUIRE_WGPU").is_none() {
        eprintln!("skipped: no wgpu adapter on this machine ({err})");
        return;
    }
    assert!(o.status.success(), "{err}");
    let o = train("recomputed", "blocks");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kept = training_records(&dir.path().join("runs/kept"));
    let recomputed = training_records(&dir.path().join("runs/recomputed"));
    assert_eq!((kept.len(), recomputed.len()), (3, 3));
    for (i, (a, b)) in kept.iter().zip(&recomputed).enumerate() {
        for k in ["loss_source", "loss_mix", "loss_pseudo_target", "loss_t2s"] {
            if k == "loss_t2s" && i >= 2 {
                continue;
            }
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            eprintln!("{k} at iteration {}: kept {x} recomputed {y}", i + 1);
            assert!(x.is_finite() && (x - y).abs() <= 1e-4 * x.abs().max(1e-3), "{k} at iteration {}: kept {x} vs recomputed {y}", i + 1);
        }
    }
}

/// Data-parallel replicas on a CubeCL backend (the code path CUDA takes): `--device wgpu,wgpu`
/// (two replicas on the one lavapipe adapter) trains the tiny MiT (stochastic depth and head
/// dropout on: replicas draw their masks on the host, so both backends draw the same) as
/// `--device cpu,cpu` does. Iteration 1's loss agrees to float rounding (measured: every printed
/// digit), iteration 3's within 1e-3 (measured 2e-5).
#[test]
fn wgpu_replicas_train_like_cpu_replicas() {
    if !common::wgpu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}\n[uda]\nmethod = \"source_only\"\n{SYNTHETIC_DATA}{}", common::TINY_MIT_NETWORK, short_schedule(3, 0));
    std::fs::write(dir.path().join("run.toml"), config).unwrap();
    let train = |devices: &str| {
        let o = t2s_program()
            .current_dir(dir.path())
            .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
            .args(["--device", devices, "train", "--config", "run.toml", "--replica-timeout", "600"])
            .args(["--set", &format!("run.name={}", devices.replace(',', "_"))])
            .output()
            .unwrap();
        assert!(o.status.success(), "{devices}: {}", String::from_utf8_lossy(&o.stderr));
        training_records(&dir.path().join("runs").join(devices.replace(',', "_")))
    };
    let (gpu, cpu) = (train("wgpu,wgpu"), train("cpu,cpu"));
    assert_eq!((gpu.len(), cpu.len()), (3, 3));
    let loss = |r: &serde_json::Map<String, serde_json::Value>| r["loss_source"].as_f64().unwrap();
    let (g, c) = (loss(&gpu[0]), loss(&cpu[0]));
    assert!((g - c).abs() <= 1e-5 * c, "iteration 1: wgpu {g} vs cpu {c}");
    let (g, c) = (loss(&gpu[2]), loss(&cpu[2]));
    assert!((g - c).abs() <= 1e-3 * c, "iteration 3: wgpu {g} vs cpu {c}");
    assert!(gpu.iter().all(|r| r["replicas"] == 2));
}
