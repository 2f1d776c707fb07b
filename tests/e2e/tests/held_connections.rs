//! A call held in the queue keeps no HTTP buffers for its wait: its plain HTTP/1 connection
//! releases them (`gateway/src/server/h1.rs`). These tests speak raw HTTP/1.1 on one socket and
//! check that the connection still behaves as HTTP/1.1 must while and after that happens.

mod support;

use bytes::Bytes;
use holdline_testkit::{RedisServer, free_port};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::time::Duration;
use support::{Client, Echo, EchoOpts, Gw, Reply, config, metric};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// Reads one response; a response to `HEAD` has no body whatever its `content-length` says.
async fn read_response(reader: &mut BufReader<OwnedReadHalf>, head: bool) -> Reply {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let code: u16 = status_line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"))
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    let mut body = vec![0; if head { 0 } else { length }];
    reader.read_exact(&mut body).await.unwrap();
    Reply {
        status: StatusCode::from_u16(code).unwrap(),
        headers,
        body: Bytes::from(body),
    }
}

/// Whether the gauge of parked calls reaches `value` within three seconds.
async fn parked_reaches(client: &Client, gw: &Gw, value: f64) -> bool {
    for _ in 0..300 {
        if metric(client, gw.admin, "holdline_parked_calls").await == value {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// One connection: a held call answered and the connection kept; two pipelined held calls
/// (one a `HEAD`) answered in order; `Connection: close` honoured. The gauge of parked calls
/// shows each call really left hyper while it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_call_was_held_keeps_http1_semantics() {
    let redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "hold = \"30s\"")).await;
    let _worker = Echo::start(EchoOpts {
        redis: &redis.url(),
        concurrency: 4,
        // Long enough for the parked gauge to be seen while a call waits, on a busy machine.
        work_ms: 1500,
        http: false,
        instance: "w",
    })
    .await;
    let client = Client::new();
    let (read, mut write) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let mut read = BufReader::new(read);

    // A held call: the only endpoint refuses connections, so it goes to the queue.
    write
        .write_all(
            b"POST /echo/a HTTP/1.1\r\nhost: t\r\nx-request-id: ho-1\r\ncontent-length: 5\r\n\r\nhello",
        )
        .await
        .unwrap();
    assert!(
        parked_reaches(&client, &gw, 1.0).await,
        "the held call never left hyper"
    );
    let first = read_response(&mut read, false).await;
    first.check_echo("ho-1", "hello").unwrap();
    assert_eq!(first.path(), "queue");
    assert!(first.headers.contains_key("date"));
    assert!(parked_reaches(&client, &gw, 0.0).await);

    // Two pipelined requests on the same connection: the second was read by hyper along with
    // the first and must be replayed, in order, once the first is answered.
    write
        .write_all(
            b"GET /echo/b HTTP/1.1\r\nhost: t\r\nx-request-id: ho-2\r\n\r\n\
              HEAD /echo/c HTTP/1.1\r\nhost: t\r\nx-request-id: ho-3\r\n\r\n",
        )
        .await
        .unwrap();
    let second = read_response(&mut read, false).await;
    second.check_echo("ho-2", "").unwrap();
    assert_eq!(second.path(), "queue");
    let third = read_response(&mut read, true).await;
    assert_eq!(third.status, StatusCode::OK, "{third:?}");
    assert_eq!(third.path(), "queue");
    assert_eq!(third.headers["x-request-id"], "ho-3");
    assert_ne!(
        third.headers["content-length"], "0",
        "HEAD keeps the length"
    );

    // `Connection: close`: answered, marked, and the connection closed.
    write
        .write_all(
            b"PUT /echo/d HTTP/1.1\r\nhost: t\r\nx-request-id: ho-4\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi",
        )
        .await
        .unwrap();
    let fourth = read_response(&mut read, false).await;
    fourth.check_echo("ho-4", "hi").unwrap();
    assert_eq!(fourth.headers["connection"], "close");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "connection not closed: {closed:?}"
    );
    gw.stop().await;
}

/// A client that goes away while its call is held frees the call at once, as hyper would: the
/// gauge drops back without waiting for the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_during_the_hold_is_noticed() {
    let redis = RedisServer::start();
    let dead = free_port();
    let gw = Gw::start(config(&redis.url(), &[dead], "", "hold = \"30s\"")).await;
    // No worker: the call would wait the whole hold.
    let client = Client::new();
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"GET /echo/gone HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(
        parked_reaches(&client, &gw, 1.0).await,
        "the held call never left hyper"
    );
    drop(conn);
    assert!(
        parked_reaches(&client, &gw, 0.0).await,
        "the call outlived its client"
    );
    gw.stop().await;
}
