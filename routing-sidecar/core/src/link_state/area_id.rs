//! `AreaId`: the typed name of a link-state area, shaped like the ids in
//! `crate::ids` (a cheap-to-clone shared string, ordered by its text so that
//! every map keyed by area iterates the same way on every node).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A link-state flooding domain. Updates of one area never leave it; only
/// summaries exported by area border routers cross from a child area into
/// its parent areas.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AreaId(Arc<str>);

impl AreaId {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AreaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AreaId({:?})", &*self.0)
    }
}

impl fmt::Display for AreaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for AreaId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for AreaId {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for AreaId {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl Serialize for AreaId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AreaId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_ids_order_by_text_and_round_trip_through_serde() {
        let mut areas = vec![AreaId::from("b"), AreaId::from("a"), AreaId::from("backbone")];
        areas.sort();
        let names: Vec<&str> = areas.iter().map(AreaId::as_str).collect();
        assert_eq!(names, ["a", "b", "backbone"]);
        let json = serde_json::to_string(&areas).unwrap();
        assert_eq!(json, r#"["a","b","backbone"]"#);
        let back: Vec<AreaId> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, areas);
        assert_eq!(format!("{:?}", areas[0]), r#"AreaId("a")"#);
    }
}
