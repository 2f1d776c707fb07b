//! Queue mode against a real `redis-server`: a service that went quiet after an overload leaves
//! the queue by time alone once its backlog is gone, with no further request (otherwise every
//! later call would pay the queue path and the stuck-in-queue alert would fire).

mod support;

use holdline_testkit::RedisServer;
use std::time::Duration;
use support::{LISTEN, TestGateway, dead_addr, eventually, metric};

#[tokio::test]
async fn an_idle_service_returns_to_sync_once_its_backlog_is_gone() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[redis]
url = "{}"
[services.idle]
endpoints = ["http://{}"]
[services.idle.queue]
enabled = true
hold = "100ms"
min_queue_time = "300ms"
min_queue_requests = 1000
recovery_time = "300ms"
[[routes]]
prefix = "/"
service = "idle"
"#,
        redis.url(),
        dead_addr()
    ))
    .await;
    let mode = |text: &str, mode: &str| {
        metric(
            text,
            "holdline_service_mode",
            &[("service", "idle"), ("mode", mode)],
        )
    };
    // The only endpoint refuses connections: an overload signal, and the call goes to the queue
    // (nothing consumes it; the hold runs out and the client gets a 202).
    let reply = support::get(&gw.url("/work")).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(mode(&gw.metrics().await, "queue"), Some(1.0));

    // The backlog is worked off (here: removed), and nothing more arrives.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("XTRIM")
        .arg(holdline_protocol::keys::request_stream("idle"))
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let back = eventually(Duration::from_secs(10), || async {
        mode(&gw.metrics().await, "sync") == Some(1.0)
    })
    .await;
    assert!(back, "still not sync: {}", gw.metrics().await);
}
