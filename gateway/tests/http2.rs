//! HTTP/2: clients speaking h2c with prior knowledge to the gateway, and upstreams spoken to with
//! `protocol = "h2"`.

mod support;

use holdline_gateway::body;
use http::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{LISTEN, TestGateway, Upstream, client, h2c_client, is_generated_id, send};

async fn gateway(protocol: &str, upstream: &Upstream, other: &Upstream) -> TestGateway {
    TestGateway::start(&format!(
        r#"{LISTEN}
[services.echo]
endpoints = ["{}"]
protocol = "{protocol}"
[services.other]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "echo"
[[routes]]
prefix = "/"
host = "other.example"
service = "other"
"#,
        upstream.url(),
        other.url()
    ))
    .await
}

#[tokio::test]
async fn h2c_prior_knowledge_client_is_proxied_to_an_http1_upstream() {
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("http1", &upstream, &other).await;
    let client = h2c_client();

    let reply = send(
        &client,
        Request::post(gw.url("/h2?q=1"))
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(body::full(vec![7u8; 100_000]))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.header("holdline-path"), Some("sync"));
    assert!(is_generated_id(reply.header("x-request-id").unwrap()));
    let echo = reply.echo();
    assert_eq!(echo.version(), "HTTP/1.1");
    assert_eq!(echo.uri(), "/h2?q=1");
    assert_eq!(echo.body_bytes(), 100_000);
    // HTTP/2 has no Host header: the gateway sends the request's authority as Host.
    assert_eq!(echo.header("host"), Some(gw.addr.to_string().as_str()));
    assert_eq!(
        echo.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );

    // Many streams on one connection at once.
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let client = client.clone();
        let url = gw.url(&format!("/many/{i}"));
        async move { send(&client, Request::get(url).body(body::empty()).unwrap()).await }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.version, Version::HTTP_2);
        assert_eq!(reply.echo().uri(), format!("/many/{i}"));
    }
}

#[tokio::test]
async fn h2_authority_selects_host_routes() {
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("http1", &upstream, &other).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("http://other.example/by-authority")
                .body(body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.headers()["x-upstream"], "other");
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let echo = support::Echo::parse(&bytes);
    assert_eq!(echo.header("host"), Some("other.example"));
    assert_eq!(echo.header("x-forwarded-host"), Some("other.example"));
}

#[tokio::test]
async fn upstream_spoken_to_with_h2() {
    let upstream = Upstream::echo("echo").await;
    let other = Upstream::echo("other").await;
    let gw = gateway("h2", &upstream, &other).await;
    let client = client();
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let client = client.clone();
        let request = Request::post(gw.url(&format!("/up/{i}")))
            .header("host", "h2.example")
            .body(body::full(vec![1u8; 10_000]))
            .unwrap();
        async move { send(&client, request).await }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.version, Version::HTTP_11, "the client spoke HTTP/1.1");
        let echo = reply.echo();
        assert_eq!(
            echo.version(),
            "HTTP/2.0",
            "the upstream must be spoken to in h2"
        );
        assert_eq!(echo.uri(), format!("/up/{i}"));
        assert_eq!(echo.body_bytes(), 10_000);
        assert_eq!(echo.header("host"), Some("h2.example"));
    }
    // The other service stays on HTTP/1.1.
    let reply = send(
        &client,
        Request::get(gw.url("/"))
            .header("host", "other.example")
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.echo().version(), "HTTP/1.1");
}
