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
