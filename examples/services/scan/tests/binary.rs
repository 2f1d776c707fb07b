//! The `example-scan` binary's flag handling: a queue-only worker needs a Redis URL.

use std::process::{Command, Stdio};

#[test]
fn no_http_without_redis_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_example-scan"))
        .args(["--service", "scan", "--no-http"])
        .env_remove("SCAN_REDIS")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--no-http needs --redis"), "{stderr}");
}
