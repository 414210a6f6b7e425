//! This project's envtest: a real kube-apiserver and etcd on loopback for
//! the operator's tests, so they prove against the real server what mocks
//! cannot (OpenAPI schemas, CEL rules, RBAC, server-side apply, TokenRequest
//! and TokenReview, admission webhooks, Pod Security, Leases).
//!
//! One server per test binary, started by the first test that asks
//! ([`Envtest::shared`]), a namespace per test ([`Envtest::namespace`]).
//! The server has no kubelet, no controller-manager and no scheduler: tests
//! create ServiceAccounts themselves and set Pod status through the status
//! subresource.
//!
//! Binaries come from `scripts/install-envtest.sh`. Where they are missing
//! the tests print `SKIPPED` with that command and pass, unless
//! `FABRIC_ENVTEST=require` (set by `.ci/run`) makes a missing binary fail.

mod apply;
mod assets;
mod pki;
mod process;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use apply::{apply_yaml, apply_yaml_with, parse_yaml_documents};
pub use assets::{ASSETS_ENV, Assets, KUBERNETES_VERSION};

use process::{Supervised, free_port};

/// `FABRIC_ENVTEST=require`: a missing binary fails instead of skipping.
pub const REQUIRE_ENV: &str = "FABRIC_ENVTEST";

/// The static token of the `admin` user (group `system:masters`).
const ADMIN_TOKEN_LENGTH: usize = 32;

/// How long the API server may take to become ready (it compiles its
/// OpenAPI and bootstraps RBAC; a few seconds on two cores).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("key material ({0}): {1}")]
    Pki(&'static str, String),
    #[error("starting {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("{0} did not become ready: {1}\n--- last lines of {2} ---\n{3}")]
    NotReady(&'static str, String, PathBuf, String),
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("YAML document {0}: {1}")]
    Yaml(usize, String),
}

/// A running kube-apiserver with its etcd.
pub struct Envtest {
    dir: PathBuf,
    url: String,
    ca_pem: String,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    admin_kubeconfig: PathBuf,
    assets: Assets,
    // Declared before etcd: fields drop in order, the API server stops first.
    _apiserver: Supervised,
    _etcd: Supervised,
    next_namespace: AtomicU32,
}

static SHARED: OnceLock<Option<Envtest>> = OnceLock::new();

/// The shared server, or return from the test with a printed `SKIPPED` line
/// when the binaries are missing (and `FABRIC_ENVTEST` is not `require`).
#[macro_export]
macro_rules! envtest_or_skip {
    () => {
        match $crate::Envtest::shared(module_path!()) {
            Some(envtest) => envtest,
            None => return,
        }
    };
}

impl Envtest {
    /// The server of this test binary, started on the first call. `None`
    /// when the binaries are missing and not required; panics when they
    /// are required, or present but the server does not start.
    pub fn shared(test: &str) -> Option<&'static Envtest> {
        let envtest = SHARED.get_or_init(|| match Assets::locate() {
            Ok(assets) => {
                // Started on a thread of its own: the caller may be inside a
                // tokio runtime, where blocking on another one is refused.
                let started = std::thread::spawn(move || Envtest::start(assets)).join();
                match started {
                    Ok(Ok(envtest)) => Some(envtest),
                    Ok(Err(e)) => panic!("envtest: {e}"),
                    Err(_) => panic!("envtest: the start-up thread panicked"),
                }
            }
            Err(reason) if required() => {
                panic!("envtest: {reason}; {REQUIRE_ENV}=require, so this fails. Run scripts/install-envtest.sh")
            }
            Err(reason) => {
                uncaptured(&format!(
                    "SKIPPED: the real-API tests (no kube-apiserver: {reason}). Run `bash scripts/install-envtest.sh` \
                     once, then the tests again."
                ));
                None
            }
        });
        if envtest.is_none() {
            // libtest names each test's thread after the test.
            let name = std::thread::current().name().map(str::to_owned).unwrap_or_default();
            uncaptured(&format!("SKIPPED {test}::{name}: needs the real API server (bash scripts/install-envtest.sh)"));
        }
        envtest.as_ref()
    }

    fn start(assets: Assets) -> Result<Envtest, Error> {
        let dir = scratch_dir()?;
        let pki = pki::write(&dir)?;
        let admin_token = random_token()?;
        let tokens = dir.join("tokens.csv");
        std::fs::write(&tokens, format!("{admin_token},admin,admin-uid,system:masters\n"))
            .map_err(|e| Error::Io(tokens.clone(), e))?;

        // A lost race for a port shows as a server that exits early: try
        // again with new ports.
        let mut last = None;
        for _attempt in 0..3 {
            let etcd = match start_etcd(&assets, &dir) {
                Ok(etcd) => etcd,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match start_apiserver(&assets, &dir, &pki, &tokens, &etcd.1, &admin_token) {
                Ok((apiserver, url, admin_kubeconfig)) => {
                    return Ok(Envtest {
                        dir,
                        url,
                        ca_pem: pki.ca_pem,
                        ca_cert: pki.ca_cert,
                        ca_key: pki.ca_key,
                        admin_kubeconfig,
                        assets,
                        _apiserver: apiserver,
                        _etcd: etcd.0,
                        next_namespace: AtomicU32::new(0),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA that signed the serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA's certificate and key files, to sign more certificates with
    /// (webhook serving certificates).
    pub fn ca_files(&self) -> (&Path, &Path) {
        (&self.ca_cert, &self.ca_key)
    }

    /// A scratch folder of this server, removed with it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// A kubeconfig of the `admin` user (`system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// A kubeconfig that authenticates with `token` (a ServiceAccount
    /// token from [`Envtest::token`]), written under [`Envtest::dir`].
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> Result<PathBuf, Error> {
        let path = self.dir.join(format!("kubeconfig-{name}"));
        std::fs::write(&path, kubeconfig(&self.url, &self.ca_pem, name, token))
            .map_err(|e| Error::Io(path.clone(), e))?;
        Ok(path)
    }

    /// An admin client, made in the caller's runtime (a kube client belongs
    /// to the runtime it was made in, and every test has its own).
    pub async fn client(&self) -> kube::Client {
        client_from(&self.admin_kubeconfig).await.expect("admin client")
    }

    /// A client that authenticates with `token`.
    pub async fn client_with_token(&self, token: &str) -> kube::Client {
        let path = self.kubeconfig_with_token(&format!("token-{}", self.unique()), token).expect("kubeconfig");
        client_from(&path).await.expect("client with token")
    }

    /// A new namespace `<prefix>-<n>` with its `default` ServiceAccount
    /// (no controller-manager creates it here).
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> String {
        let name = format!("{prefix}-{}", self.unique());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        namespaces.create(&PostParams::default(), &namespace).await.expect("create namespace");
        self.service_account(client, &name, "default").await;
        name
    }

    /// Creates a ServiceAccount.
    pub async fn service_account(&self, client: &kube::Client, namespace: &str, name: &str) {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let account: ServiceAccount = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("create ServiceAccount {namespace}/{name}: {e}"),
        }
    }

    /// A real ServiceAccount token from the TokenRequest API, for
    /// `audiences`, bound to a pod when `pod` (name, uid) is given.
    pub async fn token(
        &self,
        client: &kube::Client,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        pod: Option<(&str, &str)>,
    ) -> String {
        use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
                bound_object_ref: pod.map(|(name, uid)| BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name.into()),
                    uid: Some(uid.into()),
                }),
                expiration_seconds: Some(3600),
            },
            ..Default::default()
        };
        let issued = accounts
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{service_account}: {e}"));
        issued.status.expect("TokenRequest status").token
    }

    /// The kubectl binary (for tools that run `kubectl` from PATH).
    pub fn kubectl_path(&self) -> &Path {
        &self.assets.kubectl
    }

    /// `kubectl --kubeconfig <admin>` (add the arguments).
    pub fn kubectl(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.assets.kubectl);
        command.arg("--kubeconfig").arg(&self.admin_kubeconfig);
        command
    }

    /// A number no other caller of this server gets.
    pub fn unique(&self) -> u32 {
        self.next_namespace.fetch_add(1, Ordering::Relaxed)
    }
}

/// A line on the test binary's stderr that the test harness does not
/// capture (it captures `eprintln!` of passing tests), so a skip is seen.
pub fn uncaptured(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "require")
}

fn scratch_dir() -> Result<PathBuf, Error> {
    // etcd fsyncs every write; on tmpfs that costs nothing.
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("fabric-envtest-{}-{}", std::process::id(), random_token()?.get(..8).unwrap_or("x")));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e))?;
    Ok(dir)
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; ADMIN_TOKEN_LENGTH / 2];
    getrandom::fill(&mut bytes).map_err(|e| Error::Pki("random token", e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// etcd on two free ports; returns it and its client URL once it answers.
fn start_etcd(assets: &Assets, dir: &Path) -> Result<(Supervised, String), Error> {
    let client_port = free_port().map_err(|e| Error::Spawn("etcd", e))?;
    let peer_port = free_port().map_err(|e| Error::Spawn("etcd", e))?;
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let data = dir.join(format!("etcd-{client_port}"));
    let args = [
        "--name=envtest".to_owned(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=envtest={peer_url}"),
        "--log-level=warn".to_owned(),
    ];
    let mut etcd = Supervised::spawn(&assets.etcd, &args, dir.join("etcd.log"), Some(&data))
        .map_err(|e| Error::Spawn("etcd", e))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", client_port)).is_ok() {
            return Ok((etcd, client_url));
        }
        if !etcd.running() || Instant::now() > deadline {
            return Err(Error::NotReady(
                "etcd",
                "its client port never opened".into(),
                etcd.log.clone(),
                etcd.log_tail(20),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_apiserver(
    assets: &Assets,
    dir: &Path,
    pki: &pki::Pki,
    tokens: &Path,
    etcd_url: &str,
    admin_token: &str,
) -> Result<(Supervised, String, PathBuf), Error> {
    let port = free_port().map_err(|e| Error::Spawn("kube-apiserver", e))?;
    let path = |p: &Path| p.display().to_string();
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let args = [
        format!("--etcd-servers={etcd_url}"),
        // Each server its own etcd prefix: a retry after a lost port race
        // never sees the objects of an earlier attempt.
        format!("--etcd-prefix=/registry-{port}"),
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.display()),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--token-auth-file={}", path(tokens)),
        format!("--service-account-issuer={issuer}"),
        format!("--service-account-key-file={}", path(&pki.service_account_pub)),
        format!("--service-account-signing-key-file={}", path(&pki.service_account_key)),
        format!("--api-audiences={issuer}"),
        "--authorization-mode=RBAC".to_owned(),
        "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
        "--allow-privileged=true".to_owned(),
        // No controller-manager maintains the `kubernetes` Service's
        // endpoints, and 127.0.0.1 is not a valid endpoint address.
        "--endpoint-reconciler-type=none".to_owned(),
        "--v=1".to_owned(),
    ];
    let log = dir.join(format!("kube-apiserver-{port}.log"));
    let mut apiserver =
        Supervised::spawn(&assets.kube_apiserver, &args, log, None).map_err(|e| Error::Spawn("kube-apiserver", e))?;
    let url = format!("https://127.0.0.1:{port}");
    let admin_kubeconfig = dir.join("kubeconfig-admin");
    std::fs::write(&admin_kubeconfig, kubeconfig(&url, &pki.ca_pem, "admin", admin_token))
        .map_err(|e| Error::Io(admin_kubeconfig.clone(), e))?;

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Spawn("tokio", e))?;
    let ready = runtime.block_on(async {
        let client = client_from(&admin_kubeconfig).await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if !apiserver.running() {
                return Err(format!("it exited ({last})"));
            }
            let request = http::Request::get("/readyz").body(Vec::new()).expect("request");
            match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                Ok(text) => last = text,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("not ready within {READY_TIMEOUT:?} (last: {last})"))
    });
    match ready {
        Ok(()) => Ok((apiserver, url, admin_kubeconfig)),
        Err(reason) => {
            let tail = apiserver.log_tail(30);
            Err(Error::NotReady("kube-apiserver", reason, apiserver.log.clone(), tail))
        }
    }
}

fn kubeconfig(url: &str, ca_pem: &str, user: &str, token: &str) -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "envtest", "cluster": {"server": url, "certificate-authority-data": encode(ca_pem.as_bytes())}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user, "namespace": "default"}}],
        "current-context": "envtest",
    });
    serde_json::to_string_pretty(&config).expect("kubeconfig serializes")
}

async fn client_from(path: &Path) -> Result<kube::Client, Error> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}
