//! `--pod`: runs `kubectl port-forward` on a random local port for the
//! duration of one command, and stops it afterwards.
//!
//! `kubectl -n NS port-forward TYPE/NAME :REMOTE --address 127.0.0.1` lets
//! kubectl choose the local port and print it on stdout (`Forwarding from
//! 127.0.0.1:41234 -> 7480`); that line is awaited (bounded), and the child
//! is killed and reaped when the command is done (and killed on drop, so an
//! early return or a panic does not leave it behind). kubectl reaches the
//! pod's localhost, so a sidecar API bound to `127.0.0.1:7480` works.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{EXIT_UNREACHABLE, EXIT_USAGE, Failure};

/// What `--pod` names: `[NAMESPACE/]NAME` (a pod) or `NAMESPACE/TYPE/NAME`
/// (e.g. `fabric-system/deployment/fabric-fabric-routing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `None`: kubectl's current namespace.
    pub namespace: Option<String>,
    /// `pod/NAME`, `deployment/NAME`, ...
    pub resource: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("--pod {text}: expected [NAMESPACE/]POD or NAMESPACE/TYPE/NAME"));
        }
        match parts.as_slice() {
            [name] => Ok(Target { namespace: None, resource: format!("pod/{name}") }),
            [namespace, name] => Ok(Target { namespace: Some(namespace.to_string()), resource: format!("pod/{name}") }),
            [namespace, kind, name] => {
                Ok(Target { namespace: Some(namespace.to_string()), resource: format!("{kind}/{name}") })
            }
            _ => Err(format!("--pod {text}: expected [NAMESPACE/]POD or NAMESPACE/TYPE/NAME")),
        }
    }

    /// The `kubectl` arguments that forward a random local port to `remote_port`.
    pub fn kubectl_args(&self, remote_port: u16) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(namespace) = &self.namespace {
            args.extend(["-n".to_string(), namespace.clone()]);
        }
        args.extend([
            "port-forward".to_string(),
            self.resource.clone(),
            format!(":{remote_port}"),
            "--address".to_string(),
            "127.0.0.1".to_string(),
        ]);
        args
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.resource),
            None => f.write_str(&self.resource),
        }
    }
}

/// The local address of a `Forwarding from 127.0.0.1:41234 -> 7480` line.
pub fn forwarding_address(line: &str) -> Option<SocketAddr> {
    let rest = line.trim().strip_prefix("Forwarding from ")?;
    let (local, _remote) = rest.split_once(" -> ")?;
    local.trim().parse().ok()
}

/// The last `lines` lines of `text` (kubectl repeats its client errors).
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skipped = all.len().saturating_sub(lines);
    let mut out =
        if skipped > 0 { format!("[{skipped} earlier line(s) of kubectl's stderr left out]\n") } else { String::new() };
    out.push_str(&all[skipped..].join("\n"));
    out
}

/// A running `kubectl port-forward`.
pub struct PortForward {
    child: Child,
    pub local: SocketAddr,
    pub command: String,
}

impl PortForward {
    /// Starts `kubectl` (`program`) and waits at most `timeout` for its
    /// forwarding line.
    pub async fn start(program: &str, target: &Target, remote_port: u16, timeout: Duration) -> Result<Self, Failure> {
        let args = target.kubectl_args(remote_port);
        let command = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::NotFound { EXIT_USAGE } else { EXIT_UNREACHABLE };
                Failure::new(code, format!("cannot run `{command}`: {e} (--pod needs kubectl on PATH)"))
            })?;
        let stderr_text = Arc::new(Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let sink = stderr_text.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let _ = stderr.read_to_end(&mut buffer).await;
                sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&buffer));
            });
        }
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let found = tokio::time::timeout(timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(local) = forwarding_address(&line) {
                    return Some(local);
                }
            }
            None
        })
        .await;
        let local = match found {
            Ok(Some(local)) => local,
            outcome => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                // Give the stderr reader a moment to see EOF.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let stderr = stderr_text.lock().unwrap_or_else(|e| e.into_inner()).trim().to_string();
                let why = match outcome {
                    Err(_) => format!("no \"Forwarding from\" line within {}s", timeout.as_secs()),
                    _ => "kubectl exited".to_string(),
                };
                let detail = if stderr.is_empty() { String::new() } else { format!(":\n{}", tail(&stderr, 4)) };
                return Err(Failure::new(EXIT_UNREACHABLE, format!("`{command}` failed ({why}){detail}")));
            }
        };
        // kubectl prints a line per connection; keep its stdout drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(PortForward { child, local, command })
    }

    /// Kills kubectl and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_pod_or_a_resource() {
        assert_eq!(Target::parse("s1").unwrap(), Target { namespace: None, resource: "pod/s1".into() });
        assert_eq!(
            Target::parse("fabric/s1").unwrap(),
            Target { namespace: Some("fabric".into()), resource: "pod/s1".into() }
        );
        let operator = Target::parse("fabric-system/deployment/fabric-fabric-routing").unwrap();
        assert_eq!(operator.resource, "deployment/fabric-fabric-routing");
        assert_eq!(operator.to_string(), "fabric-system/deployment/fabric-fabric-routing");
        assert_eq!(
            operator.kubectl_args(8080),
            [
                "-n",
                "fabric-system",
                "port-forward",
                "deployment/fabric-fabric-routing",
                ":8080",
                "--address",
                "127.0.0.1"
            ]
        );
        assert_eq!(Target::parse("s1").unwrap().kubectl_args(7480)[..2], ["port-forward", "pod/s1"]);
        for bad in ["", "a//b", "a/b/c/d", "/x"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_forwarding_line_gives_the_local_port() {
        assert_eq!(
            forwarding_address("Forwarding from 127.0.0.1:41234 -> 7480"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(forwarding_address("Forwarding from [::1]:41234 -> 7480\n"), Some("[::1]:41234".parse().unwrap()));
        assert_eq!(forwarding_address("Handling connection for 41234"), None);
    }

    #[test]
    fn only_the_end_of_kubectl_errors_is_shown() {
        assert_eq!(tail("one", 4), "one");
        assert_eq!(tail("1\n2\n3\n4\n5\n6", 4), "[2 earlier line(s) of kubectl's stderr left out]\n3\n4\n5\n6");
    }

    #[tokio::test]
    async fn a_missing_kubectl_is_a_clear_error() {
        let target = Target::parse("fabric/s1").unwrap();
        let failure =
            match PortForward::start("kubectl-does-not-exist-here", &target, 7480, Duration::from_secs(1)).await {
                Err(failure) => failure,
                Ok(_) => panic!("started"),
            };
        assert_eq!(failure.code, EXIT_USAGE);
        assert!(
            failure.message.contains("kubectl-does-not-exist-here -n fabric port-forward pod/s1 :7480"),
            "{failure}"
        );
    }
}
