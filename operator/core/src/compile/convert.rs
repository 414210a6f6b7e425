//! From the CRD-side mirror types to `fabric_routing`'s config types.

use fabric_core::config::{LinkMetrics, TieBreaker as EngineTieBreaker};
use fabric_core::link_state::{AreaId, RoutingMode as EngineRoutingMode, SummaryFilter};
use fabric_core::policy::{
    MatchList as EngineMatchList, PolicyMode as EnginePolicyMode, RoutePolicy as EnginePolicy,
    TagRules as EngineTagRules,
};

use crate::api::{LinkSpec, MatchList, PolicyMode, RouteFilter, RoutingMode, SummaryFilterSpec, TagRules, TieBreaker};

impl From<PolicyMode> for EnginePolicyMode {
    fn from(mode: PolicyMode) -> Self {
        match mode {
            PolicyMode::Enforce => EnginePolicyMode::Enforce,
            PolicyMode::DryRun => EnginePolicyMode::DryRun,
        }
    }
}

impl From<&MatchList> for EngineMatchList {
    fn from(list: &MatchList) -> Self {
        EngineMatchList { allow: list.allow.clone(), deny: list.deny.clone() }
    }
}

impl From<&TagRules> for EngineTagRules {
    fn from(tags: &TagRules) -> Self {
        EngineTagRules { allow_any: tags.allow_any.clone(), deny: tags.deny.clone() }
    }
}

impl From<TieBreaker> for EngineTieBreaker {
    fn from(tie_breaker: TieBreaker) -> Self {
        match tie_breaker {
            TieBreaker::HopCount => EngineTieBreaker::HopCount,
            TieBreaker::Latency => EngineTieBreaker::Latency,
            TieBreaker::Reliability => EngineTieBreaker::Reliability,
            TieBreaker::Advertiser => EngineTieBreaker::Advertiser,
        }
    }
}

impl From<RoutingMode> for EngineRoutingMode {
    fn from(mode: RoutingMode) -> Self {
        match mode {
            RoutingMode::PathVector => EngineRoutingMode::PathVector,
            RoutingMode::PreferLinkState => EngineRoutingMode::PreferLinkState,
            RoutingMode::LinkStateOnly => EngineRoutingMode::LinkStateOnly,
        }
    }
}

impl From<&LinkSpec> for LinkMetrics {
    fn from(link: &LinkSpec) -> Self {
        // Validation keeps reliability within [0, 1], where f32 is exact enough.
        LinkMetrics { cost: link.cost, latency_us: link.latency_us, reliability: link.reliability as f32 }
    }
}

impl RouteFilter {
    /// The engine policy for this filter under `mode`.
    pub fn to_engine_policy(&self, mode: PolicyMode) -> EnginePolicy {
        EnginePolicy {
            mode: mode.into(),
            advertisers: (&self.advertisers).into(),
            origins: (&self.origins).into(),
            destinations: (&self.destinations).into(),
            tags: (&self.tags).into(),
            max_hop_count: self.max_hop_count,
        }
    }
}

/// An export policy that advertises nothing (a receive-only neighbor).
/// Always enforced: targeting is not a filter to audit.
pub(super) fn advertise_nothing() -> EnginePolicy {
    EnginePolicy {
        destinations: EngineMatchList { allow: Some(Vec::new()), deny: Vec::new() },
        ..EnginePolicy::default()
    }
}

fn area_ids(areas: &[String]) -> Vec<AreaId> {
    areas.iter().map(|a| AreaId::from(a.as_str())).collect()
}

impl From<&SummaryFilterSpec> for SummaryFilter {
    fn from(filter: &SummaryFilterSpec) -> Self {
        SummaryFilter {
            target_area: AreaId::from(filter.target_area.as_str()),
            allow_source_areas: filter.allow_source_areas.as_deref().map(area_ids),
            deny_source_areas: area_ids(&filter.deny_source_areas),
            allow_destinations: filter.allow_destinations.clone(),
            deny_destinations: filter.deny_destinations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_every_rule_and_take_the_mode() {
        let filter = RouteFilter {
            advertisers: MatchList { allow: Some(vec!["eu-*".into()]), deny: vec!["eu-bad".into()] },
            origins: MatchList::default(),
            destinations: MatchList { allow: None, deny: vec!["secret-*".into()] },
            tags: TagRules { allow_any: Some(vec!["gold".into()]), deny: vec!["bronze".into()] },
            max_hop_count: Some(8),
        };
        let policy = filter.to_engine_policy(PolicyMode::DryRun);
        assert_eq!(policy.mode, EnginePolicyMode::DryRun);
        assert_eq!(policy.advertisers.allow.as_deref(), Some(&["eu-*".to_string()][..]));
        assert_eq!(policy.advertisers.deny, ["eu-bad"]);
        assert_eq!(policy.destinations.deny, ["secret-*"]);
        assert_eq!(policy.tags.allow_any.as_deref(), Some(&["gold".to_string()][..]));
        assert_eq!(policy.tags.deny, ["bronze"]);
        assert_eq!(policy.max_hop_count, Some(8));
        assert_eq!(RouteFilter::default().to_engine_policy(PolicyMode::Enforce), EnginePolicy::default());
    }

    #[test]
    fn advertise_nothing_allows_no_destination() {
        let policy = advertise_nothing();
        assert_eq!(policy.destinations.allow, Some(Vec::new()));
        assert_eq!(policy.mode, EnginePolicyMode::Enforce);
    }
}
