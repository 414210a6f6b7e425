//! Every CEL rule (`x-kubernetes-validations`) of the CRDs, with its message.
//!
//! The CRD types attach these to their schemas; `crate::validation` mirrors
//! each one in Rust and reports the very same message, so that the API
//! server, `fabric-operator analyze` and the compiler say the same thing.
//! `tests/cel_rules.rs` evaluates every rule found in the generated CRDs
//! against sample objects and checks the mirror agrees.
//!
//! Rules that iterate lists rely on the `maxItems` / `maxLength` bounds of
//! the schema so that the API server's cost estimate stays within budget.

/// One CEL validation rule and the message the API server returns when it
/// does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CelRule {
    pub rule: &'static str,
    pub message: &'static str,
}

// --- RoutePolicy -----------------------------------------------------------

/// On `spec.tieBreakers`.
pub const TIE_BREAKERS_UNIQUE: CelRule = CelRule {
    rule: "self.all(t, self.exists_one(u, u == t))",
    message: "tieBreakers must not list the same tie-breaker twice",
};

/// On `spec.stability.dampening`.
pub const DAMPENING_REUSE_BELOW_SUPPRESS: CelRule = CelRule {
    rule: "self.reuseThreshold < self.suppressThreshold",
    message: "dampening.reuseThreshold must be below dampening.suppressThreshold",
};

/// On `spec.stability.dampening`.
pub const DAMPENING_HALF_LIFE_POSITIVE: CelRule = CelRule {
    // Each duration rule first checks the grammar, so that a malformed value
    // is reported once, by DURATION_FORMAT, not also as a CEL type error.
    rule: concat!(
        "!self.halfLife.matches('",
        crate::duration_regex!(),
        "') || duration(self.halfLife) > duration('0s')"
    ),
    message: "dampening.halfLife must be greater than zero",
};

/// On `spec.stability.dampening`.
pub const DAMPENING_MAX_SUPPRESS_AT_LEAST_HALF_LIFE: CelRule = CelRule {
    rule: concat!(
        "!self.maxSuppress.matches('",
        crate::duration_regex!(),
        "') || !self.halfLife.matches('",
        crate::duration_regex!(),
        "') || duration(self.maxSuppress) >= duration(self.halfLife)"
    ),
    message: "dampening.maxSuppress must be at least dampening.halfLife",
};

// --- NeighborPolicy --------------------------------------------------------

/// On each `spec.neighbors[]` entry.
pub const NEIGHBOR_NODE_ID_XOR_SELECTOR: CelRule = CelRule {
    rule: "has(self.nodeId) != has(self.selector)",
    message: "each neighbor needs exactly one of nodeId or selector",
};

/// On each `spec.neighbors[]` entry.
pub const NEIGHBOR_EXPORT_NEEDS_ADVERTISE: CelRule = CelRule {
    rule: "!has(self.export) || !has(self.advertise) || self.advertise",
    message: "export filters have no effect on a neighbor with advertise: false",
};

/// On `spec.neighbors`.
pub const NEIGHBOR_NODE_IDS_UNIQUE: CelRule = CelRule {
    rule: "self.all(n, !has(n.nodeId) || self.exists_one(m, has(m.nodeId) && m.nodeId == n.nodeId))",
    message: "a nodeId must not be listed twice in one NeighborPolicy",
};

// --- RouteKey --------------------------------------------------------------

/// On `spec`.
pub const ROUTE_KEY_OVERLAP_BELOW_ROTATION: CelRule = CelRule {
    rule: concat!(
        "!self.overlap.matches('",
        crate::duration_regex!(),
        "') || !self.rotationInterval.matches('",
        crate::duration_regex!(),
        "') || duration(self.overlap) < duration(self.rotationInterval)"
    ),
    message: "overlap must be shorter than rotationInterval",
};

/// On `spec`.
pub const ROUTE_KEY_EXTERNAL_NEEDS_KEYS: CelRule = CelRule {
    rule: "self.management != 'External' || (has(self.externalKeys) && size(self.externalKeys) > 0)",
    message: "management: External needs at least one externalKeys entry",
};

/// On `spec.nodeId`: a transition rule (uses `oldSelf`), checked on update.
pub const ROUTE_KEY_NODE_ID_IMMUTABLE: CelRule =
    CelRule { rule: "self == oldSelf", message: "nodeId is immutable; create a new RouteKey instead" };

/// On `spec.externalKeys`.
pub const EXTERNAL_KEY_IDS_UNIQUE: CelRule = CelRule {
    rule: "self.all(k, self.exists_one(j, j.keyId == k.keyId))",
    message: "externalKeys must not repeat a keyId",
};

/// On each `spec.externalKeys[]` entry.
pub const EXTERNAL_KEY_VALIDITY_ORDERED: CelRule = CelRule {
    rule: "!has(self.validFrom) || !has(self.validUntil) || timestamp(self.validFrom) < timestamp(self.validUntil)",
    message: "validUntil must be after validFrom",
};

// --- LinkStateArea ---------------------------------------------------------

/// On `spec`.
pub const AREA_NOT_OWN_PARENT: CelRule = CelRule {
    rule: "!has(self.parents) || !(self.areaId in self.parents)",
    message: "an area cannot be its own parent",
};

/// On `spec.parents`.
pub const AREA_PARENTS_UNIQUE: CelRule =
    CelRule { rule: "self.all(p, self.exists_one(q, q == p))", message: "parents must not list an area twice" };

/// On `spec.ecmpMaxPaths`.
pub const AREA_ECMP_RANGE: CelRule =
    CelRule { rule: "self >= 1 && self <= 64", message: "ecmpMaxPaths must be within 1..64" };

/// On `spec.summaryFilters`.
pub const SUMMARY_TARGETS_UNIQUE: CelRule = CelRule {
    rule: "self.all(f, self.exists_one(g, g.targetArea == f.targetArea))",
    message: "summaryFilters must not target the same area twice",
};

/// On `spec`.
pub const SUMMARY_TARGET_IS_SELF_OR_PARENT: CelRule = CelRule {
    rule: "!has(self.summaryFilters) || self.summaryFilters.all(f, f.targetArea == self.areaId || (has(self.parents) && f.targetArea in self.parents))",
    message: "a summary filter's targetArea must be this area or one of its parents",
};

// --- Fields of every kind -------------------------------------------------

/// On every duration field (the grammar: `crate::api::duration`). The empty
/// string matches the expression; `minLength` refuses it.
pub const DURATION_FORMAT: CelRule = CelRule {
    rule: concat!("self.matches('", crate::duration_regex!(), "')"),
    message: "must be a duration such as 10s, 15m or 1h30m: whole numbers with units h, m, s, ms, us, ns, largest \
              unit first, each unit at most once, at most 999999h",
};

/// A label key: an optional DNS subdomain prefix and `/`, then a name of 1
/// to 63 characters. (`[.]`, not `\.`: CEL strings have no `\.` escape.)
macro_rules! label_key_regex {
    () => {
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    };
}
/// A label value: empty, or 1 to 63 characters.
macro_rules! label_value_regex {
    () => {
        "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
    };
}
/// The regular expressions of label keys and values, for the mirror's tests.
pub const LABEL_KEY_PATTERN: &str = label_key_regex!();
pub const LABEL_VALUE_PATTERN: &str = label_value_regex!();
/// Longest label key: a 253-byte prefix, `/`, a 63-byte name.
pub const LABEL_KEY_MAX_LENGTH: u32 = 317;

/// On every label selector's `matchLabels`.
pub const SELECTOR_LABEL_KEYS: CelRule = CelRule {
    rule: concat!("self.all(k, size(k) <= 317 && k.matches('", label_key_regex!(), "'))"),
    message: "matchLabels keys must be label keys: an optional DNS subdomain prefix and '/', then 1 to 63 letters, \
              digits, '-', '_' or '.', beginning and ending with a letter or digit",
};

/// On every label selector's `matchLabels`.
pub const SELECTOR_LABEL_VALUES: CelRule = CelRule {
    rule: concat!("self.all(k, self[k].matches('", label_value_regex!(), "'))"),
    message: "matchLabels values must be label values: empty, or 1 to 63 letters, digits, '-', '_' or '.', beginning \
              and ending with a letter or digit",
};

/// On each `matchExpressions[]` entry of every label selector. An unknown
/// operator is refused by the schema's enum alone.
pub const SELECTOR_EXPRESSION_VALUES: CelRule = CelRule {
    rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!(self.operator in \
           ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0)",
    message: "operators In and NotIn need at least one value; Exists and DoesNotExist take none",
};

/// Every rule, for documentation and for the test that checks each one is
/// present in the generated CRDs.
pub const ALL: &[CelRule] = &[
    TIE_BREAKERS_UNIQUE,
    DAMPENING_REUSE_BELOW_SUPPRESS,
    DAMPENING_HALF_LIFE_POSITIVE,
    DAMPENING_MAX_SUPPRESS_AT_LEAST_HALF_LIFE,
    NEIGHBOR_NODE_ID_XOR_SELECTOR,
    NEIGHBOR_EXPORT_NEEDS_ADVERTISE,
    NEIGHBOR_NODE_IDS_UNIQUE,
    ROUTE_KEY_OVERLAP_BELOW_ROTATION,
    ROUTE_KEY_EXTERNAL_NEEDS_KEYS,
    ROUTE_KEY_NODE_ID_IMMUTABLE,
    EXTERNAL_KEY_IDS_UNIQUE,
    EXTERNAL_KEY_VALIDITY_ORDERED,
    AREA_NOT_OWN_PARENT,
    AREA_PARENTS_UNIQUE,
    AREA_ECMP_RANGE,
    SUMMARY_TARGETS_UNIQUE,
    DURATION_FORMAT,
    SELECTOR_LABEL_KEYS,
    SELECTOR_LABEL_VALUES,
    SELECTOR_EXPRESSION_VALUES,
    SUMMARY_TARGET_IS_SELF_OR_PARENT,
];
