//! The direct HTTP path: serving, the shared capacity's `503`, the admin listener, and start-up
//! errors. No Redis involved.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::NOT_PROCESSED_HEADER;
use holdline_sdk::{Config, Delivery, Error, Runner, from_tower};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Answers `VIA METHOD URI BODY`.
async fn describe(req: Request<Bytes>) -> Response<Bytes> {
    let via = req
        .extensions()
        .get::<Delivery>()
        .map_or("none", Delivery::via);
    let text = format!(
        "{via} {} {} {}",
        req.method(),
        req.uri(),
        String::from_utf8_lossy(req.body())
    );
    Response::new(Bytes::from(text))
}

#[tokio::test]
async fn serves_the_handler_over_http1_and_h2c() {
    logs();
    let running = start(describe, config(4, "http", None), HTTP).await;
    let addr = running.http.unwrap();

    let answer = post(addr, "/a?b=c", "hello").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "http POST /a?b=c hello");

    let request = Request::put(format!("http://{addr}/h2"))
        .body(Full::new(Bytes::from_static(b"two")))
        .unwrap();
    let answer = send_h2(addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, format!("http PUT http://{addr}/h2 two"));

    running.shutdown().await;
}

#[tokio::test]
async fn a_full_instance_answers_503_not_processed_at_once() {
    logs();
    let gate = Arc::new(Semaphore::new(0));
    let (handler, mut started_rx) = gated(&gate);
    let running = start(handler, config(1, "http", None), HTTP_ADMIN).await;
    let addr = running.http.unwrap();

    let first = tokio::spawn(post(addr, "/slow", "first"));
    started_rx.recv().await.unwrap();

    let rejected = post(addr, "/fast", "second").await;
    assert_eq!(rejected.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejected.headers[NOT_PROCESSED_HEADER], "1");
    assert!(
        started_rx.try_recv().is_err(),
        "the rejected request must not reach the handler"
    );

    gate.add_permits(1);
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "first");

    let metrics = get(running.admin.unwrap(), "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"holdline_sdk_processed_total{outcome="rejected",path="http"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"holdline_sdk_processed_total{outcome="2xx",path="http"} 1"#),
        "{text}"
    );
    assert!(text.contains("holdline_sdk_capacity 1"), "{text}");
    assert!(text.contains("holdline_sdk_in_flight 0"), "{text}");
    running.shutdown().await;
}

#[tokio::test]
async fn admin_serves_health_readiness_and_metrics() {
    logs();
    let running = start(describe, config(4, "http", None), HTTP_ADMIN).await;
    let admin = running.admin.unwrap();
    assert_eq!(get(admin, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK);
    let metrics = get(admin, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&metrics.body).contains("holdline_sdk_queue_wait_seconds_bucket")
    );
    assert_eq!(get(admin, "/nope").await.status, StatusCode::NOT_FOUND);
    running.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_panics_get_500() {
    logs();
    let handler = |req: Request<Bytes>| async move {
        assert!(req.uri().path() != "/panic", "handler asked to panic");
        Response::new(req.into_body())
    };
    let config = Config {
        max_body_bytes: 4,
        ..config(2, "http", None)
    };
    let running = start(handler, config, HTTP).await;
    let addr = running.http.unwrap();
    assert_eq!(post(addr, "/", "1234").await.body, "1234");
    assert_eq!(
        post(addr, "/", "12345").await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        get(addr, "/panic").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // The panic cost neither the runner nor the slot.
    assert_eq!(post(addr, "/", "ok").await.body, "ok");
    assert_eq!(post(addr, "/", "ok").await.body, "ok");
    running.shutdown().await;
}

#[tokio::test]
async fn a_tower_service_is_served_unchanged() {
    logs();
    let service = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await?.to_bytes();
        let text = format!("{path}:{}", String::from_utf8_lossy(&body));
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::CREATED)
                .header("x-tower", "yes")
                .body(Full::new(Bytes::from(text)))
                .unwrap(),
        )
    });
    let running = start(from_tower(service), config(2, "http", None), HTTP).await;
    let answer = post(running.http.unwrap(), "/t", "body").await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.headers["x-tower"], "yes");
    assert_eq!(answer.body, "/t:body");
    running.shutdown().await;
}

#[tokio::test]
async fn start_up_errors_are_reported() {
    let nothing = Runner::new(describe, config(1, "http", None))
        .run(async {})
        .await;
    assert!(matches!(nothing, Err(Error::NothingToServe)), "{nothing:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let invalid = Runner::new(describe, config(0, "http", None))
        .http(listener)
        .run(async {})
        .await;
    match invalid {
        Err(Error::Config(error)) => assert_eq!(error.field, "concurrency"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn bind_http_and_bind_admin_serve_on_the_address_or_name_it() {
    logs();
    // A free port, released so that the runner can bind it.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let runner = Runner::new(describe, config(2, "http", None))
        .bind_http(addr)
        .await
        .expect("a free address binds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));
    assert_eq!(get(addr, "/").await.body, "http GET / ");

    // The address is taken now: both binds fail and say which address.
    let taken = Runner::new(describe, config(2, "http", None))
        .bind_http(addr)
        .await;
    let error = taken.err().expect("a taken address fails");
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
    let taken = Runner::new(describe, config(2, "http", None))
        .bind_admin(addr)
        .await;
    let error = taken.err().expect("a taken address fails");
    assert!(error.to_string().contains("admin"), "{error}");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    logs();
    let running = start(describe, config(2, "http", None), HTTP).await;
    let addr = running.http.unwrap();
    assert_eq!(get(addr, "/").await.status, StatusCode::OK);
    running.shutdown().await;
    let refused =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "the listener must be closed after shutdown"
    );
}

/// A request the gateway meant for another service (`holdline-service`) is refused with the
/// not-processed `503` before the handler sees it, so the gateway may send it where that
/// service's instances are; a request for this service, or one without the header (from an
/// older gateway), is served.
#[tokio::test]
async fn a_request_for_another_service_is_not_processed() {
    logs();
    let running = start(describe, config(2, "orders", None), HTTP_ADMIN).await;
    let addr = running.http.unwrap();
    let named = |service: &'static str| {
        Request::post("/pay")
            .header(http::header::HOST, "orders.internal")
            .header(holdline_protocol::SERVICE_HEADER, service)
            .body(Full::new(Bytes::from_static(b"1")))
            .unwrap()
    };

    let refused = send(addr, named("billing")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers[NOT_PROCESSED_HEADER], "1");
    assert_eq!(refused.body, "another service's request, not processed\n");

    let served = send(addr, named("orders")).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, "http POST /pay 1");
    assert_eq!(post(addr, "/pay", "2").await.body, "http POST /pay 2");

    let metrics = get(running.admin.unwrap(), "/metrics").await.body;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"holdline_sdk_processed_total{outcome="wrong_service",path="http"} 1"#),
        "{metrics}"
    );
    running.shutdown().await;
}
