//! The arrival schedule keeps its rate: the generator sends exactly the planned requests, each
//! at or after its due time on the planned grid, in the phase it belongs to; and the closed
//! model never has more requests in flight than connections.

mod support;

use holdline_load::client::{Exchange, Target};
use holdline_load::generator::{self, ClosedPhase, Model, Plan};
use holdline_load::identity::{RunIds, VerifyMode};
use holdline_load::ledger::LedgerFile;
use holdline_load::pool::Pool;
use holdline_load::schedule::{RatePhase, Schedule};
use holdline_load::stats::{Collector, Shared};
use std::time::{Duration, Instant};
use support::{BODY_BYTES, Fate};

fn target(addr: std::net::SocketAddr) -> Target {
    Target {
        base: format!("http://{addr}").parse().unwrap(),
        path: "/echo".into(),
        method: http::Method::POST,
        verify: VerifyMode::Echo,
        body_bytes: BODY_BYTES,
        poll_max: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn open_model_sends_every_planned_request_on_its_grid() {
    let ids = RunIds::new("rate");
    let addr = support::start(ids.clone(), |_| Fate::Echo("sync")).await;
    let phases = vec![
        RatePhase {
            duration: Duration::from_secs(1),
            from: 200.0,
            to: 200.0,
        },
        RatePhase {
            duration: Duration::from_secs(1),
            from: 400.0,
            to: 400.0,
        },
    ];
    let plan = Plan {
        model: Model::Open(Schedule::new(phases)),
        max_requests: 10_000,
        request_timeout: Duration::from_secs(10),
        drain: Duration::from_secs(10),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.csv");
    let ledger = LedgerFile::create(&path).unwrap();
    let stats = Shared::new(Collector::new(
        2,
        Duration::from_millis(100),
        Duration::from_millis(5),
    ));
    let start = Instant::now();
    let exchange = Exchange::new(Pool::new(), target(addr), ids);
    let ended = generator::run(&plan, exchange, stats.clone(), Some(ledger.ledger()), start).await;
    ledger.close().unwrap();
    let r = stats.finish();

    assert_eq!(r.phases[0].counts.issued, 200);
    assert_eq!(r.phases[1].counts.issued, 400);
    assert_eq!(r.total.counts.ok, 600);
    // The last request is due at 2 s - 2.5 ms; sending cannot have finished before it.
    assert!(ended.sending_stopped - start >= Duration::from_micros(1_997_500));

    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows: Vec<(u64, usize, f64, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len(), 600);
    for (i, (seq, phase, due_ms, sent_ms)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        // 5 ms apart in the first second, 2.5 ms apart in the second.
        let (want_phase, want_due) = if i < 200 {
            (0, i as f64 * 5.0)
        } else {
            (1, 1000.0 + (i - 200) as f64 * 2.5)
        };
        assert_eq!(*phase, want_phase, "seq {seq}");
        assert!(
            (due_ms - want_due).abs() < 0.002,
            "seq {seq} due at {due_ms} ms, want {want_due}"
        );
        assert!(
            sent_ms >= due_ms,
            "seq {seq} sent at {sent_ms} ms before its due time {due_ms}"
        );
    }
    println!(
        "send lag: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {} late",
        r.lag.p50, r.lag.p99, r.lag.max, r.late
    );
}

#[tokio::test]
async fn closed_model_keeps_one_request_per_connection() {
    let ids = RunIds::new("closed");
    let addr = support::start(ids.clone(), |_| Fate::Delay(Duration::from_millis(5))).await;
    let plan = Plan {
        model: Model::Closed(vec![
            ClosedPhase {
                duration: Duration::from_millis(300),
                connections: 4,
            },
            ClosedPhase {
                duration: Duration::from_millis(300),
                connections: 8,
            },
        ]),
        max_requests: 10_000,
        request_timeout: Duration::from_secs(10),
        drain: Duration::from_secs(10),
    };
    let stats = Shared::new(Collector::new(
        2,
        Duration::from_millis(100),
        Duration::from_millis(5),
    ));
    let exchange = Exchange::new(Pool::new(), target(addr), ids);
    generator::run(&plan, exchange, stats.clone(), None, Instant::now()).await;
    let r = stats.finish();
    let c = &r.total.counts;
    assert!(r.phases[0].counts.issued >= 4 && r.phases[1].counts.issued >= 8);
    assert_eq!(c.ok, c.issued);
    // Connections of the first phase may still finish their last request as the second
    // starts, so at most 4 + 8 are in flight at once, never more.
    assert!(r.peak_in_flight <= 12, "peak {}", r.peak_in_flight);
}
