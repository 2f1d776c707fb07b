//! The gateway's `[services.NAME]` and an instance's `--service` disagree: nothing is served by
//! the wrong code and nothing waits silently. The misnamed instance refuses the gateway's calls
//! (the not-processed `503`), they go to the queue, where nobody of that name reads, and once
//! `no_consumer_timeout` has passed the gateway answers them `503` at once. An instance with the
//! right name brings the answers back.

mod support;

use holdline_testkit::RedisServer;
use http::StatusCode;
use std::time::{Duration, Instant};
use support::{Client, Echo, EchoOpts, Gw, config, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misnamed_instance_serves_nothing_and_its_calls_fail_fast() {
    let redis = RedisServer::start();
    let misnamed = Echo::start_as(
        EchoOpts {
            redis: &redis.url(),
            concurrency: 4,
            work_ms: 0,
            http: true,
            instance: "billing-1",
        },
        "billing",
    )
    .await;
    let gw = Gw::start(config(
        &redis.url(),
        &[misnamed.port],
        "",
        "hold = \"1s\"\nno_consumer_timeout = \"5s\"",
    ))
    .await;
    let client = Client::new();

    // Within the timeout a call is held as usual (instances may be starting), then 202.
    let first = client.get(&gw.url("/echo/a")).await.unwrap();
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let reply = client.get(&gw.url("/echo/b")).await.unwrap();
        if reply.status != StatusCode::ACCEPTED || Instant::now() >= deadline {
            break reply;
        }
    };
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert!(refused.headers.contains_key("retry-after"));
    let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(
        body["error"],
        "no instance of the service is reading its queue"
    );
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], misnamed.admin));
    let wrong = r#"holdline_sdk_processed_total{outcome="wrong_service",path="http"}"#;
    assert!(metric(&client, admin, wrong).await >= 1.0);
    let served = r#"holdline_sdk_processed_total{outcome="2xx""#;
    assert_eq!(
        metric(&client, admin, served).await,
        0.0,
        "the wrong code ran"
    );

    // An instance of the right name reads the queue: calls are answered again.
    let _echo = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        work_ms: 0,
        http: false,
        instance: "echo-1",
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let answered = loop {
        let reply = client.get(&gw.url("/echo/c")).await.unwrap();
        if reply.status == StatusCode::OK || Instant::now() >= deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answered.status, StatusCode::OK, "{answered:?}");
    assert_eq!(answered.path(), "queue");
    gw.stop().await;
}
