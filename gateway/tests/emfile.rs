//! Running out of file descriptors: the real binary under `ulimit -n 64` is flooded with idle
//! connections until `accept` fails with EMFILE; meanwhile a new client is answered `503` at
//! once (a descriptor kept in reserve makes room to tell it), and once the flood closes, the
//! gateway serves again (the accept loop backed off instead of dying or spinning). Flooded with
//! held calls instead, it lets the longest held go with a `202` to take the new ones.

mod support;

use holdline_testkit::{RedisServer, free_port, wait_for_port};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::Upstream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The gateway process; killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The gateway binary under `ulimit -n 64`, serving `services` (the config's services and
/// routes) on free ports, logging warnings and errors to a file.
struct Limited {
    process: Process,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

// === impl Limited ===

impl Limited {
    async fn start(services: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let config = dir.path().join("gateway.toml");
        let text = format!(
            "workers = 1\n[listen]\nhttp = \"127.0.0.1:{port}\"\n[admin]\n\
             listen = \"127.0.0.1:{admin_port}\"\n[log]\nlevel = \"warn\"\n{services}"
        );
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("gateway.log");
        let child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" --config \"$1\"")
            .arg(env!("CARGO_BIN_EXE_gateway"))
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway");
        let process = Process(child);
        tokio::task::spawn_blocking(move || wait_for_port(port, Duration::from_secs(20)))
            .await
            .unwrap();
        Self {
            process,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.process.0.try_wait().unwrap().is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_survives_running_out_of_file_descriptors() {
    let upstream = Upstream::echo("echo").await;
    let services = format!(
        "[services.echo]\nendpoints = [\"{}\"]\n[[routes]]\nprefix = \"/\"\nservice = \"echo\"\n",
        upstream.url()
    );
    let mut gw = Limited::start(&services).await;
    let port = gw.port;
    let url = format!("http://127.0.0.1:{port}/before");
    assert_eq!(support::get(&url).await.status, 200);

    // Far more idle connections than 64 descriptors allow: the kernel completes them all (the
    // listen backlog is large) but the gateway can accept only some.
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    let exhausted = support::eventually(Duration::from_secs(15), || async {
        gw.log().contains("out of resources")
    })
    .await;
    assert!(
        exhausted,
        "the gateway never ran out of descriptors; log: {}",
        gw.log()
    );
    assert!(gw.running(), "the gateway exited");

    // Out of descriptors, a new client is told to come back rather than left waiting in the
    // backlog. (One accepted before its request arrived is closed unanswered: it may retry.) A
    // few more idle connections before each try take any descriptor that came free (a client
    // that got one is served as usual).
    let url = format!("http://127.0.0.1:{port}/during");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let told = loop {
        for _ in 0..4 {
            idle.push(
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect"),
            );
        }
        let reply = support::try_get(&url).await;
        if reply.is_some_and(|r| r.status == 503 && r.header("retry-after") == Some("1")) {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(told, "no 503 while out of descriptors; log: {}", gw.log());

    drop(idle);
    // The backlog of closed connections drains and a new request is served.
    let url = format!("http://127.0.0.1:{port}/after");
    let served = support::eventually(Duration::from_secs(20), || async {
        support::try_get(&url)
            .await
            .is_some_and(|reply| reply.status == 200)
    })
    .await;
    assert!(served, "not served after the flood");
    assert!(gw.running(), "the gateway exited");
}

/// Out of descriptors the gateway sheds holds, not calls, as at its connection cap: more
/// calls than 64 descriptors allow, each held on a connection of its own, and the longest held
/// make room with a `202` for the ones waiting in the backlog. None is refused; once an
/// instance answers, every call has its own answer or a fetchable result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_longest_held_calls_make_room() {
    const CALLS: usize = 80;
    let redis = RedisServer::start();
    let services = format!(
        "[redis]\nurl = \"{}\"\n[services.flood]\nendpoints = [\"http://{}\"]\n\
         [services.flood.queue]\nenabled = true\nhold = \"60s\"\n\
         [[routes]]\nprefix = \"/\"\nservice = \"flood\"\n",
        redis.url(),
        support::dead_addr()
    );
    let mut gw = Limited::start(&services).await;
    // One call at a time, each held before the next comes: its connection reads its answer,
    // then closes.
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut stream = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        let request = format!("GET /call/{i} HTTP/1.1\r\nHost: h\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        calls.push(tokio::spawn(async move {
            support::client::read_raw_response(&mut stream).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = support::eventually(Duration::from_secs(20), || async {
        gw.log().contains("out of resources") && calls.iter().any(|c| c.is_finished())
    })
    .await;
    assert!(shed, "no held call made room; log: {}", gw.log());

    // Every call was enqueued: an instance answers them all.
    let answered = support::queue::answer_waiting(&redis.url(), "flood").await;
    assert_eq!(answered, CALLS, "calls missing from the queue");
    let mut locations = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        let reply = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("every call answered")
            .unwrap();
        match reply.status {
            200 => assert_eq!(reply.body, format!("answer to /call/{i}").as_bytes()),
            202 => locations.push((i, reply.headers("location")[0].to_owned())),
            other => panic!("call {i} answered {other}"),
        }
    }
    assert!(
        !locations.is_empty() && locations.len() < CALLS,
        "{locations:?}"
    );
    // The longest held made room: the first calls.
    assert_eq!(locations[0].0, 0, "{locations:?}");
    for (i, location) in locations {
        let fetched = support::get(&gw.url(&location)).await;
        assert_eq!(fetched.status, 200, "call {i}: {}", fetched.text());
        assert_eq!(fetched.text(), format!("answer to /call/{i}"));
    }
    assert!(gw.running(), "the gateway exited");
}
