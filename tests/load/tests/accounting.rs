//! The accounting is exact: a fake upstream that drops, duplicates, delays, corrupts and
//! otherwise mistreats a known set of requests is reported request by request.

mod support;

use holdline_load::client::{Exchange, Target};
use holdline_load::generator::{self, Model, Plan};
use holdline_load::identity::{RunIds, VerifyMode};
use holdline_load::interrupt::Interrupt;
use holdline_load::ledger::LedgerFile;
use holdline_load::pool::Pool;
use holdline_load::schedule::{RatePhase, Schedule};
use holdline_load::stats::{Collector, Results, Shared};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{BODY_BYTES, Fate};

/// Fates in a cycle of 30: ten scripted classes of ten requests each; the rest echo.
fn fate(seq: u64) -> Fate {
    match seq % 30 {
        1 => Fate::Drop,
        2 => Fate::Duplicate,
        3 => Fate::Corrupt,
        4 => Fate::Delay(Duration::from_millis(200)),
        5 => Fate::Delay(Duration::from_secs(5)),
        6 => Fate::Malformed,
        7 => Fate::Accepted,
        8 => Fate::AcceptedGone,
        9 => Fate::Status(503),
        10 => Fate::Status(500),
        n if n % 2 == 0 => Fate::Echo("sync"),
        _ => Fate::Echo("queue"),
    }
}

/// What the report must say about a request with this fate, as a ledger label.
fn expected_label(f: Fate, request_timeout: Duration) -> &'static str {
    match f {
        Fate::Echo(_) | Fate::Accepted => "ok",
        Fate::Delay(d) if d < request_timeout => "ok",
        Fate::Delay(_) => "timed_out",
        Fate::Drop => "lost_connection",
        Fate::Duplicate => "mismatched_other_request",
        Fate::Corrupt => "mismatched_corrupt",
        Fate::Malformed => "mismatched_malformed",
        Fate::AcceptedGone => "lost_result_gone",
        Fate::Status(503) => "error_503",
        Fate::Status(500) => "error_500",
        Fate::Status(_) => unreachable!("only 500 and 503 are scripted"),
        Fate::Hang => "lost_drain",
    }
}

struct Run {
    results: Results,
    ledger: Vec<Row>,
    ended: generator::Ended,
}

#[derive(Debug)]
struct Row {
    seq: u64,
    due_ms: f64,
    sent_ms: f64,
    outcome: String,
    path: String,
}

fn target(addr: SocketAddr) -> Target {
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

async fn run(
    ids: RunIds,
    base: Target,
    phases: Vec<RatePhase>,
    timeout: Duration,
    drain: Duration,
    dir: &Path,
) -> Run {
    let n = phases.len();
    let plan = Plan {
        model: Model::Open(Schedule::new(phases)),
        max_requests: 100_000,
        request_timeout: timeout,
        drain,
    };
    let stats = Shared::new(Collector::new(
        n,
        Duration::from_millis(250),
        Duration::from_millis(5),
    ));
    let path = dir.join("ledger.csv");
    let ledger = LedgerFile::create(&path).unwrap();
    let exchange = Exchange::new(Pool::new(), base, ids);
    let ended = generator::run(
        &plan,
        exchange,
        stats.clone(),
        Some(ledger.ledger()),
        Instant::now(),
        &Interrupt::new(),
    )
    .await;
    ledger.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Row {
                seq: f[0].parse().unwrap(),
                due_ms: f[2].parse().unwrap(),
                sent_ms: f[3].parse().unwrap(),
                outcome: f[6].to_owned(),
                path: f[7].to_owned(),
            }
        })
        .collect();
    Run {
        results: stats.finish(),
        ledger: rows,
        ended,
    }
}

fn steady(rate: f64, secs: f64) -> RatePhase {
    RatePhase {
        duration: Duration::from_secs_f64(secs),
        from: rate,
        to: rate,
    }
}

#[tokio::test]
async fn every_mistreated_request_is_reported_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ids = RunIds::new("acct");
    let addr = support::start(ids.clone(), fate).await;
    let timeout = Duration::from_secs(1);
    let r = run(
        ids,
        target(addr),
        vec![steady(300.0, 1.0)],
        timeout,
        Duration::from_secs(20),
        dir.path(),
    )
    .await;

    // Request by request: every seq appears once in the ledger with the outcome its fate implies.
    assert_eq!(r.ledger.len(), 300);
    let mut seen = vec![false; 300];
    for row in &r.ledger {
        assert!(!seen[row.seq as usize], "seq {} reported twice", row.seq);
        seen[row.seq as usize] = true;
        let want = expected_label(fate(row.seq), timeout);
        assert_eq!(row.outcome, want, "seq {} ({:?})", row.seq, fate(row.seq));
        assert!(
            row.sent_ms >= row.due_ms,
            "seq {} sent before it was due",
            row.seq
        );
        let want_path = match fate(row.seq) {
            Fate::Echo(p) => p,
            Fate::Accepted => "async",
            Fate::Delay(d) if d < timeout => "queue",
            _ => continue,
        };
        assert_eq!(row.path, want_path, "seq {}", row.seq);
    }

    // And in total: each scripted fault class holds exactly 10 of the 300 requests.
    let c = &r.results.total.counts;
    assert_eq!(c.issued, 300);
    assert_eq!(c.completed(), 300);
    // Ten scripted classes, of which a short delay and a followed 202 still end ok.
    assert_eq!(c.ok, 300 - 10 * 8);
    assert_eq!(c.errors, BTreeMap::from([(500, 10), (503, 10)]));
    assert_eq!(
        c.mismatched,
        BTreeMap::from([("corrupt", 10), ("malformed", 10), ("other_request", 10)])
    );
    assert_eq!(c.timed_out, 10);
    assert_eq!(
        c.lost,
        BTreeMap::from([("connection", 10), ("result_gone", 10)])
    );
    assert_eq!(c.send_failed, 0);
    assert_eq!(
        c.path(holdline_load::outcome::ServedPath::Async),
        10,
        "followed 202s count as async"
    );
    assert_eq!(
        r.results.total.latency.count(),
        c.ok,
        "every ok answer has a latency"
    );
    assert_eq!(r.results.not_sent, 0);
    assert!(r.ended.drained_in_time);
}

#[tokio::test]
async fn requests_unanswered_at_the_end_of_the_drain_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ids = RunIds::new("drain");
    let hang_odd = |seq: u64| {
        if seq % 2 == 1 {
            Fate::Hang
        } else {
            Fate::Echo("sync")
        }
    };
    let addr = support::start(ids.clone(), hang_odd).await;
    let r = run(
        ids,
        target(addr),
        vec![steady(100.0, 0.5)],
        Duration::from_secs(60),
        Duration::from_millis(300),
        dir.path(),
    )
    .await;
    let c = &r.results.total.counts;
    assert_eq!((c.issued, c.ok), (50, 25));
    assert_eq!(c.lost, BTreeMap::from([("drain", 25)]));
    assert!(!r.ended.drained_in_time);
    assert!(
        r.results.answered_during_drain >= 25,
        "the drain's losses are reported as it ends"
    );
    for row in &r.ledger {
        let want = if row.seq % 2 == 1 { "lost_drain" } else { "ok" };
        assert_eq!(row.outcome, want, "seq {}", row.seq);
    }
}

#[tokio::test]
async fn refused_connections_are_send_failures_not_losses() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(
        RunIds::new("refused"),
        target(port),
        vec![steady(100.0, 0.2)],
        Duration::from_secs(5),
        Duration::from_secs(5),
        dir.path(),
    )
    .await;
    let c = &r.results.total.counts;
    assert_eq!((c.issued, c.send_failed, c.lost_total()), (20, 20, 0));
}

#[tokio::test]
async fn request_cap_leaves_the_rest_unsent_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ids = RunIds::new("cap");
    let addr = support::start(ids.clone(), |_| Fate::Echo("sync")).await;
    let plan = Plan {
        model: Model::Open(Schedule::new(vec![steady(200.0, 0.5)])),
        max_requests: 40,
        request_timeout: Duration::from_secs(5),
        drain: Duration::from_secs(5),
    };
    let stats = Shared::new(Collector::new(
        1,
        Duration::from_secs(1),
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
    assert_eq!(
        (r.total.counts.issued, r.total.counts.ok, r.not_sent),
        (40, 40, 60)
    );
    drop(dir);
}
