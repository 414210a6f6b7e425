//! Which protocol answers "next hop for destination D?": path-vector (the
//! default), link-state with path-vector fallback, or link-state only.
//! A pure function of the two answers, so the choice is testable alone and
//! the same in the API, the explain view and the forwarding path.

use serde::{Deserialize, Serialize};

use crate::routes::LinkStateRoute;
use fabric_core::ids::NodeId;
pub(crate) use fabric_core::link_state::RoutingMode;

/// The protocol whose answer was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    PathVector,
    LinkState,
}

/// The path-vector engine's selected route for a destination, reduced to
/// what the mode decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathVectorChoice {
    pub next_hop: NodeId,
    pub cost: u64,
}

/// The answer for one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeDecision {
    /// In id order; several only for link-state equal-cost multipath.
    pub next_hops: Vec<NodeId>,
    pub cost: u64,
    pub chosen_by: Protocol,
    /// `PreferLinkState` had to fall back to path-vector because SPF does
    /// not reach the destination.
    pub fallback: bool,
}

fn from_link_state(route: &LinkStateRoute) -> Option<ModeDecision> {
    (!route.next_hops.is_empty()).then(|| ModeDecision {
        next_hops: route.next_hops.clone(),
        cost: route.cost,
        chosen_by: Protocol::LinkState,
        fallback: false,
    })
}

fn from_path_vector(choice: &PathVectorChoice, fallback: bool) -> ModeDecision {
    ModeDecision {
        next_hops: vec![choice.next_hop.clone()],
        cost: choice.cost,
        chosen_by: Protocol::PathVector,
        fallback,
    }
}

/// Picks the next hop(s) for one destination under `mode`, from the
/// link-state route (if SPF reaches it) and the path-vector choice (if the
/// path-vector engine has one). `None`: no route under this mode.
pub fn decide(
    mode: RoutingMode,
    link_state: Option<&LinkStateRoute>,
    path_vector: Option<&PathVectorChoice>,
) -> Option<ModeDecision> {
    match mode {
        RoutingMode::PathVector => path_vector.map(|choice| from_path_vector(choice, false)),
        RoutingMode::PreferLinkState => {
            link_state.and_then(from_link_state).or_else(|| path_vector.map(|choice| from_path_vector(choice, true)))
        }
        RoutingMode::LinkStateOnly => link_state.and_then(from_link_state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::RouteScope;

    fn ls_route(hops: &[&str], cost: u64) -> LinkStateRoute {
        LinkStateRoute {
            destination: NodeId::from("d"),
            cost,
            next_hops: hops.iter().map(|h| NodeId::from(*h)).collect(),
            scope: RouteScope::IntraArea,
            areas: vec![],
            latency_us: 0,
            reliability: 1.0,
        }
    }

    fn pv(hop: &str, cost: u64) -> PathVectorChoice {
        PathVectorChoice { next_hop: NodeId::from(hop), cost }
    }

    fn hops(decision: &ModeDecision) -> Vec<&str> {
        decision.next_hops.iter().map(NodeId::as_str).collect()
    }

    #[test]
    fn path_vector_mode_ignores_link_state() {
        let ls = ls_route(&["a", "b"], 2);
        let decision = decide(RoutingMode::PathVector, Some(&ls), Some(&pv("c", 9))).unwrap();
        assert_eq!((hops(&decision), decision.chosen_by, decision.fallback), (vec!["c"], Protocol::PathVector, false));
        assert_eq!(decide(RoutingMode::PathVector, Some(&ls), None), None);
    }

    #[test]
    fn prefer_link_state_uses_spf_and_falls_back_where_spf_cannot_reach() {
        let ls = ls_route(&["a", "b"], 2);
        let decision = decide(RoutingMode::PreferLinkState, Some(&ls), Some(&pv("c", 1))).unwrap();
        assert_eq!((hops(&decision), decision.chosen_by, decision.cost), (vec!["a", "b"], Protocol::LinkState, 2));

        let decision = decide(RoutingMode::PreferLinkState, None, Some(&pv("c", 7))).unwrap();
        assert_eq!((hops(&decision), decision.chosen_by, decision.fallback), (vec!["c"], Protocol::PathVector, true));

        // A route without next hops is no route.
        let empty = ls_route(&[], 0);
        let decision = decide(RoutingMode::PreferLinkState, Some(&empty), Some(&pv("c", 7))).unwrap();
        assert!(decision.fallback);
        assert_eq!(decide(RoutingMode::PreferLinkState, None, None), None);
    }

    #[test]
    fn link_state_only_never_falls_back() {
        assert_eq!(decide(RoutingMode::LinkStateOnly, None, Some(&pv("c", 1))), None);
        let ls = ls_route(&["a"], 3);
        assert_eq!(decide(RoutingMode::LinkStateOnly, Some(&ls), None).unwrap().chosen_by, Protocol::LinkState);
    }

    #[test]
    fn modes_serialize_camel_case_and_default_to_path_vector() {
        assert_eq!(RoutingMode::default(), RoutingMode::PathVector);
        let json =
            serde_json::to_string(&[RoutingMode::PathVector, RoutingMode::PreferLinkState, RoutingMode::LinkStateOnly])
                .unwrap();
        assert_eq!(json, r#"["pathVector","preferLinkState","linkStateOnly"]"#);
        assert!(serde_json::from_str::<RoutingMode>(r#""ospf""#).is_err());
    }
}
