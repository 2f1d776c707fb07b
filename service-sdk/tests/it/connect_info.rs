//! The client's address reaches the handler as a plain `SocketAddr` extension on both paths, as
//! the gateway saw it: the last `x-forwarded-for` entry, else the connection's peer.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::keys;
use holdline_sdk::from_tower;
use holdline_testkit::RedisServer;
use holdline_testkit::client::request;
use http::{Method, Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Answers with the `SocketAddr` in the request's extensions, as a tower service (an axum
/// handler reading its connect info would look there too).
fn client_addr_service() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let addr = req
            .extensions()
            .get::<SocketAddr>()
            .map(ToString::to_string);
        let text = addr.unwrap_or_else(|| "none".to_owned());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    })
}

#[tokio::test]
async fn the_client_address_reaches_a_mounted_service_on_both_paths() {
    logs();
    let redis_server = RedisServer::start();
    let handler = from_tower::<Full<Bytes>, _>(client_addr_service());
    let running = start(
        handler,
        config(2, "who", Some(queue_config(&redis_server.url()))),
        HTTP,
    )
    .await;
    let http = running.http.unwrap();

    let forwarded = request(
        Method::GET,
        "/",
        &[("x-forwarded-for", "198.51.100.1, 192.0.2.7")],
        Bytes::new(),
    );
    assert_eq!(send(http, forwarded).await.body, "192.0.2.7:0");
    // Called directly, without a gateway in front: the peer of the connection.
    let direct = String::from_utf8(get(http, "/").await.body.to_vec()).unwrap();
    let direct: SocketAddr = direct.parse().unwrap();
    assert!(direct.ip().is_loopback() && direct.port() != 0, "{direct}");

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g1");
    let mut queued = queued("w1", "who", Some(&reply_stream), "");
    queued
        .headers
        .insert("x-forwarded-for", "2001:db8::7".parse().unwrap());
    enqueue(&mut conn, &queued).await;
    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("a reply");
    assert_eq!(reply.response.body, "[2001:db8::7]:0");
    running.shutdown().await;
}
