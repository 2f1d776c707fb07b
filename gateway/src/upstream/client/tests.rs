//! The client and its pool against small upstreams on real sockets that count their connections.

use super::{ClientError, UpstreamClient};
use crate::body;
use crate::config::{ServiceConfig, UpstreamProtocol};
use crate::metrics::Metrics;
use crate::upstream::{Endpoint, EndpointUrl};
use http::Request;
use http_body_util::BodyExt;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP/1.1 upstream answering `200 ok` to every request head (`/big`: 1 MiB), one thread per
/// connection, counting connections accepted and connections the client closed.
struct RawUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    client_closed: Arc<AtomicUsize>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl RawUpstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = Self {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            client_closed: Arc::default(),
            streams: Arc::default(),
        };
        let (accepted, closed, streams) = (
            upstream.accepted.clone(),
            upstream.client_closed.clone(),
            upstream.streams.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                streams.lock().unwrap().push(stream.try_clone().unwrap());
                accepted.fetch_add(1, SeqCst);
                let closed = closed.clone();
                std::thread::spawn(move || serve(stream, &closed));
            }
        });
        upstream
    }

    /// Closes every connection at once, as an upstream's keep-alive timeout would.
    fn close_all(&self) {
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(SeqCst)
    }
}

fn serve(mut stream: TcpStream, client_closed: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let big = buf.starts_with(b"GET /big ");
            buf.drain(..end + 4);
            let body = if big {
                vec![b'x'; 1 << 20]
            } else {
                b"ok".to_vec()
            };
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&body).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                client_closed.fetch_add(1, SeqCst);
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return,
        }
    }
}

fn endpoint(addr: SocketAddr, config: &ServiceConfig) -> Endpoint {
    let url = EndpointUrl::parse(&format!("http://{addr}")).unwrap();
    Endpoint::new(&url, addr, config, "t", &Metrics::new())
}

fn config(protocol: UpstreamProtocol, max_idle: usize) -> ServiceConfig {
    ServiceConfig {
        protocol,
        pool_max_idle_per_endpoint: max_idle,
        ..ServiceConfig::default()
    }
}

/// Sends `GET /` and reads the whole answer.
async fn get(client: &UpstreamClient, endpoint: &Endpoint) -> Result<String, ClientError> {
    let request = Request::get("/")
        .header(http::header::HOST, "upstream")
        .body(body::empty())
        .unwrap();
    let response = client.send(endpoint, request, far(), None).await?;
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8(bytes.to_vec()).unwrap())
}

/// A deadline no test reaches.
pub(super) fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(60)
}

/// Polls `check` every 20 ms for up to 5 s.
pub(super) async fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn reuses_an_idle_connection() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    for _ in 0..5 {
        assert_eq!(get(&client, &endpoint).await.unwrap(), "ok");
    }
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(endpoint.pool().idle_http1(), 1);
}

#[tokio::test]
async fn absolute_uris_are_sent_in_origin_form() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    // The raw upstream answers any request-target; what matters is that hyper accepts the
    // request and the connection stays reusable.
    let request = Request::get(format!("http://{}/health?x=1", upstream.addr))
        .body(body::empty())
        .unwrap();
    let response = client.send(&endpoint, request, far(), None).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "current_thread")]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced_transparently() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    assert_eq!(get(&client, &endpoint).await.unwrap(), "ok");
    assert_eq!(endpoint.pool().idle_http1(), 1);

    // Closed and seen by the runtime's I/O driver, but the connection task has not run yet: the
    // yield polls the driver, which wakes the connection task, and then resumes this test first
    // (a current-thread runtime polls its main future before queued tasks). The pooled sender
    // still looks ready, the connection task then finds the socket closed before it writes
    // anything, and hyper hands the request back unsent.
    upstream.close_all();
    tokio::task::yield_now().await;
    assert_eq!(get(&client, &endpoint).await.unwrap(), "ok");
    assert_eq!(upstream.accepted(), 2);

    // Closed and noticed: the checkout skips the dead sender.
    upstream.close_all();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&client, &endpoint).await.unwrap(), "ok");
    assert_eq!(upstream.accepted(), 3);
}

#[tokio::test]
async fn idle_connections_are_bounded() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 2);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    // Sent together, all four find the pool empty and connect.
    let results = futures_util::future::join_all((0..4).map(|_| get(&client, &endpoint))).await;
    assert!(results.iter().all(|r| r.as_deref().ok() == Some("ok")));
    assert_eq!(upstream.accepted(), 4);
    assert!(wait_for(|| upstream.client_closed.load(SeqCst) == 2).await);
    assert_eq!(endpoint.pool().idle_http1(), 2);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout_and_on_retirement() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    get(&client, &endpoint).await.unwrap();
    assert_eq!(endpoint.pool().idle_http1(), 1);

    tokio::time::pause();
    for _ in 0..59 {
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(endpoint.pool().idle_http1(), 1, "idle for less than 60 s");
    for _ in 0..60 {
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(endpoint.pool().idle_http1(), 0, "idle for two minutes");
    tokio::time::resume();
    assert!(wait_for(|| upstream.client_closed.load(SeqCst) == 1).await);

    get(&client, &endpoint).await.unwrap();
    assert_eq!(endpoint.pool().idle_http1(), 1);
    endpoint.retire();
    assert_eq!(endpoint.pool().idle_http1(), 0);
    assert!(wait_for(|| upstream.client_closed.load(SeqCst) == 2).await);
    // A retired endpoint's pool keeps nothing.
    get(&client, &endpoint).await.unwrap();
    assert_eq!(endpoint.pool().idle_http1(), 0);
}

#[tokio::test]
async fn a_response_body_read_later_returns_its_connection_when_done() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    let request = || Request::get("/big").body(body::empty()).unwrap();
    let first = client
        .send(&endpoint, request(), far(), None)
        .await
        .unwrap();
    // The first body is still on the wire: the second request gets a connection of its own.
    let second = client
        .send(&endpoint, request(), far(), None)
        .await
        .unwrap();
    assert_eq!(upstream.accepted(), 2);
    for response in [first, second] {
        response.into_body().collect().await.unwrap();
    }
    assert!(wait_for(|| endpoint.pool().idle_http1() == 2).await);
    get(&client, &endpoint).await.unwrap();
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn a_connect_failure_is_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for protocol in [UpstreamProtocol::Http1, UpstreamProtocol::H2] {
        let config = config(protocol, 8);
        let (client, endpoint) = (UpstreamClient::new(&config), endpoint(addr, &config));
        let error = get(&client, &endpoint).await.unwrap_err();
        assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
    }
}

#[tokio::test]
async fn h2_requests_share_one_connection() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, SeqCst);
            let service = hyper::service::service_fn(|request: Request<_>| async move {
                // h2 requests carry the scheme and authority.
                assert!(request.uri().authority().is_some(), "{}", request.uri());
                Ok::<_, std::convert::Infallible>(http::Response::new(body::full("ok")))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    let config = config(UpstreamProtocol::H2, 8);
    let (client, endpoint) = (UpstreamClient::new(&config), endpoint(addr, &config));
    let results = futures_util::future::join_all((0..8).map(|_| get(&client, &endpoint))).await;
    assert!(results.iter().all(|r| r.as_deref().ok() == Some("ok")));
    get(&client, &endpoint).await.unwrap();
    assert_eq!(accepted.load(SeqCst), 1);
}

#[tokio::test]
async fn a_response_head_not_in_by_the_deadline_is_a_timeout() {
    // Reads requests, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.read(&mut [0u8; 4096]);
            held.push(stream);
        }
    });
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (UpstreamClient::new(&config), endpoint(addr, &config));
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(300);
    let request = Request::get("/").body(body::empty()).unwrap();
    let result = client.send(&endpoint, request, deadline, None).await;
    assert!(matches!(result, Err(ClientError::Timeout)), "{result:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(endpoint.pool().idle_http1(), 0);
}

#[tokio::test]
async fn a_connection_idle_past_its_last_deadline_serves_the_next_request() {
    let upstream = RawUpstream::start();
    let config = config(UpstreamProtocol::Http1, 8);
    let (client, endpoint) = (
        UpstreamClient::new(&config),
        endpoint(upstream.addr, &config),
    );
    for _ in 0..3 {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        let request = Request::get("/").body(body::empty()).unwrap();
        let response = client
            .send(&endpoint, request, deadline, None)
            .await
            .unwrap();
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "ok"
        );
        // The connection's timer fires while it idles in the pool.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(upstream.accepted(), 1);
}
