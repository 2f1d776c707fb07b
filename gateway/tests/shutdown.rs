//! Graceful shutdown: in-flight requests finish, new connections are refused, idle connections
//! do not hold the gateway up, the grace period bounds the wait, and `serve` returns.

mod support;

use holdline_gateway::body;
use http::Request;
use std::net::SocketAddr;
use std::time::Duration;
use support::upstream::{Gate, echo};
use support::{LISTEN, TestGateway, Upstream, client, eventually, h2c_client, send, spawn_get};

async fn gated_gateway(grace: &str) -> (Gate, Upstream, TestGateway) {
    let gate = Gate::new();
    let upstream = Upstream::start({
        let gate = gate.clone();
        move |request| {
            let gate = gate.clone();
            async move {
                if request.uri().path() == "/slow" {
                    gate.wait().await;
                }
                echo("upstream", request).await
            }
        }
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"shutdown_grace = "{grace}"
{LISTEN}
[services.svc]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "svc"
"#,
        upstream.url()
    ))
    .await;
    (gate, upstream, gw)
}

async fn refuses_connections(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn in_flight_request_completes_and_new_connections_are_refused() {
    let (gate, upstream, mut gw) = gated_gateway("30s").await;
    let in_flight = spawn_get(gw.url("/slow"));
    assert!(eventually(Duration::from_secs(10), || async { upstream.hits() == 1 }).await);

    gw.begin_shutdown();
    let addr = gw.addr;
    let refused = eventually(Duration::from_secs(10), || refuses_connections(addr)).await;
    assert!(
        refused,
        "the listener still takes connections after shutdown began"
    );

    gate.open();
    let reply = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request finished")
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.echo().uri(), "/slow");
    gw.stopped(Duration::from_secs(10)).await;
    assert!(refuses_connections(gw.addr).await);
    assert!(
        refuses_connections(gw.admin).await,
        "admin listener closed too"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_stop_serve_from_returning() {
    let (_gate, _upstream, mut gw) = gated_gateway("30s").await;
    // Leave one idle HTTP/1.1 connection and one idle h2 connection in the clients' pools.
    let h1 = client();
    let h2 = h2c_client();
    for client in [&h1, &h2] {
        let request = Request::get(gw.url("/fast")).body(body::empty()).unwrap();
        assert_eq!(send(client, request).await.status, 200);
    }
    gw.begin_shutdown();
    gw.stopped(Duration::from_secs(10)).await;
    drop((h1, h2));
}

#[tokio::test]
async fn grace_period_bounds_the_drain() {
    let (gate, upstream, mut gw) = gated_gateway("300ms").await;
    let in_flight = spawn_get(gw.url("/slow"));
    assert!(eventually(Duration::from_secs(10), || async { upstream.hits() == 1 }).await);
    gw.begin_shutdown();
    // The request never finishes on its own; serve returns once the grace period is over.
    gw.stopped(Duration::from_secs(10)).await;
    gate.open();
    in_flight.abort();
}
