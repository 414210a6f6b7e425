//! Sharing of the ids a neighbor repeats in every message, within one
//! batch of its messages.
//!
//! A neighbor names the same few thousand nodes (itself, transit nodes,
//! origins) and the same few tag sets in message after message; the decoder
//! would give every occurrence a fresh allocation. The connection hands
//! each one out as the copy it has already seen, so the routing engine (one
//! thread, the bottleneck) drops a reference count instead of freeing 4 to
//! 9 strings per announcement. The connection starts a new set per batch
//! (`runtime/inbound.rs` in the sidecar): the engine, on another thread,
//! counts down on one batch's copies while the connection counts up on the
//! next one's.
//! Destinations are not shared: each usually appears once per table.
//!
//! Memory is bounded: a set that reaches its capacity starts over, so ids
//! made up by a hostile or buggy neighbor cannot grow it without limit.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use foldhash::{HashSet, HashSetExt};

use crate::ids::{NodeId, Tag};
use crate::message::Message;

/// Node ids kept per session before the set starts over: well above the
/// nodes of a large fabric.
pub const DEFAULT_NODE_CAPACITY: usize = 16_384;
/// Tag lists kept per session before the set starts over.
pub const DEFAULT_TAG_LIST_CAPACITY: usize = 1_024;

#[derive(Debug)]
pub struct SharedIds {
    nodes: HashSet<NodeId>,
    /// The node `node` returned last: the messages of a burst mostly come
    /// from one advertiser, whose id is also their path's first hop, so
    /// most lookups are answered by one comparison instead of a hash.
    last_node: Option<NodeId>,
    tag_lists: HashSet<Arc<[Tag]>>,
    /// The list `tag_list` returned last, for the same reason as
    /// `last_node`: a burst of messages mostly carries one tag set.
    last_tag_list: Option<Arc<[Tag]>>,
    node_capacity: usize,
    tag_list_capacity: usize,
}

impl Default for SharedIds {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_NODE_CAPACITY, DEFAULT_TAG_LIST_CAPACITY)
    }
}

impl SharedIds {
    /// For a session with `peer`: its own id, which starts every path it
    /// sends, is shared from the start, so that the engine's checks that a
    /// message comes from its sender compare one pointer instead of two
    /// strings.
    pub fn for_peer(peer: &NodeId) -> Self {
        let mut shared = Self::default();
        shared.nodes.insert(peer.clone());
        shared
    }

    pub fn with_capacity(node_capacity: usize, tag_list_capacity: usize) -> Self {
        SharedIds {
            nodes: HashSet::new(),
            last_node: None,
            tag_lists: HashSet::new(),
            last_tag_list: None,
            node_capacity,
            tag_list_capacity,
        }
    }

    /// Replaces every node id and the tag list of `message` by the shared
    /// copy of an equal one (remembering those not seen yet). The message
    /// stays equal to what it was.
    pub fn share(&mut self, message: &mut Message) {
        let (advertiser, path, tags) = match message {
            Message::Announcement(a) => (&mut a.advertiser, a.path.as_mut_slice(), Some(&mut a.tags)),
            Message::Withdrawal(w) => (&mut w.advertiser, w.path.as_mut_slice(), None),
            Message::EndOfTable { advertiser } => (advertiser, [].as_mut_slice(), None),
        };
        share_one::<_, str>(&mut self.nodes, self.node_capacity, advertiser);
        for hop in path {
            share_one::<_, str>(&mut self.nodes, self.node_capacity, hop);
        }
        if let Some(tags) = tags {
            share_one::<_, [Tag]>(&mut self.tag_lists, self.tag_list_capacity, tags);
        }
    }

    /// The shared copy of node id `id` (remembered if new), for a decoder
    /// that reads ids from the bytes (`wire_routing`).
    pub fn node(&mut self, id: &str) -> NodeId {
        if let Some(last) = &self.last_node
            && last.as_str() == id
        {
            return last.clone();
        }
        let node = match self.nodes.get(id) {
            Some(shared) => shared.clone(),
            None => {
                let mut node = NodeId::from(id);
                share_one::<_, str>(&mut self.nodes, self.node_capacity, &mut node);
                node
            }
        };
        self.last_node = Some(node.clone());
        node
    }

    /// The shared copy of a tag list equal to `tags` (remembered if new).
    pub fn tag_list(&mut self, tags: &[&str]) -> Arc<[Tag]> {
        if let Some(last) = &self.last_tag_list
            && last.len() == tags.len()
            && last.iter().zip(tags).all(|(shared, &tag)| shared.as_str() == tag)
        {
            return last.clone();
        }
        let mut list: Arc<[Tag]> = tags.iter().map(|&tag| Tag::from(tag)).collect();
        share_one::<_, [Tag]>(&mut self.tag_lists, self.tag_list_capacity, &mut list);
        self.last_tag_list = Some(list.clone());
        list
    }

    /// Ids currently remembered (node ids, tag lists).
    pub fn len(&self) -> (usize, usize) {
        (self.nodes.len(), self.tag_lists.len())
    }
}

fn share_one<Id, Key>(seen: &mut HashSet<Id>, capacity: usize, id: &mut Id)
where
    Id: Clone + Eq + Hash + Borrow<Key>,
    Key: Eq + Hash + ?Sized,
{
    let key: &Key = (*id).borrow();
    if let Some(shared) = seen.get(key) {
        *id = shared.clone();
        return;
    }
    if seen.len() >= capacity {
        // This also forgets the peer's seeded id: the copy in its next
        // message is shared from then on, and the sender checks compare
        // strings again (still correct, only slower).
        seen.clear();
    }
    seen.insert(id.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{RouteAnnouncement, RouteMetrics};

    fn announcement(path: &[&str], tags: &[&str]) -> Message {
        Message::Announcement(RouteAnnouncement {
            destination: "svc".into(),
            path: path.iter().map(|&hop| NodeId::from(hop)).collect(),
            hop_count: path.len() as u32,
            metrics: RouteMetrics { cost: 1, latency_us: 1, reliability: 1.0 },
            advertiser: NodeId::from(path[0]),
            epoch: 1,
            ttl_ms: 1000,
            issued_at_ms: None,
            tags: tags.iter().map(|&tag| Tag::from(tag)).collect(),
            signature: None,
        })
    }

    fn hops(message: &Message) -> (&NodeId, &[NodeId], &[Tag]) {
        match message {
            Message::Announcement(a) => (&a.advertiser, &a.path, &a.tags),
            _ => unreachable!("announcements only"),
        }
    }

    #[test]
    fn repeated_ids_come_back_as_the_first_copy_and_messages_stay_equal() {
        let mut shared = SharedIds::default();
        let mut first = announcement(&["a", "t", "o"], &["gold"]);
        let mut second = announcement(&["a", "t", "o"], &["gold"]);
        let expected = second.clone();
        shared.share(&mut first);
        shared.share(&mut second);
        assert_eq!(second, expected, "sharing does not change the message");
        let ((adv1, path1, tags1), (adv2, path2, tags2)) = (hops(&first), hops(&second));
        assert!(std::ptr::eq(adv1.as_str(), adv2.as_str()), "advertiser shared");
        assert!(std::ptr::eq(adv1.as_str(), path2[0].as_str()), "advertiser and path[0] are one id");
        for (one, two) in path1.iter().zip(path2) {
            assert!(std::ptr::eq(one.as_str(), two.as_str()), "{one} shared");
        }
        assert!(std::ptr::eq(tags1, tags2), "tag list shared");
        assert_eq!(shared.len(), (3, 1));
    }

    #[test]
    fn a_session_shares_its_peer_id_with_what_the_peer_sends() {
        let peer = NodeId::from("a");
        let mut shared = SharedIds::for_peer(&peer);
        let mut message = announcement(&["a", "o"], &[]);
        shared.share(&mut message);
        let (advertiser, path, _) = hops(&message);
        assert!(std::ptr::eq(advertiser.as_str(), peer.as_str()));
        assert!(std::ptr::eq(path[0].as_str(), peer.as_str()));
    }

    #[test]
    fn node_returns_the_shared_copy_whether_looked_up_last_or_not() {
        let mut shared = SharedIds::default();
        let (a, b) = (shared.node("a"), shared.node("b"));
        for (id, first) in [("b", &b), ("a", &a), ("a", &a), ("b", &b)] {
            let again = shared.node(id);
            assert_eq!(again.as_str(), id);
            assert!(std::ptr::eq(again.as_str(), first.as_str()), "{id} shared");
        }
        assert_eq!(shared.len(), (2, 0));
    }

    #[test]
    fn a_full_set_starts_over_instead_of_growing() {
        let mut shared = SharedIds::with_capacity(2, 1);
        for i in 0..10 {
            let name = format!("n{i}");
            shared.share(&mut announcement(&[name.as_str()], &[name.as_str()]));
            let (nodes, tags) = shared.len();
            assert!(nodes <= 2 && tags <= 1, "bounded: {nodes} nodes, {tags} tag lists");
        }
    }
}
