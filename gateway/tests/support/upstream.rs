//! Fake upstream services: real hyper servers on port 0 (HTTP/1.1 and h2c on one port) with a
//! handler per test, a request counter, and bodies generated or counted without buffering.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use holdline_gateway::body::{self, Body, BoxError};
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// A running fake upstream; stops (closing its listener and connections) when dropped.
pub(crate) struct Upstream {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

// === impl Upstream ===

impl Upstream {
    /// Serves `handler` on a fresh port.
    pub(crate) async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, handler)
    }

    /// Serves `handler` on `listener`.
    pub(crate) fn start_on<F, Fut>(listener: TcpListener, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(move |request| Box::pin(handler(request)));
        let task = tokio::spawn(serve(listener, handler, hits.clone()));
        Self { addr, hits, task }
    }

    /// An upstream answering every request with [`echo`] under `name`.
    pub(crate) async fn echo(name: &'static str) -> Self {
        Self::start(move |request| echo(name, request)).await
    }

    /// `http://ADDR`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far (counted when the head arrives).
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, handler: Handler, hits: Arc<AtomicUsize>) {
    // Connections live in the set so that aborting the accept task closes them too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        let hits = hits.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            hits.fetch_add(1, Ordering::SeqCst);
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        connections.spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Reads the request body to its end, counting bytes, and answers with a JSON description of
/// what arrived: `{"upstream","method","uri" (path and query),"authority","version",
/// "headers":[[name,value]...],"body_bytes"}`, with `x-upstream: NAME`. A request carrying `x-echo-hop: 1` also gets
/// hop-by-hop headers on its response, which the gateway must remove.
pub(crate) async fn echo(name: &'static str, request: Request<Incoming>) -> Response<Body> {
    let (parts, incoming) = request.into_parts();
    let body_bytes = count_body(incoming).await.ok();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let json = serde_json::json!({
        "upstream": name,
        "method": parts.method.as_str(),
        "uri": parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        "authority": parts.uri.authority().map(|a| a.to_string()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut response = Response::new(body::full(json.to_string()));
    let out = response.headers_mut();
    out.insert("x-upstream", HeaderValue::from_static(name));
    out.insert("content-type", HeaderValue::from_static("application/json"));
    if parts.headers.get("x-echo-hop").is_some_and(|v| v == "1") {
        out.insert("connection", HeaderValue::from_static("x-upstream-private"));
        out.insert("x-upstream-private", HeaderValue::from_static("secret"));
        out.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        out.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
        out.insert("upgrade", HeaderValue::from_static("websocket"));
        out.insert("x-end-to-end", HeaderValue::from_static("kept"));
    }
    response
}

/// What an [`echo`] upstream saw.
pub(crate) struct Echo(serde_json::Value);

// === impl Echo ===

impl Echo {
    /// Parses an echo response body.
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        Self(serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!("not an echo body ({e}): {}", String::from_utf8_lossy(bytes))
        }))
    }

    /// The name of the upstream that answered.
    pub(crate) fn upstream(&self) -> &str {
        self.0["upstream"].as_str().expect("upstream")
    }

    /// The request target the upstream received.
    pub(crate) fn uri(&self) -> &str {
        self.0["uri"].as_str().expect("uri")
    }

    /// The HTTP version the upstream received, e.g. `HTTP/2.0`.
    pub(crate) fn version(&self) -> &str {
        self.0["version"].as_str().expect("version")
    }

    /// Bytes of request body the upstream received.
    pub(crate) fn body_bytes(&self) -> u64 {
        self.0["body_bytes"].as_u64().expect("body read completely")
    }

    /// Every value of header `name` the upstream received.
    pub(crate) fn headers(&self, name: &str) -> Vec<&str> {
        self.0["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .filter(|pair| {
                pair[0]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .filter_map(|pair| pair[1].as_str())
            .collect()
    }

    /// The single value of header `name`, if the upstream received it.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers(name);
        assert!(values.len() <= 1, "{name} arrived {} times", values.len());
        values.first().copied()
    }
}

/// Counts a body's bytes frame by frame, never holding more than one frame.
pub(crate) async fn count_body<B>(mut body: B) -> Result<u64, BoxError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(Into::into)?.into_data() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

/// A body of `total` bytes produced on the fly in chunks of one shared buffer, without a known
/// length (sent chunked on HTTP/1.1).
pub(crate) struct Generated {
    remaining: u64,
    chunk: Bytes,
}

// === impl Generated ===

impl Generated {
    /// `total` bytes in chunks of 64 KiB.
    pub(crate) fn new(total: u64) -> Self {
        Self {
            remaining: total,
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
        }
    }
}

impl http_body::Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        let data = self.chunk.slice(..n as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}

/// A gate that holds requests until the test opens it; once open it stays open.
#[derive(Clone)]
pub(crate) struct Gate(Arc<watch::Sender<bool>>);

// === impl Gate ===

impl Gate {
    /// A closed gate.
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    /// Lets every waiter (and every later one) through.
    pub(crate) fn open(&self) {
        self.0.send_replace(true);
    }

    /// Waits until the gate is open.
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}
