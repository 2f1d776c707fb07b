//! Routing by host and path prefix to named services, on the path in normal form (which is also
//! the path forwarded), and the `404` for requests no route takes.

mod support;

use holdline_gateway::body;
use http::Request;
use support::{LISTEN, TestGateway, Upstream, client, is_generated_id, send};

async fn get_with_host(gw: &TestGateway, host: &str, path: &str) -> support::Reply {
    let request = Request::get(gw.url(path))
        .header("host", host)
        .body(body::empty())
        .unwrap();
    send(&client(), request).await
}

#[tokio::test]
async fn longest_prefix_host_specific_segment_boundary_and_strip_prefix() {
    let root = Upstream::echo("root").await;
    let api = Upstream::echo("api").await;
    let v2 = Upstream::echo("v2").await;
    let admin = Upstream::echo("admin").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.root]
endpoints = ["{}"]
[services.api]
endpoints = ["{}"]
[services.v2]
endpoints = ["{}"]
[services.admin]
endpoints = ["{}"]

[[routes]]
prefix = "/"
service = "root"
[[routes]]
prefix = "/api"
service = "api"
[[routes]]
prefix = "/api/v2"
service = "v2"
strip_prefix = true
[[routes]]
prefix = "/s/"
service = "api"
strip_prefix = true
[[routes]]
prefix = "/"
host = "Admin.Example"
service = "admin"
"#,
        root.url(),
        api.url(),
        v2.url(),
        admin.url()
    ))
    .await;

    // (host, path, upstream that must answer, request target it must see)
    let cases = [
        ("any.example", "/api/x", "api", "/api/x"),
        ("any.example", "/api", "api", "/api"),
        ("any.example", "/api/v2/x?q=1", "v2", "/x?q=1"),
        ("any.example", "/api/v2", "v2", "/"),
        ("any.example", "/api/v2?q=1", "v2", "/?q=1"),
        // Segment boundaries: a prefix never matches part of a segment.
        ("any.example", "/api/v20", "api", "/api/v20"),
        ("any.example", "/apix", "root", "/apix"),
        ("any.example", "/", "root", "/"),
        // A configured trailing slash still strips at the segment boundary.
        ("any.example", "/s/a/b", "api", "/a/b"),
        ("any.example", "/s", "api", "/"),
        // A host-specific route wins over a longer prefix for any host; case and port ignored.
        ("admin.example", "/api/v2/x", "admin", "/api/v2/x"),
        ("ADMIN.example:8443", "/api", "admin", "/api"),
    ];
    for (host, path, want_upstream, want_uri) in cases {
        let reply = get_with_host(&gw, host, path).await;
        let echo = reply.echo();
        assert_eq!(echo.upstream(), want_upstream, "{host} {path}");
        assert_eq!(echo.uri(), want_uri, "{host} {path}");
    }
    assert!(root.hits() > 0 && api.hits() > 0 && v2.hits() > 0 && admin.hits() > 0);
}

#[tokio::test]
async fn no_route_is_404_with_json_error_and_request_id() {
    let api = Upstream::echo("api").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.api]
endpoints = ["{}"]
[[routes]]
prefix = "/api"
service = "api"
[[routes]]
prefix = "/"
host = "only.example"
service = "api"
"#,
        api.url()
    ))
    .await;

    for (host, path) in [
        ("x.example", "/other"),
        ("x.example", "/apis"),
        ("x.example", "/"),
        ("only.example.org", "/"),
    ] {
        let reply = get_with_host(&gw, host, path).await;
        assert_eq!(reply.status, 404, "{host} {path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let json = reply.json();
        let id = reply.header("x-request-id").expect("x-request-id on a 404");
        assert!(is_generated_id(id), "{id}");
        assert_eq!(json["request_id"], id);
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(
            reply.header("holdline-path").is_none(),
            "a gateway answer is not a proxied one"
        );
    }

    // The client's own id is the one reported.
    let request = Request::get(gw.url("/nowhere"))
        .header("x-request-id", "client-id-42")
        .body(body::empty())
        .unwrap();
    let reply = send(&client(), request).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-request-id"), Some("client-id-42"));
    assert_eq!(reply.json()["request_id"], "client-id-42");
    assert_eq!(api.hits(), 0, "nothing unrouted reaches a service");
}

#[tokio::test]
async fn an_endpoint_base_path_is_prepended_after_stripping() {
    let upstream = Upstream::echo("based").await;
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[services.based]
endpoints = ["{}/base/"]
[[routes]]
prefix = "/"
service = "based"
[[routes]]
prefix = "/strip"
service = "based"
strip_prefix = true
"#,
        upstream.url()
    ))
    .await;
    for (path, want) in [
        ("/x?q=1", "/base/x?q=1"),
        ("/", "/base/"),
        ("/strip/y", "/base/y"),
        ("/strip", "/base/"),
    ] {
        let reply = get_with_host(&gw, "any.example", path).await;
        assert_eq!(reply.echo().uri(), want, "{path}");
    }
}

/// Result locations are the gateway's own: a method other than `GET`/`HEAD` is `405` with
/// `Allow` whatever the id, and an unknown result is a `404`; both are errors in the gateway's
/// one shape, with the request id.
#[tokio::test]
async fn result_locations_answer_405_and_404_with_a_request_id() {
    let api = Upstream::echo("api").await;
    let gw = TestGateway::start(&support::one_service("", "api", &[api.url()], "")).await;
    let location = format!("/_holdline/results/api/{}", "0".repeat(32));
    let client = client();
    for (method, status) in [("POST", 405), ("DELETE", 405), ("GET", 404)] {
        let request = Request::builder()
            .method(method)
            .uri(gw.url(&location))
            .body(body::empty())
            .unwrap();
        let reply = send(&client, request).await;
        assert_eq!(reply.status, status, "{method}: {}", reply.text());
        let json = reply.json();
        let id = reply.header("x-request-id").expect("x-request-id");
        assert_eq!(json["request_id"], id, "{method}: {json}");
        assert!(json["error"].is_string(), "{method}: {json}");
        if status == 405 {
            assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        }
    }
    assert_eq!(api.hits(), 0);
}

/// Five services, each an echo of its name: `/public` (prefix stripped), `/admin`, `/files`
/// (encoded slashes kept, prefix stripped), `/win` (encoded slashes decoded, prefix stripped) and
/// `/` (`root`); `paths` is the `[paths]` section's keys.
async fn normalizing_gateway(paths: &str) -> (Vec<Upstream>, TestGateway) {
    let names = ["root", "public", "admin", "files", "win"];
    let mut upstreams = Vec::new();
    let mut services = String::new();
    for name in names {
        let upstream = Upstream::echo(name).await;
        services.push_str(&format!(
            "[services.{name}]\nendpoints = [\"{}\"]\n",
            upstream.url()
        ));
        upstreams.push(upstream);
    }
    let gw = TestGateway::start(&format!(
        r#"{LISTEN}
[paths]
{paths}
{services}
[[routes]]
prefix = "/"
service = "root"
[[routes]]
prefix = "/public"
service = "public"
strip_prefix = true
[[routes]]
prefix = "/admin"
service = "admin"
[[routes]]
prefix = "/files"
service = "files"
strip_prefix = true
escaped_slashes = "keep"
[[routes]]
prefix = "/win"
service = "win"
strip_prefix = true
escaped_slashes = "decode"
"#
    ))
    .await;
    (upstreams, gw)
}

/// `GET target` written as it is on a raw socket; the status and, for a `200`, the echo upstream
/// that answered and the request target it received.
async fn raw_get(gw: &TestGateway, target: &str) -> (u16, Option<(String, String)>) {
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: any.example\r\nConnection: close\r\n\r\n");
    let response = support::raw_exchange(gw.addr, request.as_bytes()).await;
    if response.status != 200 {
        return (response.status, None);
    }
    let echo = support::Echo::parse(&response.body);
    let seen = (echo.upstream().to_owned(), echo.uri().to_owned());
    (response.status, Some(seen))
}

/// A route that strips its prefix once forwarded `/public/../admin` as `/../admin`, so a service
/// that resolves dot-segments served its `/admin` through a route meant for `/public`. The route
/// is now chosen by the path in normal form, and that is what the upstream receives.
#[tokio::test]
async fn paths_are_routed_and_forwarded_in_normal_form() {
    let (_upstreams, gw) = normalizing_gateway("").await;
    let routed = |upstream: &str, uri: &str| (200, Some((upstream.to_owned(), uri.to_owned())));
    let cases = [
        ("/public/a", routed("public", "/a")),
        ("/public/../admin", routed("admin", "/admin")),
        ("/public/%2e%2e/admin", routed("admin", "/admin")),
        ("/public/%2E%2e/admin/x", routed("admin", "/admin/x")),
        ("/public/x/.%2E/.%2e/admin", routed("admin", "/admin")),
        ("/public/../x", routed("root", "/x")),
        ("/public/x/./y/../z", routed("public", "/x/z")),
        ("/public/x/..", routed("public", "/")),
        ("/public/%7Euser/%41", routed("public", "/~user/A")),
        // The query is not part of the path: it travels untouched.
        (
            "/public/../admin?q=/../%2e%2e",
            routed("admin", "/admin?q=/../%2e%2e"),
        ),
        // Repeated slashes are merged by default.
        ("//admin", routed("admin", "/admin")),
        ("/public//x", routed("public", "/x")),
        // Encoded slashes and backslashes: refused unless the route says otherwise.
        ("/public/..%2fadmin", (400, None)),
        ("/public/..%2Fadmin", (400, None)),
        ("/public/..%5Cadmin", (400, None)),
        ("/public/..\\admin", (400, None)),
        ("/files/a%2fb", routed("files", "/a%2Fb")),
        (
            "/files/..%2F..%2Fadmin",
            routed("files", "/..%2F..%2Fadmin"),
        ),
        ("/win/a%5cb", routed("win", "/a/b")),
        ("/win/..%2Fadmin", routed("admin", "/admin")),
        ("/win/..\\admin", routed("admin", "/admin")),
        // No one meaning: refused.
        ("/../admin", (400, None)),
        ("/public/../../admin", (400, None)),
        ("/public/%zz", (400, None)),
        ("/public/50%", (400, None)),
    ];
    for (target, want) in cases {
        assert_eq!(raw_get(&gw, target).await, want, "{target}");
    }
    // The gateway's answer says why, in its one error shape.
    let request = Request::get(gw.url("/public/%2e%2e/%2e%2e/admin"))
        .body(body::empty())
        .unwrap();
    let reply = send(&client(), request).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "the path climbs above the root");
}

#[tokio::test]
async fn http2_requests_are_normalized_the_same_way() {
    let (_upstreams, gw) = normalizing_gateway("").await;
    let h2 = support::h2c_client();
    for (path, upstream, uri) in [
        ("/public/%2e%2e/admin?x=1", "admin", "/admin?x=1"),
        ("/public/./a", "public", "/a"),
    ] {
        let request = Request::get(gw.url(path)).body(body::empty()).unwrap();
        let reply = send(&h2, request).await;
        assert_eq!(reply.version, http::Version::HTTP_2);
        let echo = reply.echo();
        assert_eq!((echo.upstream(), echo.uri()), (upstream, uri), "{path}");
    }
}

#[tokio::test]
async fn repeated_slashes_are_kept_when_merging_is_off() {
    let (_upstreams, gw) = normalizing_gateway("merge_slashes = false").await;
    let routed = |upstream: &str, uri: &str| (200, Some((upstream.to_owned(), uri.to_owned())));
    assert_eq!(raw_get(&gw, "//admin").await, routed("root", "//admin"));
    assert_eq!(
        raw_get(&gw, "/admin//x").await,
        routed("admin", "/admin//x")
    );
    // Unmerged, an empty segment is one `..` can remove.
    assert_eq!(
        raw_get(&gw, "/admin//../x").await,
        routed("admin", "/admin/x")
    );
}
