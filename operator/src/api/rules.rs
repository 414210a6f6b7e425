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
    rule: "duration(self.halfLife) > duration('0s')",
    message: "dampening.halfLife must be greater than zero",
};

/// On `spec.stability.dampening`.
pub const DAMPENING_MAX_SUPPRESS_AT_LEAST_HALF_LIFE: CelRule = CelRule {
    rule: "duration(self.maxSuppress) >= duration(self.halfLife)",
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
    rule: "duration(self.overlap) < duration(self.rotationInterval)",
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
    SUMMARY_TARGET_IS_SELF_OR_PARENT,
];
