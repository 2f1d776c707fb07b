//! A configuration file as `check-config` and the gateway's start and reload read it: parsing
//! and validation never panic, whatever the text, and every duration of a config that validates
//! can be added to the clock, which the gateway does with each timeout.

#![no_main]

use holdline_gateway::Config;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fn durations(config: &Config) -> Vec<(String, Duration)> {
    let mut all = vec![
        ("shutdown_grace".to_owned(), config.shutdown_grace),
        (
            "limits.header_read_timeout".to_owned(),
            config.limits.header_read_timeout,
        ),
        (
            "limits.header_read_timeout_under_pressure".to_owned(),
            config.limits.header_read_timeout_under_pressure,
        ),
    ];
    for (name, service) in &config.services {
        let mut add = |key: &str, value: Duration| all.push((format!("{name}.{key}"), value));
        add("accept_timeout", service.accept_timeout);
        add("connect_timeout", service.connect_timeout);
        add("first_byte_timeout", service.first_byte_timeout);
        add("request_timeout", service.request_timeout);
        add("resolve_interval", service.resolve_interval);
        add("outlier.base_ejection", service.outlier.base_ejection);
        add("outlier.max_ejection", service.outlier.max_ejection);
        add("queue.hold", service.queue.hold);
        add("queue.min_queue_time", service.queue.min_queue_time);
        add("queue.recovery_time", service.queue.recovery_time);
        add("queue.latency_floor", service.queue.latency_floor);
        add("queue.result_ttl", service.queue.result_ttl);
        if let Some(check) = &service.health_check {
            add("health_check.interval", check.interval);
            add("health_check.timeout", check.timeout);
        }
    }
    all
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    let now = Instant::now();
    for (key, value) in durations(&config) {
        assert!(
            now.checked_add(value).is_some(),
            "{key} = {value:?} validates but overflows the clock"
        );
    }
});
