//! The shipped scenario files parse, validate, and keep the promises the README makes about them.

use holdline_load::generator::Model;
use holdline_load::scenario::{ActionKind, ConnectionMode, Scenario, TargetKind};
use std::path::PathBuf;
use std::time::Duration;

fn shipped() -> Vec<(String, Scenario)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut all: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let s = Scenario::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (s.name.clone(), s)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn every_shipped_scenario_is_valid_and_promises_no_loss() {
    let all = shipped();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "connection-pressure",
            "gateway-reload",
            "instance-kill",
            "redis-restart",
            "scale-up",
            "slow-clients",
            "smoke",
            "spike",
            "steady"
        ]
    );
    for (name, s) in &all {
        assert_eq!(
            s.thresholds.lost,
            Some(0),
            "{name} must promise that nothing is lost"
        );
        assert_eq!(s.thresholds.mismatched, Some(0), "{name}");
        assert!(s.targets.contains(&TargetKind::Gateway), "{name}");
        assert!(!s.description.is_empty(), "{name}");
        let Model::Open(schedule) = s.plan().model else {
            panic!("{name} should use the open model");
        };
        assert!(
            schedule.total() <= s.max_requests,
            "{name}: the cap would cut the schedule"
        );
    }
}

#[test]
fn smoke_is_ten_seconds_and_spike_is_three_times_capacity() {
    let all = shipped();
    let get = |n: &str| &all.iter().find(|(name, _)| name == n).unwrap().1;
    assert_eq!(get("smoke").duration(), Duration::from_secs(10));
    let spike = get("spike");
    let capacity: f64 = spike
        .instances
        .iter()
        .map(|i| i.capacity as f64 * 1000.0 / i.work_ms as f64)
        .sum();
    let peak = spike
        .phases
        .iter()
        .filter_map(|p| p.rate)
        .fold(0.0, f64::max);
    assert_eq!(peak, 3.0 * capacity);
}

/// Calls per second the instances started with the run can work through.
fn capacity(s: &Scenario) -> f64 {
    s.instances
        .iter()
        .filter(|i| i.start)
        .map(|i| i.capacity as f64 * 1000.0 / i.work_ms as f64)
        .sum()
}

#[test]
fn slow_clients_and_connection_pressure_are_what_they_say() {
    let all = shipped();
    let get = |n: &str| &all.iter().find(|(name, _)| name == n).unwrap().1;

    let slow = get("slow-clients");
    assert_eq!(capacity(slow), 1600.0, "two instances of 16 slots x 20 ms");
    assert_eq!(slow.phases[0].rate, Some(1.5 * capacity(slow)));
    assert_eq!(slow.duration(), Duration::from_secs(12));
    assert_eq!(slow.clients.connection, ConnectionMode::PerCall);
    let heads = slow.clients.head_delay.as_ref().unwrap();
    assert_eq!(heads.min, Duration::from_secs(5));
    assert_eq!(heads.max, Some(Duration::from_secs(15)));
    let at = |kind: ActionKind| slow.actions.iter().find(|a| a.kind == kind).unwrap().at;
    assert_eq!(at(ActionKind::Kill), Duration::from_secs(4));
    assert_eq!(at(ActionKind::Start), Duration::from_secs(8));

    let pressure = get("connection-pressure");
    let Model::Open(schedule) = pressure.plan().model else {
        unreachable!("checked above");
    };
    let cap = pressure.gateway.max_connections.unwrap() as u64;
    // More calls than connections arrive before the instance could have answered the first
    // `cap` of them.
    assert!(schedule.total() > 2 * cap);
    assert!(capacity(pressure) * pressure.duration().as_secs_f64() < cap as f64);
    assert_eq!(pressure.clients.connection, ConnectionMode::PerCall);

    for s in [slow, pressure] {
        assert!(s.targets.contains(&TargetKind::Nginx) && s.targets.contains(&TargetKind::Haproxy));
    }
}
