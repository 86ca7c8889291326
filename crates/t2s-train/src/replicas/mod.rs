//! Data-parallel replicas on Burn's collective operations (`burn-collective`, docs/data-parallel.md):
//! joining the group of replicas and averaging the parameter gradients across it before each
//! optimiser step, every collective call bounded in time so that a replica that stopped makes the
//! others fail with a clear error instead of hanging.

mod across;
mod gradients;
mod running_stats;

pub use across::{count_flags, sum_across, sum_class_sums, sum_host};
pub use gradients::mean_gradients;
pub use running_stats::mean_running_stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn_collective::{register, CollectiveConfig, CollectiveError, PeerId};

use crate::{Result, TrainError};

/// One replica of a data-parallel run: its rank among `count`, and how long it waits for the
/// others at each collective operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    /// 0-based rank (rank 0 writes the run folder).
    pub rank: usize,
    /// Number of replicas in the run.
    pub count: usize,
    /// The longest wait for the other replicas at one collective operation.
    pub timeout: Duration,
}

impl Replica {
    fn peer(&self) -> PeerId {
        PeerId::from(self.rank)
    }

    /// Whether this replica writes the run folder (metrics, checkpoints, evaluations): rank 0.
    pub fn writes(&self) -> bool {
        self.rank == 0
    }
}

/// The index of the random draws of 0-based iteration `iter` (the loaders' batch, the step's
/// host generator, the backend's seed): `iter · N + rank` for replica `rank` of `N`, `iter` for a
/// single replica, so that the replicas of an iteration take the draws of `N` consecutive
/// single-replica iterations and a resume repeats them.
pub fn draw_index(replica: Option<&Replica>, iter: usize) -> u64 {
    match replica {
        Some(r) => (iter * r.count + r.rank) as u64,
        None => iter as u64,
    }
}

/// Registers `replica` on `device` (of the inner backend `B`) with the collective and waits until
/// all `replica.count` replicas have.
pub fn join<B: Backend>(replica: &Replica, device: B::Device) -> Result<()> {
    let config = CollectiveConfig::default().with_num_devices(replica.count);
    let peer = replica.peer();
    within(replica, "joining the replicas", move || register::<B>(peer, device, config))
}

/// Runs the blocking collective call `f` on a thread of its own and waits at most
/// `replica.timeout` for it: Burn's collective has no timeout, so a dead peer would hang it. On a
/// timeout the call is left blocked; the run is expected to stop on the error.
fn within<T: Send + 'static>(
    replica: &Replica,
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, CollectiveError> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("t2s-collective-{}", replica.rank))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| TrainError::Replica(format!("replica {}: {what}: cannot start a thread: {e}", replica.rank)))?;
    // Waited for in slices, so that a replica of this process that failed ([`abandon`]) ends
    // the wait at once instead of after the whole timeout.
    let deadline = Instant::now() + replica.timeout;
    loop {
        let now = Instant::now();
        if ABANDONED.load(Ordering::SeqCst) {
            return Err(TrainError::Replica(format!(
                "replica {} of {}: {what}: another replica of this process failed (its error is reported)",
                replica.rank, replica.count
            )));
        }
        if now >= deadline {
            return Err(TrainError::Replica(format!(
                "replica {} of {}: {what}: the other replicas did not answer within {} s; one of them has stopped (its output says why)",
                replica.rank,
                replica.count,
                replica.timeout.as_secs_f64()
            )));
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => return Err(TrainError::Replica(format!("replica {} of {}: {what}: {e:?}", replica.rank, replica.count))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(TrainError::Replica(format!(
                    "replica {} of {}: {what}: the collective call panicked",
                    replica.rank, replica.count
                )))
            }
        }
    }
}

/// Set when a replica of this process failed: the others stop waiting for it.
static ABANDONED: AtomicBool = AtomicBool::new(false);

/// Tells the other replicas of this process that one has failed, so that their collective calls
/// return an error now rather than at their timeout.
pub fn abandon() {
    ABANDONED.store(true, Ordering::SeqCst);
}

/// Readies this process for a new group of replicas (threads): Burn's collective forgets the
/// previous group (the collective of inner backend `B`) and no replica is marked failed. Call it
/// before starting the replicas' threads.
pub fn start_group<B: Backend>() {
    burn_collective::reset_collective::<B>();
    ABANDONED.store(false, Ordering::SeqCst);
}

#[cfg(test)]
mod tests;
