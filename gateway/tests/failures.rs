//! Upstream failures: a dead endpoint gives a quick `502`, connect failures are retried on another
//! endpoint and eject the dead one, a full endpoint gives `503` with `Retry-After`, and the SDK's
//! not-processed `503` is a capacity signal rather than a failure. Outlier ejection counts only
//! the statuses that blame the endpoint, never ejects more than its cap, and with too few
//! endpoints in rotation the balancer uses all of them.

mod support;

use holdline_gateway::body;
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::upstream::{Gate, echo};
use support::{
    LISTEN, Reply, TestGateway, Upstream, client, dead_addr, eventually, metric, one_service, send,
};
use tokio::time::Instant;

async fn get(client: &support::client::HttpClient, url: String) -> Reply {
    send(client, Request::get(url).body(body::empty()).unwrap()).await
}

/// Sends `n` requests at once and returns the replies.
async fn burst(gw: &TestGateway, n: usize) -> Vec<Reply> {
    let client = client();
    futures_util::future::join_all((0..n).map(|i| get(&client, gw.url(&format!("/burst/{i}")))))
        .await
}

#[tokio::test]
async fn dead_upstream_is_a_quick_502() {
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.dead]
endpoints = ["http://{}"]
connect_timeout = "1s"
[[routes]]
prefix = "/"
service = "dead"
"#,
        dead_addr()
    ))
    .await;
    let started = Instant::now();
    let reply = support::get(&gw.url("/x")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let json = reply.json();
    assert!(json["request_id"].is_string(), "{json}");
    // What happened, not how: no OS error codes or addresses from inside.
    assert_eq!(json["error"], "could not connect to the upstream", "{json}");
    let metrics = gw.metrics().await;
    let errors = metric(
        &metrics,
        "holdline_upstream_errors_total",
        &[("service", "dead"), ("kind", "connect")],
    );
    assert!(errors >= Some(1.0), "{metrics}");
}

/// A service of two endpoints: a dead one, and a live one with a single slot that answers after
/// `delay`, so that requests find it full and try the dead one. `outlier` is the service's
/// outlier-ejection table. Returns the gateway, the live upstream and the dead address.
async fn dead_and_live(
    delay: Duration,
    outlier: &str,
) -> (TestGateway, Upstream, std::net::SocketAddr) {
    let dead = dead_addr();
    let live = Upstream::start(move |request| async move {
        tokio::time::sleep(delay).await;
        echo("live", request).await
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.svc]
endpoints = ["http://{dead}", "{}"]
max_inflight_per_endpoint = 1
accept_timeout = "20s"
[services.svc.outlier]
{outlier}
[[routes]]
prefix = "/"
service = "svc"
"#,
        live.url()
    ))
    .await;
    (gw, live, dead)
}

#[tokio::test]
async fn connect_failures_are_retried_and_the_dead_endpoint_is_ejected() {
    // Requests of a burst find the live endpoint full and try the dead one, then wait for the
    // live one.
    let eject = "consecutive_failures = 1\nbase_ejection = \"120s\"\nmax_ejection = \"120s\"";
    let (gw, _live, dead) = dead_and_live(Duration::from_millis(100), eject).await;

    for reply in burst(&gw, 8).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.echo().upstream(), "live");
    }

    // Bring something up on the dead address: while ejected it must get nothing, even though the
    // live endpoint is full for most of the burst.
    let listener = tokio::net::TcpListener::bind(dead)
        .await
        .expect("rebind the dead endpoint's port");
    let revived = Upstream::start_on(listener, |request| echo("revived", request));
    for reply in burst(&gw, 8).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.echo().upstream(), "live");
    }
    assert_eq!(revived.hits(), 0, "an ejected endpoint got traffic");

    // Out of rotation, so not healthy either: alerts on healthy endpoints see it.
    let metrics = gw.metrics().await;
    let gauge = |name: &str| {
        metric(
            &metrics,
            name,
            &[("service", "svc"), ("endpoint", &dead.to_string())],
        )
    };
    assert_eq!(gauge("holdline_endpoint_ejected"), Some(1.0), "{metrics}");
    assert_eq!(gauge("holdline_endpoint_healthy"), Some(0.0), "{metrics}");
}

/// The request that a connect failure left unsent goes to another endpoint whole, its body
/// included (one of known length, and a streamed one of unknown length), even while the one that
/// refused it still counts as available and has room: the retry waits for the other.
#[tokio::test]
async fn a_body_survives_a_connect_failure_and_reaches_another_endpoint() {
    // Never ejected: only the retry's choice keeps the upload away from the dead endpoint.
    let (gw, _live, _) =
        dead_and_live(Duration::from_millis(300), "consecutive_failures = 1000").await;
    let client = client();
    let sized = || body::full(vec![b'x'; 100_000]);
    let streamed = || {
        let chunks = (0..10).map(|_| {
            Ok::<_, std::io::Error>(http_body::Frame::data(bytes::Bytes::from(vec![
                b'y';
                7_000
            ])))
        });
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )))
    };
    for (name, body, length) in [
        ("sized", sized(), 100_000),
        ("streamed", streamed(), 70_000),
    ] {
        // The live endpoint's only slot is taken, so the upload finds room only on the dead one
        // first; the retry waits for the live one.
        let occupier = tokio::spawn({
            let client = client.clone();
            let url = gw.url("/occupy");
            async move { get(&client, url).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let request = Request::post(gw.url(&format!("/upload/{name}")))
            .body(body)
            .unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        assert_eq!(reply.echo().upstream(), "live", "{name}");
        assert_eq!(reply.echo().body_bytes(), length, "{name}");
        assert_eq!(occupier.await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn full_endpoint_gives_503_with_retry_after_after_the_accept_timeout() {
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
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.slow]
endpoints = ["{}"]
max_inflight_per_endpoint = 1
accept_timeout = "300ms"
[[routes]]
prefix = "/"
service = "slow"
"#,
        upstream.url()
    ))
    .await;
    let client = client();
    let first = tokio::spawn({
        let client = client.clone();
        let url = gw.url("/first");
        async move { get(&client, url).await }
    });
    assert!(eventually(Duration::from_secs(10), || async { upstream.hits() == 1 }).await);

    let started = Instant::now();
    let second = get(&client, gw.url("/second")).await;
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the accept timeout: {:?}",
        started.elapsed()
    );
    let retry_after: u64 = second
        .header("retry-after")
        .expect("Retry-After on 503")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    assert_eq!(
        upstream.hits(),
        1,
        "the second request must not reach the upstream"
    );

    gate.open();
    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    // The slot is free again.
    assert_eq!(get(&client, gw.url("/third")).await.status, 200);
}

#[tokio::test]
async fn not_processed_503_is_a_503_and_does_not_eject_but_a_plain_503_does() {
    let refusing = Arc::new(AtomicBool::new(true));
    let marked = Upstream::start({
        let refusing = refusing.clone();
        move |request| {
            let refusing = refusing.load(Ordering::SeqCst);
            async move {
                if !refusing {
                    return echo("marked", request).await;
                }
                let mut response = Response::new(body::empty());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
                    .headers_mut()
                    .insert("holdline-not-processed", "1".parse().unwrap());
                response
            }
        }
    })
    .await;
    let plain = answering(StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.marked]
endpoints = ["{}"]
[services.marked.outlier]
consecutive_failures = 1
base_ejection = "120s"
max_ejection = "120s"
[services.plain]
endpoints = ["{}"]
[services.plain.outlier]
consecutive_failures = 1
base_ejection = "120s"
max_ejection = "120s"
panic_threshold_percent = 0
[[routes]]
prefix = "/marked"
service = "marked"
[[routes]]
prefix = "/plain"
service = "plain"
"#,
        marked.url(),
        plain.url()
    ))
    .await;
    let client = client();

    for _ in 0..3 {
        let reply = get(&client, gw.url("/marked")).await;
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(reply.header("retry-after").is_some());
        assert!(reply.json()["request_id"].is_string());
    }
    assert_eq!(marked.hits(), 3);
    refusing.store(false, Ordering::SeqCst);
    let reply = get(&client, gw.url("/marked")).await;
    assert_eq!(
        reply.status,
        200,
        "refusals must not eject: {}",
        reply.text()
    );

    // Control: a 503 without the marker is the upstream's answer, passed through, and counts as a
    // failure: one ejects the endpoint here.
    let reply = get(&client, gw.url("/plain")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.text(), "overloaded");
    assert_eq!(reply.header("holdline-path"), Some("sync"));
    let reply = get(&client, gw.url("/plain")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"], "no endpoint available");
    assert_eq!(plain.hits(), 1);
}

/// An upstream that answers `status` with `body` to every request.
async fn answering(status: StatusCode, body: &'static str) -> Upstream {
    Upstream::start(move |_| async move {
        let mut response = Response::new(body::full(body));
        *response.status_mut() = status;
        response
    })
    .await
}

/// nginx and haproxy do not eject a server for an application's `500`s; neither does Envoy's
/// default (`consecutive_gateway_failure` counts 502, 503 and 504 only).
#[tokio::test]
async fn application_500s_do_not_eject_an_endpoint() {
    let upstream = answering(StatusCode::INTERNAL_SERVER_ERROR, "handler failed").await;
    let outlier = "[services.app.outlier]\nconsecutive_failures = 2\nbase_ejection = \"120s\"\n\
                   max_ejection = \"120s\"\npanic_threshold_percent = 0";
    let gw = TestGateway::start(&one_service("", "app", &[upstream.url()], outlier)).await;
    let client = client();
    for i in 0..10 {
        let reply = get(&client, gw.url(&format!("/{i}"))).await;
        assert_eq!(reply.status, 500, "{i}: {}", reply.text());
        assert_eq!(reply.text(), "handler failed");
    }
    assert_eq!(upstream.hits(), 10, "the endpoint was ejected");
}

/// Every endpoint answers 502, each answer a failure, yet only half of them may be out at once
/// (Envoy's `max_ejection_percent`): the other stays in rotation and its answers reach clients,
/// where ejecting both would answer everybody with the gateway's own error.
#[tokio::test]
async fn the_ejection_cap_keeps_endpoints_in_rotation() {
    let a = answering(StatusCode::BAD_GATEWAY, "a failed").await;
    let b = answering(StatusCode::BAD_GATEWAY, "b failed").await;
    let outlier = "[services.svc.outlier]\nconsecutive_failures = 1\nbase_ejection = \"120s\"\n\
                   max_ejection = \"120s\"\nmax_ejection_percent = 50\npanic_threshold_percent = 0";
    let gw = TestGateway::start(&one_service("", "svc", &[a.url(), b.url()], outlier)).await;
    let client = client();
    for i in 0..10 {
        let reply = get(&client, gw.url(&format!("/{i}"))).await;
        assert_eq!(reply.status, 502, "{i}: {}", reply.text());
        assert!(reply.text().ends_with(" failed"), "{i}: {}", reply.text());
    }
    let metrics = gw.metrics().await;
    let ejected: f64 = [&a, &b]
        .iter()
        .map(|u| {
            let endpoint = u.addr.to_string();
            let labels = [("service", "svc"), ("endpoint", endpoint.as_str())];
            metric(&metrics, "holdline_endpoint_ejected", &labels).unwrap_or(0.0)
        })
        .sum();
    assert_eq!(ejected, 1.0, "{metrics}");
}

/// With fewer endpoints in rotation than `panic_threshold_percent`, the balancer uses them all
/// (Envoy's panic threshold): an endpoint that fails its health checks but still serves beats
/// a certain error.
#[tokio::test]
async fn too_few_endpoints_in_rotation_routes_to_all_of_them() {
    let upstream = Upstream::start(|request| async move {
        if request.uri().path() == "/healthz" {
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        }
        echo("unchecked", request).await
    })
    .await;
    let check = "[services.svc.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\nunhealthy_after = 1";
    let gw = TestGateway::start(&one_service("", "svc", &[upstream.url()], check)).await;
    let endpoint = upstream.addr.to_string();
    let labels = [("service", "svc"), ("endpoint", endpoint.as_str())];
    let out = eventually(Duration::from_secs(10), || async {
        metric(&gw.metrics().await, "holdline_endpoint_healthy", &labels) == Some(0.0)
    })
    .await;
    assert!(out, "never marked unhealthy: {}", gw.metrics().await);
    let reply = support::get(&gw.url("/served")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().upstream(), "unchecked");
}
