//! The shipped scenario files parse, validate, and keep the promises the README makes about them.

use holdline_load::generator::Model;
use holdline_load::scenario::{Scenario, TargetKind};
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
            "gateway-reload",
            "instance-kill",
            "redis-restart",
            "scale-up",
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
