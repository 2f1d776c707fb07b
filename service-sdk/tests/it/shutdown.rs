//! Graceful shutdown: in-flight work on both paths finishes, is published and acknowledged, and
//! nothing new is taken meanwhile.

use crate::support::*;
use bytes::Bytes;
use holdline_protocol::keys;
use holdline_testkit::RedisServer;
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn shutdown_finishes_in_flight_work_on_both_paths_and_acknowledges_it() {
    logs();
    let redis_server = RedisServer::start();
    let gate = Arc::new(Semaphore::new(0));
    let (handler, mut started_rx) = gated(&gate);
    let config = config(4, "drain", Some(queue_config(&redis_server.url())));
    let mut running = start(handler, config, HTTP_ADMIN).await;
    let (http, admin) = (running.http.unwrap(), running.admin.unwrap());

    let mut conn = redis(&redis_server.url()).await;
    let reply_stream = keys::reply_stream("g1");
    enqueue(
        &mut conn,
        &queued("q1", "drain", Some(&reply_stream), "queued"),
    )
    .await;
    let direct = tokio::spawn(post(http, "/", "direct"));
    let mut paths = vec![
        started_rx.recv().await.unwrap(),
        started_rx.recv().await.unwrap(),
    ];
    paths.sort_unstable();
    assert_eq!(paths, ["http", "queue"]);

    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        clients.contains("cmd=xreadgroup"),
        "the reader is connected: {clients}"
    );

    running.signal_shutdown();
    eventually("readiness turns off while draining", WAIT, || async move {
        get(admin, "/readyz").await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // Once the reader is gone (its connection closes when it stops), work queued during the
    // drain is left for other instances.
    eventually("the reader stops", WAIT, || {
        let mut conn = conn.clone();
        async move {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut conn)
                .await
                .unwrap();
            !clients.contains("cmd=xreadgroup")
        }
    })
    .await;
    enqueue(
        &mut conn,
        &queued("q2", "drain", Some(&reply_stream), "late"),
    )
    .await;
    assert!(
        !running.task.is_finished(),
        "the runner waits for in-flight work"
    );

    gate.add_permits(2);
    let direct = direct.await.unwrap();
    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(direct.body, "direct");
    tokio::time::timeout(WAIT, &mut running.task)
        .await
        .expect("the runner stops once the work is done")
        .unwrap()
        .unwrap();

    let mut blocking = blocking_redis(&redis_server.url()).await;
    let (_, reply) = next_reply(&mut blocking, &reply_stream, "0", WAIT)
        .await
        .expect("the queued reply");
    assert_eq!(reply.id, "q1");
    assert_eq!(reply.response.body, "queued");
    assert_eq!(
        pending(&mut conn, "drain").await,
        0,
        "everything taken was acknowledged"
    );
    assert_eq!(
        xlen(&mut conn, &keys::request_stream("drain")).await,
        1,
        "only q2 is left"
    );
    assert!(
        started_rx.try_recv().is_err(),
        "nothing new started during the drain"
    );
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period_leaving_work_for_others() {
    logs();
    let redis_server = RedisServer::start();
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let stuck = move |_req: Request<Bytes>| {
        let started = started.clone();
        async move {
            let _ = started.send(());
            std::future::pending::<()>().await;
            Response::new(Bytes::new())
        }
    };
    let mut config = config(2, "stuck", Some(queue_config(&redis_server.url())));
    config.shutdown_grace = Duration::from_millis(500);
    let running = start(stuck, config, NONE).await;

    let mut conn = redis(&redis_server.url()).await;
    enqueue(&mut conn, &queued("z1", "stuck", None, "x")).await;
    started_rx.recv().await.unwrap();
    running.shutdown().await;
    // Unacknowledged, so another instance reclaims it once it has gone idle.
    assert_eq!(pending(&mut conn, "stuck").await, 1);
}
