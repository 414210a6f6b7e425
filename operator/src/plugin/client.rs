//! The plugin's side of the HTTP APIs: parsing `--sidecar` / `--operator`
//! addresses, one GET through `fabric_io::local_http`, and
//! errors that name the address and say which `kubectl port-forward` makes
//! it reachable.

use std::net::SocketAddr;

use fabric_io::local_http::{self, HttpResponse};
use serde_json::Value;

use super::{EXIT_UNREACHABLE, Failure};

/// Which API an address is expected to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// A routing sidecar's local API (`routing-sidecar run --api`, default
    /// `127.0.0.1:7480`).
    Sidecar,
    /// The operator's HTTP API (`fabric-operator run --http`; `8080` in the
    /// chart).
    Operator,
    /// A Prometheus that scrapes the sidecars (`status --prometheus`).
    Prometheus,
}

impl Service {
    pub fn describe(self) -> &'static str {
        match self {
            Service::Sidecar => "sidecar API",
            Service::Operator => "operator HTTP API",
            Service::Prometheus => "Prometheus HTTP API",
        }
    }

    /// The port inside the pod that `--pod` forwards to.
    pub fn remote_port(self) -> u16 {
        match self {
            Service::Sidecar => 7480,
            Service::Operator => 8080,
            Service::Prometheus => 9090,
        }
    }

    /// What to do when the address cannot be reached.
    pub fn port_forward_hint(self) -> String {
        match self {
            Service::Sidecar => "In a cluster, forward the sidecar's local API first:\n  \
                 kubectl -n NAMESPACE port-forward pod/POD 7480\n\
                 then pass --sidecar 127.0.0.1:7480 (or let kubectl fabric do it: --pod NAMESPACE/POD)."
                .into(),
            Service::Operator => "In a cluster, forward the operator's HTTP port first:\n  \
                 kubectl -n fabric-system port-forward deployment/fabric-fabric-routing 8080\n\
                 then pass --operator 127.0.0.1:8080 (or let kubectl fabric do it: \
                 --pod fabric-system/deployment/fabric-fabric-routing)."
                .into(),
            Service::Prometheus => "Forward the Prometheus that scrapes the sidecars first, e.g.:\n  \
                 kubectl -n monitoring port-forward svc/prometheus-operated 9090\n\
                 then pass --prometheus 127.0.0.1:9090."
                .into(),
        }
    }
}

/// `HOST:PORT`, also written `http://HOST:PORT/` or `:PORT` (localhost).
/// Returns the `HOST:PORT` to resolve.
pub fn normalize_address(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.starts_with("https://") {
        return Err(format!(
            "{trimmed}: the sidecar and operator HTTP APIs speak plain HTTP; give HOST:PORT (a kubectl port-forward)"
        ));
    }
    let bare = trimmed.strip_prefix("http://").unwrap_or(trimmed).trim_end_matches('/');
    if bare.is_empty() {
        return Err("empty address: give HOST:PORT".into());
    }
    if bare.contains('/') {
        return Err(format!("{trimmed}: give HOST:PORT without a path"));
    }
    let with_host = if bare.starts_with(':') { format!("127.0.0.1{bare}") } else { bare.to_string() };
    let port = with_host.rsplit_once(':').map(|(_, port)| port);
    match port {
        Some(port) if !with_host.ends_with(']') && port.parse::<u16>().is_ok() => Ok(with_host),
        _ => Err(format!("{trimmed}: no port; give HOST:PORT, e.g. 127.0.0.1:7480")),
    }
}

/// One path segment, percent-encoded (destinations are free-form ids).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `error` of a JSON error body (`{"error": ...}`), else the body.
pub fn error_text(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    if message.is_empty() { "(empty body)".into() } else { message }
}

/// One API at one address.
#[derive(Clone, Debug)]
pub struct Api {
    pub service: Service,
    /// The address as the user gave it (shown in errors).
    pub shown: String,
    pub addr: SocketAddr,
    /// Printed under a connection error.
    pub hint: String,
}

impl Api {
    /// Parses and resolves `text` (`localhost:7480` works too).
    pub async fn resolve(service: Service, text: &str) -> Result<Api, Failure> {
        let address = normalize_address(text).map_err(|e| Failure::new(super::EXIT_USAGE, e))?;
        let addr = tokio::net::lookup_host(address.as_str())
            .await
            .map_err(|e| {
                Failure::new(
                    EXIT_UNREACHABLE,
                    format!(
                        "cannot resolve the {} address {text}: {e}\n{}",
                        service.describe(),
                        service.port_forward_hint()
                    ),
                )
            })?
            .next()
            .ok_or_else(|| Failure::new(EXIT_UNREACHABLE, format!("{text}: resolves to no address")))?;
        Ok(Api { service, shown: text.trim().to_string(), addr, hint: service.port_forward_hint() })
    }

    /// An address already resolved (a port-forward's local port).
    pub fn at(service: Service, addr: SocketAddr, shown: String, hint: String) -> Api {
        Api { service, shown, addr, hint }
    }

    /// GET `path`; only a transport failure is an error here.
    pub async fn get(&self, path: &str) -> Result<HttpResponse, Failure> {
        local_http::get(self.addr, path).await.map_err(|e| {
            Failure::new(
                EXIT_UNREACHABLE,
                format!("cannot reach the {} at {} ({e}).\n{}", self.service.describe(), self.shown, self.hint),
            )
        })
    }

    /// The error for an answer other than 200.
    pub fn unexpected(&self, path: &str, response: &HttpResponse) -> Failure {
        let message = error_text(&response.body);
        let mut text = format!(
            "the {} at {} answered HTTP {} to GET {path}: {message}",
            self.service.describe(),
            self.shown,
            response.status
        );
        if response.status == 404 && !message.starts_with("nothing known") && !message.starts_with("no route") {
            text.push_str(&format!(" (is {} really a {}?)", self.shown, self.service.describe()));
        }
        Failure::new(EXIT_UNREACHABLE, text)
    }

    /// GET `path`, requiring 200 and a JSON body; returns the body
    /// unchanged (for `--output json`) and parsed.
    pub async fn get_json(&self, path: &str) -> Result<(String, Value), Failure> {
        let response = self.get(path).await?;
        if response.status != 200 {
            return Err(self.unexpected(path, &response));
        }
        self.parse(path, response.body)
    }

    pub fn parse(&self, path: &str, body: String) -> Result<(String, Value), Failure> {
        match serde_json::from_str(&body) {
            Ok(value) => Ok((body, value)),
            Err(e) => Err(Failure::new(
                EXIT_UNREACHABLE,
                format!(
                    "the {} at {} answered GET {path} with something else than JSON ({e}): is it a {}?",
                    self.service.describe(),
                    self.shown,
                    self.service.describe()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(normalize_address("127.0.0.1:7480").unwrap(), "127.0.0.1:7480");
        assert_eq!(normalize_address(" http://localhost:8080/ ").unwrap(), "localhost:8080");
        assert_eq!(normalize_address(":7480").unwrap(), "127.0.0.1:7480");
        assert_eq!(normalize_address("[::1]:7480").unwrap(), "[::1]:7480");
        assert!(normalize_address("127.0.0.1").unwrap_err().contains("no port"));
        assert!(normalize_address("[::1]").unwrap_err().contains("no port"));
        assert!(normalize_address("host:http").unwrap_err().contains("no port"));
        assert!(normalize_address("https://x:1").unwrap_err().contains("plain HTTP"));
        assert!(normalize_address("http://x:1/routes").unwrap_err().contains("without a path"));
        assert!(normalize_address("").is_err());
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("svc-a.eu_1~"), "svc-a.eu_1~");
        assert_eq!(encode_segment("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(error_text(r#"{"error": "nothing known about x"}"#), "nothing known about x");
        assert_eq!(error_text("plain text\n"), "plain text");
        assert_eq!(error_text(""), "(empty body)");
    }

    #[tokio::test]
    async fn an_unreachable_address_is_named_with_the_port_forward_to_run() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let api = Api::resolve(Service::Sidecar, &format!("127.0.0.1:{port}")).await.unwrap();
        let failure = api.get("/routes").await.unwrap_err();
        assert_eq!(failure.code, EXIT_UNREACHABLE);
        assert!(
            failure.message.starts_with(&format!("cannot reach the sidecar API at 127.0.0.1:{port} (")),
            "{failure}"
        );
        assert!(failure.message.contains("kubectl -n NAMESPACE port-forward pod/POD 7480"), "{failure}");
    }
}
