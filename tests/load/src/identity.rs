//! Request identity: a unique id and a checkable body for every request, and the check that an
//! answer belongs to the request it came back on.
//!
//! An id is `<run>-<seq>` with `seq` in hex, so any answer can be traced back to the request it
//! was written for. The body starts with the id and continues with bytes derived from `seq`, so a
//! corrupted body is told apart from a body that belongs to another request.

use crate::outcome::Mismatch;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How answers are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// The answer is the echo service's JSON and must echo this request's body and id.
    #[default]
    Echo,
    /// Only the status code counts (for upstreams that answer a fixed body).
    Status,
}

/// Identifies the requests of one run.
#[derive(Debug, Clone)]
pub struct RunIds {
    run: String,
}

/// What a verified echo answer told about who served it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Served {
    /// The `instance` field of the echo answer.
    pub instance: Option<String>,
}

/// The part of the echo service's answer that verification reads.
#[derive(Deserialize)]
struct EchoAnswer {
    #[serde(default)]
    headers: BTreeMap<String, serde_json::Value>,
    body: Option<String>,
    #[serde(default)]
    instance: Option<String>,
}

// === impl RunIds ===

impl RunIds {
    /// Ids for a run named `run` (letters, digits and `_` only, so it never contains the `-`
    /// that separates it from the sequence number).
    pub fn new(run: impl Into<String>) -> Self {
        let run: String = run.into();
        debug_assert!(run.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        Self { run }
    }

    /// A run name unique enough for one machine: the start time in milliseconds and the pid.
    pub fn fresh() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Self::new(format!("hl{ms:x}_{:x}", std::process::id()))
    }

    /// The run's name.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The id of request `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq:x}", self.run)
    }

    /// The sequence number of an id of this run, `None` for anything else.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        let rest = id.strip_prefix(self.run.as_str())?.strip_prefix('-')?;
        u64::from_str_radix(rest, 16).ok()
    }

    /// The body of request `seq`: its id, a colon, then filler derived from `seq`, `len` bytes in
    /// all (or just the id and colon if `len` is shorter). ASCII only, so it survives JSON.
    pub fn body(&self, seq: u64, len: usize) -> String {
        let mut body = self.id(seq);
        body.push(':');
        // A xorshift stream seeded by the sequence number: cheap, and different for every request.
        let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        while body.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push(ALPHABET[(x & 31) as usize] as char);
        }
        body
    }

    /// Checks an echo answer against request `seq` with body `sent`.
    pub fn verify_echo(&self, seq: u64, sent: &str, answer: &[u8]) -> Result<Served, Mismatch> {
        let answer: EchoAnswer = serde_json::from_slice(answer).map_err(|_| Mismatch::Malformed)?;
        let id = answer
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
            .and_then(|(_, v)| header_text(v));
        let Some(id) = id else {
            return Err(Mismatch::Malformed);
        };
        match self.seq_of(id) {
            Some(s) if s == seq => {}
            Some(_) => return Err(Mismatch::OtherRequest),
            None => return Err(Mismatch::Malformed),
        }
        let body = answer.body.ok_or(Mismatch::Malformed)?;
        if body == sent {
            return Ok(Served {
                instance: answer.instance,
            });
        }
        // The id header matched; a body that names another request is still a crossed answer.
        match body.split_once(':').and_then(|(id, _)| self.seq_of(id)) {
            Some(s) if s != seq => Err(Mismatch::OtherRequest),
            _ => Err(Mismatch::Corrupt),
        }
    }
}

/// A header value as the echo reports it: a string, or a list whose first item is a string.
fn header_text(v: &serde_json::Value) -> Option<&str> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Array(items) => items.first().and_then(|i| i.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(id: &str, body: &str) -> Vec<u8> {
        serde_json::json!({
            "method": "POST", "path": "/x", "headers": {"x-request-id": id},
            "body": body, "instance": "i1", "via": "http"
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn ids_round_trip_and_reject_other_runs() {
        let ids = RunIds::new("r1");
        assert_eq!(ids.seq_of(&ids.id(0)), Some(0));
        assert_eq!(ids.seq_of(&ids.id(123_456)), Some(123_456));
        assert_eq!(RunIds::new("r2").seq_of(&ids.id(5)), None);
        assert_eq!(ids.seq_of("r1-zz"), None);
        assert!(RunIds::fresh().run().starts_with("hl"));
    }

    #[test]
    fn bodies_have_the_asked_length_and_differ_per_request() {
        let ids = RunIds::new("r1");
        let a = ids.body(1, 64);
        let b = ids.body(2, 64);
        assert_eq!(a.len(), 64);
        assert_ne!(a[5..], b[5..]);
        assert_eq!(ids.body(1, 64), a, "bodies are deterministic");
        assert_eq!(ids.body(1, 0), "r1-1:");
    }

    #[test]
    fn verification_tells_ok_crossed_corrupt_and_malformed_apart() {
        let ids = RunIds::new("r1");
        let body = ids.body(7, 40);
        let ok = ids.verify_echo(7, &body, &echo(&ids.id(7), &body));
        assert_eq!(ok.unwrap().instance.as_deref(), Some("i1"));

        let other = ids.body(8, 40);
        let crossed = ids.verify_echo(7, &body, &echo(&ids.id(8), &other));
        assert_eq!(crossed, Err(Mismatch::OtherRequest));
        let body_of_other = ids.verify_echo(7, &body, &echo(&ids.id(7), &other));
        assert_eq!(body_of_other, Err(Mismatch::OtherRequest));

        let mut flipped = body.clone().into_bytes();
        flipped[30] ^= 1;
        let flipped = String::from_utf8(flipped).unwrap();
        let corrupt = ids.verify_echo(7, &body, &echo(&ids.id(7), &flipped));
        assert_eq!(corrupt, Err(Mismatch::Corrupt));

        assert_eq!(ids.verify_echo(7, &body, b"ok"), Err(Mismatch::Malformed));
        let no_id = serde_json::json!({"headers": {}, "body": body}).to_string();
        assert_eq!(
            ids.verify_echo(7, &body, no_id.as_bytes()),
            Err(Mismatch::Malformed)
        );
        let list = serde_json::json!({"headers": {"X-Request-Id": [ids.id(7)]}, "body": body});
        assert!(
            ids.verify_echo(7, &body, list.to_string().as_bytes())
                .is_ok()
        );
    }
}
