//! Server processes that cannot outlive the test binary that started them.
//!
//! A test binary ends without running destructors of statics, and a test
//! that panics unwinds only its own thread, so the servers are not stopped
//! from Rust. Each one runs under a small shell that holds the read end of
//! a pipe whose write end only this process has: when the test binary exits
//! for any reason (also SIGKILL), the pipe closes, the shell reads EOF,
//! stops the server and removes its data. No signal handler, no `unsafe`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// `"$@"` runs the server; `cat` returns at EOF of the lifeline; then the
/// server gets SIGTERM, SIGKILL if it has not exited 5 s later (a
/// kube-apiserver whose etcd is already gone can wait in its shutdown for
/// ever), and its data folder is removed.
const SUPERVISOR: &str = r#"
"$@" </dev/null &
server=$!
cat >/dev/null
kill -TERM "$server" 2>/dev/null
( sleep 5; kill -KILL "$server" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
wait "$server"
[ -n "$ENVTEST_REMOVE_ON_EXIT" ] && rm -rf "$ENVTEST_REMOVE_ON_EXIT"
exit 0
"#;

/// A server under its supervisor shell; dropping it (or exiting the test
/// binary) stops the server.
pub(crate) struct Supervised {
    child: Child,
    /// The lifeline: closed on drop or exit.
    lifeline: Option<ChildStdin>,
    pub(crate) log: PathBuf,
}

impl Supervised {
    /// Starts `program args...`, stdout and stderr into `log`, removing
    /// `remove_on_exit` when it stops.
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        log: PathBuf,
        remove_on_exit: Option<&Path>,
    ) -> std::io::Result<Supervised> {
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("envtest-supervisor")
            .arg(program)
            .args(args)
            .env("ENVTEST_REMOVE_ON_EXIT", remove_on_exit.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()?;
        let lifeline = child.stdin.take();
        Ok(Supervised { child, lifeline, log })
    }

    /// Whether the supervisor (and so the server) still runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the server and waits for its supervisor.
    pub(crate) fn stop(&mut self) {
        self.lifeline.take();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free port on 127.0.0.1, chosen by the OS. It is free when this returns;
/// a server that loses the race to another process fails to bind, and the
/// caller starts again with new ports.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
