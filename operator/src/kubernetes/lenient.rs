//! Reading a CR kind so that objects decode one by one.
//!
//! A watch of `K` decodes the whole list response as `K`s: one object that
//! does not decode (a value beyond its Rust type's range, stored under an
//! older CRD that did not bound it) fails the list of the whole kind, in
//! every namespace, and so stalls the fabric. The watches read
//! [`Lenient<K>`] instead: every object that is JSON decodes, either as
//! `K` or as an [`Unreadable`] with its metadata and the path and reason
//! of the failure, which the compiler reports on that object alone.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use fabric_operator_core::index::Unreadable;

/// One object of kind `K` as a watch reads it.
#[derive(Clone, Debug)]
// Objects move through one channel one at a time, and the CRD types are as
// large as `Unreadable`; boxing would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum Lenient<K> {
    Read(K),
    Unreadable(Unreadable),
}

impl<K> From<K> for Lenient<K> {
    fn from(object: K) -> Self {
        Lenient::Read(object)
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(object) => Ok(Lenient::Read(object)),
            Err(error) => {
                let field = error.path().to_string();
                let error = error.into_inner().to_string();
                let metadata = ObjectMeta::deserialize(&value["metadata"]).unwrap_or_default();
                let status = value.get("status").cloned().unwrap_or(Value::Null);
                Ok(Lenient::Unreadable(Unreadable { metadata, status, field, error }))
            }
        }
    }
}

impl<K> Resource for Lenient<K>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Lenient::Read(object) => object.meta(),
            Lenient::Unreadable(object) => &object.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Lenient::Read(object) => object.meta_mut(),
            Lenient::Unreadable(object) => &mut object.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use fabric_operator_core::api::RoutePolicy;

    #[test]
    fn an_object_out_of_range_decodes_as_unreadable_with_the_field() {
        let list = json!([
            {"apiVersion": "routing.fabric.dev/v1alpha1", "kind": "RoutePolicy",
             "metadata": {"name": "fine", "namespace": "fabric", "generation": 1},
             "spec": {"sidecarSelector": {}}},
            {"apiVersion": "routing.fabric.dev/v1alpha1", "kind": "RoutePolicy",
             "metadata": {"name": "huge", "namespace": "fabric", "generation": 3},
             "spec": {"sidecarSelector": {}, "import": {"maxHopCount": 4294967296u64}},
             "status": {"observedGeneration": 2}},
        ]);
        let objects: Vec<Lenient<RoutePolicy>> = serde_json::from_value(list).unwrap();
        assert!(matches!(&objects[0], Lenient::Read(p) if p.metadata.name.as_deref() == Some("fine")));
        let Lenient::Unreadable(huge) = &objects[1] else { panic!("{:?}", objects[1]) };
        assert_eq!(huge.field, "spec.import.maxHopCount");
        assert!(huge.error.contains("4294967296"), "{}", huge.error);
        assert_eq!((huge.metadata.name.as_deref(), huge.metadata.generation), (Some("huge"), Some(3)));
        assert_eq!(huge.status["observedGeneration"], 2);
        assert_eq!(Lenient::<RoutePolicy>::kind(&()), "RoutePolicy");
    }
}
