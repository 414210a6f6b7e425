//! The local node's signing key: signs what this node advertises.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::canonical;
use crate::ids::{KeyId, NodeId};
use crate::message::{RouteAnnouncement, RouteWithdrawal, SignatureAlgorithm, SignatureBlock};
use crate::security::PublicKeyEntry;
use crate::time::Timestamp;

/// 32 fresh secret-key bytes from the operating system's CSPRNG.
pub fn generate_signing_key_bytes() -> Result<[u8; 32], getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    Ok(secret)
}

/// A private key and the id under which its public half is published.
#[derive(Clone)]
pub struct SigningIdentity {
    key_id: KeyId,
    key: SigningKey,
}

impl std::fmt::Debug for SigningIdentity {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("key_id", &self.key_id)
            .field("public_key", &self.key.verifying_key())
            .finish()
    }
}

impl SigningIdentity {
    pub fn from_secret_bytes(key_id: KeyId, secret: &[u8; 32]) -> Self {
        Self { key_id, key: SigningKey::from_bytes(secret) }
    }

    /// A new random key.
    pub fn generate(key_id: KeyId) -> Result<Self, getrandom::Error> {
        Ok(Self::from_secret_bytes(key_id, &generate_signing_key_bytes()?))
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The registry entry that lets others verify this identity's signatures.
    pub fn public_entry(
        &self,
        advertiser: NodeId,
        valid_from: Option<Timestamp>,
        valid_until: Option<Timestamp>,
    ) -> PublicKeyEntry {
        PublicKeyEntry { advertiser, key_id: self.key_id.clone(), key: self.verifying_key(), valid_from, valid_until }
    }

    fn block(&self, canonical: &[u8]) -> SignatureBlock {
        SignatureBlock {
            algorithm: SignatureAlgorithm::Ed25519,
            key_id: self.key_id.clone(),
            bytes: self.key.sign(canonical).to_bytes(),
        }
    }

    pub fn sign_announcement(&self, announcement: &mut RouteAnnouncement) {
        let bytes = canonical::announcement_bytes(announcement, SignatureAlgorithm::Ed25519, &self.key_id);
        announcement.signature = Some(Box::new(self.block(&bytes)));
    }

    pub fn sign_withdrawal(&self, withdrawal: &mut RouteWithdrawal) {
        let bytes = canonical::withdrawal_bytes(withdrawal, SignatureAlgorithm::Ed25519, &self.key_id);
        withdrawal.signature = Some(Box::new(self.block(&bytes)));
    }
}
