//! RoutePolicy: validation, and the choice of the one policy that applies
//! to a sidecar. The highest priority wins; among equal highest priorities
//! every one gets a Conflict condition and the smallest namespace/name
//! wins (deterministic, and stable when an unrelated object changes).

use std::collections::BTreeSet;

use fabric_core::SidecarConfig;
use fabric_core::config::{DampeningConfig, SelectionConfig, StabilityConfig};
use fabric_core::ids::NodeId;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::report::Report;
use crate::api::duration::GoDuration;
use crate::api::{DampeningSpec, RoutePolicy, RoutePolicySpec};
use crate::index::{Index, ObjectKey, ObjectKind, SidecarInfo};
use crate::validation::check_route_policy;

/// A valid RoutePolicy with its durations parsed.
pub(crate) struct ResolvedRoutePolicy<'a> {
    pub key: ObjectKey,
    pub spec: &'a RoutePolicySpec,
    stability: StabilityConfig,
}

fn parsed(duration: &GoDuration) -> Option<std::time::Duration> {
    // Validation already refused unparsable durations; `None` cannot occur
    // for a resolved policy but is handled rather than unwrapped.
    duration.parse().ok()
}

fn dampening(spec: &DampeningSpec) -> Option<DampeningConfig> {
    Some(DampeningConfig {
        enabled: spec.enabled,
        withdrawal_penalty: f64::from(spec.withdrawal_penalty),
        attribute_change_penalty: f64::from(spec.attribute_change_penalty),
        suppress_threshold: f64::from(spec.suppress_threshold),
        reuse_threshold: f64::from(spec.reuse_threshold),
        half_life: parsed(&spec.half_life)?,
        max_suppress: parsed(&spec.max_suppress)?,
    })
}

fn stability(spec: &RoutePolicySpec) -> Option<StabilityConfig> {
    let hold_down = match &spec.stability.hold_down {
        Some(hold_down) => parsed(hold_down)?,
        None => std::time::Duration::ZERO,
    };
    let dampening = match &spec.stability.dampening {
        Some(damp) => dampening(damp)?,
        None => DampeningConfig::default(),
    };
    Some(StabilityConfig { hold_down, dampening })
}

/// The valid RoutePolicies in namespace/name order; invalid ones are
/// reported and left out.
pub(crate) fn resolve<'a>(index: &'a Index, report: &mut Report) -> Vec<ResolvedRoutePolicy<'a>> {
    let mut resolved = Vec::new();
    for (name, policy) in index.objects::<RoutePolicy>() {
        let key = ObjectKey::new(ObjectKind::RoutePolicy, name);
        let violations = check_route_policy(&policy.spec);
        if !violations.is_empty() {
            report.invalid(key, violations);
            continue;
        }
        match stability(&policy.spec) {
            Some(stability) => resolved.push(ResolvedRoutePolicy { key, spec: &policy.spec, stability }),
            None => report.refuse(key, "Invalid", "a duration does not parse".to_owned()),
        }
    }
    resolved
}

/// The policy that applies to `sidecar`, recording equal-priority
/// conflicts. `selecting`: the positions in `policies` of the policies that
/// select it, ascending ([`super::population::Population::selections`]).
pub(crate) fn select<'p, 'a>(
    policies: &'p [ResolvedRoutePolicy<'a>],
    selecting: &[usize],
    sidecar: &SidecarInfo,
    report: &mut Report,
) -> Option<&'p ResolvedRoutePolicy<'a>> {
    let selecting: Vec<&ResolvedRoutePolicy> = selecting.iter().map(|&position| &policies[position]).collect();
    let top = selecting.iter().map(|p| p.spec.priority).max()?;
    // `policies` is in namespace/name order, so the first tied one is the
    // smallest namespace/name.
    let tied: Vec<&ResolvedRoutePolicy> = selecting.into_iter().filter(|p| p.spec.priority == top).collect();
    let winner = tied.first().copied()?;
    if tied.len() > 1 {
        let parties: BTreeSet<ObjectKey> = tied.iter().map(|p| p.key.clone()).collect();
        let subject = format!("equal priority {top}");
        report.conflict("EqualPriority", &subject, &parties, &winner.key, Some(&sidecar.node_id));
    }
    Some(winner)
}

impl ResolvedRoutePolicy<'_> {
    /// The namespace and selector of the sidecars it applies to.
    pub(super) fn selector(&self) -> (&str, &LabelSelector) {
        (&self.key.namespace, &self.spec.sidecar_selector)
    }

    /// Writes this policy's part of the config.
    pub(super) fn apply(&self, config: &mut SidecarConfig) {
        let spec = self.spec;
        config.import_policy = spec.import.to_engine_policy(spec.mode);
        config.export_policy = spec.export.to_engine_policy(spec.mode);
        config.security.require_signatures = spec.security.require_signatures;
        config.security.sign_v1 = spec.security.sign_v1;
        config.security.refuse_v1_messages = spec.security.refuse_v1_messages;
        config.security.allowed_advertisers = spec
            .security
            .allowed_advertisers
            .as_ref()
            .map(|ids| ids.iter().map(|id| NodeId::from(id.as_str())).collect());
        config.stability = self.stability.clone();
        if let Some(tie_breakers) = &spec.tie_breakers {
            config.selection = SelectionConfig { tie_breakers: tie_breakers.iter().map(|t| (*t).into()).collect() };
        }
    }
}
