//! The rotation planner: a pure function from one RouteKey (spec and the
//! published keys of its status), the private keys kept for it, the time
//! and the rollout of a pending key to the sidecars, to what the keys
//! should be next. The runtime stores the result (private keys first, then
//! the published status) and feeds the signing keys to the distributor.
//!
//! A key goes Pending (published, trusted, not signing) -> Active (the
//! owning sidecar signs with it) -> Retiring (trusted until `validUntil`)
//! -> gone. Pending becomes Active only once every connected sidecar has
//! acknowledged a config that trusts it, so no announcement signed with the
//! new key can meet a sidecar that would reject it; the previous key stays
//! trusted for `overlap` after that, so announcements signed with it that
//! are still in flight (or stored and re-sent) are accepted too.

use std::time::Duration;

use fabric_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::duration::DurationError;
use crate::api::{KeyState, PublishedKey, RouteKeySpec, RouteKeyStatus};
use crate::time::parse_rfc3339_millis;

/// A stored private key that cannot be used, naming the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {key_id}: private key is not base64: {source}")]
    NotBase64 {
        key_id: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("key {key_id}: {length} bytes, an ed25519 key has 32")]
    Length { key_id: String, length: usize },
}

/// Fresh secret key bytes could not be drawn (the random source failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a key: {0}")]
pub struct GenerateError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Why a planning step could not decide: a spec duration that does not
/// parse, a stored key that is unusable, or no fresh key.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("spec.{field}: {source}")]
    Duration {
        field: &'static str,
        #[source]
        source: DurationError,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// A generated key with its private half. Lives only in the key store (a
/// Secret in a cluster, the state directory locally), never in status.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    pub key_id: String,
    /// Standard base64 of the 32-byte ed25519 secret key.
    pub private_key: String,
    /// Unix milliseconds of its generation.
    pub created_ms: u64,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("key_id", &self.key_id).field("created_ms", &self.created_ms).finish()
    }
}

impl PrivateKey {
    pub fn new(key_id: String, secret: &[u8; 32], created: Timestamp) -> Self {
        use base64::Engine as _;
        Self { key_id, private_key: base64::engine::general_purpose::STANDARD.encode(secret), created_ms: created.0 }
    }

    /// The 32 secret bytes, or why the stored text is unusable.
    pub fn secret(&self) -> Result<[u8; 32], KeyError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.private_key.trim())
            .map_err(|source| KeyError::NotBase64 { key_id: self.key_id.clone(), source })?;
        bytes.try_into().map_err(|b: Vec<u8>| KeyError::Length { key_id: self.key_id.clone(), length: b.len() })
    }

    /// Standard base64 of the public half.
    pub fn public_key(&self) -> Result<String, KeyError> {
        let identity = fabric_core::security::SigningIdentity::from_secret_bytes(
            fabric_core::KeyId::from(self.key_id.as_str()),
            &self.secret()?,
        );
        Ok(fabric_core::config::encode_public_key(&identity.verifying_key()))
    }
}

/// The private keys of one RouteKey.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    pub keys: Vec<PrivateKey>,
}

impl KeyRing {
    pub fn get(&self, key_id: &str) -> Option<&PrivateKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }
}

/// The part of `RouteKeyStatus` rotation owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishedKeys {
    pub keys: Vec<PublishedKey>,
    pub active_key_id: Option<String>,
    pub next_rotation: Option<String>,
}

impl PublishedKeys {
    pub fn from_status(status: Option<&RouteKeyStatus>) -> Self {
        status.map_or_else(Self::default, |s| Self {
            keys: s.keys.clone(),
            active_key_id: s.active_key_id.clone(),
            next_rotation: s.next_rotation.clone(),
        })
    }

    /// Writes these fields into `status`, leaving the others alone.
    pub fn write_to(&self, status: &mut RouteKeyStatus) {
        status.keys = self.keys.clone();
        status.active_key_id = self.active_key_id.clone();
        status.next_rotation = self.next_rotation.clone();
    }
}

/// What the planner needs to know of the sidecars.
pub trait Fabric {
    /// Whether every connected sidecar acknowledged a config trusting
    /// `key_id` (of the node this RouteKey is for).
    fn trusted_everywhere(&self, key_id: &str) -> Rollout;
    /// Whether the owning sidecar acknowledged a config that makes it sign
    /// with `key_id` (true when no sidecar has the node id: nobody signs
    /// with the old key either).
    fn signs_with(&self, key_id: &str) -> bool;
}

/// Whether a pending key reached every sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every connected sidecar acknowledged a config trusting the key.
    Everywhere,
    /// Not yet: these sidecars (names) have not.
    Waiting(Vec<String>),
    /// Every sidecar that can be configured trusts the key; these (names,
    /// with why) have had no valid config for longer than the operator
    /// waits for one, and are left behind rather than holding the key back
    /// for ever: they refuse announcements signed with it until they get a
    /// config.
    LeavingBehind(Vec<String>),
}

/// What happened in one planning step (for events and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationEvent {
    /// A new key was generated and published (trusted, not signing yet).
    Published { key_id: String },
    /// The node signs with `key_id` now; `previous` is retiring.
    Activated { key_id: String, previous: Option<String> },
    /// A retiring key reached its `validUntil` and was removed.
    Retired { key_id: String },
    /// A published key had no private half in the store (a lost Secret):
    /// it is not used for signing and a replacement is generated.
    Lost { key_id: String },
}

impl std::fmt::Display for RotationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RotationEvent::Published { key_id } => {
                write!(f, "key {key_id} published; it signs once every sidecar trusts it")
            }
            RotationEvent::Activated { key_id, previous: Some(previous) } => {
                write!(f, "key {key_id} active; {previous} retiring")
            }
            RotationEvent::Activated { key_id, previous: None } => write!(f, "key {key_id} active"),
            RotationEvent::Retired { key_id } => write!(f, "key {key_id} retired"),
            RotationEvent::Lost { key_id } => write!(f, "key {key_id} has no private key in the store; replaced"),
        }
    }
}

/// The outcome of one planning step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub published: PublishedKeys,
    pub ring: KeyRing,
    pub events: Vec<RotationEvent>,
    /// Why a pending key is not active yet, for status.
    pub waiting: Option<String>,
}

impl Plan {
    pub fn changed(&self, published: &PublishedKeys, ring: &KeyRing) -> bool {
        &self.published != published || &self.ring != ring
    }
}

/// The inputs of one planning step.
pub struct Inputs<'a> {
    pub spec: &'a RouteKeySpec,
    pub published: &'a PublishedKeys,
    pub ring: &'a KeyRing,
    pub now: Timestamp,
}

fn millis(text: Option<&str>) -> Option<u64> {
    text.and_then(|t| parse_rfc3339_millis(t).ok()).and_then(|ms| u64::try_from(ms).ok())
}

fn later(now: Timestamp, by: Duration) -> Timestamp {
    Timestamp(now.0.saturating_add(u64::try_from(by.as_millis()).unwrap_or(u64::MAX)))
}

/// The next free key id: `k<N>` above every id in use (generated or
/// external), so ids are never reused.
fn next_key_id(spec: &RouteKeySpec, published: &[PublishedKey], ring: &KeyRing) -> String {
    let used = published
        .iter()
        .map(|k| k.key_id.as_str())
        .chain(ring.keys.iter().map(|k| k.key_id.as_str()))
        .chain(spec.external_keys.iter().map(|k| k.key_id.as_str()));
    let highest = used.filter_map(|id| id.strip_prefix('k')?.parse::<u64>().ok()).max().unwrap_or(0);
    let mut n = highest + 1;
    while spec.external_keys.iter().any(|k| k.key_id == format!("k{n}")) {
        n += 1;
    }
    format!("k{n}")
}

/// One planning step. `fabric` says how far keys reached the sidecars;
/// `generate` returns fresh secret key bytes.
pub fn plan(
    inputs: &Inputs<'_>,
    fabric: &dyn Fabric,
    generate: &mut dyn FnMut() -> Result<[u8; 32], GenerateError>,
) -> Result<Plan, PlanError> {
    let interval = inputs
        .spec
        .rotation_interval
        .parse()
        .map_err(|source| PlanError::Duration { field: "rotationInterval", source })?;
    let overlap = inputs.spec.overlap.parse().map_err(|source| PlanError::Duration { field: "overlap", source })?;
    let now = inputs.now;
    let mut events = Vec::new();
    let mut ring = inputs.ring.clone();
    let mut keys: Vec<PublishedKey> = Vec::new();

    // Published keys without their private half cannot sign: a pending one
    // is dropped, an active or retiring one stays trusted (announcements
    // signed with it are still valid) but a replacement is needed.
    let mut lost_active = false;
    for key in &inputs.published.keys {
        if ring.get(&key.key_id).is_none_or(|k| k.secret().is_err()) {
            events.push(RotationEvent::Lost { key_id: key.key_id.clone() });
            match key.state {
                KeyState::Pending => continue,
                KeyState::Active => lost_active = true,
                KeyState::Retiring => {}
            }
        }
        keys.push(key.clone());
    }
    // Private keys never published (the store was written, the status
    // write failed): publish them as pending.
    for private in &inputs.ring.keys {
        if !keys.iter().any(|k| k.key_id == private.key_id) && private.secret().is_ok() {
            keys.push(PublishedKey {
                key_id: private.key_id.clone(),
                public_key: private.public_key()?,
                valid_from: Some(Timestamp(private.created_ms).to_rfc3339()),
                valid_until: None,
                state: KeyState::Pending,
            });
        }
    }

    // The overlap of a retiring key starts once the owner signs with the
    // active key: until then the owner may still sign with the old one
    // (its switch is a config push away, or it is down), so the old key
    // must stay trusted.
    let active = keys.iter().find(|k| k.state == KeyState::Active).map(|k| k.key_id.clone());
    let switched = active.as_deref().is_some_and(|active| fabric.signs_with(active));
    for key in &mut keys {
        if key.state == KeyState::Retiring && key.valid_until.is_none() && switched {
            key.valid_until = Some(later(now, overlap).to_rfc3339());
        }
    }
    // Retire what has run out.
    keys.retain(|key| {
        let expired = key.state == KeyState::Retiring
            && key.valid_until.as_deref().is_some_and(|until| millis(Some(until)).is_none_or(|t| t <= now.0));
        if expired {
            events.push(RotationEvent::Retired { key_id: key.key_id.clone() });
        }
        !expired
    });

    let mut active_key_id = keys.iter().find(|k| k.state == KeyState::Active).map(|k| k.key_id.clone());
    let mut next_rotation = inputs.published.next_rotation.clone();
    let rotation_due = millis(next_rotation.as_deref()).is_none_or(|t| t <= now.0);

    // Publish a new key when there is none pending and one is needed.
    // Not while a retiring key waits for the owner to switch: keys would
    // pile up for an owner that is down.
    let has_pending = keys.iter().any(|k| k.state == KeyState::Pending);
    let owner_behind = keys.iter().any(|k| k.state == KeyState::Retiring && k.valid_until.is_none());
    if !has_pending && !owner_behind && (active_key_id.is_none() || rotation_due || lost_active) {
        let key_id = next_key_id(inputs.spec, &keys, &ring);
        let private = PrivateKey::new(key_id.clone(), &generate()?, now);
        keys.push(PublishedKey {
            key_id: key_id.clone(),
            public_key: private.public_key()?,
            valid_from: Some(now.to_rfc3339()),
            valid_until: None,
            state: KeyState::Pending,
        });
        ring.keys.push(private);
        events.push(RotationEvent::Published { key_id });
    }

    // Activate the pending key once every sidecar trusts it.
    let mut waiting = None;
    if let Some(pending) = keys.iter().position(|k| k.state == KeyState::Pending) {
        let key_id = keys[pending].key_id.clone();
        let rollout = fabric.trusted_everywhere(&key_id);
        if let Rollout::LeavingBehind(sidecars) = &rollout {
            waiting = Some(format!(
                "key {key_id} activated without {} sidecar(s) that have had no valid config for a while: {}",
                sidecars.len(),
                sidecars.join(", ")
            ));
        }
        match rollout {
            Rollout::Everywhere | Rollout::LeavingBehind(_) => {
                let previous = active_key_id.take();
                for key in &mut keys {
                    if Some(&key.key_id) == previous.as_ref() {
                        // `validUntil` is set once the owner has switched.
                        key.state = KeyState::Retiring;
                    }
                }
                keys[pending].state = KeyState::Active;
                active_key_id = Some(key_id.clone());
                next_rotation = Some(later(now, interval).to_rfc3339());
                events.push(RotationEvent::Activated { key_id, previous });
            }
            Rollout::Waiting(sidecars) => {
                waiting = Some(format!(
                    "key {key_id} waits for {} sidecar(s) to trust it: {}",
                    sidecars.len(),
                    sidecars.join(", ")
                ));
            }
        }
    }

    if waiting.is_none() && keys.iter().any(|k| k.state == KeyState::Retiring && k.valid_until.is_none()) {
        waiting = Some(format!(
            "the owner of key {} has not acknowledged signing with it yet; the previous key stays trusted",
            active_key_id.as_deref().unwrap_or("?")
        ));
    }
    // The store keeps exactly the private keys of published keys.
    ring.keys.retain(|private| keys.iter().any(|k| k.key_id == private.key_id));
    let rank = |state: KeyState| match state {
        KeyState::Active => 0,
        KeyState::Pending => 1,
        KeyState::Retiring => 2,
    };
    keys.sort_by(|a, b| (rank(a.state), &a.key_id).cmp(&(rank(b.state), &b.key_id)));
    Ok(Plan { published: PublishedKeys { keys, active_key_id, next_rotation }, ring, events, waiting })
}

/// The state of one RouteKey's rotation, as `/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    pub node_id: String,
    pub active_key_id: Option<String>,
    pub keys: Vec<String>,
    pub waiting: Option<String>,
    pub error: Option<String>,
    pub rotations: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::duration::GoDuration;

    const HOUR: u64 = 3_600_000;

    fn spec() -> RouteKeySpec {
        RouteKeySpec {
            node_id: "eu-1".into(),
            service_account_name: None,
            algorithm: Default::default(),
            management: Default::default(),
            rotation_interval: GoDuration::new("720h"),
            overlap: GoDuration::new("24h"),
            external_keys: vec![],
        }
    }

    struct Keys(u8);
    impl Keys {
        fn next(&mut self) -> Result<[u8; 32], GenerateError> {
            self.0 += 1;
            Ok([self.0; 32])
        }
    }

    /// Every sidecar at `rollout`; the owner signs with `signs_with`.
    struct Sidecars {
        rollout: Rollout,
        signs_with: bool,
    }

    impl Fabric for Sidecars {
        fn trusted_everywhere(&self, _: &str) -> Rollout {
            self.rollout.clone()
        }
        fn signs_with(&self, _: &str) -> bool {
            self.signs_with
        }
    }

    #[test]
    fn a_key_is_activated_leaving_behind_sidecars_without_a_config_and_says_so() {
        let mut keys = Keys(0);
        let t0 = 1_800_000_000_000;
        let waiting = Rollout::Waiting(vec!["fabric/x (no valid config compiled)".into()]);
        let p1 = step(&PublishedKeys::default(), &KeyRing::default(), t0, waiting, &mut keys);
        assert_eq!(p1.published.active_key_id, None, "held back while it may still get a config");
        let left = Rollout::LeavingBehind(vec!["fabric/x (no valid config compiled)".into()]);
        let p2 = step(&p1.published, &p1.ring, t0 + 60_000, left, &mut keys);
        assert_eq!(p2.published.active_key_id.as_deref(), Some("k1"));
        let note = p2.waiting.unwrap_or_default();
        assert!(note.contains("activated without 1 sidecar(s)") && note.contains("fabric/x"), "{note}");
    }

    fn step(published: &PublishedKeys, ring: &KeyRing, now: u64, rollout: Rollout, keys: &mut Keys) -> Plan {
        step_with(published, ring, now, Sidecars { rollout, signs_with: true }, keys)
    }

    fn step_with(published: &PublishedKeys, ring: &KeyRing, now: u64, sidecars: Sidecars, keys: &mut Keys) -> Plan {
        let spec = spec();
        let inputs = Inputs { spec: &spec, published, ring, now: Timestamp(now) };
        plan(&inputs, &sidecars, &mut || keys.next()).unwrap()
    }

    fn states(plan: &Plan) -> Vec<(String, KeyState)> {
        plan.published.keys.iter().map(|k| (k.key_id.clone(), k.state)).collect()
    }

    #[test]
    fn a_key_signs_only_after_every_sidecar_trusts_it_and_the_old_one_retires_after_the_overlap() {
        let mut keys = Keys(0);
        let t0 = 1_800_000_000_000;
        // First step: k1 published, not active while sidecars lag.
        let p1 =
            step(&PublishedKeys::default(), &KeyRing::default(), t0, Rollout::Waiting(vec!["a".into()]), &mut keys);
        assert_eq!(states(&p1), [("k1".to_string(), KeyState::Pending)]);
        assert_eq!(p1.published.active_key_id, None);
        assert_eq!(p1.ring.keys.len(), 1);
        assert_eq!(p1.events, [RotationEvent::Published { key_id: "k1".into() }]);
        assert_eq!(p1.waiting.as_deref(), Some("key k1 waits for 1 sidecar(s) to trust it: a"));
        assert_eq!(p1.published.keys[0].public_key, p1.ring.keys[0].public_key().unwrap());

        // Everyone trusts k1: active, next rotation in 720h.
        let p2 = step(&p1.published, &p1.ring, t0 + 1000, Rollout::Everywhere, &mut keys);
        assert_eq!(states(&p2), [("k1".to_string(), KeyState::Active)]);
        assert_eq!(p2.published.active_key_id.as_deref(), Some("k1"));
        assert_eq!(p2.published.next_rotation, Some(Timestamp(t0 + 1000 + 720 * HOUR).to_rfc3339()));

        // Nothing due: nothing changes.
        let p3 = step(&p2.published, &p2.ring, t0 + 10 * HOUR, Rollout::Everywhere, &mut keys);
        assert!(!p3.changed(&p2.published, &p2.ring) && p3.events.is_empty());

        // Rotation due: k2 published while k1 still signs.
        let due = t0 + 1000 + 720 * HOUR;
        let p4 = step(&p2.published, &p2.ring, due, Rollout::Waiting(vec!["b".into()]), &mut keys);
        assert_eq!(states(&p4), [("k1".to_string(), KeyState::Active), ("k2".to_string(), KeyState::Pending)]);
        assert_eq!(p4.published.active_key_id.as_deref(), Some("k1"));
        // ... then active; k1 retiring, trusted without end while the owner
        // has not switched to k2 ...
        let lagging = || Sidecars { rollout: Rollout::Everywhere, signs_with: false };
        let p5 = step_with(&p4.published, &p4.ring, due + 5000, lagging(), &mut keys);
        assert_eq!(states(&p5), [("k2".to_string(), KeyState::Active), ("k1".to_string(), KeyState::Retiring)]);
        assert_eq!(p5.events, [RotationEvent::Activated { key_id: "k2".into(), previous: Some("k1".into()) }]);
        let k1 = |plan: &Plan| plan.published.keys.iter().find(|k| k.key_id == "k1").unwrap().valid_until.clone();
        assert_eq!(k1(&p5), None);
        let late = due + 5000 + 48 * HOUR;
        let p5b = step_with(&p5.published, &p5.ring, late, lagging(), &mut keys);
        assert_eq!(k1(&p5b), None, "not retired while the owner may still sign with it");
        assert!(p5b.waiting.as_deref().is_some_and(|w| w.contains("not acknowledged signing with it")));
        let p5c = step_with(&p5.published, &p5.ring, due + 3 * 720 * HOUR, lagging(), &mut keys);
        assert_eq!(states(&p5c).len(), 2, "no new key while the owner lags");
        // ... the 24h overlap starts when it has.
        let p5d = step(&p5b.published, &p5b.ring, late, Rollout::Everywhere, &mut keys);
        assert_eq!(k1(&p5d), Some(Timestamp(late + 24 * HOUR).to_rfc3339()));
        // ... and it is gone, with its private key, after the overlap.
        let p6 = step(&p5d.published, &p5d.ring, late + 24 * HOUR, Rollout::Everywhere, &mut keys);
        assert_eq!(states(&p6), [("k2".to_string(), KeyState::Active)]);
        assert_eq!(p6.ring.keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(), ["k2"]);
        assert_eq!(p6.events, [RotationEvent::Retired { key_id: "k1".into() }]);
    }

    #[test]
    fn a_lost_private_key_is_replaced_and_an_unpublished_one_is_adopted() {
        let mut keys = Keys(0);
        let t0 = 1_800_000_000_000;
        let p1 = step(&PublishedKeys::default(), &KeyRing::default(), t0, Rollout::Everywhere, &mut keys);
        assert_eq!(p1.published.active_key_id.as_deref(), Some("k1"), "no sidecar lags: active at once");
        // The store lost k1: it stays trusted, k2 is published to replace it.
        let p2 = step(&p1.published, &KeyRing::default(), t0 + 1, Rollout::Waiting(vec![]), &mut keys);
        assert_eq!(p2.events[0], RotationEvent::Lost { key_id: "k1".into() });
        assert_eq!(states(&p2), [("k1".to_string(), KeyState::Active), ("k2".to_string(), KeyState::Pending)]);
        // The store has a key the status never showed: published as pending.
        let p3 = step(&PublishedKeys::default(), &p1.ring, t0 + 2, Rollout::Waiting(vec![]), &mut keys);
        assert_eq!(states(&p3), [("k1".to_string(), KeyState::Pending)]);
    }

    #[test]
    fn key_ids_skip_external_ones_and_private_keys_do_not_print() {
        let mut spec = spec();
        spec.external_keys.push(crate::api::ExternalKey {
            key_id: "k1".into(),
            public_key: "x".into(),
            valid_from: None,
            valid_until: None,
        });
        assert_eq!(next_key_id(&spec, &[], &KeyRing::default()), "k2");
        let private = PrivateKey::new("k9".into(), &[1; 32], Timestamp(0));
        assert!(!format!("{private:?}").contains(&private.private_key));
    }
}
