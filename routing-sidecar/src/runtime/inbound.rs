//! What a connection read, on its way to the node actor: batches of
//! decoded messages, how many of them may wait at the actor, and the
//! vectors they travel in.
//!
//! The actor runs on a thread of its own, so a batch is allocated on the
//! connection's thread and emptied on the actor's. Two things keep that
//! cheap during a table transfer:
//!
//! - **Vectors come back.** A handled batch's vector returns to its
//!   connection, emptied, and carries the next batch. A transfer of 100k
//!   routes so reuses three vectors instead of allocating (and, on first
//!   touch, having the kernel zero) a fresh megabyte for each batch of
//!   4,096, which measured as half the connection thread's time.
//! - **Ids are the batch's own.** The messages of one batch share the
//!   peer's id and the ids on their paths (`SharedIds`), but not with the
//!   next batch: the connection's thread counts references up on one set
//!   of ids while the actor's counts down on another, instead of both
//!   taking turns on the same cache line for every message.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use fabric_core::ids::NodeId;
use fabric_core::message::Message;
use fabric_core::shared_ids::SharedIds;
use fabric_link_state::LinkStateUpdate;

/// Messages a batch collects at most while the actor is busy; past this
/// the connection stops reading.
pub(super) const MAX_BATCH: usize = 4096;

/// Batches of one connection handed to the actor and not yet handled: one
/// being handled, one waiting. Beyond that the connection collects the
/// next batch, then stops reading, and TCP slows the peer down: decoded
/// messages per connection stay bounded (3 × `MAX_BATCH`, and the rest of
/// one run of frames, `codec::MAX_FRAMES_PER_RUN`).
pub(super) const BATCHES_IN_FLIGHT: usize = 2;

/// Messages a new vector has room for: what one burst of reads from a
/// socket usually holds.
const FIRST_CAPACITY: usize = 512;

/// Vectors a connection keeps for its next batches: one for each batch in
/// flight and the one being collected. After a table transfer that is at
/// most about 3 MB per connection, given back when it closes.
const SPARE_VECTORS: usize = BATCHES_IN_FLIGHT + 1;

/// Routing messages as the engine takes them, each with its sender.
pub(super) type Messages = Vec<(NodeId, Message)>;

/// What one read burst collected for the actor.
pub(super) struct Batch {
    pub(super) messages: Messages,
    pub(super) link_state: Vec<LinkStateUpdate>,
    /// The ids this batch's messages share (see the module docs).
    pub(super) ids: SharedIds,
    peer: NodeId,
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        self.messages.len() + self.link_state.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn push(&mut self, message: Message) {
        self.messages.push((self.peer.clone(), message));
    }
}

/// One connection's batches: the slots that bound those in flight and the
/// vectors of handled ones.
pub(super) struct Inbound {
    peer: NodeId,
    slots: Arc<Semaphore>,
    spare: Spare,
}

type Spare = Arc<Mutex<Vec<Messages>>>;

impl Inbound {
    pub(super) fn new(peer: &NodeId) -> Self {
        Self {
            peer: peer.clone(),
            slots: Arc::new(Semaphore::new(BATCHES_IN_FLIGHT)),
            spare: Arc::new(Mutex::new(Vec::with_capacity(SPARE_VECTORS))),
        }
    }

    /// An empty batch, in a handled batch's vector when one came back.
    pub(super) fn batch(&self) -> Batch {
        let messages = lock(&self.spare).pop().unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY));
        // A fresh reference count, not the connection's (module docs).
        let peer = NodeId::from(self.peer.as_str());
        let ids = SharedIds::for_peer(&peer);
        Batch { messages, link_state: Vec::new(), ids, peer }
    }

    /// A slot for one more batch at the actor, if one is free now.
    pub(super) fn try_slot(&self) -> Option<InFlight> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(InFlight { _slot: slot, spare: self.spare.clone() })
    }

    /// A slot for one more batch at the actor, once one is free.
    pub(super) async fn slot(&self) -> InFlight {
        let Ok(slot) = self.slots.clone().acquire_owned().await else { unreachable!("the semaphore is never closed") };
        InFlight { _slot: slot, spare: self.spare.clone() }
    }
}

/// A batch handed to the actor and not yet handled: holds one of its
/// connection's `BATCHES_IN_FLIGHT` slots until dropped or `handled`.
#[derive(Debug)]
pub struct InFlight {
    _slot: OwnedSemaphorePermit,
    spare: Spare,
}

impl InFlight {
    /// The actor is done with the batch: its vector goes back, emptied, to
    /// carry one of the connection's next batches. Before the slot frees,
    /// so that a connection waiting for the slot finds the vector.
    pub fn handled(self, mut messages: Messages) {
        messages.clear();
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_VECTORS {
            spare.push(messages);
        }
    }
}

fn lock(spare: &Spare) -> std::sync::MutexGuard<'_, Vec<Messages>> {
    // Held for a push or a pop only; a panic there cannot leave the list
    // half-changed, so a poisoned lock is still sound.
    spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of_table(peer: &str) -> Message {
        Message::EndOfTable { advertiser: peer.into() }
    }

    #[test]
    fn a_handled_batch_s_vector_carries_the_next_batch() {
        let inbound = Inbound::new(&"a".into());
        let mut batch = inbound.batch();
        for _ in 0..MAX_BATCH {
            batch.push(end_of_table("a"));
        }
        let grown = batch.messages.capacity();
        let slot = inbound.try_slot().expect("a free slot");
        slot.handled(batch.messages);
        let next = inbound.batch();
        assert!(next.messages.is_empty());
        assert_eq!(next.messages.capacity(), grown, "the same vector, emptied");
        assert_eq!(inbound.batch().messages.capacity(), FIRST_CAPACITY, "one vector came back, one was taken");
    }

    #[test]
    fn slots_bound_the_batches_in_flight_and_free_when_handled() {
        let inbound = Inbound::new(&"a".into());
        let slots: Vec<InFlight> = (0..BATCHES_IN_FLIGHT).map(|_| inbound.try_slot().expect("free")).collect();
        assert!(inbound.try_slot().is_none(), "every slot taken");
        for slot in slots {
            slot.handled(Vec::new());
        }
        assert!(inbound.try_slot().is_some());
    }

    #[test]
    fn no_more_vectors_are_kept_than_can_be_in_use() {
        let inbound = Inbound::new(&"a".into());
        for _ in 0..SPARE_VECTORS + 2 {
            InFlight { _slot: inbound.slots.clone().try_acquire_owned().unwrap(), spare: inbound.spare.clone() }
                .handled(Vec::with_capacity(8));
        }
        assert_eq!(lock(&inbound.spare).len(), SPARE_VECTORS);
    }

    #[test]
    fn each_batch_has_ids_of_its_own_for_the_same_peer() {
        let peer: NodeId = "a".into();
        let inbound = Inbound::new(&peer);
        let (mut first, mut second) = (inbound.batch(), inbound.batch());
        first.push(end_of_table("a"));
        first.push(end_of_table("a"));
        second.push(end_of_table("a"));
        let (one, two) = (&first.messages[0].0, &second.messages[0].0);
        assert_eq!((one, two), (&peer, &peer));
        let same_allocation = |x: &NodeId, y: &NodeId| std::ptr::eq(x.as_str(), y.as_str());
        assert!(!same_allocation(one, two), "separate reference counts");
        assert!(!same_allocation(one, &peer));
        assert!(same_allocation(one, &first.messages[1].0), "shared within the batch");
    }
}
