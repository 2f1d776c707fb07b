//! Clients for the tests: pooled hyper clients (HTTP/1.1 and h2c prior knowledge) and a raw
//! HTTP/1.1 exchange over a socket, for checking exactly which header lines cross the wire.

use super::Echo;
use bytes::Bytes;
use holdline_gateway::body::{self, Body};
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single test exchange may take before the test fails instead of hanging.
pub(crate) const EXCHANGE_LIMIT: Duration = Duration::from_secs(30);

/// A pooled client.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// A complete response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

// === impl Reply ===

impl Reply {
    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as an echo upstream's description of the request.
    pub(crate) fn echo(&self) -> Echo {
        assert_eq!(self.status, 200, "expected an echo reply: {}", self.text());
        Echo::parse(&self.body)
    }

    /// A response header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }
}

/// An HTTP/1.1 client.
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub(crate) fn h2c_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends `request` and reads the whole response; panics on a transport error or after
/// [`EXCHANGE_LIMIT`].
pub(crate) async fn send(client: &HttpClient, request: Request<Body>) -> Reply {
    let exchange = async {
        let response = client.request(request).await.expect("response head");
        let (parts, incoming) = response.into_parts();
        let body = incoming.collect().await.expect("response body").to_bytes();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange)
        .await
        .expect("exchange finished in time")
}

/// `GET url` on a fresh HTTP/1.1 client.
pub(crate) async fn get(url: &str) -> Reply {
    let request = Request::get(url).body(body::empty()).expect("request");
    send(&client(), request).await
}

/// `GET url` on a fresh HTTP/1.1 client; `None` when the connection fails or closes before
/// an answer (or no answer comes within [`EXCHANGE_LIMIT`]).
pub(crate) async fn try_get(url: &str) -> Option<Reply> {
    let request = Request::get(url).body(body::empty()).expect("request");
    let exchange = async {
        let response = client().request(request).await.ok()?;
        let (parts, incoming) = response.into_parts();
        let body = incoming.collect().await.ok()?.to_bytes();
        Some(Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange)
        .await
        .ok()
        .flatten()
}

/// `GET url` in a task of its own, for requests that stay in flight while the test goes on.
pub(crate) fn spawn_get(url: String) -> tokio::task::JoinHandle<Reply> {
    tokio::spawn(async move { get(&url).await })
}

/// A response read off a raw socket.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    /// Header lines in arrival order, names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

// === impl RawResponse ===

impl RawResponse {
    /// Every value of header `name`.
    pub(crate) fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Writes `request` (a complete HTTP/1.1 request) to a new connection to `addr` and reads one
/// response: the head, then `Content-Length` bytes or, without one, everything until EOF.
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    tokio::time::timeout(EXCHANGE_LIMIT, raw_exchange_inner(addr, request))
        .await
        .expect("raw exchange finished in time")
}

async fn raw_exchange_inner(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    read_raw_response(&mut stream).await
}

/// Opens a connection to `addr` whose upload is under way (2 of its 10 bytes sent; the rest is
/// `cdefghij`): a slot taken by a call in flight, neither idle nor held.
pub(crate) async fn upload_in_flight(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
        .await
        .expect("write request");
    stream
}

/// Reads one response off `stream`: the head, then `Content-Length` bytes or, without one,
/// everything until EOF.
pub(crate) async fn read_raw_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read head");
        assert!(n > 0, "connection closed before the response head ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().expect("numeric content-length"));
    match length {
        Some(length) => {
            while body.len() < length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "connection closed inside the body");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => {
            stream.read_to_end(&mut body).await.expect("read body");
        }
    }
    RawResponse {
        status,
        headers,
        body,
    }
}
