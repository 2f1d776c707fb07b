//! Every rule of `Config::validate` and of the schema: each invalid config is rejected with the
//! TOML path of the offending key, and the boundary values just inside each rule are accepted.

use holdline_gateway::Config;
use holdline_gateway::config::{ConfigError, EscapedSlashes};

const LISTEN: &str = "[listen]\nhttp = \"127.0.0.1:8080\"\n";
const ROUTE: &str = "[[routes]]\nprefix = \"/\"\nservice = \"echo\"\n";
const REDIS: &str = "[redis]\nurl = \"redis://127.0.0.1:6390\"\n";

/// A config with `root` keys, the listener, a service `echo` with `keys`, any `sections` after
/// it, and a route to it.
fn service(keys: &str, sections: &str) -> String {
    format!(
        "{LISTEN}[services.echo]\nendpoints = [\"http://127.0.0.1:18080\"]\n{keys}\n{sections}\n{ROUTE}"
    )
}

/// A service with its queue enabled and `keys` in the queue section; Redis configured.
fn queue(keys: &str) -> String {
    format!(
        "{REDIS}{}",
        service(
            "",
            &format!("[services.echo.queue]\nenabled = true\n{keys}")
        )
    )
}

/// The field named by a validation error; panics if the config is accepted or fails to parse.
fn invalid_field(toml: &str) -> String {
    match Config::from_toml(toml) {
        Err(ConfigError::Invalid { field, reason }) => {
            assert!(!reason.is_empty());
            assert!(
                !reason.ends_with('.'),
                "error messages end without a period: {reason}"
            );
            field
        }
        Err(other) => panic!("expected a validation error, got {other}\n{toml}"),
        Ok(_) => panic!("accepted:\n{toml}"),
    }
}

fn parse_error(toml: &str) -> String {
    match Config::from_toml(toml) {
        Err(ConfigError::Parse(message)) => message,
        Err(other) => panic!("expected a parse error, got {other}\n{toml}"),
        Ok(_) => panic!("accepted:\n{toml}"),
    }
}

fn accepted(toml: &str) -> Config {
    Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let config = accepted(&service("", ""));
    let defaults = Config::default();
    assert_eq!(config.limits, defaults.limits);
    assert_eq!(config.admin, defaults.admin);
    assert_eq!(config.shutdown_grace, defaults.shutdown_grace);
    let echo = &config.services["echo"];
    assert_eq!(echo.max_inflight_per_endpoint, 256);
    assert!(!echo.queue.enabled);
    assert!(echo.health_check.is_none());
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.paths, defaults.paths);
    assert!(config.paths.merge_slashes);
    assert_eq!(config.routes[0].escaped_slashes, EscapedSlashes::Reject);
}

#[test]
fn root_listen_tls_and_limits_rules() {
    let cases = [
        (format!("workers = 0\n{}", service("", "")), "workers"),
        (
            format!("[listen]\n[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n{ROUTE}"),
            "listen",
        ),
        (
            format!(
                "[listen]\nhttps = \"127.0.0.1:8443\"\n[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n{ROUTE}"
            ),
            "listen.https",
        ),
        (
            format!(
                "{}[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
                service("", "")
            ),
            "tls.cert",
        ),
        (
            format!("{}[limits]\nmax_body_bytes = 0\n", service("", "")),
            "limits.max_body_bytes",
        ),
        (
            format!("{}[limits]\nmax_header_bytes = 8191\n", service("", "")),
            "limits.max_header_bytes",
        ),
        (
            format!("{}[limits]\nmax_connections = 0\n", service("", "")),
            "limits.max_connections",
        ),
        (
            format!(
                "{}[limits]\nheader_read_timeout = \"0s\"\n",
                service("", "")
            ),
            "limits.header_read_timeout",
        ),
        (
            format!(
                "{}[limits]\nhttp2_max_control_frames = 9\n",
                service("", "")
            ),
            "limits.http2_max_control_frames",
        ),
    ];
    for (toml, field) in cases {
        assert_eq!(invalid_field(&toml), field, "{toml}");
    }
    for shed_at in ["0", "-0.5", "1.5", "nan"] {
        let toml = format!("{}[limits]\nshed_at = {shed_at}\n", service("", ""));
        assert_eq!(invalid_field(&toml), "limits.shed_at", "{toml}");
    }
    accepted(&format!("workers = 1\n{}", service("", "")));
    accepted(&format!(
        "{}[limits]\nmax_header_bytes = 8192\nmax_body_bytes = 1\nmax_connections = 1\n\
         http2_max_control_frames = 10\n",
        service("", "")
    ));
    // The share from which room is made: anything above 0 up to the cap itself, integer or not.
    for shed_at in ["1", "0.5", "0.001"] {
        accepted(&format!(
            "{}[limits]\nshed_at = {shed_at}\n",
            service("", "")
        ));
    }
}

/// Any instance may take a queued call, so the endpoints of a queue-enabled service share one
/// base path (the queued call carries it); without the queue they may differ.
#[test]
fn queue_enabled_endpoints_share_one_base_path() {
    let two =
        "[services.echo]\nendpoints = [\"http://127.0.0.1:1/api\", \"http://127.0.0.1:2/v2\"]\n";
    let queued = format!(
        "{LISTEN}[redis]\nurl = \"redis://127.0.0.1:6379\"\n{two}[services.echo.queue]\nenabled = true\n{ROUTE}"
    );
    assert_eq!(invalid_field(&queued), "services.echo.endpoints[1]");
    accepted(&format!("{LISTEN}{two}{ROUTE}"));
    let same = queued.replace("/v2", "/api");
    accepted(&same);
}

#[test]
fn tls_files_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not checked here").unwrap();
    let toml = |key: &std::path::Path| {
        format!(
            "[listen]\nhttps = \"127.0.0.1:8443\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n{ROUTE}",
            cert.display(),
            key.display()
        )
    };
    assert_eq!(
        invalid_field(&toml(&dir.path().join("missing.pem"))),
        "tls.key"
    );
    // A directory is not a readable file either.
    assert_eq!(invalid_field(&toml(dir.path())), "tls.key");
    accepted(&toml(&cert));
}

#[test]
fn redis_rules() {
    let with_redis = |redis: &str| format!("{redis}{}", service("", ""));
    let cases = [
        ("[redis]\nurl = \"http://127.0.0.1:6379\"\n", "redis.url"),
        ("[redis]\nurl = \"127.0.0.1:6379\"\n", "redis.url"),
        (
            "[redis]\nurl = \"redis://127.0.0.1:6379\"\ngateway_id = \"has space\"\n",
            "redis.gateway_id",
        ),
        (
            "[redis]\nurl = \"redis://127.0.0.1:6379\"\ngateway_id = \"\"\n",
            "redis.gateway_id",
        ),
    ];
    for (redis, field) in cases {
        assert_eq!(invalid_field(&with_redis(redis)), field, "{redis}");
    }
    let long_id = format!(
        "[redis]\nurl = \"redis://127.0.0.1:6379\"\ngateway_id = \"{}\"\n",
        "g".repeat(65)
    );
    assert_eq!(invalid_field(&with_redis(&long_id)), "redis.gateway_id");
    accepted(&with_redis(&format!(
        "[redis]\nurl = \"redis://cache.example:6380/2\"\ngateway_id = \"{}\"\n",
        "g".repeat(64)
    )));
    accepted(&with_redis(
        "[redis]\nurl = \"redis://127.0.0.1:6379\"\ngateway_id = \"gw-0.pod_a\"\n",
    ));
}

#[test]
fn service_name_and_endpoint_rules() {
    let named = |name: &str| {
        format!(
            "{LISTEN}[services.\"{name}\"]\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nprefix = \"/\"\nservice = \"{name}\"\n"
        )
    };
    assert_eq!(invalid_field(&named("has space")), "services.has space");
    assert_eq!(invalid_field(&named("a{b}")), "services.a{b}");
    assert_eq!(
        invalid_field(&named(&"s".repeat(65))),
        format!("services.{}", "s".repeat(65))
    );
    accepted(&named(&"s".repeat(64)));
    accepted(&named("Svc_1.v-2"));

    let endpoints = |list: &str| format!("{LISTEN}[services.echo]\nendpoints = [{list}]\n{ROUTE}");
    assert_eq!(invalid_field(&endpoints("")), "services.echo.endpoints");
    for bad in [
        "https://127.0.0.1:1",
        "127.0.0.1:1",
        "http://",
        "http://a:99999",
        "http://a:port",
        "http://user@a:1",
        "http://a:1/x?y=1",
    ] {
        // Endpoints are parsed with the file, so the parser's message points at the line and
        // names the URL.
        let list = format!("\"http://127.0.0.1:1\", \"{bad}\"");
        let message = parse_error(&endpoints(&list));
        assert!(
            message.contains("endpoints = [") && message.contains(&format!("{bad:?}")),
            "{bad}: {message}"
        );
    }
    accepted(&endpoints(
        "\"http://127.0.0.1:1\", \"http://echo.svc:8080/base/\", \"http://[::1]\", \"http://localhost\"",
    ));
    // No endpoints is fine when the queue serves the service.
    accepted(&format!(
        "{REDIS}{LISTEN}[services.echo]\nendpoints = []\n[services.echo.queue]\nenabled = true\n{ROUTE}"
    ));
}

#[test]
fn service_limit_and_timeout_rules() {
    let cases = [
        ("max_inflight_per_endpoint = 0", "max_inflight_per_endpoint"),
        ("connect_timeout = \"0s\"", "connect_timeout"),
        ("first_byte_timeout = \"0s\"", "first_byte_timeout"),
        ("request_timeout = \"0s\"", "request_timeout"),
        ("resolve_interval = \"0s\"", "resolve_interval"),
    ];
    for (keys, field) in cases {
        assert_eq!(
            invalid_field(&service(keys, "")),
            format!("services.echo.{field}"),
            "{keys}"
        );
    }
    accepted(&service(
        "max_inflight_per_endpoint = 1\naccept_timeout = \"0s\"\npool_max_idle_per_endpoint = 0\nconnect_timeout = \"1ms\"",
        "",
    ));
}

#[test]
fn outlier_and_health_check_rules() {
    let outlier = |keys: &str| service("", &format!("[services.echo.outlier]\n{keys}"));
    assert_eq!(
        invalid_field(&outlier("consecutive_failures = 0")),
        "services.echo.outlier.consecutive_failures"
    );
    assert_eq!(
        invalid_field(&outlier("base_ejection = \"10s\"\nmax_ejection = \"5s\"")),
        "services.echo.outlier.max_ejection"
    );
    for (keys, field) in [
        ("failure_statuses = [502, 200]", "failure_statuses"),
        ("failure_statuses = [600]", "failure_statuses"),
        ("max_ejection_percent = 101", "max_ejection_percent"),
        ("panic_threshold_percent = 101", "panic_threshold_percent"),
    ] {
        assert_eq!(
            invalid_field(&outlier(keys)),
            format!("services.echo.outlier.{field}"),
            "{keys}"
        );
    }
    accepted(&outlier(
        "failure_statuses = [500, 502, 429]\nmax_ejection_percent = 100\npanic_threshold_percent = 0",
    ));
    accepted(&outlier(
        "consecutive_failures = 1\nbase_ejection = \"5s\"\nmax_ejection = \"5s\"",
    ));

    let health = |keys: &str| service("", &format!("[services.echo.health_check]\n{keys}"));
    let cases = [
        ("path = \"healthz\"", "health_check.path"),
        ("interval = \"0s\"", "health_check.interval"),
        ("timeout = \"0s\"", "health_check.timeout"),
        ("unhealthy_after = 0", "health_check"),
        ("healthy_after = 0", "health_check"),
    ];
    for (keys, field) in cases {
        assert_eq!(
            invalid_field(&health(keys)),
            format!("services.echo.{field}"),
            "{keys}"
        );
    }
    let config = accepted(&health(""));
    let check = config.services["echo"].health_check.clone().unwrap();
    assert_eq!(check.path, "/healthz");
    assert!(check.unhealthy_after >= 1 && check.healthy_after >= 1);
}

#[test]
fn queue_rules() {
    assert_eq!(
        invalid_field(&service("", "[services.echo.queue]\nenabled = true\n")),
        "services.echo.queue.enabled",
        "the queue needs [redis]"
    );
    let cases = [
        ("hold = \"0s\"", "hold"),
        ("result_ttl = \"0s\"", "result_ttl"),
        ("probe_share = 0.0", "probe_share"),
        ("probe_share = 1.5", "probe_share"),
        ("probe_share = -0.1", "probe_share"),
        ("latency_factor = 1.0", "latency_factor"),
        ("latency_factor = nan", "latency_factor"),
        ("max_depth = 0", "max_depth"),
        ("max_body_bytes = 0", "max_body_bytes"),
        ("max_body_bytes = 536870913", "max_body_bytes"),
        (
            "max_body_bytes = 2048\nmax_queue_bytes = 1024",
            "max_queue_bytes",
        ),
        ("no_consumer_timeout = \"4999ms\"", "no_consumer_timeout"),
        ("respond_async_rate = 1000001", "respond_async_rate"),
        ("respond_async_burst = 0", "respond_async_burst"),
    ];
    for (keys, field) in cases {
        assert_eq!(
            invalid_field(&queue(keys)),
            format!("services.echo.queue.{field}"),
            "{keys}"
        );
    }
    accepted(&queue(
        "probe_share = 1.0\nlatency_factor = 1.01\nmax_depth = 1\nmax_body_bytes = 536870912\nmax_queue_bytes = 536870912\nno_consumer_timeout = \"5s\"",
    ));
    // No limit on respond-async calls: the burst is not looked at.
    accepted(&queue("respond_async_rate = 0\nrespond_async_burst = 0"));
    // A disabled queue is not checked at all.
    accepted(&service(
        "",
        "[services.echo.queue]\nenabled = false\nmax_depth = 0\n",
    ));
}

#[test]
fn route_rules() {
    let two_routes = |second: &str| {
        format!(
            "{LISTEN}[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n\
             [[routes]]\nprefix = \"/api\"\nhost = \"A.example\"\nservice = \"echo\"\n\
             [[routes]]\n{second}\n"
        )
    };
    let cases = [
        ("prefix = \"api\"\nservice = \"echo\"", "routes[1].prefix"),
        (
            "prefix = \"/x\"\nservice = \"missing\"",
            "routes[1].service",
        ),
        // Same host (any case) and prefix (trailing slash ignored): a duplicate.
        (
            "prefix = \"/api/\"\nhost = \"a.EXAMPLE\"\nservice = \"echo\"",
            "routes[1].prefix",
        ),
    ];
    for (second, field) in cases {
        assert_eq!(invalid_field(&two_routes(second)), field, "{second}");
    }
    // The same prefix for another host, or for any host, is a different route.
    accepted(&two_routes("prefix = \"/api\"\nservice = \"echo\""));
    accepted(&two_routes(
        "prefix = \"/api\"\nhost = \"b.example\"\nservice = \"echo\"",
    ));
}

#[test]
fn schema_errors_name_the_key() {
    let cases = [
        (format!("bogus = 1\n{}", service("", "")), "bogus"),
        (
            format!(
                "[listen]\nhttp = \"127.0.0.1:1\"\nhtp = \"x\"\n{}",
                service("", "").replace(LISTEN, "")
            ),
            "htp",
        ),
        (service("max_inflight = 3", ""), "max_inflight"),
        (
            service("", "[services.echo.outlier]\nfailures = 1\n"),
            "failures",
        ),
        (
            service("", "[services.echo.queue]\nenable = true\n"),
            "enable",
        ),
        (
            format!("{}[limits]\nmax_body = 1\n", service("", "")),
            "max_body",
        ),
        (
            format!(
                "{LISTEN}[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nprefix = \"/\"\nservice = \"echo\"\nstrip = true\n"
            ),
            "strip",
        ),
        (
            service("max_inflight_per_endpoint = \"ten\"", ""),
            "max_inflight_per_endpoint",
        ),
        (service("connect_timeout = \"soon\"", ""), "connect_timeout"),
        (service("protocol = \"h3\"", ""), "protocol"),
        (
            format!("{}escaped_slashes = \"maybe\"\n", service("", "")),
            "escaped_slashes",
        ),
        (
            format!("[paths]\nmerge_slashes = \"yes\"\n{}", service("", "")),
            "merge_slashes",
        ),
        (
            format!("[paths]\nmerge = true\n{}", service("", "")),
            "merge",
        ),
        (
            format!(
                "[listen]\nhttp = \"not an address\"\n{}",
                service("", "").replace(LISTEN, "")
            ),
            "http",
        ),
        (
            format!("[admin]\nlisten = \"nowhere\"\n{}", service("", "")),
            "listen",
        ),
    ];
    for (toml, key) in cases {
        let message = parse_error(&toml);
        assert!(message.contains(key), "{key} not named in: {message}");
    }
}

#[test]
fn the_admin_listener_can_be_turned_off_or_moved() {
    let off = accepted(&format!("[admin]\nlisten = \"off\"\n{}", service("", "")));
    assert_eq!(off.admin.listen, None);
    let moved = accepted(&format!(
        "[admin]\nlisten = \"127.0.0.1:9191\"\n{}",
        service("", "")
    ));
    assert_eq!(moved.admin.listen, Some("127.0.0.1:9191".parse().unwrap()));
    let message = parse_error(&format!("[admin]\nlisten = \"of\"\n{}", service("", "")));
    assert!(message.contains("\"off\""), "{message}");
}

/// Values the schema takes but the gateway could not run with (a count that overflows a
/// semaphore, a duration that overflows a deadline, a route host no request can carry) are
/// refused, naming the field.
#[test]
fn out_of_range_values_are_refused() {
    let limits = |keys: &str| service("", &format!("[limits]\n{keys}"));
    for (toml, field) in [
        (
            limits("max_connections = 9223372036854775807"),
            "limits.max_connections",
        ),
        (
            limits("header_read_timeout = \"182500000000d\""),
            "limits.header_read_timeout",
        ),
        (
            limits("max_header_bytes = 1000000000"),
            "limits.max_header_bytes",
        ),
        (
            limits("http2_max_control_frames = 1000001"),
            "limits.http2_max_control_frames",
        ),
        (
            service("first_byte_timeout = \"400d\"", ""),
            "services.echo.first_byte_timeout",
        ),
        (
            service("max_inflight_per_endpoint = 100000000", ""),
            "services.echo.max_inflight_per_endpoint",
        ),
        (format!("workers = 100000\n{}", service("", "")), "workers"),
        (
            service("", "[services.echo.queue]\nresult_ttl = \"365000d\""),
            "services.echo.queue.result_ttl",
        ),
    ] {
        assert_eq!(invalid_field(&toml), field, "{toml}");
    }
    accepted(&limits(
        "max_connections = 16777216\nheader_read_timeout = \"365d\"\n\
         http2_max_control_frames = 1000000",
    ));

    let route = |keys: &str| {
        format!(
            "{LISTEN}[services.echo]\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nservice = \"echo\"\n{keys}\n"
        )
    };
    for (keys, field) in [
        ("prefix = \"/\"\nhost = \"a\\u0000b\"", "routes[0].host"),
        (
            "prefix = \"/\"\nhost = \"a.example:8080\"",
            "routes[0].host",
        ),
        ("prefix = \"/\"\nhost = \"\"", "routes[0].host"),
        ("prefix = \"/a b\"", "routes[0].prefix"),
        ("prefix = \"/a\\u0000\"", "routes[0].prefix"),
        ("prefix = \"/a?b\"", "routes[0].prefix"),
        // Requests are matched in normal form: a prefix in any other could never match.
        ("prefix = \"/a/../b\"", "routes[0].prefix"),
        ("prefix = \"/a/.\"", "routes[0].prefix"),
        ("prefix = \"/%7Ea\"", "routes[0].prefix"),
        ("prefix = \"/a%2fb\"", "routes[0].prefix"),
        ("prefix = \"/a%2Fb\"", "routes[0].prefix"),
        ("prefix = \"/a\\\\b\"", "routes[0].prefix"),
        ("prefix = \"/a%zz\"", "routes[0].prefix"),
        ("prefix = \"/..\"", "routes[0].prefix"),
        ("prefix = \"/a//b\"", "routes[0].prefix"),
    ] {
        assert_eq!(invalid_field(&route(keys)), field, "{keys}");
    }
    // Unmerged, repeated slashes are the normal form; escapes in upper case always are.
    accepted(&format!(
        "[paths]\nmerge_slashes = false\n{}",
        route("prefix = \"/a//b\"")
    ));
    accepted(&route("prefix = \"/caf%C3%A9/.well-known\""));
    for policy in ["reject", "keep", "decode"] {
        accepted(&route(&format!(
            "prefix = \"/\"\nescaped_slashes = \"{policy}\""
        )));
    }
    accepted(&route("prefix = \"/api\"\nhost = \"API.example.com\""));
    accepted(&route("prefix = \"/\"\nhost = \"[::1]\""));
    accepted(&route("prefix = \"/\"\nhost = \"10.0.0.1\""));
}

/// Durations take a number and a short unit only: a spelled-out unit (which humantime would
/// read) is refused with the short form, and the message names the field by its TOML path.
#[test]
fn spelled_out_durations_are_refused_naming_the_field() {
    for (value, short) in [("30 seconds", "30s"), ("2 minutes", "2m"), ("1 hour", "1h")] {
        let message = parse_error(&queue(&format!("hold = \"{value}\"")));
        assert!(
            message.starts_with("services.echo.queue.hold: "),
            "{message}"
        );
        assert!(message.contains(&format!("write \"{short}\"")), "{message}");
    }
    let message = parse_error(&format!(
        "shutdown_grace = \"1 month\"\n{}",
        service("", "")
    ));
    assert!(message.starts_with("shutdown_grace: "), "{message}");
    let config = accepted(&queue("hold = \"1m 30s\"\nresult_ttl = \"1h30m\""));
    let queue = &config.services["echo"].queue;
    assert_eq!(
        (queue.hold.as_secs(), queue.result_ttl.as_secs()),
        (90, 5400)
    );
}
