//! Upstream timeouts: no response head within `first_byte_timeout` is a `504`; a response body
//! that stalls midway is cut at `request_timeout`, and the endpoint's slot is freed.

mod support;

use bytes::Bytes;
use holdline_gateway::body;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use support::upstream::{Gate, echo};
use support::{LISTEN, TestGateway, Upstream, client, eventually, metric, send};
use tokio::time::Instant;

/// A body that sends one chunk and then never another.
struct Stalling(Option<Bytes>);

impl http_body::Body for Stalling {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn no_response_head_within_first_byte_timeout_is_504() {
    let never = Gate::new();
    let upstream = Upstream::start({
        let never = never.clone();
        move |request| {
            let never = never.clone();
            async move {
                never.wait().await;
                echo("late", request).await
            }
        }
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.late]
endpoints = ["{}"]
first_byte_timeout = "300ms"
[[routes]]
prefix = "/"
service = "late"
"#,
        upstream.url()
    ))
    .await;
    let started = Instant::now();
    let reply = support::get(&gw.url("/")).await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(reply.json()["request_id"].is_string());
    assert_eq!(upstream.hits(), 1);
    never.open();
}

#[tokio::test]
async fn a_body_stalling_midway_is_cut_at_the_request_timeout() {
    let upstream = Upstream::start(|request| async move {
        if request.uri().path() == "/stall" {
            Response::new(body::boxed(Stalling(Some(Bytes::from(vec![b's'; 65536])))))
        } else {
            echo("fine", request).await
        }
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.stall]
endpoints = ["{}"]
max_inflight_per_endpoint = 1
accept_timeout = "200ms"
request_timeout = "2s"
[[routes]]
prefix = "/"
service = "stall"
"#,
        upstream.url()
    ))
    .await;
    let client = client();
    let response = client
        .request(Request::get(gw.url("/stall")).body(body::empty()).unwrap())
        .await
        .expect("response head arrives before the stall");
    assert_eq!(response.status(), 200);
    let mut incoming = response.into_body();
    let mut received = 0usize;
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match incoming.frame().await {
                Some(Ok(frame)) => received += frame.into_data().map_or(0, |d| d.len()),
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    })
    .await
    .expect("the gateway cut the stalled body instead of waiting forever");
    assert!(ended.is_err(), "a cut body must not look complete");
    assert_eq!(received, 65536, "the part sent before the stall arrives");

    // The cut released the endpoint's only slot.
    let reply = send(
        &client,
        Request::get(gw.url("/after")).body(body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The lease is dropped with the response body, just after its last byte went out.
    let idle = eventually(Duration::from_secs(5), || async {
        let metrics = gw.metrics().await;
        metric(
            &metrics,
            "holdline_endpoint_inflight",
            &[("service", "stall")],
        ) == Some(0.0)
    })
    .await;
    assert!(idle, "in-flight gauge: {}", gw.metrics().await);
}
