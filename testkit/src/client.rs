//! A one-request HTTP client (HTTP/1.1, or h2c with prior knowledge) for tests that drive a server
//! from outside, and a readiness wait on an admin port.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends one HTTP/1.1 request to `127.0.0.1:port` on a new connection.
///
/// # Panics
/// If the connection or the exchange fails.
pub async fn send(port: u16, request: Request<Full<Bytes>>) -> Answer {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let response = sender.send_request(request).await.expect("response");
    collect(response).await
}

/// Sends one HTTP/2 request (h2c, prior knowledge) to `127.0.0.1:port` on a new connection.
///
/// # Panics
/// If the connection or the exchange fails.
pub async fn send_h2(port: u16, request: Request<Full<Bytes>>) -> Answer {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let response = sender.send_request(request).await.expect("response");
    collect(response).await
}

async fn collect(response: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// A request with a body and the given extra headers (`host` is set).
///
/// # Panics
/// If a header name or value is invalid.
pub fn request(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// Polls `/readyz` on the admin port until it answers `200`.
///
/// # Panics
/// If it does not within 300 tries, 50 ms apart (each connect may take up to 1 s).
pub async fn wait_ready(admin: u16) {
    for _ in 0..300 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(("127.0.0.1", admin)),
        )
        .await
        {
            drop(stream);
            if send(admin, request(Method::GET, "/readyz", &[], Bytes::new()))
                .await
                .status
                == StatusCode::OK
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service never became ready");
}
