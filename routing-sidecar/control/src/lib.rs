//! The config distribution protocol (`operator/proto/config_distribution.proto`),
//! written by hand: prost-derived messages, the `ConfigDistribution` service
//! as a trait with its tonic server wrapper, and a client call. This is what
//! `tonic-prost-build` would generate; it is written out because the build
//! machines have no `protoc`. A test checks it against the `.proto` file.
//!
//! The operator implements [`ConfigDistribution`] and serves it with
//! [`ConfigDistributionServer`]; the sidecar calls [`open_stream`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

/// gRPC service name (`package.Service`).
pub const SERVICE_NAME: &str = "fabric.control.v1.ConfigDistribution";
/// Path of the `Stream` method.
pub const STREAM_PATH: &str = "/fabric.control.v1.ConfigDistribution/Stream";

/// Sidecar to operator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SidecarMessage {
    #[prost(oneof = "sidecar_message::Kind", tags = "1, 2, 3")]
    pub kind: Option<sidecar_message::Kind>,
}

pub mod sidecar_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Hello(super::Hello),
        #[prost(message, tag = "2")]
        Ack(super::Ack),
        #[prost(message, tag = "3")]
        Nack(super::Nack),
    }
}

/// Operator to sidecar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorMessage {
    #[prost(oneof = "operator_message::Kind", tags = "1, 2, 3")]
    pub kind: Option<operator_message::Kind>,
}

pub mod operator_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Snapshot(super::ConfigSnapshot),
        #[prost(message, tag = "2")]
        Current(super::Current),
        #[prost(message, tag = "3")]
        PeerCertificate(super::PeerCertificate),
    }
}

/// First message of every stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(string, tag = "1")]
    pub node_id: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub labels: BTreeMap<String, String>,
    #[prost(string, tag = "4")]
    pub peer_address: String,
    #[prost(string, tag = "5")]
    pub applied_version: String,
    #[prost(string, tag = "6")]
    pub pod_name: String,
    /// DER PKCS#10 request for a peer TLS certificate (empty: none wanted).
    #[prost(bytes = "vec", tag = "7")]
    pub peer_certificate_request: Vec<u8>,
}

/// A peer TLS certificate for the key of `Hello::peer_certificate_request`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerCertificate {
    #[prost(string, tag = "1")]
    pub chain_pem: String,
    #[prost(string, tag = "2")]
    pub ca_bundle_pem: String,
    #[prost(int64, tag = "3")]
    pub not_after_unix_ms: i64,
}

/// A complete `SidecarConfig` (YAML), its content version and a nonce.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigSnapshot {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub nonce: String,
    #[prost(string, tag = "3")]
    pub config_yaml: String,
    #[prost(message, optional, tag = "4")]
    pub signing_key: Option<SigningKey>,
}

/// The version the sidecar reported in its Hello is current: no snapshot
/// follows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Current {
    #[prost(string, tag = "1")]
    pub version: String,
}

/// The private key a sidecar signs with (key rotation). Sent only to the
/// sidecar owning the node id, only over an authenticated stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SigningKey {
    #[prost(string, tag = "1")]
    pub key_id: String,
    /// The 32-byte ed25519 secret key.
    #[prost(bytes = "vec", tag = "2")]
    pub private_key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub nonce: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Nack {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub nonce: String,
    #[prost(string, tag = "3")]
    pub error_field: String,
    #[prost(string, tag = "4")]
    pub error_message: String,
    #[prost(string, tag = "5")]
    pub applied_version: String,
}

impl SidecarMessage {
    pub fn hello(hello: Hello) -> Self {
        Self { kind: Some(sidecar_message::Kind::Hello(hello)) }
    }
    pub fn ack(ack: Ack) -> Self {
        Self { kind: Some(sidecar_message::Kind::Ack(ack)) }
    }
    pub fn nack(nack: Nack) -> Self {
        Self { kind: Some(sidecar_message::Kind::Nack(nack)) }
    }
}

impl OperatorMessage {
    pub fn snapshot(snapshot: ConfigSnapshot) -> Self {
        Self { kind: Some(operator_message::Kind::Snapshot(snapshot)) }
    }
    pub fn current(version: impl Into<String>) -> Self {
        Self { kind: Some(operator_message::Kind::Current(Current { version: version.into() })) }
    }
    pub fn peer_certificate(certificate: PeerCertificate) -> Self {
        Self { kind: Some(operator_message::Kind::PeerCertificate(certificate)) }
    }
}

/// Stream of operator messages a server returns.
pub type OperatorStream = tonic::codegen::BoxStream<OperatorMessage>;

/// The operator side of the service.
#[tonic::async_trait]
pub trait ConfigDistribution: Send + Sync + 'static {
    async fn stream(&self, request: Request<Streaming<SidecarMessage>>) -> Result<Response<OperatorStream>, Status>;
}

/// Serves a [`ConfigDistribution`] implementation (add it to a
/// `tonic::transport::Server`).
pub struct ConfigDistributionServer<T> {
    inner: Arc<T>,
}

impl<T> ConfigDistributionServer<T> {
    pub fn new(inner: T) -> Self {
        Self { inner: Arc::new(inner) }
    }
    pub fn from_arc(inner: Arc<T>) -> Self {
        Self { inner }
    }
}

impl<T> Clone for ConfigDistributionServer<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<T> NamedService for ConfigDistributionServer<T> {
    const NAME: &'static str = SERVICE_NAME;
}

struct StreamMethod<T>(Arc<T>);

impl<T: ConfigDistribution> tonic::server::StreamingService<SidecarMessage> for StreamMethod<T> {
    type Response = OperatorMessage;
    type ResponseStream = OperatorStream;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<SidecarMessage>>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.stream(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for ConfigDistributionServer<T>
where
    T: ConfigDistribution,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == STREAM_PATH {
            let inner = self.inner.clone();
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.streaming(StreamMethod(inner), request).await)
            })
        } else {
            Box::pin(async move { Ok(Status::unimplemented("unknown method").into_http()) })
        }
    }
}

/// Opens the `Stream` call on a connected channel: `outbound` is what the
/// sidecar sends (Hello first), the answer streams the operator's messages.
pub async fn open_stream<S>(
    channel: tonic::transport::Channel,
    request: Request<S>,
) -> Result<Response<Streaming<OperatorMessage>>, Status>
where
    S: tonic::codegen::tokio_stream::Stream<Item = SidecarMessage> + Send + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(format!("operator not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_static(STREAM_PATH);
    grpc.streaming(request, path, tonic_prost::ProstCodec::default()).await
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    const PROTO: &str = include_str!("../../../operator/proto/config_distribution.proto");

    /// `name = tag;` lines of one message of the .proto file.
    fn fields(message: &str) -> Vec<(String, u32)> {
        let start = PROTO.find(&format!("message {message} {{")).expect("message in .proto");
        let body = &PROTO[start..];
        let body = &body[..body.find("\n}").expect("message end")];
        body.lines()
            .filter_map(|line| {
                let line = line.trim();
                let (lhs, tag) = line.strip_suffix(';')?.split_once(" = ")?;
                Some((lhs.split_whitespace().last()?.to_string(), tag.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn the_proto_file_and_the_rust_types_agree() {
        let expect = |message: &str, want: &[(&str, u32)]| {
            let want: Vec<(String, u32)> = want.iter().map(|(n, t)| (n.to_string(), *t)).collect();
            assert_eq!(fields(message), want, "message {message}");
        };
        expect("SidecarMessage", &[("hello", 1), ("ack", 2), ("nack", 3)]);
        expect("OperatorMessage", &[("snapshot", 1), ("current", 2), ("peer_certificate", 3)]);
        expect("PeerCertificate", &[("chain_pem", 1), ("ca_bundle_pem", 2), ("not_after_unix_ms", 3)]);
        expect("Current", &[("version", 1)]);
        expect(
            "Hello",
            &[
                ("node_id", 1),
                ("namespace", 2),
                ("labels", 3),
                ("peer_address", 4),
                ("applied_version", 5),
                ("pod_name", 6),
                ("peer_certificate_request", 7),
            ],
        );
        expect("ConfigSnapshot", &[("version", 1), ("nonce", 2), ("config_yaml", 3), ("signing_key", 4)]);
        expect("SigningKey", &[("key_id", 1), ("private_key", 2)]);
        expect("Ack", &[("version", 1), ("nonce", 2)]);
        expect(
            "Nack",
            &[("version", 1), ("nonce", 2), ("error_field", 3), ("error_message", 4), ("applied_version", 5)],
        );
        assert!(PROTO.contains("package fabric.control.v1;"));
        assert!(PROTO.contains("rpc Stream(stream SidecarMessage) returns (stream OperatorMessage);"));
    }

    #[test]
    fn messages_round_trip() {
        let hello = SidecarMessage::hello(Hello {
            node_id: "eu-1".into(),
            namespace: "fabric".into(),
            labels: [("region".to_string(), "eu".to_string())].into(),
            peer_address: "10.0.0.1:7443".into(),
            applied_version: "abc".into(),
            pod_name: "eu-1-7f9c".into(),
            peer_certificate_request: vec![0x30, 0x82],
        });
        assert_eq!(SidecarMessage::decode(hello.encode_to_vec().as_slice()).unwrap(), hello);
        let nack = SidecarMessage::nack(Nack {
            version: "v2".into(),
            nonce: "n".into(),
            error_field: "nodeId".into(),
            error_message: "cannot change".into(),
            applied_version: "v1".into(),
        });
        assert_eq!(SidecarMessage::decode(nack.encode_to_vec().as_slice()).unwrap(), nack);
        let snapshot = OperatorMessage::snapshot(ConfigSnapshot {
            version: "v".into(),
            nonce: "1".into(),
            config_yaml: "nodeId: a\n".into(),
            signing_key: Some(SigningKey { key_id: "k2".into(), private_key: vec![7; 32] }),
        });
        assert_eq!(OperatorMessage::decode(snapshot.encode_to_vec().as_slice()).unwrap(), snapshot);
    }
}
