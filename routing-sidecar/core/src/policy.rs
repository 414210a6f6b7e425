//! Import and export policy: allow/deny lists on advertisers, origins,
//! destinations and tags, plus a dry-run (audit) mode.
//!
//! Semantics, in evaluation order (the first failing rule is reported):
//! 1. `advertisers`, `origins`, `destinations`: a name is rejected when it
//!    matches a `deny` pattern, or when an `allow` list is given and it
//!    matches none of it. Deny wins over allow.
//! 2. `tags.deny`: rejected when the route carries any denied tag.
//! 3. `tags.allowAny`: when given, the route must carry at least one.
//! 4. `maxHopCount`: rejected when the path is longer.
//!
//! Patterns are exact names, or a prefix followed by `*` (`"eu-*"`); `"*"`
//! matches everything.

use foldhash::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether a policy's rejections are enforced or only reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyMode {
    #[default]
    Enforce,
    /// Count and report what would be rejected, but accept it.
    DryRun,
}

/// Allow/deny lists of name patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MatchList {
    /// When present, only matching names pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Tag rules: `deny` rejects routes carrying any of these tags; `allowAny`,
/// when given, requires at least one of these tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TagRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_any: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// A route policy as written in config. Empty means "accept everything".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RoutePolicy {
    pub mode: PolicyMode,
    pub advertisers: MatchList,
    pub origins: MatchList,
    pub destinations: MatchList,
    pub tags: TagRules,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_hop_count: Option<u32>,
}

/// The rule a route broke.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyViolation {
    AdvertiserDenied(String),
    AdvertiserNotAllowed(String),
    OriginDenied(String),
    OriginNotAllowed(String),
    DestinationDenied(String),
    DestinationNotAllowed(String),
    TagDenied(String),
    NoAllowedTag,
    HopCountExceeded { hop_count: u32, max: u32 },
}

impl PolicyViolation {
    /// The `announcement_rejects_total{reason}` label for this violation.
    pub fn reason(&self) -> crate::stats::RejectReason {
        use crate::stats::RejectReason as R;
        match self {
            PolicyViolation::AdvertiserDenied(_) | PolicyViolation::AdvertiserNotAllowed(_) => R::PolicyAdvertiser,
            PolicyViolation::OriginDenied(_) | PolicyViolation::OriginNotAllowed(_) => R::PolicyOrigin,
            PolicyViolation::DestinationDenied(_) | PolicyViolation::DestinationNotAllowed(_) => R::PolicyDestination,
            PolicyViolation::TagDenied(_) | PolicyViolation::NoAllowedTag => R::PolicyTag,
            PolicyViolation::HopCountExceeded { .. } => R::PolicyHopCount,
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyViolation::AdvertiserDenied(n) => write!(f, "advertiser {n} matches advertisers.deny"),
            PolicyViolation::AdvertiserNotAllowed(n) => {
                write!(f, "advertiser {n} is not in advertisers.allow")
            }
            PolicyViolation::OriginDenied(n) => write!(f, "origin {n} matches origins.deny"),
            PolicyViolation::OriginNotAllowed(n) => write!(f, "origin {n} is not in origins.allow"),
            PolicyViolation::DestinationDenied(n) => {
                write!(f, "destination {n} matches destinations.deny")
            }
            PolicyViolation::DestinationNotAllowed(n) => {
                write!(f, "destination {n} is not in destinations.allow")
            }
            PolicyViolation::TagDenied(t) => write!(f, "tag {t} matches tags.deny"),
            PolicyViolation::NoAllowedTag => f.write_str("no tag in tags.allowAny"),
            PolicyViolation::HopCountExceeded { hop_count, max } => {
                write!(f, "hop count {hop_count} exceeds maxHopCount {max}")
            }
        }
    }
}

/// What policy looks at in a route.
#[derive(Clone, Copy, Debug)]
pub struct RouteFacts<'a> {
    pub advertiser: &'a str,
    pub origin: &'a str,
    pub destination: &'a str,
    pub tags: &'a [crate::ids::Tag],
    pub hop_count: u32,
}

/// Precompiled patterns: exact names in a hash set, prefixes in a list.
#[derive(Clone, Debug, Default)]
struct PatternSet {
    exact: HashSet<Box<str>>,
    prefixes: Vec<Box<str>>,
    any: bool,
}

impl PatternSet {
    fn compile(patterns: &[String]) -> Self {
        let mut set = PatternSet::default();
        for pattern in patterns {
            match pattern.strip_suffix('*') {
                Some("") => set.any = true,
                Some(prefix) => set.prefixes.push(prefix.into()),
                None => {
                    set.exact.insert(pattern.as_str().into());
                }
            }
        }
        set
    }

    fn matches(&self, name: &str) -> bool {
        self.any || self.exact.contains(name) || self.prefixes.iter().any(|p| name.starts_with(&**p))
    }
}

#[derive(Clone, Debug, Default)]
struct CompiledList {
    allow: Option<PatternSet>,
    deny: PatternSet,
}

enum ListVerdict {
    Pass,
    Denied,
    NotAllowed,
}

impl CompiledList {
    fn compile(list: &MatchList) -> Self {
        Self { allow: list.allow.as_deref().map(PatternSet::compile), deny: PatternSet::compile(&list.deny) }
    }

    fn check(&self, name: &str) -> ListVerdict {
        if self.deny.matches(name) {
            ListVerdict::Denied
        } else if self.allow.as_ref().is_some_and(|allow| !allow.matches(name)) {
            ListVerdict::NotAllowed
        } else {
            ListVerdict::Pass
        }
    }
}

/// A policy ready to evaluate at line rate.
#[derive(Clone, Debug, Default)]
pub struct CompiledPolicy {
    pub mode: PolicyMode,
    advertisers: CompiledList,
    origins: CompiledList,
    destinations: CompiledList,
    tags_deny: PatternSet,
    tags_allow_any: Option<PatternSet>,
    max_hop_count: Option<u32>,
    /// True when no rule can reject anything, to skip evaluation.
    accepts_all: bool,
}

impl CompiledPolicy {
    /// Whether no rule can reject anything (callers may skip gathering
    /// the facts to evaluate).
    pub fn accepts_everything(&self) -> bool {
        self.accepts_all
    }

    pub fn compile(policy: &RoutePolicy) -> Self {
        let accepts_all = policy.advertisers == MatchList::default()
            && policy.origins == MatchList::default()
            && policy.destinations == MatchList::default()
            && policy.tags == TagRules::default()
            && policy.max_hop_count.is_none();
        Self {
            mode: policy.mode,
            advertisers: CompiledList::compile(&policy.advertisers),
            origins: CompiledList::compile(&policy.origins),
            destinations: CompiledList::compile(&policy.destinations),
            tags_deny: PatternSet::compile(&policy.tags.deny),
            tags_allow_any: policy.tags.allow_any.as_deref().map(PatternSet::compile),
            max_hop_count: policy.max_hop_count,
            accepts_all,
        }
    }

    /// The first rule `route` breaks, regardless of mode (the caller decides
    /// whether a dry-run violation is enforced).
    pub fn evaluate(&self, route: &RouteFacts<'_>) -> Result<(), PolicyViolation> {
        if self.accepts_all {
            return Ok(());
        }
        match self.advertisers.check(route.advertiser) {
            ListVerdict::Pass => {}
            ListVerdict::Denied => return Err(PolicyViolation::AdvertiserDenied(route.advertiser.into())),
            ListVerdict::NotAllowed => {
                return Err(PolicyViolation::AdvertiserNotAllowed(route.advertiser.into()));
            }
        }
        match self.origins.check(route.origin) {
            ListVerdict::Pass => {}
            ListVerdict::Denied => return Err(PolicyViolation::OriginDenied(route.origin.into())),
            ListVerdict::NotAllowed => return Err(PolicyViolation::OriginNotAllowed(route.origin.into())),
        }
        match self.destinations.check(route.destination) {
            ListVerdict::Pass => {}
            ListVerdict::Denied => {
                return Err(PolicyViolation::DestinationDenied(route.destination.into()));
            }
            ListVerdict::NotAllowed => {
                return Err(PolicyViolation::DestinationNotAllowed(route.destination.into()));
            }
        }
        if let Some(tag) = route.tags.iter().find(|tag| self.tags_deny.matches(tag.as_str())) {
            return Err(PolicyViolation::TagDenied(tag.to_string()));
        }
        if let Some(allow) = &self.tags_allow_any
            && !route.tags.iter().any(|tag| allow.matches(tag.as_str()))
        {
            return Err(PolicyViolation::NoAllowedTag);
        }
        if let Some(max) = self.max_hop_count
            && route.hop_count > max
        {
            return Err(PolicyViolation::HopCountExceeded { hop_count: route.hop_count, max });
        }
        Ok(())
    }
}
