//! The arrival schedule keeps its rate: the generator sends exactly the planned requests, each
//! at or after its due time on the planned grid, in the phase it belongs to; and the closed
//! model never has more requests in flight than connections.

mod support;

use holdline_load::client::{Exchange, Target};
use holdline_load::generator::{self, ClosedPhase, Model, Plan};
use holdline_load::identity::{RunIds, VerifyMode};
use holdline_load::interrupt::Interrupt;
use holdline_load::ledger::LedgerFile;
use holdline_load::pool::Pool;
use holdline_load::schedule::{RatePhase, Schedule};
use holdline_load::stats::{Collector, Results, Shared};
use std::time::{Duration, Instant};
use support::{BODY_BYTES, Fate};

fn target(addr: std::net::SocketAddr) -> Target {
    Target {
        base: format!("http://{addr}").parse().unwrap(),
        path: "/echo".into(),
        method: http::Method::POST,
        verify: VerifyMode::Echo,
        body_bytes: BODY_BYTES,
        idempotency_key: false,
        poll_max: Duration::from_millis(50),
        clients: Default::default(),
    }
}

/// One row of the ledger the generator streams: which request, in which phase, when it was due
/// and when it went out (milliseconds since the start).
struct Row {
    seq: u64,
    phase: usize,
    due_ms: f64,
    sent_ms: f64,
}

/// Runs an open-model plan against an echoing upstream with a ledger; returns the report, how
/// long after the start sending stopped, and the ledger's rows in sequence order.
async fn run_open(name: &str, phases: Vec<RatePhase>) -> (Results, Duration, Vec<Row>) {
    let ids = RunIds::new(name);
    let addr = support::start(ids.clone(), |_| Fate::Echo("sync")).await;
    let phase_count = phases.len();
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
        phase_count,
        Duration::from_millis(100),
        Duration::from_millis(5),
    ));
    let start = Instant::now();
    let exchange = Exchange::new(Pool::new(), target(addr), ids);
    let ended = generator::run(
        &plan,
        exchange,
        stats.clone(),
        Some(ledger.ledger()),
        start,
        &Interrupt::new(),
    )
    .await;
    ledger.close().unwrap();
    let mut rows: Vec<Row> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Row {
                seq: f[0].parse().unwrap(),
                phase: f[1].parse().unwrap(),
                due_ms: f[2].parse().unwrap(),
                sent_ms: f[3].parse().unwrap(),
            }
        })
        .collect();
    rows.sort_by_key(|r| r.seq);
    (stats.finish(), ended.sending_stopped - start, rows)
}

#[tokio::test]
async fn open_model_sends_every_planned_request_on_its_grid() {
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
    let (r, sending, rows) = run_open("rate", phases).await;

    assert_eq!(r.phases[0].counts.issued, 200);
    assert_eq!(r.phases[1].counts.issued, 400);
    assert_eq!(r.total.counts.ok, 600);
    // The last request is due at 2 s - 2.5 ms; sending cannot have finished before it.
    assert!(sending >= Duration::from_micros(1_997_500));
    assert_eq!(rows.len(), 600);
    for (i, row) in rows.iter().enumerate() {
        let Row {
            seq,
            phase,
            due_ms,
            sent_ms,
        } = row;
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
async fn sends_due_in_one_timer_tick_go_out_together_and_never_early() {
    // 5000/s is a request every 0.2 ms: the millisecond timer wakes the send loop once for
    // several requests, which must all go out (none before its due time, none twice), in
    // order, and keep up with the schedule rather than drift behind it.
    let phases = vec![RatePhase {
        duration: Duration::from_millis(600),
        from: 5000.0,
        to: 5000.0,
    }];
    let (r, sending, rows) = run_open("batch", phases).await;
    assert_eq!((r.total.counts.issued, r.total.counts.ok), (3000, 3000));
    assert!(sending >= Duration::from_micros(599_800));
    assert_eq!(rows.len(), 3000);
    let mut last_sent = 0.0;
    let mut shared_a_tick = 0;
    for (i, row) in rows.iter().enumerate() {
        let Row {
            seq,
            due_ms,
            sent_ms,
            ..
        } = row;
        assert_eq!(*seq, i as u64, "every request exactly once");
        assert!(
            (due_ms - i as f64 * 0.2).abs() < 0.002,
            "seq {seq} due {due_ms}"
        );
        assert!(
            sent_ms >= due_ms,
            "seq {seq} sent {sent_ms} before due {due_ms}"
        );
        assert!(*sent_ms >= last_sent, "sends go out in schedule order");
        if i > 0 && sent_ms - last_sent < 0.1 {
            shared_a_tick += 1;
        }
        last_sent = *sent_ms;
    }
    assert!(shared_a_tick > 0, "no two sends shared a wake-up");
    // Keeping up: half the sends within a few timer ticks of their due time, even on a busy
    // machine (the lag is measured, so a slow send is visible, not hidden).
    assert!(r.lag.p50 < 20.0, "send lag p50 {} ms", r.lag.p50);
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
    generator::run(
        &plan,
        exchange,
        stats.clone(),
        None,
        Instant::now(),
        &Interrupt::new(),
    )
    .await;
    let r = stats.finish();
    let c = &r.total.counts;
    assert!(r.phases[0].counts.issued >= 4 && r.phases[1].counts.issued >= 8);
    assert_eq!(c.ok, c.issued);
    // Connections of the first phase may still finish their last request as the second
    // starts, so at most 4 + 8 are in flight at once, never more.
    assert!(r.peak_in_flight <= 12, "peak {}", r.peak_in_flight);
}
