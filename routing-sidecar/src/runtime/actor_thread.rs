//! The node actor runs on a thread of its own, with a single-threaded
//! runtime for its timers; sockets, frame decoding, the local API and the
//! control client stay on the process's I/O runtime. The actor encodes the
//! routing messages it sends (`send_queue`).
//!
//! On a table transfer the receiving node's time splits about evenly
//! between the connection task (reading, framing, decoding, sharing ids)
//! and the engine; on one thread they take turns, on two they overlap
//! (measured: docs/benchmarks.md, Sidecar). The actor is still the one
//! owner of the engine, so what it does, and in which order, is unchanged:
//! commands arrive through the same channel in the same order.
//!
//! Tasks the actor starts (the dialers, and the connections they make) are
//! spawned on the I/O runtime through [`Shared::io`](super::node::Shared),
//! never on the actor's own runtime.

use tokio::sync::{mpsc, oneshot};

use crate::runtime::node::{Command, Node, Query};

/// Starts `node` on a new thread. The returned task ends when the actor
/// does (shutdown, or every command sender gone).
pub(super) fn spawn(
    node: Node,
    inbox: mpsc::Receiver<Command>,
    queries: mpsc::Receiver<Query>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("the node actor's runtime: {e}"))?;
    let (ended, on_end) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("fabric-node".into())
        .spawn(move || {
            runtime.block_on(node.run(inbox, queries));
            let _ = ended.send(());
        })
        .map_err(|e| format!("the node actor's thread: {e}"))?;
    Ok(tokio::spawn(async move {
        let _ = on_end.await;
    }))
}
