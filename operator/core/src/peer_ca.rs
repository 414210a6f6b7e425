//! The CA of sidecar-to-sidecar TLS: it issues each sidecar a short-lived
//! certificate for the node id the compiler gave its pod (DNS name
//! `<node id>`, URI `spiffe://<trust domain>/ns/<namespace>/node/<node id>`)
//! for the key of the request in its Hello. Only the key of the request is
//! used; every name is the operator's. No IO here: the CA's key pair is
//! kept by the caller (a Secret in cluster mode, memory in local mode).

use std::time::{Duration, SystemTime};

use fabric_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Default lifetime of a peer certificate.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default SPIFFE trust domain of the URI names.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// How far before now a certificate's validity starts, for peers whose
/// clocks are behind.
const BACKDATE: Duration = Duration::from_secs(300);
/// The CA itself is valid this long; it is kept, not rotated, by the
/// operator (docs/security.md).
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PeerCaError {
    /// `part`: `key`, `certificate`, or `new CA` when one was being made.
    #[error("the CA's certificate or key does not load: {part}: {source}")]
    BadCa {
        part: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("the certificate request does not parse or its signature is wrong: {0}")]
    BadRequest(#[source] rcgen::Error),
    #[error("node id {0} cannot be a certificate's DNS name")]
    BadNodeId(NodeId),
    #[error("issuing failed: {0}")]
    Issue(#[source] rcgen::Error),
}

/// A certificate issued to one sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// PEM, leaf only (the CA is in the bundle).
    pub chain_pem: String,
    pub not_after: SystemTime,
}

pub struct PeerCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
    pub trust_domain: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for PeerCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCa").field("trust_domain", &self.trust_domain).field("lifetime", &self.lifetime).finish()
    }
}

fn ca_params(now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "fabric routing peer CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_LIFETIME).into();
    params
}

impl PeerCa {
    /// A new CA (ECDSA P-256).
    pub fn generate(trust_domain: &str, lifetime: Duration, now: SystemTime) -> Result<Self, PeerCaError> {
        let new_ca = |source| PeerCaError::BadCa { part: "new CA", source };
        let key = KeyPair::generate().map_err(new_ca)?;
        let cert = ca_params(now).self_signed(&key).map_err(new_ca)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem(), trust_domain, lifetime)
    }

    /// The CA kept by a previous run.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        trust_domain: &str,
        lifetime: Duration,
    ) -> Result<Self, PeerCaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| PeerCaError::BadCa { part: "key", source })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|source| PeerCaError::BadCa { part: "certificate", source })?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            trust_domain: trust_domain.to_owned(),
            lifetime,
        })
    }

    /// The CA certificate, what every sidecar trusts (PEM).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (PEM), for the caller to keep.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The SPIFFE ID a sidecar of `namespace` running as `node_id` gets.
    pub fn spiffe_id(&self, namespace: &str, node_id: &NodeId) -> String {
        format!("spiffe://{}/ns/{namespace}/node/{node_id}", self.trust_domain)
    }

    /// A certificate for the key of `request` (DER PKCS#10, signature
    /// checked), naming `node_id` of `namespace`, valid from `now` (minus a
    /// few minutes of clock skew) for the CA's lifetime setting.
    pub fn issue(
        &self,
        request: &[u8],
        node_id: &NodeId,
        namespace: &str,
        now: SystemTime,
    ) -> Result<Issued, PeerCaError> {
        let request =
            CertificateSigningRequestParams::from_der(&request.to_vec().into()).map_err(PeerCaError::BadRequest)?;
        // What the dialing peer checks the certificate against (a DNS name).
        if rustls_pki_types::DnsName::try_from(node_id.as_str()).is_err() {
            return Err(PeerCaError::BadNodeId(node_id.clone()));
        }
        let dns = node_id.as_str().try_into().map_err(|_| PeerCaError::BadNodeId(node_id.clone()))?;
        let uri = self.spiffe_id(namespace, node_id).try_into().map_err(|_| PeerCaError::BadNodeId(node_id.clone()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, node_id.as_str());
        params.distinguished_name = name;
        params.subject_alt_names = vec![SanType::DnsName(dns), SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every session is both: the dialer is a TLS client, the listener a server.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let not_after = now + self.lifetime;
        params.not_before = (now - BACKDATE).into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&request.public_key, &self.issuer).map_err(PeerCaError::Issue)?;
        Ok(Issued { chain_pem: cert.pem(), not_after })
    }
}

/// How the operator's peer CA is set up (flags shared by both modes).
#[derive(Clone, Debug)]
pub struct PeerCaSettings {
    pub trust_domain: String,
    pub lifetime: Duration,
}

impl Default for PeerCaSettings {
    fn default() -> Self {
        Self { trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(), lifetime: DEFAULT_LIFETIME }
    }
}

/// Whether a certificate valid until `not_after` should be renewed at
/// `now`: when less than a third of `lifetime` is left, so a renewal has
/// two thirds of the lifetime to reach a sidecar that is briefly away.
pub fn renewal_due(not_after: SystemTime, lifetime: Duration, now: SystemTime) -> bool {
    not_after.duration_since(now).is_ok_and(|left| left < lifetime / 3) || now >= not_after
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;

    fn request() -> (KeyPair, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        // The sidecar asks for nothing in particular; names it asks for are
        // ignored anyway.
        let params = CertificateParams::new(vec!["somebody-else".to_string()]).unwrap();
        let csr = params.serialize_request(&key).unwrap().der().to_vec();
        (key, csr)
    }

    #[test]
    fn an_issued_certificate_names_the_compiled_node_and_chains_to_the_ca() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ca = PeerCa::generate("example.org", Duration::from_secs(3600), now).unwrap();
        let (_key, csr) = request();
        let issued = ca.issue(&csr, &NodeId::from("eu-1"), "fabric", now).unwrap();
        assert_eq!(issued.not_after, now + Duration::from_secs(3600));
        let leaf = CertificateDer::from_pem_slice(issued.chain_pem.as_bytes()).unwrap();
        let end_entity = webpki::EndEntityCert::try_from(&leaf).unwrap();
        let name = |n: &str| rustls_pki_types::ServerName::try_from(n.to_owned()).unwrap();
        assert!(end_entity.verify_is_valid_for_subject_name(&name("eu-1")).is_ok());
        assert!(
            end_entity.verify_is_valid_for_subject_name(&name("somebody-else")).is_err(),
            "requested names ignored"
        );
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        let uris: Vec<String> = parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(uris, ["spiffe://example.org/ns/fabric/node/eu-1"]);
        let ca_cert = CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes()).unwrap();
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(ca_cert.as_ref()).unwrap();
        assert!(parsed.verify_signature(Some(ca_parsed.public_key())).is_ok(), "signed by the CA");
        // Kept and loaded again, the CA issues certificates that chain the same way.
        let reloaded = PeerCa::from_pem(ca.certificate_pem(), ca.key_pem(), "example.org", ca.lifetime).unwrap();
        let again = reloaded.issue(&csr, &NodeId::from("eu-1"), "fabric", now).unwrap();
        let again = CertificateDer::from_pem_slice(again.chain_pem.as_bytes()).unwrap();
        let (_, again) = x509_parser::parse_x509_certificate(again.as_ref()).unwrap();
        assert!(again.verify_signature(Some(ca_parsed.public_key())).is_ok());
    }

    #[test]
    fn a_request_with_a_broken_signature_or_no_request_is_refused() {
        let now = SystemTime::now();
        let ca = PeerCa::generate(DEFAULT_TRUST_DOMAIN, DEFAULT_LIFETIME, now).unwrap();
        let (_, mut csr) = request();
        let last = csr.len() - 1;
        csr[last] ^= 0xff;
        assert!(matches!(ca.issue(&csr, &NodeId::from("a"), "ns", now), Err(PeerCaError::BadRequest(_))));
        assert!(matches!(ca.issue(b"", &NodeId::from("a"), "ns", now), Err(PeerCaError::BadRequest(_))));
        let (_, csr) = request();
        assert!(matches!(ca.issue(&csr, &NodeId::from("not a name"), "ns", now), Err(PeerCaError::BadNodeId(_))));
    }

    #[test]
    fn renewal_is_due_in_the_last_third_of_the_lifetime() {
        let lifetime = Duration::from_secs(300);
        let issued_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let not_after = issued_at + lifetime;
        assert!(!renewal_due(not_after, lifetime, issued_at));
        assert!(!renewal_due(not_after, lifetime, issued_at + Duration::from_secs(199)));
        assert!(renewal_due(not_after, lifetime, issued_at + Duration::from_secs(201)));
        assert!(renewal_due(not_after, lifetime, not_after + Duration::from_secs(1)));
    }
}
