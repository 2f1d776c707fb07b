//! Hot reload: many reloads (routes and services changed, endpoints swapped between two live
//! upstreams) while clients send requests lose none of them; an invalid file is rejected and the
//! running configuration kept.

mod support;

use holdline_gateway::body;
use holdline_gateway::reload_from_file;
use http::Request;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{LISTEN, TestGateway, Upstream, client, send};

/// The configuration variants cycled through: the `/api` route moves between services, services
/// change endpoints and settings (so their upstreams are rebuilt), and routes come and go.
fn variant(i: usize, a: &str, b: &str) -> String {
    match i % 5 {
        0 => format!(
            r#"{LISTEN}
[services.one]
endpoints = ["{a}"]
[[routes]]
prefix = "/api"
service = "one"
"#
        ),
        1 => format!(
            r#"{LISTEN}
[services.two]
endpoints = ["{b}"]
max_inflight_per_endpoint = 100
[[routes]]
prefix = "/api"
service = "two"
strip_prefix = true
"#
        ),
        2 => format!(
            r#"{LISTEN}
[services.one]
endpoints = ["{b}"]
max_inflight_per_endpoint = 50
[services.two]
endpoints = ["{a}"]
[[routes]]
prefix = "/"
service = "two"
[[routes]]
prefix = "/api"
service = "one"
"#
        ),
        3 => format!(
            r#"{LISTEN}
[services.three]
endpoints = ["{}"]
[[routes]]
prefix = "/api"
service = "three"
"#,
            // A host name: the rebuilt service must resolve it before its first request.
            b.replace("127.0.0.1", "localhost")
        ),
        _ => format!(
            r#"{LISTEN}
[services.one]
endpoints = ["{a}", "{b}"]
[[routes]]
prefix = "/api"
service = "one"
[[routes]]
prefix = "/x"
service = "one"
"#
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_nothing() {
    /// Reloads done while four clients send requests without pause.
    const RELOADS: usize = 40;
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = TestGateway::start(&variant(0, &a.url(), &b.url())).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");

    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let url = gw.url("/api/");
            let done = done.clone();
            tokio::spawn(async move {
                let client = client();
                let mut statuses = Vec::new();
                // Requests until the reloads are over (and at least 50): however fast the
                // gateway answers, every reload happens under load.
                let mut i = 0;
                while i < 50 || !done.load(Ordering::SeqCst) {
                    let request = Request::get(format!("{url}{w}-{i}"))
                        .body(body::empty())
                        .unwrap();
                    let reply = send(&client, request).await;
                    statuses.push((reply.status.as_u16(), reply.text()));
                    i += 1;
                }
                statuses
            })
        })
        .collect();

    let reloader = {
        let shared = gw.shared.clone();
        let done = done.clone();
        let (a_url, b_url) = (a.url(), b.url());
        tokio::spawn(async move {
            let text = |i| variant(i, &a_url, &b_url);
            let mut reloads = 0;
            for i in 1..=RELOADS {
                if i % 2 == 0 {
                    std::fs::write(&path, text(i)).unwrap();
                    reload_from_file(&shared, &path).expect("valid file reloads");
                } else {
                    shared.reload(holdline_gateway::Config::from_toml(&text(i)).unwrap());
                }
                reloads += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            done.store(true, Ordering::SeqCst);
            reloads
        })
    };

    let mut total = 0;
    for worker in workers {
        for (status, text) in worker.await.unwrap() {
            assert_eq!(status, 200, "a request was lost during reloads: {text}");
            total += 1;
        }
    }
    let reloads = reloader.await.unwrap();
    assert_eq!(reloads, RELOADS);
    assert!(total >= 200, "only {total} requests were sent");
    assert!(
        a.hits() > 0 && b.hits() > 0,
        "a={} b={}",
        a.hits(),
        b.hits()
    );
}

#[tokio::test]
async fn an_invalid_file_is_rejected_and_the_running_config_kept() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = TestGateway::start(&variant(0, &a.url(), &b.url())).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");

    // A valid file first: `/api` now goes to b.
    std::fs::write(&path, variant(1, &a.url(), &b.url())).unwrap();
    reload_from_file(&gw.shared, &path).unwrap();
    assert_eq!(support::get(&gw.url("/api/1")).await.echo().upstream(), "b");
    let running = gw.shared.snapshot().config.clone();

    let invalid = [
        "this is not toml [".to_owned(),
        format!(
            "{LISTEN}\n[services.one]\nendpoints = [\"{}\"]\nbogus = 1\n",
            a.url()
        ),
        format!(
            "{LISTEN}\n[services.one]\nendpoints = [\"{}\"]\n[[routes]]\nprefix = \"/api\"\nservice = \"missing\"\n",
            a.url()
        ),
        format!("{LISTEN}\n[services.one]\nendpoints = [\"ftp://nope\"]\n"),
    ];
    for text in &invalid {
        std::fs::write(&path, text).unwrap();
        let error = reload_from_file(&gw.shared, &path).expect_err(text);
        assert!(error.to_string().contains("keeping"), "{error}");
        assert_eq!(
            *gw.shared.snapshot().config,
            *running,
            "config changed by {text}"
        );
        let reply = support::get(&gw.url("/api/2")).await;
        assert_eq!(reply.echo().upstream(), "b", "traffic moved after {text}");
    }
    // A missing file is rejected the same way.
    assert!(reload_from_file(&gw.shared, &dir.path().join("absent.toml")).is_err());
    assert_eq!(*gw.shared.snapshot().config, *running);

    // Each attempt is counted by its result.
    let metrics = gw.metrics().await;
    let reloads = |result: &str| {
        support::metric(
            &metrics,
            "holdline_config_reloads_total",
            &[("result", result)],
        )
    };
    assert_eq!(reloads("success"), Some(1.0), "{metrics}");
    assert_eq!(
        reloads("failure"),
        Some(invalid.len() as f64 + 1.0),
        "{metrics}"
    );
}
