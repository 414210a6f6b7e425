//! A minimal HTTP/1.1 client for the node's own local API on loopback
//! (used by `lab`, the tests and tooling). One request per connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request to a local API failed: the connection, the exchange, the
/// deadline, or an answer that is not the HTTP (or JSON) it should be.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {path} on {addr}: {source}")]
    Exchange {
        method: String,
        path: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {path}: timed out")]
    TimedOut { method: String, path: String },
    #[error("no header end")]
    NoHeaderEnd,
    #[error("bad status line: {0}")]
    StatusLine(String),
    #[error("bad chunk")]
    ChunkHeader,
    #[error("bad chunk size: {0}")]
    ChunkSize(#[source] std::num::ParseIntError),
    #[error("short chunk")]
    ShortChunk,
    #[error("{source}: {body}")]
    Json {
        body: String,
        #[source]
        source: serde_json::Error,
    },
}

/// For shells that still report errors as text: `?` keeps working.
impl From<HttpError> for String {
    fn from(error: HttpError) -> String {
        error.to_string()
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Result<serde_json::Value, HttpError> {
        serde_json::from_str(&self.body).map_err(|source| HttpError::Json { body: self.body.clone(), source })
    }
}

/// Sends one request, with `Authorization: Bearer` when `bearer` is set;
/// `Connection: close` so the body ends at EOF.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> Result<HttpResponse, HttpError> {
    let failed = |source| HttpError::Exchange { method: method.to_string(), path: path.to_string(), addr, source };
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|source| HttpError::Connect { addr, source })?;
        let body = body.unwrap_or("");
        let authorization = bearer.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{authorization}Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.map_err(failed)?;
        stream.write_all(body.as_bytes()).await.map_err(failed)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(failed)?;
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| HttpError::TimedOut { method: method.to_string(), path: path.to_string() })?
}

fn parse(raw: &[u8]) -> Result<HttpResponse, HttpError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(HttpError::NoHeaderEnd)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::StatusLine(head.to_string()))?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked { dechunk(body)? } else { body.to_string() };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut rest: &str) -> Result<String, HttpError> {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").ok_or(HttpError::ChunkHeader)?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(HttpError::ChunkSize)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(tail.get(..size).ok_or(HttpError::ShortChunk)?);
        rest = tail.get(size + 2..).ok_or(HttpError::ShortChunk)?;
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Result<HttpResponse, HttpError> {
    request(addr, "GET", path, None, None).await
}

pub async fn put(addr: SocketAddr, path: &str, body: &str, bearer: Option<&str>) -> Result<HttpResponse, HttpError> {
    request(addr, "PUT", path, Some(body), bearer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_answer_is_joined() {
        let response =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((response.status, response.body.as_str()), (200, "abcde"));
    }

    #[test]
    fn a_malformed_answer_says_what_is_wrong() {
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\n"), Err(HttpError::NoHeaderEnd)));
        let error = parse(b"HTTP/1.1 OK\r\n\r\n").unwrap_err();
        assert!(matches!(&error, HttpError::StatusLine(line) if line == "HTTP/1.1 OK"), "{error:?}");
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let error = parse(format!("{chunked}zz\r\nabc").as_bytes()).unwrap_err();
        assert!(matches!(error, HttpError::ChunkSize(_)), "{error:?}");
        let error = parse(format!("{chunked}9\r\nabc").as_bytes()).unwrap_err();
        assert!(matches!(error, HttpError::ShortChunk), "{error:?}");
    }

    #[test]
    fn a_body_that_is_not_json_is_quoted() {
        let response = HttpResponse { status: 500, body: "oops".into() };
        let error = response.json().unwrap_err();
        assert!(matches!(&error, HttpError::Json { body, .. } if body == "oops"), "{error:?}");
        assert!(error.to_string().ends_with(": oops"), "{error}");
    }
}
