//! Binding the operator's listeners (gRPC, HTTP, webhook), with an error
//! that names which listener and which address failed.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is taken, not local, or not allowed.
    #[error("{listener} on {addr}: {source}")]
    Bind {
        /// Which listener: `listen` (gRPC), `HTTP`, `webhook`.
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{listener}: no local address: {source}")]
    LocalAddr {
        listener: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` and returns the listener with the address it got (the
/// port the OS chose for port 0).
pub(crate) async fn bind(listener: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ListenError> {
    let bound = TcpListener::bind(addr).await.map_err(|source| ListenError::Bind { listener, addr, source })?;
    let local = bound.local_addr().map_err(|source| ListenError::LocalAddr { listener, source })?;
    Ok((bound, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_names_the_listener_and_the_address() {
        let (_held, addr) = bind("HTTP", SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let error = bind("webhook", addr).await.unwrap_err();
        assert!(
            matches!(&error, ListenError::Bind { listener: "webhook", addr: taken, source }
                if *taken == addr && source.kind() == std::io::ErrorKind::AddrInUse),
            "{error:?}"
        );
        assert!(error.to_string().starts_with(&format!("webhook on {addr}: ")), "{error}");
    }
}
