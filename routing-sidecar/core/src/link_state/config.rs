//! `LinkStateConfig`: the knobs of link-state mode, with their defaults and
//! the rules a config must satisfy. The defaults keep link-state out of the
//! forwarding decision (`mode: pathVector`), so enabling the router changes
//! nothing until the mode says so. Every knob is described in
//! `docs/link-state.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::link_state::area::{AreaGraph, AreaGraphError, SummaryFilter, SummaryPolicy};
use crate::link_state::area_id::AreaId;
use crate::link_state::lsa::UpdateLimits;

/// How routes are chosen. Serialized camelCase: `pathVector`,
/// `preferLinkState`, `linkStateOnly`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RoutingMode {
    /// Path-vector only; link-state, if running, is informational.
    #[default]
    PathVector,
    /// Link-state where SPF reaches the destination, path-vector elsewhere.
    PreferLinkState,
    /// Link-state only; destinations SPF cannot reach have no route.
    LinkStateOnly,
}

/// Sizes and lifetimes the database enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsdbLimits {
    pub max_entries: usize,
    pub max_ttl: Duration,
    pub flush_hold: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LinkStateConfig {
    /// Which protocol answers next-hop queries. Default `pathVector`.
    pub mode: RoutingMode,
    /// Most equal-cost next hops kept per destination (lowest ids first).
    /// Default 4; 1 to 64.
    pub max_paths: usize,
    /// Lifetime this node puts on its own updates. Default 5m.
    #[serde(with = "crate::time::duration_text")]
    pub update_ttl: Duration,
    /// Own updates are re-originated (new sequence, same content) this
    /// often, so they never age out while the node lives. Default 100s;
    /// must be below `updateTtl`.
    #[serde(with = "crate::time::duration_text")]
    pub refresh_interval: Duration,
    /// Received TTLs are capped at this. Default 1h.
    #[serde(with = "crate::time::duration_text")]
    pub max_ttl: Duration,
    /// How long a flushed (withdrawn) update is remembered so that older
    /// copies still in flight are refused. Default 60s.
    #[serde(with = "crate::time::duration_text")]
    pub flush_hold: Duration,
    /// Refuse unsigned updates and updates signed by unknown keys. Default
    /// false (a bad signature is refused either way).
    pub require_signatures: bool,
    /// Advertise the destinations this node serves in its updates. Default
    /// true. Nodes that predate destinations cannot verify an update that
    /// carries them, so set it to false on every node for a rolling upgrade
    /// from such a version, and back once all run the new one. Left out of
    /// the serialized config at its default, for the same reason.
    #[serde(skip_serializing_if = "is_true")]
    pub advertise_destinations: bool,
    /// The area graph. Areas a node has links in but that are not listed
    /// here have no parents (nothing is summarized out of them).
    pub areas: Vec<AreaConfig>,
    /// At most one filter per target area. Default: no filter, every child
    /// area is summarized into every parent.
    pub summary_filters: Vec<SummaryFilter>,
    /// Summary compression: most entries exported per source area, for
    /// areas without their own `maxSummaryEntries`. Default none (no cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_summary_entries: Option<usize>,
    pub limits: LinkStateLimits,
    /// When route computation runs after the database changes (initial
    /// delay, hold, maximum wait; see `fabric_link_state::spf_throttle`).
    /// Left out of the text at its default, so that a config the operator
    /// compiles stays readable by sidecars that predate the knob.
    #[serde(skip_serializing_if = "SpfThrottleConfig::is_default")]
    pub spf_throttle: SpfThrottleConfig,
}

/// One area and its place in the area graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AreaConfig {
    pub id: AreaId,
    /// Areas this area's destinations are summarized into by border routers
    /// that belong to both. Several parents are allowed; cycles are not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<AreaId>,
    /// Most entries exported from this area into each parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_summary_entries: Option<usize>,
}

/// Hard limits on what neighbors may make this node store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LinkStateLimits {
    /// Links in one update. Default 1024.
    pub max_links_per_update: usize,
    /// Summary entries in one update, node entries and destination entries
    /// together. Default 4096.
    pub max_summary_entries_per_update: usize,
    /// Destinations an origin advertises in one update. Default 4096.
    /// Left out of the serialized config at its default, so a config
    /// compiled for sidecars that predate the knob (which refuse unknown
    /// fields) stays readable by them, and its version hash stays the same.
    #[serde(skip_serializing_if = "is_default_max_destinations")]
    pub max_destinations_per_update: usize,
    /// Origins stored per area. Default 65536.
    pub max_lsdb_entries_per_area: usize,
}

const DEFAULT_MAX_DESTINATIONS_PER_UPDATE: usize = 4096;

fn is_true(value: &bool) -> bool {
    *value
}

fn is_default_max_destinations(value: &usize) -> bool {
    *value == DEFAULT_MAX_DESTINATIONS_PER_UPDATE
}

impl Default for LinkStateLimits {
    fn default() -> Self {
        Self {
            max_links_per_update: 1024,
            max_summary_entries_per_update: 4096,
            max_destinations_per_update: DEFAULT_MAX_DESTINATIONS_PER_UPDATE,
            max_lsdb_entries_per_area: 65_536,
        }
    }
}

impl Default for LinkStateConfig {
    fn default() -> Self {
        Self {
            mode: RoutingMode::PathVector,
            max_paths: 4,
            update_ttl: Duration::from_secs(300),
            refresh_interval: Duration::from_secs(100),
            max_ttl: Duration::from_secs(3600),
            flush_hold: Duration::from_secs(60),
            require_signatures: false,
            advertise_destinations: true,
            areas: Vec::new(),
            summary_filters: Vec::new(),
            max_summary_entries: None,
            limits: LinkStateLimits::default(),
            spf_throttle: SpfThrottleConfig::default(),
        }
    }
}

fn check_patterns(field: &str, patterns: &[String]) -> Result<(), ConfigError> {
    for (i, pattern) in patterns.iter().enumerate() {
        let body = pattern.strip_suffix('*').unwrap_or(pattern);
        if pattern.is_empty() || body.contains('*') {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("{pattern:?}: a pattern is a node id, optionally ending in one '*'"),
            ));
        }
    }
    Ok(())
}

fn check_defined(field: String, area: &AreaId, defined: &BTreeSet<&AreaId>) -> Result<(), ConfigError> {
    if defined.contains(area) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("area {area} is not listed in areas")))
    }
}

impl LinkStateConfig {
    /// Every rule a config must satisfy, each failure naming its field
    /// within the section (`maxPaths`, `areas[2].parents[0]`; a
    /// `SidecarConfig` puts them under `linkState.`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.max_paths) {
            return Err(ConfigError::new("maxPaths", format!("must be within 1..=64, got {}", self.max_paths)));
        }
        if self.update_ttl.is_zero() || self.update_ttl > Duration::from_millis(u64::from(u32::MAX)) {
            return Err(ConfigError::new("updateTtl", "must be above zero and below 49 days"));
        }
        if self.refresh_interval.is_zero() || self.refresh_interval >= self.update_ttl {
            return Err(ConfigError::new(
                "refreshInterval",
                "must be above zero and shorter than updateTtl, or own updates expire between refreshes",
            ));
        }
        if self.max_ttl < self.update_ttl {
            return Err(ConfigError::new("maxTtl", "must be at least updateTtl"));
        }
        if self.flush_hold.is_zero() {
            return Err(ConfigError::new("flushHold", "must be above zero"));
        }
        let limits = [
            ("limits.maxLinksPerUpdate", self.limits.max_links_per_update),
            ("limits.maxSummaryEntriesPerUpdate", self.limits.max_summary_entries_per_update),
            ("limits.maxDestinationsPerUpdate", self.limits.max_destinations_per_update),
            ("limits.maxLsdbEntriesPerArea", self.limits.max_lsdb_entries_per_area),
        ];
        for (field, value) in limits {
            if value == 0 {
                return Err(ConfigError::new(field, "must be above zero"));
            }
        }
        if self.max_summary_entries == Some(0) {
            return Err(ConfigError::new("maxSummaryEntries", "must be above zero when set"));
        }
        self.spf_throttle.validate()?;

        let mut defined: BTreeSet<&AreaId> = BTreeSet::new();
        for (i, area) in self.areas.iter().enumerate() {
            if area.id.as_str().is_empty() {
                return Err(ConfigError::new(format!("areas[{i}].id"), "must not be empty"));
            }
            if !defined.insert(&area.id) {
                return Err(ConfigError::new(format!("areas[{i}].id"), format!("area {} is listed twice", area.id)));
            }
            if area.max_summary_entries == Some(0) {
                return Err(ConfigError::new(format!("areas[{i}].maxSummaryEntries"), "must be above zero when set"));
            }
        }
        for (i, area) in self.areas.iter().enumerate() {
            for (j, parent) in area.parents.iter().enumerate() {
                let field = format!("areas[{i}].parents[{j}]");
                if parent == &area.id {
                    return Err(ConfigError::new(field, "an area cannot be its own parent"));
                }
                check_defined(field, parent, &defined)?;
            }
        }
        if let Err(error) = self.area_graph() {
            return Err(ConfigError::new("areas", error));
        }

        let mut targets = BTreeSet::new();
        for (i, filter) in self.summary_filters.iter().enumerate() {
            let field = format!("summaryFilters[{i}]");
            check_defined(format!("{field}.targetArea"), &filter.target_area, &defined)?;
            if !targets.insert(&filter.target_area) {
                return Err(ConfigError::new(
                    format!("{field}.targetArea"),
                    format!("a second filter for area {}", filter.target_area),
                ));
            }
            for (j, area) in filter.allow_source_areas.iter().flatten().enumerate() {
                check_defined(format!("{field}.allowSourceAreas[{j}]"), area, &defined)?;
            }
            for (j, area) in filter.deny_source_areas.iter().enumerate() {
                check_defined(format!("{field}.denySourceAreas[{j}]"), area, &defined)?;
            }
            if let Some(allow) = &filter.allow_destinations {
                check_patterns(&format!("{field}.allowDestinations"), allow)?;
            }
            check_patterns(&format!("{field}.denyDestinations"), &filter.deny_destinations)?;
        }
        Ok(())
    }

    /// Parses and validates YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: LinkStateConfig = serde_norway::from_str(text).map_err(ConfigError::yaml)?;
        config.validate()?;
        Ok(config)
    }

    pub fn area_graph(&self) -> Result<AreaGraph, AreaGraphError> {
        AreaGraph::new(self.areas.iter().map(|a| (a.id.clone(), a.parents.clone())))
    }

    /// The area graph, filters and caps in the form the router uses.
    pub fn summary_policy(&self) -> Result<SummaryPolicy, ConfigError> {
        let graph = self.area_graph().map_err(|e| ConfigError::new("areas", e))?;
        let filters: BTreeMap<AreaId, SummaryFilter> =
            self.summary_filters.iter().map(|f| (f.target_area.clone(), f.clone())).collect();
        let caps = self.areas.iter().filter_map(|a| a.max_summary_entries.map(|cap| (a.id.clone(), cap))).collect();
        Ok(SummaryPolicy { graph, filters, caps, default_cap: self.max_summary_entries })
    }

    pub fn update_limits(&self) -> UpdateLimits {
        UpdateLimits {
            max_links: self.limits.max_links_per_update,
            max_summary_entries: self.limits.max_summary_entries_per_update,
            max_destinations: self.limits.max_destinations_per_update,
        }
    }

    pub fn lsdb_limits(&self) -> LsdbLimits {
        LsdbLimits {
            max_entries: self.limits.max_lsdb_entries_per_area,
            max_ttl: self.max_ttl,
            flush_hold: self.flush_hold,
        }
    }

    /// The TTL this node writes into its own updates, in milliseconds.
    pub fn update_ttl_ms(&self) -> u32 {
        u32::try_from(self.update_ttl.as_millis()).unwrap_or(u32::MAX)
    }
}

/// The three knobs, `spfThrottle` in the link-state config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SpfThrottleConfig {
    /// Delay of the first computation after a quiet period. Default 20ms.
    #[serde(with = "crate::time::duration_text")]
    pub initial_delay: Duration,
    /// Least time between a computation and the next one; doubles while
    /// changes keep coming. Default 100ms.
    #[serde(with = "crate::time::duration_text")]
    pub hold: Duration,
    /// Cap of the doubled hold, and the longest a change waits for its
    /// computation. Default 500ms.
    #[serde(with = "crate::time::duration_text")]
    pub max_wait: Duration,
}

impl Default for SpfThrottleConfig {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(20),
            hold: Duration::from_millis(100),
            max_wait: Duration::from_millis(500),
        }
    }
}

/// The longest `maxWait` accepted: beyond it routes would lag the database
/// for longer than any session hold time.
const MAX_WAIT_LIMIT: Duration = Duration::from_secs(60);

impl SpfThrottleConfig {
    /// No throttling: every change is computed in the call that brought it.
    pub const IMMEDIATE: Self = Self { initial_delay: Duration::ZERO, hold: Duration::ZERO, max_wait: Duration::ZERO };

    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the knobs; field names are relative to the link-state section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_wait > MAX_WAIT_LIMIT {
            return Err(ConfigError::new(
                "spfThrottle.maxWait",
                format!("must be at most {}", crate::time::format_duration(MAX_WAIT_LIMIT)),
            ));
        }
        if self.initial_delay > self.max_wait {
            return Err(ConfigError::new("spfThrottle.initialDelay", "must not exceed spfThrottle.maxWait"));
        }
        if self.hold > self.max_wait {
            return Err(ConfigError::new("spfThrottle.hold", "must not exceed spfThrottle.maxWait"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: &LinkStateConfig) -> String {
        config.validate().unwrap_err().field
    }

    #[test]
    fn defaults_are_valid_and_keep_path_vector() {
        let config = LinkStateConfig::default();
        config.validate().unwrap();
        assert_eq!(config.mode, RoutingMode::PathVector);
        assert_eq!(config.max_paths, 4);
        let parsed = LinkStateConfig::from_yaml("{}").unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn yaml_uses_camel_case_and_refuses_unknown_fields() {
        let yaml = r#"
mode: preferLinkState
maxPaths: 2
updateTtl: 2m
refreshInterval: 30s
areas:
  - id: edge-a
    parents: [core]
    maxSummaryEntries: 10
  - id: core
summaryFilters:
  - targetArea: core
    denyDestinations: ["secret-*"]
"#;
        let config = LinkStateConfig::from_yaml(yaml).unwrap();
        assert_eq!(config.mode, RoutingMode::PreferLinkState);
        assert_eq!(config.refresh_interval, Duration::from_secs(30));
        let policy = config.summary_policy().unwrap();
        assert_eq!(policy.cap_for(&AreaId::from("edge-a")), Some(10));
        assert!(policy.graph.is_parent(&AreaId::from("edge-a"), &AreaId::from("core")));

        let error = LinkStateConfig::from_yaml("maxPath: 2").unwrap_err();
        assert!(error.reason.contains("unknown field"), "{error}");
    }

    #[test]
    fn the_destination_knobs_are_written_only_when_set() {
        // Sidecars that predate the knob refuse unknown fields: at its
        // default it is left out, as before it existed.
        let json = serde_json::to_value(LinkStateConfig::default()).unwrap();
        assert!(json["limits"].get("maxDestinationsPerUpdate").is_none(), "{json}");
        let config = LinkStateConfig::from_yaml("limits: {maxDestinationsPerUpdate: 7}").unwrap();
        assert_eq!(config.limits.max_destinations_per_update, 7);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["limits"]["maxDestinationsPerUpdate"], 7);

        let json = serde_json::to_value(LinkStateConfig::default()).unwrap();
        assert!(json.get("advertiseDestinations").is_none(), "{json}");
        let config = LinkStateConfig::from_yaml("advertiseDestinations: false").unwrap();
        assert!(!config.advertise_destinations);
        assert_eq!(serde_json::to_value(&config).unwrap()["advertiseDestinations"], false);
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut config = LinkStateConfig { max_paths: 0, ..Default::default() };
        assert_eq!(field_of(&config), "maxPaths");
        config = LinkStateConfig { refresh_interval: Duration::from_secs(400), ..Default::default() };
        assert_eq!(field_of(&config), "refreshInterval");
        config = LinkStateConfig { max_ttl: Duration::from_secs(1), ..Default::default() };
        assert_eq!(field_of(&config), "maxTtl");
        config = LinkStateConfig { flush_hold: Duration::ZERO, ..Default::default() };
        assert_eq!(field_of(&config), "flushHold");
        config = LinkStateConfig::default();
        config.limits.max_lsdb_entries_per_area = 0;
        assert_eq!(field_of(&config), "limits.maxLsdbEntriesPerArea");
        config = LinkStateConfig::default();
        config.limits.max_destinations_per_update = 0;
        assert_eq!(field_of(&config), "limits.maxDestinationsPerUpdate");

        let area = |id: &str, parents: &[&str]| AreaConfig {
            id: AreaId::from(id),
            parents: parents.iter().map(|p| AreaId::from(*p)).collect(),
            max_summary_entries: None,
        };
        config = LinkStateConfig { areas: vec![area("a", &[]), area("a", &[])], ..Default::default() };
        assert_eq!(field_of(&config), "areas[1].id");
        config = LinkStateConfig { areas: vec![area("a", &["b", "zz"]), area("b", &[])], ..Default::default() };
        assert_eq!(field_of(&config), "areas[0].parents[1]");
        config = LinkStateConfig { areas: vec![area("a", &["b"]), area("b", &["a"])], ..Default::default() };
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "areas");
        assert!(error.reason.contains("a -> b -> a"), "{error}");

        config = LinkStateConfig {
            areas: vec![area("a", &[])],
            summary_filters: vec![SummaryFilter::new(AreaId::from("nope"))],
            ..Default::default()
        };
        assert_eq!(field_of(&config), "summaryFilters[0].targetArea");
        config.summary_filters =
            vec![SummaryFilter { deny_destinations: vec!["x*y".into()], ..SummaryFilter::new(AreaId::from("a")) }];
        assert_eq!(field_of(&config), "summaryFilters[0].denyDestinations[0]");
    }

    #[test]
    fn validation_names_the_field() {
        let field = |config: SpfThrottleConfig| config.validate().unwrap_err().field;
        assert_eq!(
            field(SpfThrottleConfig { initial_delay: Duration::from_millis(2000), ..SpfThrottleConfig::default() }),
            "spfThrottle.initialDelay"
        );
        assert_eq!(
            field(SpfThrottleConfig { hold: Duration::from_millis(2000), ..SpfThrottleConfig::default() }),
            "spfThrottle.hold"
        );
        assert_eq!(
            field(SpfThrottleConfig { max_wait: Duration::from_secs(61), ..SpfThrottleConfig::default() }),
            "spfThrottle.maxWait"
        );
        SpfThrottleConfig::default().validate().unwrap();
        SpfThrottleConfig::IMMEDIATE.validate().unwrap();
    }
}
