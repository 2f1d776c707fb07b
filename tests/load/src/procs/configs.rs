//! Configuration files for the systems under test, written for the ports of one run.
//!
//! The nginx and haproxy configs follow the reference peers in `tests/load/peers/` (one
//! worker, keep-alive upstreams; haproxy queues past each server's `maxconn`), with the ports,
//! upstream servers and `maxconn` of the scenario's instances. haproxy waits 60 s for a slow
//! client or server, as nginx does by default: scenarios with slow clients compare the
//! gateway with the peers' usual settings, not with the shorter ones of the benchmark peer.

use crate::scenario::GatewaySpec;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// Where the gateway listens and what it proxies to.
#[derive(Debug, Clone)]
pub struct GatewayPorts<'a> {
    /// Client listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Redis URL, if the scenario runs Redis.
    pub redis_url: Option<&'a str>,
    /// Ports of the running HTTP instances.
    pub endpoints: &'a [u16],
    /// Service name.
    pub service: &'a str,
}

/// One upstream server of nginx or haproxy.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Requests it works on at once (haproxy's `maxconn` for it).
    pub capacity: usize,
}

/// The generated gateway config template; `GatewaySpec::config` replaces it.
const GATEWAY_TEMPLATE: &str = r#"# Written by holdline-load for one run.
workers = {{workers}}

[listen]
http = "{{listen}}"

[admin]
listen = "{{admin}}"
{{limits_table}}{{redis_table}}
[services.{{service}}]
endpoints = [{{endpoints}}]
max_inflight_per_endpoint = {{max_inflight}}

[services.{{service}}.queue]
enabled = {{queue}}
hold = "{{hold}}"

[[routes]]
prefix = "{{prefix}}"
service = "{{service}}"
strip_prefix = {{strip_prefix}}
"#;

/// Renders the gateway config for `ports` from the scenario's template or the generated one.
pub fn gateway_config(spec: &GatewaySpec, ports: &GatewayPorts<'_>) -> String {
    let endpoints = ports
        .endpoints
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let redis_table = match ports.redis_url {
        Some(url) => format!("\n[redis]\nurl = \"{url}\"\n"),
        None => String::new(),
    };
    let limits_table = match spec.max_connections {
        Some(n) => format!("\n[limits]\nmax_connections = {n}\n"),
        None => String::new(),
    };
    let template = spec.config.as_deref().unwrap_or(GATEWAY_TEMPLATE);
    let hold = humantime_serde::re::humantime::format_duration(spec.hold).to_string();
    let values = [
        ("workers", spec.workers.to_string()),
        ("listen", ports.listen.to_string()),
        ("admin", ports.admin.to_string()),
        ("limits_table", limits_table),
        ("redis_table", redis_table),
        ("redis_url", ports.redis_url.unwrap_or_default().to_owned()),
        ("service", ports.service.to_owned()),
        ("endpoints", endpoints),
        ("max_inflight", spec.max_inflight_per_endpoint.to_string()),
        ("queue", spec.queue.to_string()),
        ("hold", hold),
        ("prefix", spec.prefix.clone()),
        ("strip_prefix", spec.strip_prefix.to_string()),
    ];
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), &value);
    }
    out
}

/// nginx as in the reference peer: one worker, keep-alive upstream, temp files and pid in `dir`.
pub fn nginx_config(port: u16, servers: &[Server], dir: &Path) -> String {
    let dir = dir.display();
    let mut upstream = String::new();
    for s in servers {
        let _ = writeln!(upstream, "    server 127.0.0.1:{};", s.port);
    }
    format!(
        "# Written by holdline-load for one run, after tests/load/peers/nginx.conf.
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 10240; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream svc {{
{upstream}    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://svc;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_read_timeout 60s;
    }}
  }}
}}
"
    )
}

/// haproxy as in the reference peer: one thread, each server's `maxconn` at its capacity so
/// requests past it wait in haproxy's queue for up to `timeout queue`.
pub fn haproxy_config(port: u16, servers: &[Server]) -> String {
    let mut backend = String::new();
    for (i, s) in servers.iter().enumerate() {
        let _ = writeln!(
            backend,
            "  server s{} 127.0.0.1:{} maxconn {}",
            i + 1,
            s.port,
            s.capacity
        );
    }
    format!(
        "# Written by holdline-load for one run, after tests/load/peers/haproxy.cfg.
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout queue 10s
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
{backend}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn gateway_config_carries_the_ports_and_settings() {
        let spec = GatewaySpec {
            hold: Duration::from_secs(10),
            ..GatewaySpec::default()
        };
        let ports = GatewayPorts {
            listen: "127.0.0.1:1000".parse().unwrap(),
            admin: "127.0.0.1:1001".parse().unwrap(),
            redis_url: Some("redis://127.0.0.1:1002"),
            endpoints: &[2000, 2001],
            service: "echo",
        };
        let text = gateway_config(&spec, &ports);
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["workers"].as_integer(), Some(1));
        assert_eq!(doc["listen"]["http"].as_str(), Some("127.0.0.1:1000"));
        assert_eq!(doc["redis"]["url"].as_str(), Some("redis://127.0.0.1:1002"));
        let svc = &doc["services"]["echo"];
        assert_eq!(svc["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(svc["queue"]["hold"].as_str(), Some("10s"));
        assert_eq!(doc["routes"][0]["prefix"].as_str(), Some("/echo"));
        assert!(!doc.contains_key("limits"), "the gateway's own default");
        let capped = GatewaySpec {
            max_connections: Some(200),
            ..GatewaySpec::default()
        };
        let doc: toml::Table = gateway_config(&capped, &ports).parse().unwrap();
        assert_eq!(doc["limits"]["max_connections"].as_integer(), Some(200));

        let custom = GatewaySpec {
            config: Some("listen = \"{{listen}}\" # {{endpoints}}".into()),
            ..GatewaySpec::default()
        };
        let text = gateway_config(&custom, &ports);
        assert_eq!(
            text,
            "listen = \"127.0.0.1:1000\" # \"http://127.0.0.1:2000\", \"http://127.0.0.1:2001\""
        );
    }

    #[test]
    fn proxy_configs_list_every_server() {
        let servers = [
            Server {
                port: 3000,
                capacity: 8,
            },
            Server {
                port: 3001,
                capacity: 16,
            },
        ];
        let nginx = nginx_config(4000, &servers, Path::new("/tmp/x"));
        assert!(nginx.contains("server 127.0.0.1:3001;"));
        assert!(nginx.contains("listen 127.0.0.1:4000;"));
        assert!(nginx.contains("pid /tmp/x/nginx.pid;"));
        let haproxy = haproxy_config(4001, &servers);
        assert!(haproxy.contains("server s2 127.0.0.1:3001 maxconn 16"));
        assert!(haproxy.contains("bind 127.0.0.1:4001"));
    }
}
