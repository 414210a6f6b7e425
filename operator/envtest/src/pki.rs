//! The key material a real API server needs: a CA, a serving certificate
//! for 127.0.0.1, and the ServiceAccount token signing key pair (so that
//! TokenRequest issues real JWTs and TokenReview checks them).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::Error;

/// The files written by [`write`], all under one folder.
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) ca_key: PathBuf,
    pub(crate) ca_pem: String,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_pub: PathBuf,
}

pub(crate) fn write(dir: &Path) -> Result<Pki, Error> {
    let pki = |what: &'static str| move |e: rcgen::Error| Error::Pki(what, e.to_string());
    let ca_key = KeyPair::generate().map_err(pki("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki("CA"))?;
    ca_params.distinguished_name.push(DnType::CommonName, "fabric-envtest-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).map_err(pki("CA"))?;
    let ca_pem = ca.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().map_err(pki("serving key"))?;
    let mut serving_params = CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])
    .map_err(pki("serving certificate"))?;
    serving_params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let serving = serving_params.signed_by(&serving_key, &issuer).map_err(pki("serving certificate"))?;

    // ECDSA P-256: the API server signs ServiceAccount tokens with ES256.
    let sa_key = KeyPair::generate().map_err(pki("service-account key"))?;

    let files = Pki {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        ca_pem,
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("sa.key"),
        service_account_pub: dir.join("sa.pub"),
    };
    let write = |path: &Path, text: &str| std::fs::write(path, text).map_err(|e| Error::Io(path.to_owned(), e));
    write(&files.ca_cert, &files.ca_pem)?;
    write(&files.ca_key, &ca_key_pem)?;
    write(&files.serving_cert, &serving.pem())?;
    write(&files.serving_key, &serving_key.serialize_pem())?;
    write(&files.service_account_key, &sa_key.serialize_pem())?;
    write(&files.service_account_pub, &sa_key.public_key_pem())?;
    Ok(files)
}
