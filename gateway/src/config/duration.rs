//! Durations in the config: humantime text (`"30s"`, `"1m 30s"`, `"250ms"`), with a hint when the
//! unit is missing, the most common mistake (`"30"` or `30`).

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Reads a humantime duration; a bare number gets a hint naming the fix.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(f64),
    }
    let text = match Raw::deserialize(deserializer)? {
        Raw::Text(text) => text,
        Raw::Number(n) => {
            return Err(serde::de::Error::custom(format!(
                "expected a duration with a unit in quotes, such as \"{n}s\"; got the number {n}"
            )));
        }
    };
    humantime_serde::re::humantime::parse_duration(&text).map_err(|error| {
        let hint =
            if !text.is_empty() && text.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                format!("; a duration needs a unit, such as \"{}s\"", text.trim())
            } else {
                String::new()
            };
        serde::de::Error::custom(format!("invalid duration {text:?}: {error}{hint}"))
    })
}

/// Writes a duration as humantime text, the form the file uses.
pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    humantime_serde::serialize(value, serializer)
}
