//! Two replicas as two threads on the CPU backend, with hand-derived gradients.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};

use super::*;

type AB = Autodiff<Flex>;

/// Burn's collective is one group per backend type per process: the tests here take turns.
static ONE_GROUP: Mutex<()> = Mutex::new(());

#[derive(Module, Debug)]
struct Two<B: Backend> {
    a: Param<Tensor<B, 1>>,
    b: Param<Tensor<B, 2>>,
}

fn two() -> Two<AB> {
    let device = Default::default();
    Two {
        a: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device)),
        b: Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 3.0], [2, 2]), &device)),
    }
}

fn replica(rank: usize, timeout: Duration) -> Replica {
    Replica { rank, count: 2, local: 2, timeout }
}

/// Replica `rank`'s loss `Σ x ⊙ a² + Σ y ⊙ b` (gradients `2a ⊙ x` and `y`), averaged with the
/// other replica's; the averaged gradients of a and b, or the error. `use_b = false` leaves b
/// without a gradient.
fn step(rank: usize, x: [f32; 2], y: [f32; 4], use_b: bool, timeout: Duration) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let r = replica(rank, timeout);
    join::<Flex>(&r, Default::default())?;
    let m = two();
    let device = Default::default();
    let x = Tensor::<AB, 1>::from_data(TensorData::new(x.to_vec(), [2]), &device);
    let y = Tensor::<AB, 2>::from_data(TensorData::new(y.to_vec(), [2, 2]), &device);
    let mut loss = (m.a.val().powi_scalar(2) * x).sum();
    if use_b {
        loss = loss + (m.b.val() * y).sum();
    }
    let mut grads = loss.backward();
    mean_gradients::<AB, _>(&r, &m, &mut grads)?;
    let values = |g: Option<Tensor<Flex, 1>>| g.map(|g| g.into_data().to_vec::<f32>().unwrap());
    let a = values(m.a.val().grad(&grads)).unwrap();
    let b = values(m.b.val().grad(&grads).map(|g| g.reshape([4])));
    Ok((a, b))
}

#[test]
fn replicas_end_with_the_mean_of_their_gradients() {
    let _turn = ONE_GROUP.lock().unwrap_or_else(|e| e.into_inner());
    start_group::<Flex>();
    let t = Duration::from_secs(60);
    let other = std::thread::spawn(move || step(1, [5.0, -1.0], [0.0, -2.0, 1.0, 0.0], true, t));
    let mine = step(0, [1.0, 3.0], [1.0, 2.0, 3.0, 4.0], true, t).unwrap();
    let theirs = other.join().unwrap().unwrap();
    // d/da: replica 0 2a⊙x = [2, 12], replica 1 [10, −4] → [6, 4]; d/db: the mean of the two y.
    let expected = (vec![6.0, 4.0], Some(vec![0.5, 0.0, 2.0, 2.0]));
    assert_eq!(mine, expected);
    assert_eq!(theirs, expected);
}

#[test]
fn replicas_with_different_gradient_sets_fail_by_name() {
    let _turn = ONE_GROUP.lock().unwrap_or_else(|e| e.into_inner());
    start_group::<Flex>();
    let t = Duration::from_secs(5);
    let other = std::thread::spawn(move || step(1, [5.0, -1.0], [0.0; 4], false, t));
    let mine = step(0, [1.0, 3.0], [1.0; 4], true, t);
    let theirs = other.join().unwrap();
    for (rank, r) in [(0, mine), (1, theirs)] {
        let e = r.expect_err("different gradient sets must not average").to_string();
        assert!(e.contains(&format!("replica {rank} of 2")) && e.contains("averaging the gradients"), "{e}");
    }
}

#[test]
fn a_stopped_replica_makes_the_other_fail_within_its_timeout() {
    let _turn = ONE_GROUP.lock().unwrap_or_else(|e| e.into_inner());
    start_group::<Flex>();
    let t = Duration::from_secs(2);
    // Replica 1 joins, then stops before its first all-reduce.
    let other = std::thread::spawn(move || join::<Flex>(&replica(1, t), Default::default()));
    let start = Instant::now();
    let e = step(0, [1.0, 3.0], [1.0; 4], true, t).expect_err("a lone replica cannot average");
    other.join().unwrap().unwrap();
    let waited = start.elapsed();
    let e = e.to_string();
    assert!(e.contains("replica 0 of 2") && e.contains("did not answer within 2 s"), "{e}");
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
}

const SYNTHETIC: &str = "[data.source]\nkind = \"synthetic\"\ndomain = \"source\"\nsize = [1024, 512]\n[data.target]\nkind = \"synthetic\"\ndomain = \"target\"\n";

/// The names of the digests of `run_digests` that differ between two (configuration, weights,
/// iteration to stop at).
fn differing(a: (&[&str], &Two<AB>, usize), b: (&[&str], &Two<AB>, usize)) -> Vec<&'static str> {
    let digests = |(sets, module, until): (&[&str], &Two<AB>, usize)| {
        let cfg = crate::config::RunConfig::parse(SYNTHETIC, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        run_digests::<AB, _>(&cfg, module, until).unwrap()
    };
    let (a, b) = (digests(a), digests(b));
    a.iter().zip(&b).filter(|(x, y)| x.1 != y.1).map(|(x, _)| x.0).collect()
}

/// Runs whose updates would differ have different digests, and only in the part that differs;
/// what may differ per machine (`uda.student_passes`, `[train]`, `[run]` but its seed, data
/// workers and evaluation sets) changes none.
#[test]
fn run_digests_differ_where_the_training_differs() {
    let (same, other) = (two(), two());
    let mut changed = two();
    changed.b = Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 3.5], [2, 2]), &Default::default()));
    let none = Vec::<&str>::new();
    assert_eq!(differing((&[], &same, 9), (&[], &other, 9)), none);
    let free: &[&str] = &[
        "uda.student_passes=\"sequential\"",
        "train.recompute=\"blocks\"",
        "run.output=\"elsewhere\"",
        "run.name=\"n1\"",
        "data.workers=9",
        "data.eval=[{kind=\"synthetic\",domain=\"target\",len=3}]",
        "eval.interval=5",
    ];
    assert_eq!(differing((&[], &same, 9), (free, &other, 9)), none);
    assert_eq!(
        differing((&[], &same, 9), (&[], &changed, 9)),
        ["the initial weights (network, model.pretrained, run.seed or the checkpoint)"]
    );
    assert_eq!(differing((&[], &same, 9), (&["optim.lr=1e-3"], &same, 9)), ["[optim]"]);
    assert_eq!(differing((&[], &same, 9), (&["uda.mic=true", "schedule.max_iters=7"], &same, 9)), ["[uda]", "[schedule]"]);
    assert_eq!(differing((&[], &same, 9), (&["t2s.temperature=0.5"], &same, 9)), ["[t2s]"]);
    assert_eq!(
        differing((&[], &same, 9), (&["data.batch_size=4", "run.seed=3"], &same, 9)),
        ["[data] (but roots, workers and evaluation sets)", "run.seed"]
    );
    assert_eq!(differing((&[], &same, 9), (&["model.pretrained_prefix=\"student.\""], &same, 9)), ["[model]"]);
    assert_eq!(differing((&[], &same, 9), (&[], &same, 8)), ["the iteration to stop at (--until)"]);
}

/// Two replicas (threads) with the same digests go on; with one digest apart, both stop and
/// name it.
#[test]
fn replicas_that_differ_both_stop_naming_the_difference() {
    let _turn = ONE_GROUP.lock().unwrap_or_else(|e| e.into_inner());
    let t = Duration::from_secs(60);
    let run = |rank: usize, x: u64| {
        std::thread::spawn(move || {
            let r = replica(rank, t);
            join::<Flex>(&r, Default::default())?;
            check_same_run::<Flex>(&r, &[("w", 7), ("x", x), ("z", u64::MAX)], &Default::default())
        })
    };
    start_group::<Flex>();
    let (a, b) = (run(0, 0xDEAD_BEEF), run(1, 0xDEAD_BEEF));
    assert!(a.join().unwrap().is_ok() && b.join().unwrap().is_ok());
    start_group::<Flex>();
    let (a, b) = (run(0, 0xDEAD_BEEF), run(1, 0xDEAD_BEEE));
    for (rank, e) in [a.join().unwrap().unwrap_err(), b.join().unwrap().unwrap_err()].iter().enumerate() {
        let e = e.to_string();
        assert!(e.starts_with(&format!("replica {rank} of 2: the replicas do not run the same training: they differ in x. ")), "{e}");
    }
}

/// Two processes given the same rank (two nodes with the same `--node-rank`) stop, both, naming
/// the rank held twice and the one held by none; distinct ranks pass.
#[test]
fn a_rank_held_twice_is_refused_on_every_replica() {
    let _turn = ONE_GROUP.lock().unwrap_or_else(|e| e.into_inner());
    let t = Duration::from_secs(60);
    let run = |rank: usize, claimed: usize| {
        std::thread::spawn(move || {
            let r = replica(rank, t);
            join::<Flex>(&r, Default::default())?;
            agreement::check_distinct_ranks::<Flex>(&r, claimed, &Default::default())
        })
    };
    start_group::<Flex>();
    let (a, b) = (run(0, 0), run(1, 1));
    assert!(a.join().unwrap().is_ok() && b.join().unwrap().is_ok());
    start_group::<Flex>();
    let (a, b) = (run(0, 0), run(1, 0));
    for (rank, e) in [a.join().unwrap().unwrap_err(), b.join().unwrap().unwrap_err()].iter().enumerate() {
        let e = e.to_string();
        assert!(
            e.starts_with(&format!(
                "replica {rank} of 2: replica rank 0 is taken by 2 processes, and rank(s) 1 by none: give each node its own --node-rank"
            )),
            "{e}"
        );
    }
}
