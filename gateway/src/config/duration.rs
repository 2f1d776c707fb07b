//! Durations in the config: a number and a unit, or several such groups (`"30s"`, `"250ms"`,
//! `"1m 30s"`, `"1h30m"`), with units `ns`, `us`, `ms`, `s`, `m`, `h` and `d`. Nothing else is
//! taken: humantime would also read `"30 seconds"`, `"2 hours"` or `"1 month"` (which it makes
//! 30.44 days), forms a reader of the file may take to mean something else, and that no tool
//! checking the file reads the same way. A refused form gets a hint with the short form
//! (`"30 seconds"`: write `"30s"`), as a number without a unit does.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// The units the file takes, each with its length; `ms` before `m`, which it starts with.
const UNITS: [(&str, Duration); 8] = [
    ("ns", Duration::from_nanos(1)),
    ("us", Duration::from_micros(1)),
    ("µs", Duration::from_micros(1)),
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
    ("d", Duration::from_secs(86_400)),
];

/// Long unit names people write, and the short unit the file takes instead.
const SPELLED_OUT: [(&[&str], &str); 7] = [
    (&["nsec", "nsecs", "nanosecond", "nanoseconds"], "ns"),
    (&["usec", "usecs", "microsecond", "microseconds"], "us"),
    (
        &[
            "msec",
            "msecs",
            "milli",
            "millis",
            "millisecond",
            "milliseconds",
        ],
        "ms",
    ),
    (&["sec", "secs", "second", "seconds"], "s"),
    (&["min", "mins", "minute", "minutes"], "m"),
    (&["hr", "hrs", "hour", "hours"], "h"),
    (&["day", "days"], "d"),
];

/// Reads a duration; a bare number or a spelled-out unit gets a hint naming the fix.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(f64),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
        Raw::Number(n) => Err(serde::de::Error::custom(format!(
            "expected a duration with a unit in quotes, such as \"{n}s\"; got the number {n}"
        ))),
    }
}

/// Writes a duration in the form [`parse`] reads: `"30s"`, `"1m 30s"`, `"250ms"` (hours at most,
/// so that every tool reading the file's units reads these).
pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*value))
}

/// A duration as text: groups of a number and a unit, separated by spaces.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let groups: Option<Vec<Duration>> = text.split(' ').map(group).collect();
    match groups {
        Some(groups) if !text.is_empty() => groups
            .into_iter()
            .try_fold(Duration::ZERO, Duration::checked_add)
            .ok_or_else(|| format!("invalid duration {text:?}: too long")),
        _ => Err(format!("invalid duration {text:?}{}", hint(text))),
    }
}

/// One space-free group, such as `1h30m`: digits and a unit, repeated.
fn group(mut text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    if text.is_empty() {
        return None;
    }
    while !text.is_empty() {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = text[..digits].parse().ok()?;
        text = &text[digits..];
        // A unit ends the group or is followed by the next number (`ms` is tried before `m`).
        let (unit, size) = UNITS.iter().find(|(unit, _)| {
            text.strip_prefix(unit).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit())
            })
        })?;
        text = &text[unit.len()..];
        let part = if *size >= Duration::from_secs(1) {
            Duration::from_secs(number.checked_mul(size.as_secs())?)
        } else {
            Duration::from_nanos(number.checked_mul(size.as_nanos() as u64)?)
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// What to write instead of `text`, when that can be told: the number alone gets a unit, and
/// spelled-out units their short form.
fn hint(text: &str) -> String {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return format!("; a duration needs a unit, such as \"{trimmed}s\"");
    }
    match short_form(trimmed) {
        Some(short) => format!("; write \"{short}\""),
        None => "; write a number and a unit (ns, us, ms, s, m, h, d), such as \"30s\" or \
                 \"1m 30s\""
            .to_owned(),
    }
}

/// `"30 seconds"` as `"30s"`, `"1 hour 5 mins"` as `"1h 5m"`; `None` when some part is neither
/// a number nor a unit the file takes (in short or long form).
fn short_form(text: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let digits = word.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (number, attached) = word.split_at(digits);
        let unit = if attached.is_empty() {
            words.next()?
        } else {
            attached
        };
        out.push(format!("{number}{}", short_unit(unit)?));
    }
    (!out.is_empty()).then(|| out.join(" "))
}

fn short_unit(unit: &str) -> Option<&'static str> {
    let unit = unit.to_ascii_lowercase();
    UNITS
        .iter()
        .map(|(short, _)| *short)
        .find(|short| *short == unit)
        .or_else(|| {
            SPELLED_OUT
                .iter()
                .find(|(long, _)| long.contains(&unit.as_str()))
                .map(|(_, short)| *short)
        })
}

/// `value` in the form [`parse`] reads, in hours down to nanoseconds.
fn format(value: Duration) -> String {
    if value.is_zero() {
        return "0s".to_owned();
    }
    let secs = value.as_secs();
    let nanos = value.subsec_nanos();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_short_units_are_read() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("250ms", Duration::from_millis(250)),
            ("1m 30s", Duration::from_secs(90)),
            ("1h30m", Duration::from_secs(5400)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("5us", Duration::from_micros(5)),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn spelled_out_units_are_refused_with_the_short_form() {
        for (text, short) in [
            ("30 seconds", "30s"),
            ("30 s", "30s"),
            ("5min", "5m"),
            ("2 Hours", "2h"),
            ("1 hour 5 mins", "1h 5m"),
            ("100 milliseconds", "100ms"),
            ("1 day", "1d"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains(&format!("write \"{short}\"")),
                "{text}: {error}"
            );
        }
        for text in [
            "", "soon", "1 month", "2y", "1.5s", "30", "s30", "1m  30s", "-1s",
        ] {
            assert!(parse(text).is_err(), "{text} accepted");
        }
        assert!(parse("30").unwrap_err().contains("such as \"30s\""));
        assert!(
            parse("1 month")
                .unwrap_err()
                .contains("(ns, us, ms, s, m, h, d)")
        );
    }

    #[test]
    fn written_durations_read_back_the_same() {
        for value in [
            Duration::from_secs(30),
            Duration::from_millis(1500),
            Duration::from_secs(7 * 86_400 + 61),
            Duration::from_nanos(1_000_001),
            Duration::ZERO,
        ] {
            assert_eq!(parse(&format(value)), Ok(value), "{}", format(value));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m 30s");
        assert_eq!(format(Duration::from_secs(600)), "10m");
    }
}
