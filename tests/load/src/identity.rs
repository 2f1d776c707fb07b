//! Request identity: a unique id and a checkable body for every request, and the check that an
//! answer belongs to the request it came back on.
//!
//! An id is `<run>-<seq>` with `seq` in hex, so any answer can be traced back to the request it
//! was written for. The body starts with the id and continues with bytes derived from `seq`, so a
//! corrupted body is told apart from a body that belongs to another request.

use crate::outcome::Mismatch;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

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

/// The part of the echo service's answer that verification reads. Strings are borrowed from
/// the answer where they hold no escapes, and of the headers only the request id is kept, so a
/// verification allocates next to nothing.
#[derive(Deserialize)]
struct EchoAnswer<'a> {
    #[serde(default, borrow)]
    headers: RequestIdHeader<'a>,
    #[serde(borrow)]
    body: Option<Text<'a>>,
    #[serde(default)]
    instance: Option<String>,
}

/// A JSON string, borrowed when it can be.
struct Text<'a>(Cow<'a, str>);

/// The `x-request-id` of the echoed headers (any case; the first one found) as the echo
/// reports it: a string, or a list whose first item is a string; `None` when absent or neither.
#[derive(Default)]
struct RequestIdHeader<'a>(Option<Text<'a>>);

/// One header value: a string, or a list whose first item is a string; anything else is `None`.
struct HeaderText<'a>(Option<Text<'a>>);

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
        let mut id = Vec::with_capacity(self.run.len() + 17);
        self.push_id(&mut id, seq);
        // Only the run name (checked ASCII) and hex digits: always UTF-8.
        String::from_utf8(id).unwrap_or_default()
    }

    /// Appends the id of request `seq` to `out`: `<run>-<seq in hex>`, without formatting
    /// machinery (it runs once per request).
    fn push_id(&self, out: &mut Vec<u8>, seq: u64) {
        out.extend_from_slice(self.run.as_bytes());
        out.push(b'-');
        let digits = if seq == 0 {
            1
        } else {
            (64 - seq.leading_zeros()).div_ceil(4) as usize
        };
        for i in (0..digits).rev() {
            out.push(b"0123456789abcdef"[((seq >> (4 * i)) & 0xf) as usize]);
        }
    }

    /// The sequence number of an id of this run, `None` for anything else.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        let rest = id.strip_prefix(self.run.as_str())?.strip_prefix('-')?;
        u64::from_str_radix(rest, 16).ok()
    }

    /// The body of request `seq`: its id, a colon, then filler derived from `seq`, `len` bytes in
    /// all (or just the id and colon if `len` is shorter). ASCII only, so it survives JSON.
    pub fn body(&self, seq: u64, len: usize) -> String {
        let (body, _) = self.body_bytes(seq, len);
        // The id is ASCII and so is the filler.
        String::from_utf8(body).unwrap_or_default()
    }

    /// The body of request `seq` as bytes (exactly [`RunIds::body`]), and the length of the id
    /// it starts with, so the id can be sliced out of the body instead of built again.
    pub fn body_bytes(&self, seq: u64, len: usize) -> (Vec<u8>, usize) {
        let mut body = Vec::with_capacity(len.max(self.run.len() + 18));
        self.push_id(&mut body, seq);
        let id_len = body.len();
        body.push(b':');
        // A xorshift stream seeded by the sequence number: cheap, and different for every request.
        let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let filled = body.len();
        if filled < len {
            body.resize(len, 0);
            for b in &mut body[filled..] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = ALPHABET[(x & 31) as usize];
            }
        }
        (body, id_len)
    }

    /// Checks an echo answer against request `seq` with body `sent`.
    pub fn verify_echo(&self, seq: u64, sent: &str, answer: &[u8]) -> Result<Served, Mismatch> {
        let answer: EchoAnswer<'_> =
            serde_json::from_slice(answer).map_err(|_| Mismatch::Malformed)?;
        let Some(Text(id)) = &answer.headers.0 else {
            return Err(Mismatch::Malformed);
        };
        match self.seq_of(id) {
            Some(s) if s == seq => {}
            Some(_) => return Err(Mismatch::OtherRequest),
            None => return Err(Mismatch::Malformed),
        }
        let Text(body) = answer.body.ok_or(Mismatch::Malformed)?;
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

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestIdHeader<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RequestIdHeader<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of headers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found: Option<Option<Text<'a>>> = None;
                while let Some(Text(key)) = map.next_key::<Text<'a>>()? {
                    if found.is_none() && key.eq_ignore_ascii_case("x-request-id") {
                        found = Some(map.next_value::<HeaderText<'a>>()?.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RequestIdHeader(found.flatten()))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = HeaderText<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(HeaderText(Some(Text(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(HeaderText(Some(Text(Cow::Owned(v.to_owned())))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Rare (the echo sends repeated headers as a list): read the first item whole.
                let first = seq.next_element::<serde_json::Value>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(HeaderText(match first {
                    Some(serde_json::Value::String(s)) => Some(Text(Cow::Owned(s))),
                    _ => None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(HeaderText(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(HeaderText(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(HeaderText(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(HeaderText(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(HeaderText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(HeaderText(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
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
    fn ids_are_the_run_and_the_hex_sequence() {
        let ids = RunIds::new("r1");
        for seq in [0, 1, 15, 16, 255, 4096, 0xdead_beef, u64::MAX] {
            assert_eq!(ids.id(seq), format!("r1-{seq:x}"));
            let (body, id_len) = ids.body_bytes(seq, 64);
            assert_eq!(&body[..id_len], ids.id(seq).as_bytes());
            assert_eq!(body, ids.body(seq, 64).into_bytes());
        }
    }

    #[test]
    fn request_id_header_is_read_like_the_echo_reports_it() {
        let ids = RunIds::new("r1");
        let body = ids.body(3, 20);
        for (headers, ok) in [
            (serde_json::json!({"a": 1, "X-REQUEST-ID": ids.id(3)}), true),
            (serde_json::json!({"x-request-id": [ids.id(3), "x"]}), true),
            (serde_json::json!({"x-request-id": 3}), false),
            (serde_json::json!({"x-request-id": {"a": "b"}}), false),
            (serde_json::json!({"x-request-id": [1]}), false),
            (
                serde_json::json!({"other": {"x-request-id": ids.id(3)}}),
                false,
            ),
        ] {
            let answer = serde_json::json!({"headers": headers, "body": body}).to_string();
            let got = ids.verify_echo(3, &body, answer.as_bytes());
            assert_eq!(got.is_ok(), ok, "{answer}: {got:?}");
        }
        // Escaped strings are read too (then owned, not borrowed).
        let escaped = format!(
            r#"{{"headers":{{"x-request-id":"{}"}},"body":"{}","instance":"i\u0031"}}"#,
            ids.id(3).replace('-', "\\u002d"),
            body
        );
        let served = ids.verify_echo(3, &body, escaped.as_bytes()).unwrap();
        assert_eq!(served.instance.as_deref(), Some("i1"));
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
