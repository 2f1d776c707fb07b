//! Running out of file descriptors: the real binary under `ulimit -n 64` is flooded with idle
//! connections until `accept` fails with EMFILE; meanwhile a new client is answered `503` at
//! once (a descriptor kept in reserve makes room to tell it), and once the flood closes, the
//! gateway serves again (the accept loop backed off instead of dying or spinning).

mod support;

use holdline_testkit::{free_port, wait_for_port};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::Upstream;

/// The gateway process; killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_survives_running_out_of_file_descriptors() {
    let upstream = Upstream::echo("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"workers = 1
[listen]
http = "127.0.0.1:{port}"
[admin]
listen = "127.0.0.1:{admin_port}"
[log]
level = "warn"
[services.echo]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "echo"
"#,
            upstream.url()
        ),
    )
    .unwrap();
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
    let mut process = Process(child);
    tokio::task::spawn_blocking(move || wait_for_port(port, Duration::from_secs(20)))
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/before");
    assert_eq!(support::get(&url).await.status, 200);

    // Far more idle connections than 64 descriptors allow: the kernel completes them all (the
    // listen backlog is large) but the gateway can accept only some.
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    let exhausted = support::eventually(Duration::from_secs(15), || async {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("out of resources"))
    })
    .await;
    assert!(
        exhausted,
        "the gateway never ran out of descriptors; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        process.0.try_wait().unwrap().is_none(),
        "the gateway exited"
    );

    // Out of descriptors, a new client is told to come back rather than left waiting in the
    // backlog. (One accepted before its request arrived is closed unanswered: it may retry.)
    let url = format!("http://127.0.0.1:{port}/during");
    let told = support::eventually(Duration::from_secs(20), || async {
        support::try_get(&url)
            .await
            .is_some_and(|reply| reply.status == 503 && reply.header("retry-after") == Some("1"))
    })
    .await;
    assert!(told, "no 503 while out of descriptors");

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
    assert!(
        process.0.try_wait().unwrap().is_none(),
        "the gateway exited"
    );
}
