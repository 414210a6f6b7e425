//! Leader election with kube-lease-manager: the replicas compete for the
//! Lease `fabric-operator`; only the holder watches, serves distribution,
//! writes status and events. Losing the Lease ends the process (the
//! Deployment restarts it as a follower): a replica that was leader never
//! carries on as a follower with half-stopped tasks.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Lease name.
pub const LEASE_NAME: &str = "fabric-operator";
/// The lease is valid this long after its last renewal; a standby takes
/// over at most about this long after the leader died.
const LEASE_SECONDS: u64 = 15;
/// The holder renews this long before expiry (also the clock skew
/// tolerated between nodes).
const GRACE_SECONDS: u64 = 5;
/// On shutdown, wait this long for the Lease to be released (so a standby
/// takes over at once instead of after the lease expires).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The held Lease.
pub struct Leadership {
    receiver: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    lease: String,
}

/// Waits until this replica holds the Lease `namespace/fabric-operator`.
pub async fn acquire(client: Client, namespace: &str, identity: &str) -> Result<Leadership, String> {
    let lease = format!("{namespace}/{LEASE_NAME}");
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .with_field_manager("fabric-operator/leader")
        .build()
        .await
        .map_err(|e| format!("leader election: Lease {lease}: {e} (RBAC: get/create/patch leases)"))?;
    let (mut receiver, task) = manager.watch().await;
    tracing::info!(lease, identity, "waiting for leadership");
    loop {
        if *receiver.borrow_and_update() {
            tracing::info!(lease, identity, "leader");
            return Ok(Leadership { receiver, task, lease });
        }
        if receiver.changed().await.is_err() {
            let error = match task.await {
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(_)) => "the lease manager stopped".into(),
                Err(error) => error.to_string(),
            };
            return Err(format!("leader election on Lease {lease} failed: {error}"));
        }
    }
}

impl Leadership {
    /// Completes when the Lease is lost (another replica holds it, or the
    /// lease manager stopped), with the reason.
    pub async fn lost(&mut self) -> String {
        loop {
            if self.receiver.changed().await.is_err() {
                return format!("the manager of Lease {} stopped", self.lease);
            }
            if !*self.receiver.borrow_and_update() {
                return format!("Lease {} is held by another replica", self.lease);
            }
        }
    }

    /// Releases the Lease (shutdown).
    pub async fn release(self) {
        drop(self.receiver); // the manager releases the Lease when its channel closes
        match tokio::time::timeout(RELEASE_TIMEOUT, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = self.lease, "Lease released"),
            Ok(Ok(Err(error))) => tracing::warn!(lease = self.lease, %error, "Lease not released"),
            Ok(Err(error)) => tracing::warn!(lease = self.lease, %error, "lease manager task failed"),
            Err(_) => tracing::warn!(lease = self.lease, "Lease not released in time; it will expire"),
        }
    }
}
