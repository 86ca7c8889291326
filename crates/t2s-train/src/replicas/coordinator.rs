//! Burn's global orchestrator, which the machines of a multi-node run (`t2s train --nodes`) meet
//! at to register: node 0 runs it on a thread of its own. It only takes part in registration;
//! the all-reduces go from node to node. It stops on Ctrl-C or SIGTERM (its own handler), which
//! the training, already registered, does not need it for.

use std::net::TcpListener;

use crate::{Result, TrainError};

/// Starts the orchestrator on `port` (all interfaces) on a background thread, for the life of
/// the process. Fails at once, naming the port, when it is taken.
pub fn start_coordinator(port: u16) -> Result<()> {
    TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| TrainError::Usage(format!("--coordinator: cannot listen on port {port} ({e}); give another port")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("t2s-coordinator")
        .enable_all()
        .build()
        .map_err(|e| TrainError::Replica(format!("cannot start the coordinator's runtime: {e}")))?;
    std::thread::Builder::new()
        .name("t2s-coordinator".into())
        .spawn(move || runtime.block_on(burn_collective::start_global_orchestrator(port)))
        .map_err(|e| TrainError::Replica(format!("cannot start the coordinator's thread: {e}")))?;
    Ok(())
}
