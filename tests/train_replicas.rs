//! Data-parallel training (`t2s train --device cpu,cpu`, issue 28): two replicas as threads of
//! one process train exactly as one replica that takes the same two sub-batches one after the
//! other and steps with the mean of their gradients (computed here, in the test, from the
//! library's step); rank 0 alone writes the run folder, every metrics line says `replicas`, and
//! a `t2s` run with its prototypes and class statistics resumes as a group.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use t2s_data::{AugmentConfig, CropConfig, Loader, LoaderConfig, Resize, SampleOrder};
use t2s_model::{Precision, Segmentor};
use t2s_train::config::Recompute;
use t2s_train::train::step::source_only_step;
use t2s_train::{open_set, GroupedOptimizer, RunConfig, SetRole, Sources};

use common::{short_schedule, t2s_program, training_records, weight_file, SYNTHETIC_DATA, SYNTHETIC_TARGET, TINY_MIT_NETWORK};

type AB = Autodiff<Flex>;

/// The tiny MiT (stochastic depth and the head's dropout at their defaults, so that masks are
/// drawn) trained `source_only` for three iterations without rare class sampling.
fn source_only_config() -> String {
    format!("{TINY_MIT_NETWORK}\n[uda]\nmethod = \"source_only\"\n{SYNTHETIC_DATA}{}", short_schedule(3, 0))
        .replace("[data.rcs]\nmin_pixels = 50", "[data.rcs]\nenabled = false")
}

/// `t2s --device <devices> train` in `dir` with `args`; panics with its output on failure.
fn train(dir: &Path, devices: &str, args: &[&str]) -> String {
    let o = t2s_program().current_dir(dir).args(["--device", devices, "train", "--replica-timeout", "300"]).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{args:?}: {stderr}");
    stderr
}

/// The largest difference between two weight sets, and the tensor it is in.
fn max_difference(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> (f32, String) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .map(|(k, va)| (va.iter().zip(&b[k]).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max), k.clone()))
        .fold((0.0, String::new()), |m, d| if d.0 > m.0 { d } else { m })
}

/// Replaces every parameter gradient in `into` by the mean of its value there and in `other`.
struct Average<'a> {
    into: &'a mut <AB as AutodiffBackend>::Gradients,
    other: &'a <AB as AutodiffBackend>::Gradients,
}

impl ModuleVisitor<AB> for Average<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        match (param.val().grad(self.into), param.val().grad(self.other)) {
            (Some(a), Some(b)) => param.val().grad_replace(self.into, (a + b).div_scalar(2.0)),
            (None, None) => {}
            _ => panic!("a parameter with a gradient in one sub-batch only"),
        }
    }
}

/// The batch-norm running statistics (the float tensors that take no gradient), by id.
struct Running(HashMap<ParamId, Tensor<AB, 1>>);

impl ModuleVisitor<AB> for Running {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if !param.val().is_require_grad() {
            let n = param.val().shape().num_elements();
            self.0.insert(param.id, param.val().reshape([n]));
        }
    }
}

fn running(student: &Segmentor<AB>) -> HashMap<ParamId, Tensor<AB, 1>> {
    // Burn applies a forward pass's update of the statistics when they are synchronised.
    drop(student.valid());
    let mut r = Running(HashMap::new());
    student.visit(&mut r);
    r.0
}

/// Sets the running statistics to `values`.
struct SetRunning(HashMap<ParamId, Tensor<AB, 1>>);

impl ModuleMapper<AB> for SetRunning {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let Some(v) = self.0.get(&param.id).cloned() else { return param };
        let (id, t, mapper) = param.consume();
        Param::from_mapped_value(id, v.reshape(t.shape()), mapper)
    }
}

/// The reference: one replica, one thread, taking at iteration `i` the batches `2i` and `2i + 1`
/// of the source loader (what replicas 0 and 1 take) with their draws (the step's generator and
/// the masks seeded from draw index `2i + r`, as `replicas::draw_index` documents), one step per
/// sub-batch, the two gradients averaged, one optimiser step. Each sub-batch's pass starts from
/// the running statistics the iteration started with, and the iteration ends with their mean
/// (replicas average theirs after each step). Writes the weights after `iters` iterations to
/// `out`; returns the loss of each iteration's first sub-batch.
fn one_replica_two_sub_batches(cfg: &RunConfig, iters: usize, out: &Path) -> Vec<f64> {
    let device = Default::default();
    let network = cfg.network().unwrap().unwrap();
    AB::seed(&device, cfg.run.seed);
    let mut student =
        t2s_train::load_model_from::<AB>(Some(network.clone()), None, None, cfg.run.seed, Sources::RUN, &device).unwrap().model;
    let mut optim = GroupedOptimizer::<AB>::new(&cfg.optim, &cfg.schedule, &student.param_groups());
    let source = open_set(&cfg.data.source, SetRole::Source, "data.source").unwrap();
    let dataset: Arc<dyn t2s_data::Dataset> = Arc::from(source.dataset);
    let augment = AugmentConfig {
        resize: Resize::Original,
        crop: Some(CropConfig::daformer(cfg.data.crop[0], cfg.data.crop[1])),
        flip_prob: cfg.data.flip_prob,
    };
    let mut loaders: Vec<Loader> = (0..2)
        .map(|r| {
            let lc =
                LoaderConfig { batch_size: cfg.data.batch_size, threads: 1, prefetch: 1, seed: cfg.run.seed, start_batch: r, stride: 2 };
            Loader::new(dataset.clone(), augment, SampleOrder::Shuffle, lc).unwrap()
        })
        .collect();
    let mut first_losses = Vec::new();
    for iter in 0..iters {
        let mut grads = Vec::new();
        let start = running(&student);
        let mut stats = Vec::new();
        for (r, loader) in loaders.iter_mut().enumerate() {
            student = student.map(&mut SetRunning(start.clone()));
            let draw = (2 * iter + r) as u64;
            let mask_seed = cfg.run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(draw + 1);
            t2s_model::seed_thread_masks(Some(mask_seed));
            let batch = loader.next_batch().unwrap().unwrap();
            let step = source_only_step(&student, &batch, (Precision::F32, Recompute::None), (cfg.run.seed, draw), &device).unwrap();
            if r == 0 {
                let loss: f32 = step.losses[0].1.clone().into_scalar();
                first_losses.push(f64::from(loss));
            }
            grads.push(step.grads);
            stats.push(running(&student));
        }
        let mean = stats[0].iter().map(|(id, a)| (*id, (a.clone() + stats[1][id].clone()).div_scalar(2.0))).collect();
        let other = grads.pop().unwrap();
        let mut grads_mean = grads.pop().unwrap();
        student.visit(&mut Average { into: &mut grads_mean, other: &other });
        student = optim.step(iter, student, grads_mean);
        student = student.map(&mut SetRunning(mean));
    }
    t2s_model::save_t2s(&student.valid(), &network, out).unwrap();
    first_losses
}

/// Two CPU replicas after three iterations (AdamW at 1e-3, the warm-up iteration, then two at
/// the full rate) have the reference's weights and running statistics to 1e-6 (both average the same two gradients in
/// f32, so they are expected to agree to the last bit), rank 0's logged loss is the reference's
/// first sub-batch's, and the run moved the weights by far more than that.
#[test]
fn two_cpu_replicas_train_as_one_replica_averaging_two_sub_batches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config()).unwrap();
    let stderr = train(dir.path(), "cpu,cpu", &["--config", "run.toml", "--set", "run.name=dp"]);
    assert!(stderr.contains("2 data-parallel replicas: data.batch_size = 2 per replica, 4 images per iteration"), "{stderr}");
    let run = dir.path().join("runs/dp");
    let records = training_records(&run);
    assert_eq!(records.len(), 3);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().all(|l| l.contains("\"replicas\":2")), "{metrics}");
    assert!(metrics.contains("\"eval\""), "rank 0 evaluates at the end: {metrics}");

    let cfg = RunConfig::load(&dir.path().join("run.toml"), &[]).unwrap();
    let reference = dir.path().join("reference.safetensors");
    let losses = one_replica_two_sub_batches(&cfg, 3, &reference);
    let got = weight_file(&run.join("checkpoints/iter_000003/student.safetensors"));
    let want = weight_file(&reference);
    let (diff, name) = max_difference(&got, &want);
    assert!(diff <= 1e-6, "{name} differs from the reference by {diff}");
    let initial = dir.path().join("initial.safetensors");
    one_replica_two_sub_batches(&cfg, 0, &initial);
    let (moved, _) = max_difference(&weight_file(&initial), &want);
    assert!(moved > 1e-3, "three iterations moved the weights by {moved} only");
    for (r, want) in records.iter().zip(&losses) {
        let loss = r["loss_source"].as_f64().unwrap();
        assert!((loss - want).abs() <= 1e-6 * want.abs(), "iteration {}: loss_source {loss}, reference {want}", r["iter"]);
    }
}

/// `t2s` on two replicas (prototypes, π and the re-weighting statistics added up across them):
/// stopped after two iterations and resumed, it ends where an uninterrupted run ends, to the bit;
/// the replicas' rank 0 alone wrote the folder.
#[test]
fn a_t2s_group_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let t2s = "\n[t2s]\nqueries = 32\nmin_queries_per_class = 2\nnegatives = 4\nlabel_min_fraction = 0.5\n";
    let config = format!("{TINY_MIT_NETWORK}\n[uda]\nmethod = \"t2s\"\n{SYNTHETIC_DATA}{SYNTHETIC_TARGET}{}{t2s}", short_schedule(4, 2));
    std::fs::write(dir.path().join("run.toml"), config).unwrap();
    train(dir.path(), "cpu,cpu", &["--config", "run.toml", "--set", "run.name=whole"]);
    train(dir.path(), "cpu,cpu", &["--config", "run.toml", "--set", "run.name=parts", "--until", "2"]);
    let stderr = train(dir.path(), "cpu,cpu", &["--resume", "runs/parts"]);
    assert!(stderr.contains("resuming"), "{stderr}");
    let whole = weight_file(&dir.path().join("runs/whole/checkpoints/iter_000004/student.safetensors"));
    let parts = weight_file(&dir.path().join("runs/parts/checkpoints/iter_000004/student.safetensors"));
    assert_eq!(max_difference(&whole, &parts).0, 0.0);
    let state = |run: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.path().join(format!("runs/{run}/checkpoints/iter_000004/state.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(state("whole")["t2s"], state("parts")["t2s"]);
    let records = training_records(&dir.path().join("runs/parts"));
    assert_eq!(records.iter().map(|r| r["iter"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(records.iter().all(|r| r["replicas"] == 2 && r["loss_t2s"].as_f64().is_some()), "{records:?}");
    assert!(!stderr.contains("continues on"), "{stderr}");
    // Continued on one device, it takes half the images per iteration: said, not silent.
    let stderr = train(dir.path(), "cpu", &["--resume", "runs/parts", "--set", "schedule.max_iters=5"]);
    let told = "this run trained on 2 replica(s) (4 images per iteration) and continues on 1 (2): from here it differs";
    assert!(stderr.contains(told), "{stderr}");
}

/// A coordinator port P for two nodes, with P, P + 1 and P + 2 (the nodes' own) free, below
/// Linux's ephemeral range (from 32768): a port the system picks could be the next connection's
/// source port, and a node whose port was taken so could not start its server (1 run in 30).
/// Each call of this process gets ports of its own.
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = (std::process::id() % 1000) * 12;
    (0..4000)
        .map(|_| (20000 + (base + 3 * NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) % 12000) as u16)
        .find(|&port| (port..port + 3).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok()))
        .expect("no three free ports in a row between 20000 and 32000")
}

/// `t2s train` as node `rank` of two over 127.0.0.1, one CPU replica each, started; its standard
/// error goes to `dir/node<rank>.stderr` (a pipe nobody reads while waiting could fill and block it).
fn node(dir: &Path, rank: usize, port: u16, args: &[&str]) -> std::process::Child {
    node_on(dir, rank, port, "cpu", args)
}

/// [`node`] with a replica per device of `devices`.
fn node_on(dir: &Path, rank: usize, port: u16, devices: &str, args: &[&str]) -> std::process::Child {
    t2s_program()
        .current_dir(dir)
        .args(["--device", devices, "train", "--nodes", "2", "--coordinator"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--node-rank", &rank.to_string()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("node{rank}.stderr"))).unwrap())
        .spawn()
        .unwrap()
}

/// What node `rank` has written to its standard error so far.
fn node_stderr(dir: &Path, rank: usize) -> String {
    std::fs::read_to_string(dir.join(format!("node{rank}.stderr"))).unwrap_or_default()
}

/// Two processes (`--nodes 2`, node 0 running the coordinator) train as the two threads of
/// `--device cpu,cpu` do, stopped after two iterations and resumed as a group for the third: the
/// reference's weights to 1e-6, node 0 alone writing the folder.
#[test]
fn two_nodes_over_localhost_train_as_one_replica_averaging_two_sub_batches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config()).unwrap();
    let both = |args: &[&str]| {
        let port = free_port();
        let children = [node(dir.path(), 0, port, args), node(dir.path(), 1, port, args)];
        for (rank, mut child) in children.into_iter().enumerate() {
            let status = child.wait().unwrap();
            assert!(status.success(), "node {rank}, {args:?}: {}", node_stderr(dir.path(), rank));
        }
    };
    both(&["--config", "run.toml", "--set", "run.name=nodes", "--replica-timeout", "300", "--until", "2"]);
    both(&["--resume", "runs/nodes", "--replica-timeout", "300"]);
    let run = dir.path().join("runs/nodes");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(training_records(&run).len(), 3, "{metrics}");
    assert!(metrics.lines().all(|l| l.contains("\"replicas\":2")), "{metrics}");
    let cfg = RunConfig::load(&dir.path().join("run.toml"), &[]).unwrap();
    let reference = dir.path().join("reference.safetensors");
    one_replica_two_sub_batches(&cfg, 3, &reference);
    let (diff, name) = max_difference(&weight_file(&run.join("checkpoints/iter_000003/student.safetensors")), &weight_file(&reference));
    assert!(diff <= 1e-6, "{name} differs from the reference by {diff}");
}

/// A node killed in the middle of a run makes the other fail, saying so, within its
/// `--replica-timeout` (10 s) and the time to notice, instead of hanging.
#[test]
fn a_killed_node_makes_the_other_fail_within_its_timeout() {
    killed_node_case(1);
}

/// The same with node 0 killed: the coordinator and the tree's root go with it.
#[test]
fn a_killed_node_0_makes_the_other_fail_within_its_timeout() {
    killed_node_case(0);
}

/// Two nodes train; node `victim` is killed once training has started; the other must fail,
/// saying that another machine was lost, within a minute.
fn killed_node_case(victim: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config().replace("max_iters = 3", "max_iters = 100000")).unwrap();
    let port = free_port();
    let args = ["--config", "run.toml", "--set", "run.name=killed", "--replica-timeout", "10"];
    let mut nodes = [node(dir.path(), 0, port, &args), node(dir.path(), 1, port, &args)];
    // Killed once training has started (node 0 logs every iteration).
    let metrics = dir.path().join("runs/killed/metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(true, |m| m.lines().count() < 2) {
        for (rank, child) in nodes.iter_mut().enumerate() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("node {rank} stopped ({status}) before training started: {}", node_stderr(dir.path(), rank));
            }
        }
        if started.elapsed().as_secs() >= 300 {
            nodes.iter_mut().for_each(|c| drop(c.kill()));
            panic!("the two nodes did not start training in 300 s:\n{}\n{}", node_stderr(dir.path(), 0), node_stderr(dir.path(), 1));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let survivor = 1 - victim;
    nodes[victim].kill().unwrap();
    nodes[victim].wait().unwrap();
    let killed_at = std::time::Instant::now();
    let status = nodes[survivor].wait().unwrap();
    let waited = killed_at.elapsed().as_secs_f64();
    let stderr = node_stderr(dir.path(), survivor);
    assert!(!status.success(), "{stderr}");
    assert!(waited < 60.0, "node {survivor} took {waited} s to fail");
    assert!(stderr.contains(&format!("replica {survivor} of 2")) && stderr.contains("another machine was lost"), "{stderr}");
}

/// A node whose own port is taken says so and stops, instead of starting without its server
/// (the other machines then failed, unable to reach it).
#[test]
fn a_taken_node_port_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config()).unwrap();
    let port = free_port();
    let _taken = std::net::TcpListener::bind(("0.0.0.0", port + 2)).unwrap();
    let status =
        node(dir.path(), 1, port, &["--config", "run.toml", "--set", "run.name=taken", "--replica-timeout", "300"]).wait().unwrap();
    let e = node_stderr(dir.path(), 1);
    assert!(!status.success(), "{e}");
    assert!(e.contains(&format!("this node's port {} (of ", port + 2)) && e.contains("is taken: give --node-address"), "{e}");
}

/// Nodes 0 and 1 started in `dir` with (devices, arguments) each, both expected to fail; their
/// standard errors.
fn two_failing_nodes(dir: &Path, nodes: [(&str, &[&str]); 2]) -> [String; 2] {
    let port = free_port();
    let children = [0, 1].map(|rank| node_on(dir, rank, port, nodes[rank].0, nodes[rank].1));
    let statuses = children.map(|mut c| c.wait().unwrap());
    let e = [node_stderr(dir, 0), node_stderr(dir, 1)];
    assert!(statuses.iter().all(|s| !s.success()), "{e:?}");
    e
}

/// Nodes started with different networks and learning rates stop before their first
/// iteration, both naming what differs, instead of averaging gradients of different models.
#[test]
fn nodes_with_different_runs_are_told_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config()).unwrap();
    let args = ["--config", "run.toml", "--set", "run.name=mixed", "--replica-timeout", "300"];
    let mut other: Vec<&str> = args.to_vec();
    other.extend(["--set", "model.network.decode_head.channels=24", "--set", "optim.lr=2e-3"]);
    let e = two_failing_nodes(dir.path(), [("cpu", &args), ("cpu", &other)]);
    for (rank, e) in e.iter().enumerate() {
        let told = format!(
            "replica {rank} of 2: the replicas do not run the same training: they differ in the initial weights (network, model.pretrained, run.seed or the checkpoint), [model], [optim]. Start every node"
        );
        assert!(e.contains(&told), "{e}");
    }
    assert!(!dir.path().join("runs/mixed/metrics.jsonl").exists() || training_records(&dir.path().join("runs/mixed")).is_empty());
}

/// Nodes with different numbers of devices join Burn's collective all the same; they stop
/// before their first iteration, saying so.
#[test]
fn nodes_with_different_device_counts_are_told_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config()).unwrap();
    let args = ["--config", "run.toml", "--set", "run.name=uneven", "--replica-timeout", "300"];
    let e = two_failing_nodes(dir.path(), [("cpu,cpu", &args), ("cpu", &args)]);
    for (e, count) in e.iter().zip([4, 2]) {
        let told = format!("they differ in the number of replicas (3 in all, not {count}: every node needs as many devices)");
        assert!(e.contains(&told), "{e}");
    }
}

/// SIGTERM (what SLURM sends) to a two-replica run: both replicas agree to stop after the same
/// iteration, rank 0 writes its checkpoint, and the command ends with status 143.
#[test]
fn sigterm_stops_every_replica_at_one_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config().replace("max_iters = 3", "max_iters = 100000")).unwrap();
    let child = t2s_program()
        .current_dir(dir.path())
        .args(["--device", "cpu,cpu", "train", "--config", "run.toml", "--set", "run.name=term", "--replica-timeout", "60"])
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let run = dir.path().join("runs/term");
    let started = std::time::Instant::now();
    let logged = || std::fs::read_to_string(run.join("metrics.jsonl")).map(|t| t.matches('\n').count()).unwrap_or(0);
    while logged() < 2 {
        assert!(started.elapsed().as_secs() < 300, "no two logged iterations within 300 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait_with_output().unwrap().status;
    let e = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
    assert_eq!(status.code(), Some(143), "{e}");
    let n: usize = e.split("stopped after ").nth(1).and_then(|t| t.split(' ').next()).and_then(|t| t.parse().ok()).expect(&e);
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), format!("iter_{n:06}"));
    assert_eq!(training_records(&run).last().unwrap()["iter"].as_u64(), Some(n as u64));
}

/// A run across nodes without `run.name` is refused before anything starts: each node would
/// name its folder after its own start time.
#[test]
fn a_run_across_nodes_needs_a_shared_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config()).unwrap();
    let status = node(dir.path(), 1, free_port(), &["--config", "run.toml"]).wait().unwrap();
    let e = node_stderr(dir.path(), 1);
    assert!(!status.success(), "{e}");
    assert!(e.contains("--nodes 2: give the run a name every node shares, --set run.name=NAME"), "{e}");
    assert!(!dir.path().join("runs").exists());
}

/// SIGTERM to node 1 alone: both nodes stop after the same iteration with one checkpoint, and
/// node 0, stopped on node 1's request, does not report success (a scheduler would count its
/// part as done): status 143, saying why.
#[test]
fn sigterm_to_one_node_stops_both_and_neither_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), source_only_config().replace("max_iters = 3", "max_iters = 100000")).unwrap();
    let port = free_port();
    let args = ["--config", "run.toml", "--set", "run.name=term", "--replica-timeout", "300"];
    let nodes = [node(dir.path(), 0, port, &args), node(dir.path(), 1, port, &args)];
    let run = dir.path().join("runs/term");
    let started = std::time::Instant::now();
    let logged = || std::fs::read_to_string(run.join("metrics.jsonl")).map(|t| t.matches("loss_source").count()).unwrap_or(0);
    while logged() < 2 {
        assert!(started.elapsed().as_secs() < 300, "no two logged iterations within 300 s: {}", node_stderr(dir.path(), 0));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(std::process::Command::new("kill").args(["-TERM", &nodes[1].id().to_string()]).status().unwrap().success());
    let statuses = nodes.map(|mut c| c.wait().unwrap());
    let e = [node_stderr(dir.path(), 0), node_stderr(dir.path(), 1)];
    assert_eq!(statuses.map(|s| s.code()), [Some(143), Some(143)], "{e:?}");
    assert!(e[0].contains("stopped because another node was asked to stop"), "{}", e[0]);
    let n: usize = e[0].split("stopped after ").nth(1).and_then(|t| t.split(' ').next()).and_then(|t| t.parse().ok()).expect(&e[0]);
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), format!("iter_{n:06}"));
}
