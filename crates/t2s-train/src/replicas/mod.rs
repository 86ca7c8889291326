//! Data-parallel replicas on Burn's collective operations (`burn-collective`, docs/data-parallel.md):
//! joining the group of replicas and averaging the parameter gradients across it before each
//! optimiser step, every collective call bounded in time so that a replica that stopped makes the
//! others fail with a clear error instead of hanging.

mod across;
mod agreement;
mod coordinator;
mod gradients;
mod running_stats;

pub use across::{count_flags, sum_across, sum_class_sums, sum_host};
pub use agreement::{check_same_run, run_digests};
pub use coordinator::start_coordinator;
pub use gradients::mean_gradients;
pub use running_stats::mean_running_stats;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn_collective::{register, AllReduceStrategy, CollectiveConfig, CollectiveError, PeerId};
use burn_communication::Address;

use crate::{Result, TrainError};

/// One replica of a data-parallel run: its rank among `count`, and how long it waits for the
/// others at each collective operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    /// 0-based rank among all replicas, on every machine (rank 0 writes the run folder).
    pub rank: usize,
    /// Number of replicas in the run, on every machine.
    pub count: usize,
    /// Number of replicas in this process (its devices); `count` with a single machine.
    pub local: usize,
    /// The longest wait for the other replicas at one collective operation.
    pub timeout: Duration,
}

/// This process's place among several machines (`t2s train --nodes`): set once per process,
/// before its replicas join ([`set_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nodes {
    /// Number of machines (processes), each with the same number of replicas.
    pub count: usize,
    /// `host:port` of Burn's global orchestrator (node 0 starts it: [`start_coordinator`]).
    pub coordinator: String,
    /// `host:port` at which the other nodes reach this one (its tensor data service).
    pub address: String,
}

static NODES: Mutex<Option<Nodes>> = Mutex::new(None);

/// Makes this process's replicas join the other machines' through `nodes` (`None`: one machine).
pub fn set_nodes(nodes: Option<Nodes>) {
    *NODES.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
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
    let mut config = CollectiveConfig::default().with_num_devices(replica.local);
    if let Some(nodes) = NODES.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        let address = |what: &str, host_port: &str| {
            Address::from_str(&format!("ws://{host_port}"))
                .map_err(|e| TrainError::Usage(format!("{what} {host_port}: not a host:port address ({e:?})")))
        };
        let port = nodes
            .address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| TrainError::Usage(format!("--node-address {}: give host:port, the port a number", nodes.address)))?;
        // Burn's global ring all-reduce fails on tensors with a side smaller than the node count
        // (a one-value flag); the tree works for any shape.
        config = config
            .with_num_nodes(nodes.count as u32)
            .with_global_address(address("--coordinator", &nodes.coordinator)?)
            .with_node_address(address("--node-address", &nodes.address)?)
            .with_data_service_port(port)
            .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2));
    }
    let peer = replica.peer();
    within(replica, JOINING, move || register::<B>(peer, device, config))
}

/// What [`join`] does, in messages.
const JOINING: &str = "joining the replicas";

/// The replicas' last meeting, after rank 0 wrote the last checkpoint: when every replica gets
/// past it, the run is complete everywhere. Across machines each process then stays a moment
/// longer: the others may still be fetching this exchange's result from its data service.
pub fn leave<B: Backend>(replica: &Replica, device: &B::Device) -> Result<()> {
    count_flags::<B>(replica, &[true], device)?;
    linger_across_machines();
    Ok(())
}

/// Whether this process's replicas meet other machines' ([`set_nodes`]).
fn across_machines() -> bool {
    NODES.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Across machines, waits 2 s before this process leaves the group (the end of a run, or an
/// error all replicas agreed on): the others may still be fetching the last exchange's result
/// from its data service.
fn linger_across_machines() {
    if across_machines() {
        std::thread::sleep(Duration::from_secs(2));
    }
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
            // Across machines a peer that died in the middle of a sync leaves no error to
            // report, only silence.
            let why = if across_machines() && what == JOINING {
                "a node has not started, or was started with another --nodes or --coordinator (or has stopped: its output says why)"
            } else if across_machines() {
                "one of them has stopped or the connection to another machine was lost (their output says why), or rank 0 evaluated or saved for longer than --replica-timeout (raise it above that)"
            } else {
                "one of them has stopped (its output says why), or rank 0 evaluated or saved for longer than --replica-timeout (raise it above that)"
            };
            return Err(TrainError::Replica(format!(
                "replica {} of {}: {what}: the other replicas did not answer within {} s; {why}",
                replica.rank,
                replica.count,
                replica.timeout.as_secs_f64()
            )));
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => {
                return Err(TrainError::Replica(format!("replica {} of {}: {what}: {}", replica.rank, replica.count, explain(&e))))
            }
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

/// What a collective error means for the user.
fn explain(e: &CollectiveError) -> String {
    let text = format!("{e:?}");
    if text.contains("PeerLost") {
        // Burn numbers nodes in the order they reached the coordinator, not by --node-rank.
        format!("the connection to another machine was lost; it has stopped (its output says why) ({text}; Burn's NodeId counts nodes in the order they arrived, not by --node-rank)")
    } else if text.contains("PeerSentIncoherentTensor") {
        format!(
            "another machine sent a tensor of another size: every node must run the same configuration (network, classes, batch) ({text})"
        )
    } else if text.contains("RegisterParamsMismatch") {
        format!("the nodes were started with different --nodes (or devices per node): start every node with the same --nodes and --device count ({text})")
    } else if text.contains("DoubleRegister") {
        format!("this replica registered twice: two nodes were given the same --node-rank and --node-address? ({text})")
    } else if text.contains("LocalServerMissing") {
        "the collective's server has stopped after an earlier failure (above)".to_string()
    } else {
        text
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
