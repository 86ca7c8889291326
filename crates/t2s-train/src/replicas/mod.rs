//! Data-parallel replicas on Burn's collective operations (`burn-collective`, docs/data-parallel.md):
//! joining the group of replicas and averaging the parameter gradients across it before each
//! optimiser step, every collective call bounded in time so that a replica that stopped makes the
//! others fail with a clear error instead of hanging.

mod gradients;

pub use gradients::mean_gradients;

use std::sync::mpsc;
use std::time::Duration;

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
    match rx.recv_timeout(replica.timeout) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(TrainError::Replica(format!("replica {} of {}: {what}: {e:?}", replica.rank, replica.count))),
        Err(_) => Err(TrainError::Replica(format!(
            "replica {} of {}: {what}: the other replicas did not answer within {} s; one of them has stopped (its output says why)",
            replica.rank,
            replica.count,
            replica.timeout.as_secs_f64()
        ))),
    }
}

#[cfg(test)]
mod tests;
