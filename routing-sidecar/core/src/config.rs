//! `SidecarConfig`: everything one routing node needs, as written in YAML by
//! hand or compiled by the operator. The same type is applied live; an
//! invalid config is refused with the field that is wrong and the config in
//! force stays.
//!
//! Every knob is documented in `docs/configuration.md`. Defaults keep plain
//! behaviour: no signatures enforced, no hold-down, no dampening, no
//! link-state.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, Tag};
use crate::link_state::{AreaId, LinkStateConfig};
use crate::policy::RoutePolicy;
use crate::security::{KeyRegistry, PublicKeyEntry};
use crate::time::Timestamp;

/// A refused config: which field, and why. The one error of every config
/// check (the whole `SidecarConfig`, its `linkState` section, the node's
/// signing key); callers read the field and the reason, none needs a kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("invalid config: {field}: {reason}")]
pub struct ConfigError {
    /// Path of the offending field from the top of the checked document,
    /// e.g. `neighbors[1].link.reliability`, `linkState.areas[2].parents[0]`
    /// (`areas[2].parents[0]` from the link-state section's own check);
    /// `line L column C` when the YAML itself does not parse.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self { field: field.into(), reason: reason.to_string() }
    }

    /// The same error for a check that ran on the section `section`:
    /// the field becomes `section.field`.
    pub fn within(self, section: &str) -> Self {
        Self { field: format!("{section}.{}", self.field), reason: self.reason }
    }

    /// A document that does not parse (syntax, a type, an unknown field),
    /// named by its line and column.
    pub(crate) fn yaml(error: serde_norway::Error) -> Self {
        let field = error.location().map(|l| format!("line {} column {}", l.line(), l.column()));
        Self::new(field.unwrap_or_else(|| "document".into()), error)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarConfig {
    /// This node's id; it appears in every path it advertises.
    pub node_id: NodeId,
    /// Opaque version of this config, reported back (set by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub neighbors: Vec<NeighborConfig>,
    /// Destinations this node originates.
    #[serde(default)]
    pub originate: Vec<LocalRoute>,
    /// Import policy for neighbors without their own.
    #[serde(default)]
    pub import_policy: RoutePolicy,
    /// Export policy for neighbors without their own.
    #[serde(default)]
    pub export_policy: RoutePolicy,
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub stability: StabilityConfig,
    #[serde(default)]
    pub selection: SelectionConfig,
    #[serde(default)]
    pub timers: TimerConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub session: SessionConfig,
    /// Link-state mode (`docs/link-state.md`); absent: path-vector only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<LinkStateConfig>,
    /// The link-state areas this node is in and which of its links belong
    /// to each. Empty: every link is in the area `backbone`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_state_areas: Vec<LinkStateAreaMembership>,
}

/// The area of links whose node lists no `linkStateAreas`.
pub const DEFAULT_LINK_STATE_AREA: &str = "backbone";

/// One link-state area this node is in. Its links to `neighbors` belong to
/// the area; a link can be in several areas (the neighbor listed in each).
/// A node in two or more areas is an area border router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkStateAreaMembership {
    pub area: AreaId,
    /// Configured neighbors whose links are in this area. Absent: every
    /// neighbor. Both ends must put their link in the same area, or the
    /// link is not used (each end's updates are refused by the other as
    /// `area_mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbors: Option<Vec<NodeId>>,
}

/// Default `session.maxQueuedBytes`: a full table of about 500k unsigned
/// routes with typical names (about 130 bytes each on the wire), or 250k
/// signed ones, fits; memory held for a peer that stops reading stays
/// within a small multiple of it.
pub const DEFAULT_MAX_QUEUED_BYTES: u64 = 64 * 1024 * 1024;

fn is_default_max_queued_bytes(bytes: &u64) -> bool {
    *bytes == DEFAULT_MAX_QUEUED_BYTES
}

/// Smallest `session.maxQueuedBytes` accepted (also never below
/// `limits.maxMessageBytes`, or one message could end any session).
pub const MIN_MAX_QUEUED_BYTES: u64 = 64 * 1024;

/// Peer session timers and limits (used by the sidecar, not the engine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A peer silent for this long is declared lost; keepalives go out at a
    /// third of it. The smaller of the two peers' values is used.
    #[serde(with = "crate::time::duration_text")]
    pub hold_time: Duration,
    /// A peer sending more messages per second, sustained, is disconnected
    /// (its routes are kept as stale, as for a graceful restart). Bursts of
    /// up to ten seconds' worth pass, so a whole-table transfer is fine.
    pub max_messages_per_second: u32,
    /// Bytes (wire size) queued for one peer and not yet written to it. A
    /// message that would queue more ends the session (`send_queue_full`):
    /// the peer does not read as fast as this node sends, and the node
    /// never waits for nor drops a message to a peer. A new session gets
    /// the whole table queued at once, so this must hold a full table.
    /// Left out of the YAML at its default, so that sidecars that do not
    /// know the field read configs written by those that do (the operator
    /// is upgraded before its sidecars), and the configs' content hashes
    /// stay as they were.
    #[serde(skip_serializing_if = "is_default_max_queued_bytes")]
    pub max_queued_bytes: u64,
    /// First reconnect delay; doubles per failed attempt.
    #[serde(with = "crate::time::duration_text")]
    pub reconnect_initial: Duration,
    /// Longest reconnect delay.
    #[serde(with = "crate::time::duration_text")]
    pub reconnect_max: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hold_time: Duration::from_secs(3),
            max_messages_per_second: 50_000,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// Cost of the link to a neighbor, added to every route learned from it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LinkMetrics {
    pub cost: u32,
    pub latency_us: u32,
    pub reliability: f32,
}

impl Default for LinkMetrics {
    fn default() -> Self {
        Self { cost: 1, latency_us: 0, reliability: 1.0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NeighborConfig {
    pub id: NodeId,
    /// Where the sidecar dials this neighbor (`host:port`); the engine
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub link: LinkMetrics,
    /// Replaces the global import policy for routes from this neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<RoutePolicy>,
    /// Replaces the global export policy for routes sent to this neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<RoutePolicy>,
}

/// A destination this node serves itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRoute {
    pub destination: crate::ids::DestinationId,
    #[serde(default)]
    pub cost: u32,
    #[serde(default)]
    pub latency_us: u32,
    #[serde(default = "one")]
    pub reliability: f32,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn one() -> f32 {
    1.0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Reject unsigned announcements and signatures by unknown keys. When
    /// false, unsigned routes are accepted and signed ones are still
    /// verified when their key is known (a bad signature is always rejected).
    pub require_signatures: bool,
    /// When set, only these advertisers (neighbors) are accepted at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_advertisers: Option<Vec<NodeId>>,
    /// Public keys of advertisers, several per advertiser during rotation.
    /// Shared: the operator gives every sidecar of a fabric the same list,
    /// so its compiled configs hold one copy, not one per sidecar.
    pub trusted_keys: std::sync::Arc<[TrustedKey]>,
    /// Entries in the verification cache (0 disables it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_cache_size: Option<usize>,
    /// The key this node signs with, set by the operator's key rotation.
    /// It must be one of this node's own `trustedKeys`, and the node's
    /// signing key (from the operator's snapshot, `--signing-key` or the
    /// state directory) must carry this key id, or the config is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_id: Option<crate::ids::KeyId>,
    /// Sign announcements and withdrawals as protocol v1 (no issue time)
    /// instead of v2: only while sidecars that verify v1 only are still in
    /// the fabric (docs/protocol.md, "Versions"). Written only when true,
    /// so configs stay readable by those sidecars.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sign_v1: bool,
    /// Refuse announcements and withdrawals without a signed issue time
    /// (protocol v1): set once every sidecar signs v2, so none can be
    /// replayed after its tombstone expired.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refuse_v1_messages: bool,
    /// How far the clocks of two nodes may disagree: a message issued more
    /// than this in the future is refused, and one is valid for
    /// `timers.maxTtl` minus this after it was issued. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::duration_text::optional")]
    pub max_clock_skew: Option<Duration>,
}

pub const DEFAULT_VERIFICATION_CACHE_SIZE: usize = 65_536;
/// Default `security.maxClockSkew`.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);

impl SecurityConfig {
    pub fn max_clock_skew(&self) -> Duration {
        self.max_clock_skew.unwrap_or(DEFAULT_MAX_CLOCK_SKEW)
    }
}

impl SidecarConfig {
    /// How long after it was issued a v2 announcement or withdrawal is
    /// accepted: `timers.maxTtl` minus `security.maxClockSkew`. Tombstones
    /// live `timers.maxTtl`, so a recorded message replayed after its
    /// tombstone is gone is too old.
    pub fn message_validity(&self) -> Duration {
        self.timers.max_ttl.saturating_sub(self.security.max_clock_skew())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustedKey {
    pub advertiser: NodeId,
    pub key_id: crate::ids::KeyId,
    /// Standard base64 of the 32-byte ed25519 public key.
    pub public_key: String,
    /// RFC 3339 start of validity (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// RFC 3339 end of validity (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StabilityConfig {
    /// After a withdrawal, routes for the same (destination, next hop) are
    /// held back this long. Zero disables hold-down.
    #[serde(with = "crate::time::duration_text")]
    pub hold_down: Duration,
    pub dampening: DampeningConfig,
}

/// RFC 2439-style flap dampening per (destination, advertiser).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DampeningConfig {
    pub enabled: bool,
    pub withdrawal_penalty: f64,
    pub attribute_change_penalty: f64,
    pub suppress_threshold: f64,
    pub reuse_threshold: f64,
    #[serde(with = "crate::time::duration_text")]
    pub half_life: Duration,
    #[serde(with = "crate::time::duration_text")]
    pub max_suppress: Duration,
}

impl Default for DampeningConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            withdrawal_penalty: 1000.0,
            attribute_change_penalty: 500.0,
            suppress_threshold: 2000.0,
            reuse_threshold: 750.0,
            half_life: Duration::from_secs(15 * 60),
            max_suppress: Duration::from_secs(60 * 60),
        }
    }
}

/// Comparisons applied, in order, after the score (path cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TieBreaker {
    /// Fewer hops wins.
    HopCount,
    /// Lower accumulated latency wins.
    Latency,
    /// Higher reliability wins.
    Reliability,
    /// Lexicographically lower advertiser id wins.
    Advertiser,
}

impl TieBreaker {
    pub fn label(self) -> &'static str {
        match self {
            TieBreaker::HopCount => "hop_count",
            TieBreaker::Latency => "latency",
            TieBreaker::Reliability => "reliability",
            TieBreaker::Advertiser => "advertiser",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Order of the tie-breakers after the score. Whatever is listed, the
    /// engine ends with advertiser id and then path, so the order is total.
    pub tie_breakers: Vec<TieBreaker>,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self {
            tie_breakers: vec![
                TieBreaker::HopCount,
                TieBreaker::Latency,
                TieBreaker::Reliability,
                TieBreaker::Advertiser,
            ],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TimerConfig {
    /// TTL this node puts on what it advertises.
    #[serde(with = "crate::time::duration_text")]
    pub route_ttl: Duration,
    /// How often this node re-advertises its best routes (refresh before TTL).
    #[serde(with = "crate::time::duration_text")]
    pub refresh_interval: Duration,
    /// Received TTLs are capped at this.
    #[serde(with = "crate::time::duration_text")]
    pub max_ttl: Duration,
    /// How long routes of a neighbor that went down for a graceful restart
    /// are kept as stale before being purged.
    #[serde(with = "crate::time::duration_text")]
    pub graceful_restart_window: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            route_ttl: Duration::from_secs(90),
            refresh_interval: Duration::from_secs(30),
            max_ttl: Duration::from_secs(600),
            graceful_restart_window: Duration::from_secs(120),
        }
    }
}

/// Hard limits on what peers may send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_path_length: usize,
    pub max_tags: usize,
    pub max_string_bytes: usize,
    /// Routes stored per neighbor (like BGP maximum-prefix); further new
    /// destinations from that neighbor are rejected and counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_routes_per_neighbor: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_path_length: 64,
            max_tags: 32,
            max_string_bytes: 253,
            max_routes_per_neighbor: None,
        }
    }
}

impl Limits {
    /// The decoder limits; link-state counts at their defaults (see
    /// `SidecarConfig::decode_limits` for the ones a session uses).
    pub fn decode_limits(&self) -> crate::wire::DecodeLimits {
        crate::wire::DecodeLimits {
            max_message_bytes: self.max_message_bytes,
            max_path_length: self.max_path_length,
            max_tags: self.max_tags,
            max_string_bytes: self.max_string_bytes,
            max_links: crate::wire::DEFAULT_MAX_LINKS,
            max_summary_entries: crate::wire::DEFAULT_MAX_SUMMARY_ENTRIES,
            max_destinations: crate::wire::DEFAULT_MAX_DESTINATIONS,
        }
    }
}

fn parse_rfc3339(field: &str, value: &str) -> Result<Timestamp, ConfigError> {
    Timestamp::from_rfc3339(value).map_err(|reason| ConfigError::new(field, reason))
}

fn check_reliability(field: String, value: f32) -> Result<(), ConfigError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("must be within [0, 1], got {value}")))
    }
}

fn check_id(field: String, value: &str, limits: &Limits) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if value.len() > limits.max_string_bytes {
        return Err(ConfigError::new(
            field,
            format!("{} bytes, more than limits.maxStringBytes {}", value.len(), limits.max_string_bytes),
        ));
    }
    Ok(())
}

fn check_patterns(field: &str, patterns: &[String]) -> Result<(), ConfigError> {
    for (i, pattern) in patterns.iter().enumerate() {
        let body = pattern.strip_suffix('*').unwrap_or(pattern);
        if pattern.is_empty() || body.contains('*') {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("{pattern:?}: a pattern is a name, optionally ending in one '*'"),
            ));
        }
    }
    Ok(())
}

fn check_policy(field: &str, policy: &RoutePolicy) -> Result<(), ConfigError> {
    let lists =
        [("advertisers", &policy.advertisers), ("origins", &policy.origins), ("destinations", &policy.destinations)];
    for (name, list) in lists {
        if let Some(allow) = &list.allow {
            check_patterns(&format!("{field}.{name}.allow"), allow)?;
        }
        check_patterns(&format!("{field}.{name}.deny"), &list.deny)?;
    }
    if let Some(allow) = &policy.tags.allow_any {
        check_patterns(&format!("{field}.tags.allowAny"), allow)?;
    }
    check_patterns(&format!("{field}.tags.deny"), &policy.tags.deny)
}

impl SidecarConfig {
    /// A config with defaults for everything but the node id.
    pub fn new(node_id: impl Into<NodeId>) -> Self {
        Self {
            node_id: node_id.into(),
            version: None,
            neighbors: Vec::new(),
            originate: Vec::new(),
            import_policy: RoutePolicy::default(),
            export_policy: RoutePolicy::default(),
            security: SecurityConfig::default(),
            stability: StabilityConfig::default(),
            selection: SelectionConfig::default(),
            timers: TimerConfig::default(),
            limits: Limits::default(),
            session: SessionConfig::default(),
            link_state: None,
            link_state_areas: Vec::new(),
        }
    }

    /// Parses and validates YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: SidecarConfig = serde_norway::from_str(text).map_err(ConfigError::yaml)?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("config serializes")
    }

    pub fn neighbor(&self, id: &str) -> Option<&NeighborConfig> {
        self.neighbors.iter().find(|n| n.id.as_str() == id)
    }

    /// Every rule a config must satisfy, each failure naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.key_registry()?;
        self.validate_except_keys()
    }

    /// Every check of [`validate`](Self::validate) but the decoding of the
    /// trusted keys: for a caller that checked the same key list once for
    /// many configs (the operator's compiler, which gives every sidecar the
    /// same keys).
    pub fn validate_except_keys(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if limits.max_path_length == 0 || limits.max_tags == 0 || limits.max_string_bytes == 0 {
            return Err(ConfigError::new("limits", "limits must be greater than zero"));
        }
        if limits.max_message_bytes < 256 {
            return Err(ConfigError::new("limits.maxMessageBytes", "must be at least 256"));
        }
        check_id("nodeId".into(), self.node_id.as_str(), limits)?;
        let mut seen = HashSet::new();
        for (i, neighbor) in self.neighbors.iter().enumerate() {
            let field = format!("neighbors[{i}]");
            check_id(format!("{field}.id"), neighbor.id.as_str(), limits)?;
            if neighbor.id == self.node_id {
                return Err(ConfigError::new(format!("{field}.id"), "a node cannot be its own neighbor"));
            }
            if !seen.insert(&neighbor.id) {
                return Err(ConfigError::new(format!("{field}.id"), format!("duplicate neighbor {}", neighbor.id)));
            }
            check_reliability(format!("{field}.link.reliability"), neighbor.link.reliability)?;
            if let Some(import) = &neighbor.import {
                check_policy(&format!("{field}.import"), import)?;
            }
            if let Some(export) = &neighbor.export {
                check_policy(&format!("{field}.export"), export)?;
            }
        }
        let mut destinations = HashSet::new();
        for (i, route) in self.originate.iter().enumerate() {
            let field = format!("originate[{i}]");
            check_id(format!("{field}.destination"), route.destination.as_str(), limits)?;
            if !destinations.insert(&route.destination) {
                return Err(ConfigError::new(
                    format!("{field}.destination"),
                    format!("duplicate destination {}", route.destination),
                ));
            }
            check_reliability(format!("{field}.reliability"), route.reliability)?;
            if route.tags.len() > limits.max_tags {
                return Err(ConfigError::new(format!("{field}.tags"), "more tags than limits.maxTags"));
            }
        }
        check_policy("importPolicy", &self.import_policy)?;
        check_policy("exportPolicy", &self.export_policy)?;
        if let Some(key_id) = &self.security.signing_key_id
            && !self.security.trusted_keys.iter().any(|k| k.advertiser == self.node_id && &k.key_id == key_id)
        {
            return Err(ConfigError::new(
                "security.signingKeyId",
                format!("{key_id} is not among the trusted keys of {}", self.node_id),
            ));
        }
        let damp = &self.stability.dampening;
        if damp.enabled {
            let positive = [
                ("withdrawalPenalty", damp.withdrawal_penalty),
                ("attributeChangePenalty", damp.attribute_change_penalty),
                ("suppressThreshold", damp.suppress_threshold),
                ("reuseThreshold", damp.reuse_threshold),
            ];
            for (name, value) in positive {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(ConfigError::new(
                        format!("stability.dampening.{name}"),
                        "must be a finite number >= 0",
                    ));
                }
            }
            if damp.reuse_threshold <= 0.0 || damp.reuse_threshold >= damp.suppress_threshold {
                return Err(ConfigError::new(
                    "stability.dampening.reuseThreshold",
                    "must be above 0 and below suppressThreshold",
                ));
            }
            if damp.half_life.is_zero() {
                return Err(ConfigError::new("stability.dampening.halfLife", "must be greater than zero"));
            }
            if damp.max_suppress < damp.half_life {
                return Err(ConfigError::new("stability.dampening.maxSuppress", "must be at least halfLife"));
            }
        }
        let mut breakers = HashSet::new();
        for (i, breaker) in self.selection.tie_breakers.iter().enumerate() {
            if !breakers.insert(breaker) {
                return Err(ConfigError::new(
                    format!("selection.tieBreakers[{i}]"),
                    format!("{} is listed twice", breaker.label()),
                ));
            }
        }
        let timers = &self.timers;
        if timers.route_ttl.is_zero() || timers.route_ttl > Duration::from_millis(u32::MAX as u64) {
            return Err(ConfigError::new("timers.routeTtl", "must be above zero and below 49 days"));
        }
        if timers.refresh_interval.is_zero() || timers.refresh_interval >= timers.route_ttl {
            return Err(ConfigError::new(
                "timers.refreshInterval",
                "must be above zero and shorter than routeTtl, or routes expire between refreshes",
            ));
        }
        if timers.max_ttl < timers.route_ttl {
            return Err(ConfigError::new("timers.maxTtl", "must be at least routeTtl"));
        }
        // A refreshed announcement must arrive while it is valid: the
        // validity (maxTtl minus the skew) has to exceed two refreshes.
        if self.message_validity() < 2 * timers.refresh_interval {
            return Err(ConfigError::new(
                "security.maxClockSkew",
                "timers.maxTtl minus security.maxClockSkew (how long a message is valid after it was issued) must be \
                 at least twice timers.refreshInterval",
            ));
        }
        let session = &self.session;
        if session.hold_time < crate::session::MIN_HOLD_TIME || session.hold_time > Duration::from_secs(3600) {
            return Err(ConfigError::new("session.holdTime", "must be between 300ms and 1h"));
        }
        if session.max_messages_per_second == 0 {
            return Err(ConfigError::new("session.maxMessagesPerSecond", "must be greater than zero"));
        }
        let min_queued = MIN_MAX_QUEUED_BYTES.max(self.limits.max_message_bytes as u64);
        if session.max_queued_bytes < min_queued {
            return Err(ConfigError::new(
                "session.maxQueuedBytes",
                format!("must be at least {min_queued} (64 KiB and limits.maxMessageBytes)"),
            ));
        }
        if session.reconnect_initial.is_zero() || session.reconnect_max < session.reconnect_initial {
            return Err(ConfigError::new(
                "session.reconnectMax",
                "reconnectInitial must be above zero and reconnectMax at least reconnectInitial",
            ));
        }
        for (i, neighbor) in self.neighbors.iter().enumerate() {
            if let Some(address) = &neighbor.address
                && address.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).is_none()
            {
                return Err(ConfigError::new(
                    format!("neighbors[{i}].address"),
                    format!("{address:?} is not host:port"),
                ));
            }
        }
        self.validate_link_state()
    }

    /// The `linkState` section, the area membership, and what link-state
    /// needs from the neighbors.
    fn validate_link_state(&self) -> Result<(), ConfigError> {
        let Some(link_state) = &self.link_state else {
            if self.link_state_areas.is_empty() {
                return Ok(());
            }
            return Err(ConfigError::new("linkStateAreas", "needs a linkState section"));
        };
        link_state.validate().map_err(|error| error.within("linkState"))?;
        let mut areas = HashSet::new();
        for (i, membership) in self.link_state_areas.iter().enumerate() {
            let field = format!("linkStateAreas[{i}]");
            check_id(format!("{field}.area"), membership.area.as_str(), &self.limits)?;
            if !areas.insert(&membership.area) {
                return Err(ConfigError::new(
                    format!("{field}.area"),
                    format!("area {} is listed twice", membership.area),
                ));
            }
            let mut members = HashSet::new();
            for (j, neighbor) in membership.neighbors.iter().flatten().enumerate() {
                let field = format!("{field}.neighbors[{j}]");
                if self.neighbor(neighbor.as_str()).is_none() {
                    return Err(ConfigError::new(field, format!("{neighbor} is not a configured neighbor")));
                }
                if !members.insert(neighbor) {
                    return Err(ConfigError::new(field, format!("{neighbor} is listed twice")));
                }
            }
        }
        for (i, neighbor) in self.neighbors.iter().enumerate() {
            if neighbor.link.cost == 0 && !self.link_state_areas_of(&neighbor.id).is_empty() {
                return Err(ConfigError::new(
                    format!("neighbors[{i}].link.cost"),
                    "must be at least 1 on a link-state link (zero-cost links could loop)",
                ));
            }
        }
        Ok(())
    }

    /// The link-state areas the link to `neighbor` belongs to; empty when
    /// link-state is off or the link is in no area.
    pub fn link_state_areas_of(&self, neighbor: &NodeId) -> Vec<AreaId> {
        if self.link_state.is_none() {
            return Vec::new();
        }
        if self.link_state_areas.is_empty() {
            return vec![AreaId::from(DEFAULT_LINK_STATE_AREA)];
        }
        self.link_state_areas
            .iter()
            .filter(|membership| membership.neighbors.as_ref().is_none_or(|members| members.contains(neighbor)))
            .map(|membership| membership.area.clone())
            .collect()
    }

    /// The limits a session's decoder enforces: `limits`, with the link-state
    /// counts from `linkState.limits` so one knob bounds decoder and router.
    pub fn decode_limits(&self) -> crate::wire::DecodeLimits {
        let mut limits = self.limits.decode_limits();
        if let Some(link_state) = &self.link_state {
            limits.max_links = link_state.limits.max_links_per_update;
            limits.max_summary_entries = link_state.limits.max_summary_entries_per_update;
            limits.max_destinations = link_state.limits.max_destinations_per_update;
        }
        limits
    }

    /// The trusted keys as a registry; fails on a malformed key.
    pub fn key_registry(&self) -> Result<KeyRegistry, ConfigError> {
        let mut registry = KeyRegistry::new();
        let mut seen = HashSet::new();
        for (i, key) in self.security.trusted_keys.iter().enumerate() {
            let field = format!("security.trustedKeys[{i}]");
            if !seen.insert((&key.advertiser, &key.key_id)) {
                return Err(ConfigError::new(
                    format!("{field}.keyId"),
                    format!("duplicate key {} for {}", key.key_id, key.advertiser),
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key.public_key.trim())
                .map_err(|e| ConfigError::new(format!("{field}.publicKey"), format!("not base64: {e}")))?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                ConfigError::new(format!("{field}.publicKey"), format!("{} bytes, an ed25519 key has 32", b.len()))
            })?;
            let public = crate::security::public_key(&bytes).map_err(|error| {
                ConfigError::new(
                    format!("{field}.publicKey"),
                    format!("key {} of {}: {error}", key.key_id, key.advertiser),
                )
            })?;
            let valid_from =
                key.valid_from.as_deref().map(|v| parse_rfc3339(&format!("{field}.validFrom"), v)).transpose()?;
            let valid_until =
                key.valid_until.as_deref().map(|v| parse_rfc3339(&format!("{field}.validUntil"), v)).transpose()?;
            if let (Some(from), Some(until)) = (valid_from, valid_until)
                && from >= until
            {
                return Err(ConfigError::new(format!("{field}.validUntil"), "must be after validFrom"));
            }
            registry.insert(PublicKeyEntry {
                advertiser: key.advertiser.clone(),
                key_id: key.key_id.clone(),
                key: public,
                valid_from,
                valid_until,
            });
        }
        Ok(registry)
    }
}

/// Formats a public key the way `trustedKeys[].publicKey` expects it.
pub fn encode_public_key(key: &ed25519_dalek::VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link_state::RoutingMode;

    #[test]
    fn a_signing_key_id_must_be_one_of_the_nodes_own_trusted_keys() {
        let mut config = SidecarConfig::new(NodeId::from("a"));
        config.security.signing_key_id = Some("k2".into());
        let error = config.validate().unwrap_err();
        assert_eq!(
            (error.field.as_str(), error.reason.as_str()),
            ("security.signingKeyId", "k2 is not among the trusted keys of a")
        );
        let public = encode_public_key(
            &crate::security::SigningIdentity::from_secret_bytes("k2".into(), &[2; 32]).verifying_key(),
        );
        let key = |advertiser: &str| TrustedKey {
            advertiser: NodeId::from(advertiser),
            key_id: "k2".into(),
            public_key: public.clone(),
            valid_from: None,
            valid_until: None,
        };
        config.security.trusted_keys = vec![key("b")].into();
        assert!(config.validate().is_err(), "another node's k2 does not count");
        config.security.trusted_keys = vec![key("b"), key("a")].into();
        config.validate().unwrap();
    }

    #[test]
    fn a_trusted_key_that_is_no_valid_prime_order_point_is_refused_naming_it() {
        use base64::Engine as _;
        let mut config = SidecarConfig::new(NodeId::from("a"));
        let ones = base64::engine::general_purpose::STANDARD.encode([0xffu8; 32]);
        config.security.trusted_keys = vec![TrustedKey {
            advertiser: NodeId::from("b"),
            key_id: "k7".into(),
            public_key: ones,
            valid_from: None,
            valid_until: None,
        }]
        .into();
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "security.trustedKeys[0].publicKey");
        assert!(error.reason.starts_with("key k7 of b: "), "{}", error.reason);
        assert!(error.reason.contains("canonical") || error.reason.contains("prime-order"), "{}", error.reason);
    }

    fn with_neighbors(ids: &[&str]) -> SidecarConfig {
        let mut config = SidecarConfig::new("me");
        config.neighbors = ids
            .iter()
            .map(|id| NeighborConfig {
                id: (*id).into(),
                address: None,
                link: LinkMetrics::default(),
                import: None,
                export: None,
            })
            .collect();
        config
    }

    fn membership(area: &str, neighbors: Option<&[&str]>) -> LinkStateAreaMembership {
        LinkStateAreaMembership {
            area: AreaId::from(area),
            neighbors: neighbors.map(|ids| ids.iter().map(|id| NodeId::from(*id)).collect()),
        }
    }

    fn field_of(config: &SidecarConfig) -> String {
        config.validate().unwrap_err().field
    }

    #[test]
    fn link_state_section_and_areas_parse_and_roundtrip() {
        let yaml = r#"
nodeId: me
neighbors: [{id: a}, {id: b}]
linkState:
  mode: preferLinkState
  maxPaths: 2
  areas: [{id: core}, {id: edge, parents: [core]}]
linkStateAreas:
  - area: core
    neighbors: [a]
  - area: edge
"#;
        let config = SidecarConfig::from_yaml(yaml).unwrap();
        assert_eq!(config.link_state.as_ref().map(|l| l.mode), Some(RoutingMode::PreferLinkState));
        assert_eq!(config.link_state_areas_of(&"a".into()), [AreaId::from("core"), AreaId::from("edge")]);
        assert_eq!(config.link_state_areas_of(&"b".into()), [AreaId::from("edge")]);
        assert_eq!(SidecarConfig::from_yaml(&config.to_yaml()).unwrap(), config);
    }

    #[test]
    fn without_link_state_nothing_changes_in_the_yaml_and_no_link_is_in_an_area() {
        let config = with_neighbors(&["a"]);
        let yaml = config.to_yaml();
        assert!(!yaml.contains("linkState"), "{yaml}");
        assert!(config.link_state_areas_of(&"a".into()).is_empty());
    }

    #[test]
    fn every_link_is_in_the_backbone_when_no_area_is_listed() {
        let mut config = with_neighbors(&["a", "b"]);
        config.link_state = Some(LinkStateConfig::default());
        assert_eq!(config.link_state_areas_of(&"b".into()), [AreaId::from(DEFAULT_LINK_STATE_AREA)]);
    }

    #[test]
    fn link_state_errors_name_their_field() {
        let mut config = with_neighbors(&["a", "b"]);
        config.link_state_areas = vec![membership("core", None)];
        assert_eq!(field_of(&config), "linkStateAreas", "areas without a linkState section");

        config.link_state = Some(LinkStateConfig { max_paths: 0, ..LinkStateConfig::default() });
        assert_eq!(field_of(&config), "linkState.maxPaths");

        config.link_state = Some(LinkStateConfig::default());
        config.link_state_areas = vec![membership("core", Some(&["a", "zed"]))];
        assert_eq!(field_of(&config), "linkStateAreas[0].neighbors[1]");
        config.link_state_areas = vec![membership("core", Some(&["a", "a"]))];
        assert_eq!(field_of(&config), "linkStateAreas[0].neighbors[1]");
        config.link_state_areas = vec![membership("core", None), membership("core", None)];
        assert_eq!(field_of(&config), "linkStateAreas[1].area");
        config.link_state_areas = vec![membership("", None)];
        assert_eq!(field_of(&config), "linkStateAreas[0].area");
    }

    #[test]
    fn zero_cost_is_refused_only_on_link_state_links() {
        let mut config = with_neighbors(&["a", "b"]);
        config.neighbors[1].link.cost = 0;
        config.validate().unwrap();
        config.link_state = Some(LinkStateConfig::default());
        config.link_state_areas = vec![membership("core", Some(&["a"]))];
        config.validate().unwrap();
        config.link_state_areas = vec![membership("core", None)];
        assert_eq!(field_of(&config), "neighbors[1].link.cost");
    }

    #[test]
    fn session_decode_limits_take_the_link_state_counts() {
        let mut config = with_neighbors(&[]);
        assert_eq!(config.decode_limits().max_links, crate::wire::DEFAULT_MAX_LINKS);
        let mut link_state = LinkStateConfig::default();
        link_state.limits.max_links_per_update = 7;
        link_state.limits.max_summary_entries_per_update = 9;
        config.link_state = Some(link_state);
        let limits = config.decode_limits();
        assert_eq!((limits.max_links, limits.max_summary_entries), (7, 9));
        assert_eq!(limits.max_message_bytes, config.limits.max_message_bytes);
    }

    #[test]
    fn the_send_queue_bound_holds_at_least_64_kib_and_one_message() {
        let mut config = with_neighbors(&[]);
        assert_eq!(config.session.max_queued_bytes, DEFAULT_MAX_QUEUED_BYTES);
        config.session.max_queued_bytes = MIN_MAX_QUEUED_BYTES;
        assert_eq!(config.validate(), Ok(()));
        config.session.max_queued_bytes -= 1;
        assert_eq!(field_of(&config), "session.maxQueuedBytes");
        config.session.max_queued_bytes = 1 << 20;
        config.limits.max_message_bytes = 2 << 20;
        assert_eq!(field_of(&config), "session.maxQueuedBytes");
        let yaml = "nodeId: a\nsession: {maxQueuedBytes: 1048576}\n";
        let parsed = SidecarConfig::from_yaml(yaml).unwrap();
        assert_eq!(parsed.session.max_queued_bytes, 1 << 20);
        assert!(parsed.to_yaml().contains("maxQueuedBytes: 1048576"));
        assert!(!with_neighbors(&[]).to_yaml().contains("maxQueuedBytes"), "left out at its default");
    }

    fn trusted_key_valid(valid_from: Option<&str>, valid_until: Option<&str>) -> SidecarConfig {
        let mut config = SidecarConfig::new(NodeId::from("a"));
        let identity = crate::security::SigningIdentity::from_secret_bytes("k1".into(), &[1; 32]);
        config.security.trusted_keys = vec![TrustedKey {
            advertiser: NodeId::from("b"),
            key_id: "k1".into(),
            public_key: encode_public_key(&identity.verifying_key()),
            valid_from: valid_from.map(str::to_owned),
            valid_until: valid_until.map(str::to_owned),
        }]
        .into();
        config
    }

    #[test]
    fn key_validity_times_need_a_utc_offset_and_the_error_names_the_field() {
        let config = trusted_key_valid(Some("2026-11-01T02:00:00+02:00"), Some("2026-12-01T00:00:00.5Z"));
        let registry = config.key_registry().unwrap();
        let entry = registry.entries()[0];
        assert_eq!(entry.valid_from, Some(Timestamp(1_793_491_200_000)));
        assert_eq!(entry.valid_until, Some(Timestamp(1_796_083_200_500)));

        let error = trusted_key_valid(Some("2026-11-01T00:00:00"), None).validate().unwrap_err();
        assert_eq!(error.field, "security.trustedKeys[0].validFrom");
        assert!(error.reason.contains("has no UTC offset"), "{error}");
        let error = trusted_key_valid(None, Some("2026-11-01 00:00:00")).validate().unwrap_err();
        assert_eq!(error.field, "security.trustedKeys[0].validUntil");
        assert!(error.reason.contains("has no UTC offset"), "{error}");
        let error = trusted_key_valid(Some("1969-07-20T20:17:00Z"), None).validate().unwrap_err();
        assert_eq!(
            (error.field.as_str(), error.reason.as_str()),
            ("security.trustedKeys[0].validFrom", "\"1969-07-20T20:17:00Z\" is before 1970")
        );
        let error = trusted_key_valid(Some("2026-11-01T00:00:00Z"), Some("2026-11-01T01:00:00+01:00")).validate();
        assert_eq!(error.unwrap_err().field, "security.trustedKeys[0].validUntil", "the same instant");
    }

    #[test]
    fn every_duration_field_reads_friendly_text_and_writes_it_compact() {
        let yaml = r#"
nodeId: a
security: {maxClockSkew: 45s}
stability:
  holdDown: 1.5s
  dampening: {enabled: true, halfLife: 15 minutes, maxSuppress: 1d}
timers: {routeTtl: 1m 30s, refreshInterval: 30s, maxTtl: 2h, gracefulRestartWindow: 2m}
session: {holdTime: 3s, reconnectInitial: 100ms, reconnectMax: 5s}
linkState: {updateTtl: 5m, refreshInterval: 100s, maxTtl: 1w, flushHold: 1m}
"#;
        let config = SidecarConfig::from_yaml(yaml).unwrap();
        assert_eq!(config.security.max_clock_skew, Some(Duration::from_secs(45)));
        assert_eq!(config.stability.hold_down, Duration::from_millis(1_500));
        assert_eq!(config.stability.dampening.half_life, Duration::from_secs(900));
        assert_eq!(config.stability.dampening.max_suppress, Duration::from_secs(86_400));
        assert_eq!(config.timers.route_ttl, Duration::from_secs(90));
        let link_state = config.link_state.as_ref().unwrap();
        assert_eq!(link_state.max_ttl, Duration::from_secs(7 * 86_400));
        let written = config.to_yaml();
        for line in ["maxClockSkew: 45s", "holdDown: 1s 500ms", "halfLife: 15m", "maxSuppress: 24h", "routeTtl: 1m 30s"]
        {
            assert!(written.contains(line), "{line} in {written}");
        }
        assert!(written.contains("maxTtl: 168h"), "{written}");
        assert_eq!(SidecarConfig::from_yaml(&written).unwrap(), config);
        let zero = SidecarConfig::from_yaml("nodeId: a\nstability: {holdDown: 0}\n").unwrap();
        assert_eq!(zero.stability.hold_down, Duration::ZERO, "a plain YAML 0");

        // The YAML error names the section and where its mapping starts;
        // the reason quotes the text.
        let error = SidecarConfig::from_yaml("nodeId: a\ntimers:\n  routeTtl: 1m\n  maxTtl: 1 month\n").unwrap_err();
        assert_eq!(error.field, "line 3 column 3", "{error}");
        assert!(error.reason.starts_with("timers: \"1 month\" is not a duration: months and years"), "{error}");
    }
}
