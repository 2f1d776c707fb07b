//! Endpoint discovery and health: endpoints named by host name are resolved and used, and active
//! health checks take a failing endpoint out of rotation and bring it back.

mod support;

use holdline_gateway::body;
use http::{Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::upstream::echo;
use support::{LISTEN, TestGateway, Upstream, eventually, metric};

#[tokio::test]
async fn hostname_endpoints_resolve_and_serve_from_the_first_request() {
    let upstream = Upstream::echo("named").await;
    let config = format!(
        r#"{LISTEN}
[services.named]
endpoints = ["http://localhost:{}"]
[[routes]]
prefix = "/"
service = "named"
"#,
        upstream.addr.port()
    );
    // A fresh gateway each round: the very first request must not race the first resolution.
    for round in 0..5 {
        let gw = TestGateway::start(&config).await;
        let reply = support::get(&gw.url(&format!("/round/{round}"))).await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        assert_eq!(reply.echo().uri(), format!("/round/{round}"));
        gw.shutdown().await;
    }
    assert_eq!(upstream.hits(), 5);
}

#[tokio::test]
async fn failing_health_checks_take_an_endpoint_out_and_passing_ones_bring_it_back() {
    let healthy = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream::start({
        let healthy = healthy.clone();
        let served = served.clone();
        move |request| {
            let healthy = healthy.load(Ordering::SeqCst);
            let served = served.clone();
            async move {
                if request.uri().path() == "/healthz" {
                    let mut response = Response::new(body::empty());
                    if !healthy {
                        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    return response;
                }
                served.fetch_add(1, Ordering::SeqCst);
                echo("checked", request).await
            }
        }
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.checked]
endpoints = ["{}"]
[services.checked.health_check]
path = "/healthz"
interval = "100ms"
timeout = "1s"
unhealthy_after = 2
healthy_after = 1
# Out of rotation means out, even for the only endpoint (no routing to all in a panic).
[services.checked.outlier]
panic_threshold_percent = 0
[[routes]]
prefix = "/"
service = "checked"
"#,
        upstream.url()
    ))
    .await;
    let healthy_gauge = |text: &str| {
        metric(
            text,
            "holdline_endpoint_healthy",
            &[
                ("service", "checked"),
                ("endpoint", &upstream.addr.to_string()),
            ],
        )
    };

    assert_eq!(support::get(&gw.url("/before")).await.status, 200);
    // The checker is running: it has asked for /healthz a few times.
    assert!(eventually(Duration::from_secs(10), || async { upstream.hits() >= 3 }).await);

    healthy.store(false, Ordering::SeqCst);
    let out = eventually(Duration::from_secs(10), || async {
        healthy_gauge(&gw.metrics().await) == Some(0.0)
    })
    .await;
    assert!(out, "never marked unhealthy: {}", gw.metrics().await);
    let before = served.load(Ordering::SeqCst);
    for _ in 0..5 {
        let reply = support::get(&gw.url("/during")).await;
        assert_eq!(reply.status, 503, "{}", reply.text());
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        before,
        "an unhealthy endpoint got traffic"
    );

    healthy.store(true, Ordering::SeqCst);
    let back = eventually(Duration::from_secs(10), || async {
        healthy_gauge(&gw.metrics().await) == Some(1.0)
    })
    .await;
    assert!(back, "never marked healthy again: {}", gw.metrics().await);
    let reply = support::get(&gw.url("/after")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().upstream(), "checked");
}
