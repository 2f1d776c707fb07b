//! The binary end to end: a scenario starts its own processes (upstream instances and a private
//! Redis), kills and restarts them on schedule, and the thresholds decide the exit code.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_holdline-load");

/// `holdline-load run` of `scenario` (written into `dir`), reporting into `dir/out`.
fn command(dir: &Path, scenario: &str) -> Command {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let mut command = Command::new(BIN);
    command
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("out"))
        .args(["--progress", "off"]);
    command
}

fn run(dir: &Path, scenario: &str, extra: &[&str]) -> (i32, String) {
    let out = command(dir, scenario).args(extra).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code().unwrap_or(-1),
        format!("{stdout}\n{stderr}"),
    )
}

fn report(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("out").join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

const FAULTS: &str = r#"
name = "faults"
targets = ["direct"]
path = "/x"
request_timeout = "5s"
drain = "5s"
bucket = "250ms"
redis = true

[[instances]]
name = "up-1"
kind = "upstream"
capacity = 64
work_ms = 1

[[phases]]
name = "before"
rate = 100
duration = "1s"

[[phases]]
name = "down"
rate = 100
duration = "1.5s"

[[phases]]
name = "after"
rate = 100
duration = "1s"
thresholds = { lost = 0, send_failed = 0, errors = 0, mismatched = 0, min_ok_rate = 1.0 }

[[actions]]
at = "1200ms"
do = "kill"
process = "up-1"

[[actions]]
at = "1500ms"
do = "restart"
process = "redis"

[[actions]]
at = "1800ms"
do = "start"
process = "up-1"

[thresholds]
mismatched = 0
send_failed = 0
"#;

#[test]
fn a_killed_instance_shows_in_the_report_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, output) = run(dir.path(), FAULTS, &[]);
    assert_eq!(code, 1, "the overall send_failed limit fails: {output}");
    assert!(output.contains("FAIL  run"), "{output}");
    let r = report(dir.path(), "faults-direct");

    let acc = &r["accounting"];
    assert_eq!(acc["balanced"], true);
    assert_eq!(acc["issued"], 350);
    assert_eq!(acc["completed"], 350);
    let actions = r["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3);
    assert!(actions.iter().all(|a| a["ok"] == true), "{actions:?}");

    let phases = r["phases"].as_array().unwrap();
    let counts = |i: usize, k: &str| phases[i]["counts"][k].as_u64().unwrap();
    assert_eq!(counts(0, "ok"), 100, "all ok before the kill");
    assert!(
        counts(1, "send_failed") > 0,
        "sends fail while the instance is down"
    );
    assert_eq!(counts(2, "ok"), 100, "all ok once it is back");
    let checks = r["checks"].as_array().unwrap();
    let phase_checks: Vec<_> = checks
        .iter()
        .filter(|c| c["scope"] == "phase after")
        .collect();
    assert_eq!(phase_checks.len(), 5);
    assert!(phase_checks.iter().all(|c| c["passed"] == true));
    assert_eq!(r["passed"], false);
    assert_eq!(
        r["instances"]["up-1"].as_u64().unwrap(),
        counts(0, "ok") + counts(1, "ok") + counts(2, "ok")
    );

    let svg = std::fs::read_to_string(dir.path().join("out/faults-direct.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("kill up-1"));
    let log = dir.path().join("out/faults/direct/up-1.log");
    assert!(log.exists(), "instance output goes to its log file");
}

#[test]
fn a_clean_run_passes_and_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = r#"
targets = ["nginx"]
path = "/y"
redis = false
[[instances]]
name = "up"
kind = "upstream"
[[phases]]
name = "ramp"
from = 0
to = 200
duration = "1s"
[thresholds]
lost = 0
mismatched = 0
min_ok_rate = 1.0
"#;
    // The command line overrides the scenario's nginx target.
    let (code, output) = run(dir.path(), scenario, &["--target", "direct", "--ledger"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("result: PASS"), "{output}");
    let r = report(dir.path(), "scenario-direct");
    assert_eq!(r["totals"]["counts"]["ok"], 100);
    assert_eq!(r["planned"], 100);
    for f in [
        "scenario-direct.txt",
        "scenario-direct.svg",
        "scenario/direct/ledger.csv",
    ] {
        assert!(dir.path().join("out").join(f).exists(), "{f}");
    }
    let ledger =
        std::fs::read_to_string(dir.path().join("out/scenario/direct/ledger.csv")).unwrap();
    assert_eq!(ledger.lines().count(), 101);
}

#[test]
fn missing_binaries_and_bad_scenarios_are_tool_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = r#"
[[instances]]
name = "e"
[[phases]]
name = "p"
rate = 10
duration = "1s"
"#;
    // The gateway binary is looked for in an empty directory.
    let empty = dir.path().join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, output) = run(
        dir.path(),
        scenario,
        &["--bin-dir", empty.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("cannot start"), "{output}");
    let (code, output) = run(dir.path(), "rate = 1", &[]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("unknown field"), "{output}");
}

/// Pids of the living descendants of `pid`, from `/proc` (zombies count as gone).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, ppid)) = stat(child) {
            parents.push((child, ppid, state));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid, state)| *ppid == p && *state != 'Z')
                .map(|(c, _, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// State and parent pid of a process, if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; the fields follow the last `)`.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// A run of 30 s against two upstreams and a private Redis, to be cut short.
const LONG: &str = r#"
targets = ["direct"]
path = "/z"
drain = "20s"
redis = true
[[instances]]
name = "up-1"
kind = "upstream"
[[instances]]
name = "up-2"
kind = "upstream"
[[phases]]
name = "long"
rate = 50
duration = "30s"
[thresholds]
lost = 0
"#;

/// Starts the long run and waits until its processes (the watchdog, Redis and two upstreams)
/// run and requests have gone out for a second.
fn start_long(dir: &Path) -> (std::process::Child, Vec<u32>) {
    let child = command(dir, LONG)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let procs = loop {
        let procs = descendants(child.id());
        if procs.len() >= 4 {
            break procs;
        }
        assert!(Instant::now() < deadline, "the processes did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(1));
    (child, procs)
}

fn wait_gone(procs: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = procs.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_signal_stops_every_process_and_writes_a_partial_report() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, procs) = start_long(dir.path());
        let sent = Command::new("kill")
            .args(["-s", signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("SIG{signal}: the tool did not exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert_eq!(
            wait_gone(&procs),
            Vec::<u32>::new(),
            "SIG{signal}: left running"
        );

        let r = report(dir.path(), "scenario-direct");
        assert_eq!(r["interrupted"]["signal"], format!("SIG{signal}"));
        assert_eq!(r["accounting"]["balanced"], true);
        let issued = r["accounting"]["issued"].as_u64().unwrap();
        assert!(issued > 0 && issued < 500, "SIG{signal}: issued {issued}");
        assert_eq!(r["passed"], false);
        let text = std::fs::read_to_string(dir.path().join("out/scenario-direct.txt")).unwrap();
        assert!(
            text.contains(&format!("INTERRUPTED by SIG{signal}")),
            "{text}"
        );
    }
}

#[test]
fn a_killed_tool_takes_its_processes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, procs) = start_long(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(wait_gone(&procs), Vec::<u32>::new(), "left running");
}
