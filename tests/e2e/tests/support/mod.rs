//! Shared harness of the end-to-end tests: an in-process gateway, `example-echo` processes, an
//! HTTP client and the checks that a response belongs to its request.

#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use holdline_gateway::{Config, Gateway, Listeners, Shared};
use holdline_testkit::{Process, free_port, wait_for_port, workspace_bin};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client as HyperClient, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A gateway running in this process.
pub struct Gw {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gw {
    pub async fn start(config: Config) -> Self {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (http.local_addr().unwrap(), admin.local_addr().unwrap());
        let listeners = Listeners {
            http: Some(http),
            https: None,
            admin: Some(admin),
        };
        let gateway = Gateway::new(listeners, config);
        let shared = gateway.shared();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            admin: admin_addr,
            shared,
            stop: Some(tx),
            task,
        }
    }

    /// Stops the gateway gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The gateway configuration the tests use: one service `echo` at `endpoints`, routed at
/// `/echo` with the prefix stripped, queue enabled. `service` and `queue` add TOML lines to the
/// service's and its queue's tables. Unless `queue` sets its own, `no_consumer_timeout` is long:
/// a test may start its gateway long before its first instance (the first `Echo::start` of a
/// test binary builds the binary), and these tests are not about a queue nobody reads.
pub fn config(redis: &str, endpoints: &[u16], service: &str, queue: &str) -> Config {
    let patience = if queue.contains("no_consumer_timeout") {
        ""
    } else {
        "no_consumer_timeout = \"10m\""
    };
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    let text = format!(
        r#"
[listen]
http = "127.0.0.1:1"
[redis]
url = "{redis}"
[services.echo]
endpoints = [{endpoints}]
{service}
[services.echo.queue]
enabled = true
{patience}
{queue}
[[routes]]
prefix = "/echo"
service = "echo"
strip_prefix = true
"#,
        endpoints = endpoints.join(", "),
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Options for an `example-echo` instance.
pub struct EchoOpts<'a> {
    pub redis: &'a str,
    pub concurrency: usize,
    pub work_ms: u64,
    /// Serve HTTP too (else a queue-only worker).
    pub http: bool,
    pub instance: &'a str,
}

/// A running `example-echo` process.
pub struct Echo {
    pub process: Process,
    pub port: u16,
    pub admin: u16,
}

impl Echo {
    /// Starts an instance of service `echo` and waits until it is ready (its admin `/readyz`
    /// answers 200).
    pub async fn start(opts: EchoOpts<'_>) -> Self {
        Self::start_as(opts, "echo").await
    }

    /// Starts an instance that calls itself `service` (`--service`).
    pub async fn start_as(opts: EchoOpts<'_>, service: &str) -> Self {
        let bin = workspace_bin("example-echo", "example-echo");
        let (port, admin) = (free_port(), free_port());
        let mut command = Command::new(bin);
        command
            .args([
                "--redis",
                opts.redis,
                "--service",
                service,
                "--instance",
                opts.instance,
            ])
            .args(["--concurrency", &opts.concurrency.to_string()])
            .args(["--work-ms", &opts.work_ms.to_string()])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if opts.http {
            command.args(["--listen", &format!("127.0.0.1:{port}")]);
        } else {
            command.arg("--no-http");
        }
        let process = Process::spawn("example-echo", &mut command);
        wait_for_port(admin, Duration::from_secs(30));
        let echo = Self {
            process,
            port,
            admin,
        };
        echo.wait_ready().await;
        echo
    }

    async fn wait_ready(&self) {
        let client = Client::new();
        for _ in 0..200 {
            if let Ok(reply) = client
                .get(&format!("http://127.0.0.1:{}/readyz", self.admin))
                .await
                && reply.status == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("example-echo never became ready");
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The `holdline-path` header.
    pub fn path(&self) -> &str {
        self.headers
            .get("holdline-path")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Checks that this is example-echo's answer to exactly this request: its body and its
    /// request id came back. Returns the instance that answered.
    pub fn check_echo(&self, request_id: &str, body: &str) -> Result<String, String> {
        if self.status != StatusCode::OK {
            return Err(format!("status {} body {:?}", self.status, self.body));
        }
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("not json ({e}): {:?}", self.body))?;
        if json["body"] != body {
            return Err(format!("echoed body {} != sent {body}", json["body"]));
        }
        if json["headers"]["x-request-id"] != request_id {
            return Err(format!(
                "echoed id {} != sent {request_id}",
                json["headers"]["x-request-id"]
            ));
        }
        if self
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            != Some(request_id)
        {
            return Err(format!(
                "response x-request-id {:?} != {request_id}",
                self.headers.get("x-request-id")
            ));
        }
        Ok(json["instance"].as_str().unwrap_or_default().to_owned())
    }
}

/// A plain HTTP/1.1 client with no limit on connections.
#[derive(Clone)]
pub struct Client(HyperClient<HttpConnector, Full<Bytes>>);

impl Client {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self(HyperClient::builder(TokioExecutor::new()).build(connector))
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, String> {
        let response = tokio::time::timeout(Duration::from_secs(60), self.0.request(request))
            .await
            .map_err(|_| "client timeout".to_owned())?
            .map_err(|e| format!("client error: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body error: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&self, url: &str) -> Result<Reply, String> {
        self.send(Request::get(url).body(Full::default()).unwrap())
            .await
    }

    /// POSTs `body` with `x-request-id: id` and any extra headers.
    pub async fn post(
        &self,
        url: &str,
        id: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut builder = Request::post(url).header("x-request-id", id);
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        self.send(
            builder
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
    }

    /// Follows a `202 Accepted` to its location until the result is there (bounded).
    pub async fn follow(&self, base: &str, accepted: &Reply) -> Result<Reply, String> {
        let location = accepted
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("202 without location")?;
        for _ in 0..600 {
            let reply = self.get(&format!("{base}{location}")).await?;
            if reply.status != StatusCode::ACCEPTED {
                return Ok(reply);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("result never arrived".into())
    }
}

/// Fetches a metric's value from a Prometheus text page (the sum over matching lines).
pub async fn metric(client: &Client, admin: SocketAddr, prefix: &str) -> f64 {
    let page = client
        .get(&format!("http://{admin}/metrics"))
        .await
        .unwrap();
    String::from_utf8_lossy(&page.body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends `count` POSTs at `rate` per second (open model: each on its own schedule), each with its
/// own id and body, and returns every reply in order.
pub async fn open_load(
    client: &Client,
    url: &str,
    rate: u32,
    count: usize,
    tag: &str,
    extra: &'static [(&'static str, &'static str)],
) -> Vec<(String, String, Result<Reply, String>)> {
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        interval.tick().await;
        let (client, url) = (client.clone(), url.to_owned());
        let id = format!("{tag}-{i}");
        let body = format!("payload {tag} {i} {}", "x".repeat(i % 64));
        tasks.push(tokio::spawn(async move {
            let reply = client.post(&url, &id, &body, extra).await;
            (id, body, reply)
        }));
    }
    let mut out = Vec::with_capacity(count);
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}
