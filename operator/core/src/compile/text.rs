//! A compiled config's text: its JSON with the version in it, the version
//! being the first 16 hex digits of the SHA-256 of the same JSON with the
//! version unset. JSON because it is much cheaper to produce than YAML (see
//! the "alternative" row of the compile bench) and deterministic the same
//! way (fields in declaration order, maps sorted); the sidecar's YAML parser
//! reads it as it is, so it is also what the distributor sends.
//!
//! Every config of a compile carries the same trusted keys, and they are
//! most of its text (docs/benchmarks.md, "Operator"), so serializing them
//! for every config would be a large part of a compile: they are serialized
//! once per compile ([`SharedKeys`]) and serde_json copies that JSON into
//! each config where it reaches the `trustedKeys` field.
//!
//! How, of the ways to do that without searching serde's output:
//! - Not a hand-written `Serialize` view of `SidecarConfig` and
//!   `SecurityConfig`: it would repeat their field names, order and
//!   `skip_serializing_if` rules, and could drift from them unseen.
//! - Not a `RawValue` inside `SecurityConfig`: the sidecar and the operator
//!   also write that type as YAML, where serde_json's raw value is a
//!   one-field map.
//! - Not two passes, one into the hasher with the version unset and one
//!   for the text with it set: every config would be serialized twice.
//!
//! So the derived `Serialize` of the config runs once, through [`Fields`], a
//! serializer that hands every field to serde_json as it is except two:
//! `security`, whose own fields go through [`Fields`] too, and in it
//! `trustedKeys`, for which it gives serde_json the shared keys' JSON as a
//! `RawValue`, which serde_json writes verbatim. If the config's key list
//! is not the shared one, it is serialized as usual. The version is unset
//! during that pass, so the derive skips it (`SerializeStruct::skip_field`)
//! and [`Fields`] notes how many bytes serde_json has written by then
//! ([`Counted`]): the hash is of the JSON as written, and the text is that
//! JSON with the version member inserted at the noted byte. Nothing is
//! searched for; all but that member is serde_json's own output. The tests
//! compare the text with a plain `serde_json::to_string` of the config.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use fabric_core::SidecarConfig;
use fabric_core::config::TrustedKey;
use serde::ser::{self, Error as _, Impossible, Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The trusted keys every config of a compile carries, and their JSON,
/// serialized once per compile.
pub(super) struct SharedKeys {
    pub(super) list: Arc<[TrustedKey]>,
    json: Box<RawValue>,
}

impl SharedKeys {
    pub(super) fn new(list: Arc<[TrustedKey]>) -> Self {
        // Strings and options only: serde_json cannot fail on them.
        let json = serde_json::value::to_raw_value(&*list).expect("trusted keys serialize to JSON");
        SharedKeys { list, json }
    }
}

/// Sets the config's version (see the module doc) and returns its JSON
/// with the version: what is sent. `keys` stand in for the config's
/// trusted keys when they are the same list (the compiler gives every
/// config `keys.list`).
pub(super) fn versioned_text(config: &mut SidecarConfig, keys: &SharedKeys) -> Result<Arc<str>, serde_json::Error> {
    config.version = None;
    let shared = Arc::ptr_eq(&config.security.trusted_keys, &keys.list).then_some(&*keys.json);
    let written = Cell::new(0);
    let version_at = Cell::new(None);
    // Room for the keys and a few KB for the rest of the config, so that
    // the buffer seldom grows.
    let mut json = Counted { bytes: Vec::with_capacity(keys.json.get().len() + 4096), len: &written };
    config.serialize(Fields {
        inner: &mut serde_json::Serializer::new(&mut json),
        at: At::Config { keys: shared, written: &written, version_at: &version_at },
    })?;
    let Some(version_at) = version_at.get() else {
        return Err(serde_json::Error::custom("SidecarConfig serialized no version field"));
    };
    let mut text = String::from_utf8(json.bytes).expect("serde_json writes UTF-8");

    let digest = Sha256::digest(text.as_bytes());
    let mut version = String::with_capacity(16);
    for byte in digest.iter().take(8) {
        write!(version, "{byte:02x}").expect("writing to a String");
    }
    // The member as serde_json writes one that is not an object's first
    // (`Fields` refuses a version before any other field); hex digits need
    // no escaping.
    text.insert_str(version_at, &format!(r#","version":"{version}""#));
    config.version = Some(version);
    Ok(text.into())
}

/// serde_json's output: bytes, and their count in a cell that [`Fields`]
/// reads to note where the version goes (serde_json owns the writer while
/// it writes). One store a write: serde_json writes a token at a time, and
/// a writer that chose between buffers on every write made a compile 5%
/// slower.
struct Counted<'a> {
    bytes: Vec<u8>,
    len: &'a Cell<usize>,
}

impl io::Write for Counted<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes.extend_from_slice(bytes);
        self.len.set(self.bytes.len());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Which struct [`Fields`] is serializing, and what it does there.
#[derive(Clone, Copy)]
enum At<'a> {
    /// The `SidecarConfig`: its `security` goes through [`Fields`] as
    /// well (with the shared keys, when the config has them), and where
    /// it skips the unset `version`, the bytes `written` so far are where
    /// the version goes.
    Config { keys: Option<&'a RawValue>, written: &'a Cell<usize>, version_at: &'a Cell<Option<usize>> },
    /// Its `security`: `trustedKeys` are the shared keys' JSON.
    Security { keys: &'a RawValue },
}

/// A serializer that passes a struct's fields to `inner` one by one
/// ([`FieldsOf`]), changing the ones `at` names. Only structs come here:
/// the config and its `security`.
struct Fields<'a, S> {
    inner: S,
    at: At<'a>,
}

/// The struct [`Fields`] has started.
struct FieldsOf<'a, S> {
    inner: S,
    at: At<'a>,
    /// No field of the struct written yet.
    first: bool,
}

impl<S: SerializeStruct> SerializeStruct for FieldsOf<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
        match (self.at, key) {
            (At::Config { keys: Some(keys), .. }, "security") => {
                self.inner.serialize_field(key, &Nested { value, at: At::Security { keys } })
            }
            (At::Security { keys }, "trustedKeys") => self.inner.serialize_field(key, keys),
            _ => self.inner.serialize_field(key, value),
        }?;
        self.first = false;
        Ok(())
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        if let (At::Config { written, version_at, .. }, "version") = (self.at, key) {
            if self.first {
                return Err(S::Error::custom("the version is written after a first field of the config"));
            }
            version_at.set(Some(written.get()));
        }
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// A field's value, serialized through [`Fields`] at `at`.
struct Nested<'a, T: ?Sized> {
    value: &'a T,
    at: At<'a>,
}

impl<T: ?Sized + Serialize> Serialize for Nested<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Fields { inner: serializer, at: self.at })
    }
}

/// What [`Fields`] says to anything but a struct.
fn not_a_struct<E: ser::Error>() -> E {
    E::custom("only the config and its security section are serialized field by field")
}

/// The [`Serializer`] methods of [`Fields`] that refuse a value of one
/// argument (everything but a struct).
macro_rules! refuse {
    ($($method:ident($value:ty)),* $(,)?) => {$(
        fn $method(self, _: $value) -> Result<S::Ok, S::Error> {
            Err(not_a_struct())
        }
    )*};
}

impl<'a, S: Serializer> Serializer for Fields<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeStruct = FieldsOf<'a, S::SerializeStruct>;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        Ok(FieldsOf { inner: self.inner.serialize_struct(name, len)?, at: self.at, first: true })
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_a_struct())
    }
}

#[cfg(test)]
mod tests {
    use fabric_core::ids::{KeyId, NodeId};
    use proptest::prelude::*;

    use super::*;

    /// A config with every section the compiler writes and the optional
    /// security fields set, some with characters JSON escapes.
    const FULL: &str = r#"
nodeId: "eu-\"1\""
version: stale
neighbors:
- id: border-a
  address: 10.0.0.1:7400
  link: {cost: 2, latencyUs: 20000, reliability: 0.999}
  import:
    mode: enforce
    tags: {deny: [bronze]}
- id: "eu\\2"
  address: 10.0.1.2:7400
importPolicy:
  destinations: {deny: ["scratch-*"]}
exportPolicy:
  tags: {deny: ["in\u00e9ternal\t"]}
security:
  requireSignatures: true
  allowedAdvertisers: [border-a, "eu\\2"]
  verificationCacheSize: 1024
  signingKeyId: "k\"1"
  signV1: true
  refuseV1Messages: true
  maxClockSkew: 45s
stability:
  holdDown: 5s
  dampening: {enabled: true, halfLife: 15m}
selection:
  tieBreakers: [hopCount, latency]
linkState:
  mode: preferLinkState
  maxPaths: 2
  areas:
  - id: core
  - id: eu
    parents: [core]
  summaryFilters:
  - targetArea: core
    denyDestinations: ["secret-*"]
linkStateAreas:
- area: eu
  neighbors: [border-a]
- area: core
"#;

    fn key(advertiser: &str, key_id: &str, public_key: &str, valid_from: Option<&str>) -> TrustedKey {
        TrustedKey {
            advertiser: NodeId::from(advertiser),
            key_id: KeyId::from(key_id),
            public_key: public_key.into(),
            valid_from: valid_from.map(Into::into),
            valid_until: None,
        }
    }

    /// Keys with quotes, backslashes, control characters and non-ASCII
    /// text, which serde_json escapes or writes as they are.
    fn awkward_keys() -> Arc<[TrustedKey]> {
        Arc::from([
            key("eu-\"1\"", "k\"1", "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA=", Some("2025-01-01T00:00:00.000Z")),
            key("eu\\2", "k\n2\u{1}", "</script>\u{7f}", None),
            key("n\u{e9}ud-\u{1f980}", "\u{2028}", "", Some("\"")),
        ])
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// `versioned_text` gives the config the version (the hash of its
    /// plain JSON with the version unset) and returns the plain JSON of the
    /// config with it.
    fn assert_plain_json(config: &mut SidecarConfig, keys: &SharedKeys) {
        let text = versioned_text(config, keys).expect("the config serializes");
        let mut unversioned = config.clone();
        unversioned.version = None;
        let digest = Sha256::digest(serde_json::to_string(&unversioned).expect("JSON"));
        assert_eq!(config.version, Some(hex(&digest[..8])));
        assert_eq!(*text, serde_json::to_string(config).expect("JSON"));
    }

    fn full(keys: Arc<[TrustedKey]>) -> SidecarConfig {
        let mut config: SidecarConfig = serde_norway::from_str(FULL).expect("the fixture parses");
        config.security.trusted_keys = keys;
        config
    }

    #[test]
    fn a_bare_config_without_keys() {
        let keys = SharedKeys::new(Arc::from([]));
        let mut config = SidecarConfig::new("a");
        config.security.trusted_keys = keys.list.clone();
        assert_plain_json(&mut config, &keys);
        assert_eq!(config.version.as_deref().map(str::len), Some(16));
    }

    #[test]
    fn every_section_and_shared_keys_that_need_escaping() {
        let keys = SharedKeys::new(awkward_keys());
        let mut config = full(keys.list.clone());
        assert!(config.link_state.is_some() && config.security.max_clock_skew.is_some());
        assert_plain_json(&mut config, &keys);
        // The same config again: the stale version from the first call is
        // unset before hashing, so the text does not change.
        let first = config.version.clone();
        assert_plain_json(&mut config, &keys);
        assert_eq!(config.version, first);
    }

    #[test]
    fn keys_that_are_not_the_shared_list_are_serialized_as_they_are() {
        let keys = SharedKeys::new(awkward_keys());
        let mut config = full(Arc::from(&awkward_keys()[1..]));
        assert_plain_json(&mut config, &keys);
        let mut same_keys_other_list = full(awkward_keys());
        let mut shared = full(keys.list.clone());
        assert_plain_json(&mut same_keys_other_list, &keys);
        assert_plain_json(&mut shared, &keys);
        assert_eq!(same_keys_other_list.version, shared.version);
        assert_ne!(config.version, shared.version);
    }

    /// The keys' text comes from `SharedKeys::json`, not from serializing
    /// the list again: a stand-in JSON shows up in the text.
    #[test]
    fn shared_keys_are_written_from_their_json() {
        let list = awkward_keys();
        let stand_in = [key("stand-in", "k", "AAAA", None)];
        let keys = SharedKeys { list: list.clone(), json: serde_json::value::to_raw_value(&stand_in).expect("JSON") };
        let mut config = full(list);
        let text = versioned_text(&mut config, &keys).expect("the config serializes");
        let keys_json = serde_json::to_string(&stand_in).expect("JSON");
        assert!(text.contains(&format!(r#""trustedKeys":{keys_json},"#)), "{text}");
    }

    proptest! {
        #[test]
        fn any_strings_in_the_node_id_and_the_keys(
            node_id in any::<String>(),
            listed in prop::collection::vec((any::<String>(), any::<String>(), any::<String>(), any::<Option<String>>()), 0..4),
        ) {
            let list: Vec<TrustedKey> =
                listed.iter().map(|(a, k, p, from)| key(a, k, p, from.as_deref())).collect();
            let keys = SharedKeys::new(Arc::from(list));
            let mut config = full(keys.list.clone());
            config.node_id = NodeId::from(node_id);
            assert_plain_json(&mut config, &keys);
        }
    }
}
