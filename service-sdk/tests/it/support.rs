//! Helpers shared by the SDK's integration tests: start a runner in-process on port 0, talk HTTP
//! to it, and play the gateway's part on a real Redis (enqueue, read replies, fetch results).
//! Generic helpers (the HTTP client, the bounded wait, `redis-server`) come from `testkit`.

use bytes::Bytes;
use holdline_protocol::{QueuedRequest, QueuedResponse, Reply, keys};
use holdline_sdk::{Config, Delivery, Handler, QueueConfig, Runner};
use holdline_testkit::client::{self, Answer};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::Full;
use redis::aio::MultiplexedConnection;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

pub(crate) use holdline_testkit::wait::eventually;

/// A runner started in the background.
pub(crate) struct Running {
    pub(crate) http: Option<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    pub(crate) task: JoinHandle<Result<(), holdline_sdk::Error>>,
}

/// Which listeners to bind.
#[derive(Clone, Copy)]
pub(crate) struct Listeners {
    pub(crate) http: bool,
    pub(crate) admin: bool,
}

pub(crate) const HTTP: Listeners = Listeners {
    http: true,
    admin: false,
};
pub(crate) const HTTP_ADMIN: Listeners = Listeners {
    http: true,
    admin: true,
};
pub(crate) const NONE: Listeners = Listeners {
    http: false,
    admin: false,
};
pub(crate) const ADMIN: Listeners = Listeners {
    http: false,
    admin: true,
};

pub(crate) async fn start<H: Handler>(handler: H, config: Config, listeners: Listeners) -> Running {
    let mut runner = Runner::new(handler, config);
    let (mut http, mut admin) = (None, None);
    if listeners.http {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        http = Some(listener.local_addr().unwrap());
        runner = runner.http(listener);
    }
    if listeners.admin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        admin = Some(listener.local_addr().unwrap());
        runner = runner.admin(listener);
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async move {
        let _ = stopped.await;
    }));
    Running {
        http,
        admin,
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// Sends the shutdown signal without waiting.
    pub(crate) fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits (bounded) for the runner to return.
    pub(crate) async fn shutdown(mut self) {
        self.signal_shutdown();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("runner stops within 20s")
            .expect("runner task did not panic")
            .expect("runner returned ok");
    }
}

/// Queue timings short enough for tests: a worker reacts within a fraction of a second, and
/// abandoned work is reclaimed after one second.
pub(crate) fn queue_config(redis_url: &str) -> QueueConfig {
    let mut queue = QueueConfig::new(redis_url);
    queue.read_block = Duration::from_millis(200);
    queue.min_idle = Duration::from_secs(1);
    queue.reclaim_interval = Duration::from_millis(100);
    queue.keepalive_interval = Duration::from_millis(100);
    queue.reconnect_min = Duration::from_millis(50);
    queue.reconnect_max = Duration::from_millis(500);
    queue.command_timeout = Duration::from_secs(2);
    queue
}

/// A runner config for `service`, with `queue` (from [`queue_config`]) if any.
pub(crate) fn config(concurrency: usize, service: &str, queue: Option<QueueConfig>) -> Config {
    Config {
        service: service.to_owned(),
        concurrency,
        queue,
        shutdown_grace: Duration::from_secs(10),
        ..Config::default()
    }
}

/// One request over a fresh HTTP/1.1 connection.
pub(crate) async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Answer {
    client::send(addr.port(), request).await
}

/// One request over a fresh h2c (HTTP/2 prior knowledge) connection.
pub(crate) async fn send_h2(addr: SocketAddr, request: Request<Full<Bytes>>) -> Answer {
    client::send_h2(addr.port(), request).await
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, client::request(Method::GET, path, &[], Bytes::new())).await
}

pub(crate) async fn post(addr: SocketAddr, path: &str, body: &'static str) -> Answer {
    send(addr, client::request(Method::POST, path, &[], body)).await
}

pub(crate) async fn redis(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A request as the gateway would queue it, with a deadline a minute away.
pub(crate) fn queued(
    id: &str,
    service: &str,
    reply_to: Option<&str>,
    body: &'static str,
) -> QueuedRequest {
    let now = holdline_protocol::unix_ms_now();
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", format!("req-{id}").parse().unwrap());
    QueuedRequest {
        id: id.to_owned(),
        service: service.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        enqueued_ms: now,
        deadline_ms: now + 60_000,
        result_ttl_ms: 60_000,
        method: Method::POST,
        uri: format!("/things?id={id}"),
        headers,
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// `XADD` exactly as the gateway does; returns the entry id.
pub(crate) async fn enqueue(conn: &mut MultiplexedConnection, request: &QueuedRequest) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys::request_stream(&request.service)).arg("*");
    for (name, value) in request.to_fields() {
        cmd.arg(name).arg(value);
    }
    cmd.query_async(conn).await.unwrap()
}

/// Waits (up to `timeout`) for the next entry on a reply stream after `after`, returning it and
/// its id.
pub(crate) async fn next_reply(
    conn: &mut MultiplexedConnection,
    stream: &str,
    after: &str,
    timeout: Duration,
) -> Option<(String, Reply)> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(timeout.as_millis() as u64)
        .arg("STREAMS")
        .arg(stream)
        .arg(after)
        .query_async(conn)
        .await
        .unwrap();
    let entry = reply.keys.into_iter().next()?.ids.into_iter().next()?;
    let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
        .map
        .into_iter()
        .map(|(name, value)| {
            (
                name.into_bytes(),
                redis::from_redis_value::<Vec<u8>>(value).unwrap(),
            )
        })
        .collect();
    let reply =
        Reply::from_fields(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))).unwrap();
    Some((entry.id, reply))
}

/// A blocking-read client needs its response timeout off (redis-rs defaults to 500 ms).
pub(crate) async fn blocking_redis(url: &str) -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

pub(crate) async fn result(
    conn: &mut MultiplexedConnection,
    service: &str,
    id: &str,
) -> Option<QueuedResponse> {
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(keys::result_key(service, id))
        .query_async(conn)
        .await
        .unwrap();
    raw.map(|raw| QueuedResponse::decode(&raw).unwrap())
}

pub(crate) async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

/// Pending entries of the group (0 when the group does not exist yet).
pub(crate) async fn pending(conn: &mut MultiplexedConnection, service: &str) -> u64 {
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
        .arg(keys::request_stream(service))
        .arg(holdline_protocol::CONSUMER_GROUP)
        .query_async(conn)
        .await;
    match reply {
        Ok(redis::Value::Array(parts)) => match parts.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

/// A handler that reports each call's path (`http` or `queue`) on `started`, then waits for a
/// permit of `gate` (never returned) and echoes the body: how tests hold calls in flight.
pub(crate) fn gated(
    gate: &Arc<Semaphore>,
) -> (impl Handler, mpsc::UnboundedReceiver<&'static str>) {
    let (started, started_rx) = mpsc::unbounded_channel();
    let gate = Arc::clone(gate);
    let handler = move |req: Request<Bytes>| {
        let gate = Arc::clone(&gate);
        let started = started.clone();
        async move {
            let via = req
                .extensions()
                .get::<Delivery>()
                .map_or("none", Delivery::via);
            let _ = started.send(via);
            gate.acquire().await.unwrap().forget();
            Response::new(req.into_body())
        }
    };
    (handler, started_rx)
}

/// A handler that counts its calls in `calls`, panics on the body `poison`, and echoes any other
/// body.
pub(crate) fn counting(calls: &Arc<AtomicUsize>) -> impl Handler {
    let calls = Arc::clone(calls);
    move |req: Request<Bytes>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(req.body().as_ref() != b"poison", "poison message");
            Response::new(req.into_body())
        }
    }
}

/// Waits until every entry of the service's request stream is acknowledged and deleted.
pub(crate) async fn all_acknowledged(conn: &MultiplexedConnection, service: &str) {
    let stream = keys::request_stream(service);
    eventually("every entry is acknowledged", Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let stream = stream.clone();
        async move { xlen(&mut conn, &stream).await == 0 && pending(&mut conn, service).await == 0 }
    })
    .await;
}

/// The runner's `/metrics` text.
pub(crate) async fn metrics(running: &Running) -> String {
    let admin = running.admin.expect("the runner has an admin listener");
    String::from_utf8_lossy(&get(admin, "/metrics").await.body).into_owned()
}

/// `XADD`s an entry with exactly these fields, as something other than the gateway might;
/// returns the entry id.
pub(crate) async fn enqueue_raw(
    conn: &mut MultiplexedConnection,
    service: &str,
    fields: &[(&str, &[u8])],
) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys::request_stream(service)).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.query_async(conn).await.unwrap()
}

/// The `dl_reason` of every entry of the service's dead-letter stream, oldest first.
pub(crate) async fn dead_reasons(conn: &mut MultiplexedConnection, service: &str) -> Vec<String> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(keys::dead_letter_stream(service))
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let at = fields.iter().step_by(2).position(|f| f == b"dl_reason");
            at.map_or_else(String::new, |at| {
                String::from_utf8_lossy(&fields[at * 2 + 1]).into_owned()
            })
        })
        .collect()
}

/// Installs a log subscriber once, so failing tests show what the runner did (`RUST_LOG`).
pub(crate) fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
