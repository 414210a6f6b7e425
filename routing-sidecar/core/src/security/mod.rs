//! Route authentication: key registry with validity windows, signing,
//! verification with a digest cache and batch verification.

mod keys;
mod signer;
mod verify;

pub use keys::{BadPublicKey, KeyError, KeyRegistry, PublicKeyEntry, public_key};
pub use signer::{SigningIdentity, generate_signing_key_bytes};
pub use verify::{SignatureCheck, VerificationCache, Verifier, VerifyRequest};
