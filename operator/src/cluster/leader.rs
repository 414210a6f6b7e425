//! Leader election with kube-lease-manager: the replicas compete for the
//! Lease `fabric-operator`; only the holder watches, serves distribution,
//! writes status and events. Losing the Lease ends the process (the
//! Deployment restarts it as a follower): a replica that was leader never
//! carries on as a follower with half-stopped tasks.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Lease name.
pub(super) const LEASE_NAME: &str = "fabric-operator";
/// The lease is valid this long after its last renewal; a standby takes
/// over at most about this long after the leader died.
const LEASE_SECONDS: u64 = 15;
/// The holder renews this long before expiry (also the clock skew
/// tolerated between nodes).
const GRACE_SECONDS: u64 = 5;
/// On shutdown, wait this long for the Lease to be released (so a standby
/// takes over at once instead of after the lease expires).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why this replica could not take part in leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election: Lease {lease}: {source} (RBAC: get/create/patch leases)")]
    Manager {
        lease: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("leader election on Lease {lease} failed: {source}")]
    Election {
        lease: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// How a held Lease was lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error("the manager of Lease {lease} stopped")]
    ManagerStopped { lease: String },
    #[error("Lease {lease} is held by another replica")]
    TakenOver { lease: String },
}

/// The held Lease.
pub(super) struct Leadership {
    receiver: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    lease: String,
}

/// Waits until this replica holds the Lease `namespace/fabric-operator`.
///
/// kube-lease-manager lets a standby sleep until the holder's lease
/// expires (up to [`LEASE_SECONDS`]), even when the holder released it on
/// shutdown. So the standby also watches the Lease, and when it sees it
/// released it looks again at once with a fresh manager (whose state is
/// read anew): a rolling update hands over in well under a second.
pub(super) async fn acquire(client: Client, namespace: &str, identity: &str) -> Result<Leadership, LeaderError> {
    let lease = format!("{namespace}/{LEASE_NAME}");
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    tracing::info!(lease, identity, "waiting for leadership");
    let manager = loop {
        let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager("fabric-operator/leader")
            .build()
            .await
            .map_err(|source| LeaderError::Manager { lease: lease.clone(), source })?;
        tokio::select! {
            changed = manager.changed() => match changed {
                Ok(true) => break manager,
                Ok(false) => continue,
                Err(source) => return Err(LeaderError::Election { lease, source }),
            },
            () = released(&leases, identity) => {
                tracing::info!(lease, identity, "the Lease was released; trying to take it");
            }
        }
    };
    tracing::info!(lease, identity, "leader");
    let (receiver, task) = manager.watch().await;
    Ok(Leadership { receiver, task, lease })
}

/// Completes when the Lease loses its holder (released, or deleted); never
/// when it cannot be watched (then the lease manager's expiry-based wait
/// alone applies).
async fn released(leases: &Api<Lease>, identity: &str) {
    use futures::StreamExt;
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE_NAME}"));
    let mut events = std::pin::pin!(watcher(leases.clone(), config));
    while let Some(event) = events.next().await {
        let holder_gone = |lease: &Lease| {
            lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_none_or(|holder| holder.is_empty())
        };
        match event {
            // Only a change counts: a Lease that had no holder when the
            // manager was built is taken by the manager itself.
            Ok(watcher::Event::Apply(lease)) if holder_gone(&lease) => return,
            Ok(watcher::Event::Delete(_)) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(identity, %error, "cannot watch the Lease; waiting for its expiry instead");
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Leadership {
    /// Completes when the Lease is lost (another replica holds it, or the
    /// lease manager stopped), with the reason.
    pub(super) async fn lost(&mut self) -> LeaseLost {
        loop {
            if self.receiver.changed().await.is_err() {
                return LeaseLost::ManagerStopped { lease: self.lease.clone() };
            }
            if !*self.receiver.borrow_and_update() {
                return LeaseLost::TakenOver { lease: self.lease.clone() };
            }
        }
    }

    /// Releases the Lease (shutdown).
    pub(super) async fn release(self) {
        drop(self.receiver); // the manager releases the Lease when its channel closes
        match tokio::time::timeout(RELEASE_TIMEOUT, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = self.lease, "Lease released"),
            Ok(Ok(Err(error))) => tracing::warn!(lease = self.lease, %error, "Lease not released"),
            Ok(Err(error)) => tracing::warn!(lease = self.lease, %error, "lease manager task failed"),
            Err(_) => tracing::warn!(lease = self.lease, "Lease not released in time; it will expire"),
        }
    }
}
