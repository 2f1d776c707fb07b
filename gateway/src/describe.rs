//! `gateway describe --json`: what the gateway exports and how it reads a config, printed by the
//! binary itself so that the deploy checks compare alert rules, dashboards and manifests with the
//! gateway rather than with a hand-kept copy that can drift.

use crate::config::Config;
use crate::metrics::{
    CATALOGUE, FLOOD_FRAMES, PROCESS, REFUSED_REASONS, RELOAD_RESULTS, UNANSWERED_REASONS,
    UPSTREAM_ERROR_KINDS,
};
use crate::observe::{DeliveryPath, QueueOutcome};
use crate::queue::mode::Mode;
use crate::supervise::Task;
use serde_json::json;
use std::collections::BTreeMap;

/// The placeholder for a service's name in the Redis key patterns `describe` prints.
const SERVICE: &str = "SERVICE";

/// The gateway's description as pretty-printed JSON: its version, its metric catalogue, the
/// values each enumerated label can take (a label not listed takes open values, such as
/// `service` or `status`), the Redis names autoscalers watch, and `config` when one is given (as parsed and validated, defaults
/// filled in, durations in the form the file takes, the Redis password masked).
pub fn describe(config: Option<&Config>) -> String {
    let mut out = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "metrics": CATALOGUE.iter().chain(PROCESS).collect::<Vec<_>>(),
        "label_values": label_values(),
        // What autoscalers watch in Redis; `SERVICE` stands for a service's name.
        "redis": {
            "consumer_group": holdline_protocol::CONSUMER_GROUP,
            "request_stream": holdline_protocol::keys::request_stream(SERVICE),
        },
    });
    if let Some(config) = config {
        let mut config = config.clone();
        if let Some(redis) = config.redis.as_mut() {
            redis.url = masked(&redis.url);
        }
        out["config"] = serde_json::to_value(&config).expect("a config serializes");
    }
    serde_json::to_string_pretty(&out).expect("JSON values serialize")
}

/// Every value an enumerated label takes, from the enums the code emits.
fn label_values() -> BTreeMap<&'static str, Vec<&'static str>> {
    let modes: Vec<_> = Mode::ALL.iter().map(|m| m.as_str()).collect();
    BTreeMap::from([
        (
            "path",
            DeliveryPath::ALL.iter().map(|p| p.as_str()).collect(),
        ),
        ("mode", modes.clone()),
        ("from", modes.clone()),
        ("to", modes),
        (
            "outcome",
            QueueOutcome::ALL.iter().map(|o| o.as_str()).collect(),
        ),
        ("result", RELOAD_RESULTS.to_vec()),
        ("kind", UPSTREAM_ERROR_KINDS.to_vec()),
        ("frame", FLOOD_FRAMES.to_vec()),
        ("task", Task::ALL.iter().map(|t| t.as_str()).collect()),
        (
            "reason",
            UNANSWERED_REASONS
                .iter()
                .chain(&REFUSED_REASONS)
                .copied()
                .collect(),
        ),
    ])
}

/// `url` with its password, if any, replaced by `***`.
fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_label_with_listed_values_belongs_to_a_metric() {
        let described: Value = serde_json::from_str(&describe(None)).unwrap();
        let labels: Vec<&str> = CATALOGUE.iter().flat_map(|m| m.labels).copied().collect();
        for (label, values) in described["label_values"].as_object().unwrap() {
            assert!(labels.contains(&label.as_str()), "{label}");
            assert!(!values.as_array().unwrap().is_empty(), "{label}");
        }
        assert_eq!(
            described["metrics"].as_array().unwrap().len(),
            CATALOGUE.len() + PROCESS.len()
        );
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            masked("redis://user:secret@redis:6379/0"),
            "redis://user:***@redis:6379/0"
        );
        assert_eq!(
            masked("redis://secret@redis:6379"),
            "redis://***@redis:6379"
        );
        assert_eq!(masked("redis://redis:6379"), "redis://redis:6379");
    }
}
