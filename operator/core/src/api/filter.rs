//! Route filter shapes shared by RoutePolicy and NeighborPolicy. They mirror
//! `fabric_core::policy` (which cannot derive `JsonSchema`); the
//! conversion lives in `crate::compile::convert`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A name, or a prefix followed by one `*` (`"eu-*"`), or `"*"` alone.
pub const NAME_PATTERN: &str = r"^[^*]+\*?$|^\*$";
/// Longest node id, destination, tag or pattern (a DNS name's limit).
pub const MAX_NAME_LENGTH: u32 = 253;
/// Most entries in one allow or deny list.
pub const MAX_PATTERNS: u32 = 256;

pub(crate) fn pattern_list(_generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": MAX_PATTERNS,
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": NAME_PATTERN
        }
    })
}

/// Whether a filter's rejections are enforced or only reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PolicyMode {
    #[default]
    Enforce,
    /// Audit: count and report what would be rejected, but accept it.
    DryRun,
}

/// Allow/deny lists of name patterns. Deny wins over allow; when `allow`
/// is given (even empty), only matching names pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pattern_list")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "pattern_list")]
    pub deny: Vec<String>,
}

/// `deny` rejects routes carrying any of these tags; `allowAny`, when
/// given, requires at least one of these tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pattern_list")]
    pub allow_any: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "pattern_list")]
    pub deny: Vec<String>,
}

/// Which routes pass, by advertiser (the neighbor that sent it), origin
/// (the node that originated it), destination, tags and path length.
/// Empty accepts everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    #[serde(default, skip_serializing_if = "is_default")]
    pub advertisers: MatchList,
    #[serde(default, skip_serializing_if = "is_default")]
    pub origins: MatchList,
    #[serde(default, skip_serializing_if = "is_default")]
    pub destinations: MatchList,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tags: TagRules,
    /// Routes with a longer path are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_hop_count: Option<u32>,
}

pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
