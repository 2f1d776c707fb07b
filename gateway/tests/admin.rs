//! The admin listener: `/healthz`, `/readyz` (failing while draining) and `/metrics` with the
//! request counter labelled by route, service, status and delivery path.

mod support;

use holdline_gateway::body;
use http::Request;
use std::time::Duration;
use support::upstream::{Gate, echo};
use support::{LISTEN, TestGateway, Upstream, client, eventually, metric, send};

#[tokio::test]
async fn healthz_and_metrics_after_traffic() {
    let upstream = Upstream::echo("echo").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.echo]
endpoints = ["{}"]
[[routes]]
prefix = "/api"
service = "echo"
"#,
        upstream.url()
    ))
    .await;
    let healthz = support::get(&gw.admin_url("/healthz")).await;
    assert_eq!(healthz.status, 200);
    assert_eq!(support::get(&gw.admin_url("/readyz")).await.status, 200);
    assert_eq!(support::get(&gw.admin_url("/nope")).await.status, 404);

    let client = client();
    for i in 0..3 {
        let url = gw.url(&format!("/api/{i}"));
        let reply = send(&client, Request::get(url).body(body::empty()).unwrap()).await;
        assert_eq!(reply.status, 200);
    }
    let reply = send(
        &client,
        Request::get(gw.url("/unrouted"))
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 404);

    let text = gw.metrics().await;
    let proxied = [
        ("route", "/api"),
        ("service", "echo"),
        ("status", "200"),
        ("path", "sync"),
    ];
    assert_eq!(
        metric(&text, "holdline_requests_total", &proxied),
        Some(3.0),
        "{text}"
    );
    let unrouted = [("status", "404"), ("path", "gateway")];
    assert_eq!(
        metric(&text, "holdline_requests_total", &unrouted),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("holdline_request_duration_seconds_bucket"),
        "{text}"
    );
    let endpoint = upstream.addr.to_string();
    assert_eq!(
        metric(
            &text,
            "holdline_endpoint_inflight",
            &[("service", "echo"), ("endpoint", &endpoint)]
        ),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_fails_while_draining() {
    let gate = Gate::new();
    let upstream = Upstream::start({
        let gate = gate.clone();
        move |request| {
            let gate = gate.clone();
            async move {
                gate.wait().await;
                echo("slow", request).await
            }
        }
    })
    .await;
    let mut gw = TestGateway::start(&format!(
        r#"shutdown_grace = "30s"
{LISTEN}
[services.slow]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "slow"
"#,
        upstream.url()
    ))
    .await;
    assert_eq!(support::get(&gw.admin_url("/readyz")).await.status, 200);

    // An in-flight request keeps the gateway draining (and the admin listener up).
    let in_flight = support::spawn_get(gw.url("/slow"));
    assert!(eventually(Duration::from_secs(10), || async { upstream.hits() == 1 }).await);
    gw.begin_shutdown();
    let draining = eventually(Duration::from_secs(10), || async {
        support::get(&gw.admin_url("/readyz")).await.status == 503
    })
    .await;
    assert!(draining, "/readyz still passes while draining");
    assert_eq!(support::get(&gw.admin_url("/healthz")).await.status, 200);

    gate.open();
    assert_eq!(in_flight.await.unwrap().status, 200);
    gw.stopped(Duration::from_secs(10)).await;
}

/// Idle admin connections are closed after `admin.idle_timeout`, and at most
/// `admin.max_connections` are open at once: idle connections held by one client keep a probe
/// waiting only until they time out, and never pile up into the proxy's file descriptors (an
/// unlimited admin listener once accepted 18,169 idle connections).
#[tokio::test]
async fn admin_connections_are_capped_and_closed_when_idle() {
    use tokio::io::AsyncReadExt;
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\nmax_connections = 2\nidle_timeout = \"1s\"\n\
                 header_read_timeout = \"1s\"";
    let endpoints = ["http://127.0.0.1:1".to_owned()];
    let gw = TestGateway::start(&support::one_service(admin, "echo", &endpoints, "")).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(gw.admin).await.unwrap());
    }
    // Both slots are taken by connections that send nothing: a probe waits.
    let probe = tokio::spawn({
        let url = gw.admin_url("/healthz");
        async move { support::get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!probe.is_finished(), "a third admin connection was served");
    // The idle ones are closed by the gateway, and the probe is served.
    for mut stream in idle {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "an idle admin connection stayed open: {read:?}"
        );
    }
    let reply = tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .expect("the probe was never served")
        .unwrap();
    assert_eq!(reply.status, 200);
}
