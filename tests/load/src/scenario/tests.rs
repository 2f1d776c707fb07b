use super::*;
use crate::generator::Model;

const MINIMAL: &str = r#"
[[instances]]
name = "echo-1"

[[phases]]
name = "steady"
rate = 100
duration = "2s"
"#;

fn parse(extra: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_toml(&format!("{extra}\n{MINIMAL}"), "minimal")
}

#[test]
fn minimal_scenario_takes_defaults() {
    let s = parse("").unwrap();
    assert_eq!(s.name, "minimal");
    assert_eq!(s.targets, vec![TargetKind::Gateway]);
    assert_eq!(s.instances[0].capacity, 32);
    assert!(s.instances[0].http && s.instances[0].start);
    assert_eq!(s.duration(), Duration::from_secs(2));
    match s.plan().model {
        Model::Open(schedule) => assert_eq!(schedule.total(), 200),
        Model::Closed(_) => panic!("open is the default"),
    }
}

#[test]
fn phases_actions_and_thresholds_parse() {
    let text = r#"
name = "kill"
targets = ["gateway", "nginx"]
[thresholds]
lost = 0
p99 = "5s"
min_share = { queue = 0.1 }
[[instances]]
name = "a"
capacity = 8
work_ms = 20
[[instances]]
name = "b"
start = false
[[phases]]
name = "ramp"
from = 0
to = 100
duration = "4s"
[[phases]]
name = "hold"
rate = 100
duration = "4s"
thresholds = { lost = 0, p99 = "2s" }
[[actions]]
at = "5s"
do = "kill"
process = "a"
[[actions]]
at = "6s"
do = "signal"
process = "target"
signal = "HUP"
"#;
    let s = Scenario::from_toml(text, "x").unwrap();
    assert_eq!(s.name, "kill");
    assert_eq!(s.thresholds.p99, Some(Duration::from_secs(5)));
    assert_eq!(s.thresholds.min_share["queue"], 0.1);
    assert_eq!(s.phases[1].thresholds.lost, Some(0));
    assert_eq!(
        s.phase_starts(),
        vec![Duration::ZERO, Duration::from_secs(4)]
    );
    assert_eq!(s.actions[1].to_string(), "signal target HUP");
    match s.plan().model {
        Model::Open(schedule) => assert_eq!(schedule.total(), 200 + 400),
        Model::Closed(_) => panic!("open model expected"),
    }
}

#[test]
fn closed_model_uses_connections() {
    let text = r#"
model = "closed"
[[instances]]
name = "a"
[[phases]]
name = "c"
connections = 10
duration = "1s"
"#;
    let s = Scenario::from_toml(text, "c").unwrap();
    match s.plan().model {
        Model::Closed(p) => assert_eq!(p[0].connections, 10),
        Model::Open(_) => panic!("closed model expected"),
    }
    let bad = text.replace("connections = 10", "rate = 10");
    assert!(Scenario::from_toml(&bad, "c").is_err());
}

#[test]
fn invalid_scenarios_name_the_field() {
    let cases = [
        ("path = \"nope\"", "path"),
        ("max_requests = 0", "max_requests"),
        ("unknown_key = 1", "unknown field"),
        ("[thresholds]\nerror_rate = 2.0", "thresholds"),
        (
            "[[actions]]\nat = \"1s\"\ndo = \"kill\"\nprocess = \"nobody\"",
            "actions[0]",
        ),
        (
            "[[actions]]\nat = \"9s\"\ndo = \"kill\"\nprocess = \"echo-1\"",
            "actions[0]",
        ),
        (
            "[[actions]]\nat = \"1s\"\ndo = \"signal\"\nprocess = \"target\"",
            "actions[0]",
        ),
        (
            "[[actions]]\nat = \"1s\"\ndo = \"reload\"\nprocess = \"echo-1\"",
            "actions[0]",
        ),
    ];
    for (extra, field) in cases {
        // Tables must come after top-level keys, so table snippets go at the end.
        let text = if extra.starts_with('[') {
            format!("{MINIMAL}\n{extra}")
        } else {
            format!("{extra}\n{MINIMAL}")
        };
        let err = Scenario::from_toml(&text, "bad").unwrap_err().to_string();
        assert!(err.contains(field), "{extra:?} gave {err:?}");
    }
    let queue_only = format!("redis = false\n{MINIMAL}\n[[instances]]\nname = \"q\"\nhttp = false");
    let err = Scenario::from_toml(&queue_only, "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("instances[1]"), "{err}");
    let no_phases = "[[instances]]\nname = \"a\"";
    assert!(
        Scenario::from_toml(no_phases, "x")
            .unwrap_err()
            .to_string()
            .contains("phases")
    );
    let twice = format!("{MINIMAL}\n[[phases]]\nname = \"steady\"\nrate = 1\nduration = \"1s\"");
    assert!(
        Scenario::from_toml(&twice, "x")
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
}
