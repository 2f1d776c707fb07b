//! How the scenario's clients behave on the wire: a kept-alive connection or a new one per
//! call, and slow clients (a late head, a slow body upload, a slow reader), each given to a
//! share of the calls with a pause drawn from a range.
//!
//! Which calls are slow and how slow is drawn from each request's sequence number, so two runs
//! of one scenario treat the same calls the same way.

use serde::Deserialize;
use std::time::Duration;

/// The `[clients]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSpec {
    /// Kept-alive connections (the default) or a new connection for every call.
    pub connection: ConnectionMode,
    /// Calls that connect and then wait before they write their head.
    pub head_delay: Option<Slow>,
    /// Calls that write their body a few bytes at a time.
    pub upload: Option<Slow>,
    /// Calls that read their answer a few bytes at a time.
    pub read: Option<Slow>,
}

/// How a client uses connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionMode {
    /// Reuse an idle connection when there is one, open a new one when every one is busy.
    #[default]
    KeepAlive,
    /// Open a new connection for every call and close it after the answer.
    PerCall,
}

/// One slow behaviour: which share of the calls has it, and how slow they are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slow {
    /// Share of the calls (0 to 1) that behave this way.
    #[serde(default = "all")]
    pub share: f64,
    /// Shortest pause: before the head (`head_delay`) or before each piece (`upload`, `read`).
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    /// Longest pause; each slow call draws its pause evenly from `min` to `max`.
    #[serde(default, with = "humantime_serde::option")]
    pub max: Option<Duration>,
    /// Bytes written or read per piece (`upload` and `read` only).
    pub bytes: Option<usize>,
}

/// What one call does, drawn from a [`ClientSpec`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    /// Use a connection of its own, opened for this call and closed after it.
    pub fresh: bool,
    /// Wait between connecting and writing the head.
    pub head_delay: Duration,
    /// Write the body in pieces, pausing before each.
    pub upload: Option<Trickle>,
    /// Read the answer in pieces, pausing before each.
    pub read: Option<Trickle>,
}

/// Pieces of `bytes`, with `pause` before each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trickle {
    /// Bytes per piece, at least one.
    pub bytes: usize,
    /// Pause before each piece.
    pub pause: Duration,
}

// === impl ClientSpec ===

impl ClientSpec {
    /// True when every call goes at full speed over kept-alive connections.
    pub fn is_plain(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the table; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, slow) in self.slows() {
            let Some(slow) = slow else { continue };
            if !(0.0..=1.0).contains(&slow.share) {
                return Err(format!("`clients.{key}.share` must be between 0 and 1"));
            }
            if slow.max.is_some_and(|max| max < slow.min) {
                return Err(format!("`clients.{key}.max` is below its `min`"));
            }
            match (key, slow.bytes) {
                ("head_delay", Some(_)) => {
                    return Err("`clients.head_delay` takes no `bytes`".into());
                }
                ("upload" | "read", None | Some(0)) => {
                    return Err(format!("`clients.{key}.bytes` must be at least 1"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// What call `seq` does.
    pub fn pace(&self, seq: u64) -> Pace {
        let head_delay = self
            .head_delay
            .as_ref()
            .and_then(|s| s.draw(seq, 1))
            .unwrap_or_default();
        let trickle = |slow: &Option<Slow>, salt: u64| {
            let slow = slow.as_ref()?;
            Some(Trickle {
                bytes: slow.bytes.unwrap_or(1).max(1),
                pause: slow.draw(seq, salt)?,
            })
        };
        let upload = trickle(&self.upload, 2);
        let read = trickle(&self.read, 3);
        Pace {
            // A late head means a connection that is new, and a slow reader's small receive
            // buffer is set before connecting: neither can use a pooled connection.
            fresh: self.connection == ConnectionMode::PerCall
                || !head_delay.is_zero()
                || upload.is_some()
                || read.is_some(),
            head_delay,
            upload,
            read,
        }
    }

    fn slows(&self) -> [(&'static str, &Option<Slow>); 3] {
        [
            ("head_delay", &self.head_delay),
            ("upload", &self.upload),
            ("read", &self.read),
        ]
    }
}

// === impl Slow ===

impl Slow {
    /// The pause of call `seq` when it is among the slow share, else `None`; `salt` keeps the
    /// draws of the three behaviours apart.
    fn draw(&self, seq: u64, salt: u64) -> Option<Duration> {
        if unit(seq, salt * 2) >= self.share {
            return None;
        }
        let max = self.max.unwrap_or(self.min);
        let span = max.saturating_sub(self.min);
        Some(self.min + span.mul_f64(unit(seq, salt * 2 + 1)))
    }
}

fn all() -> f64 {
    1.0
}

/// A number in `[0, 1)` that depends only on `seq` and `salt` (splitmix64).
fn unit(seq: u64, salt: u64) -> f64 {
    let mut z = seq
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(salt.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ClientSpec {
        #[derive(Deserialize)]
        struct Doc {
            clients: ClientSpec,
        }
        toml::from_str::<Doc>(text).unwrap().clients
    }

    #[test]
    fn a_share_of_calls_is_slow_within_the_range() {
        let c = spec(
            r#"
[clients]
head_delay = { share = 0.25, min = "5s", max = "15s" }
"#,
        );
        c.check().unwrap();
        let delays: Vec<Duration> = (0..10_000).map(|s| c.pace(s).head_delay).collect();
        let slow: Vec<&Duration> = delays.iter().filter(|d| !d.is_zero()).collect();
        assert!((2300..2700).contains(&slow.len()), "{} slow", slow.len());
        assert!(slow.iter().all(|d| (5.0..=15.0).contains(&d.as_secs_f64())));
        let mean = slow.iter().map(|d| d.as_secs_f64()).sum::<f64>() / slow.len() as f64;
        assert!((9.5..10.5).contains(&mean), "mean {mean}");
        // The same call is drawn the same way every time, and only slow calls get a connection
        // of their own.
        assert_eq!(c.pace(7), c.pace(7));
        assert!((0..100).all(|s| c.pace(s).fresh != c.pace(s).head_delay.is_zero()));
    }

    #[test]
    fn per_call_connections_and_trickles() {
        let c = spec(
            r#"
[clients]
connection = "per-call"
upload = { bytes = 16, min = "10ms" }
read = { share = 0.0, bytes = 4, min = "1ms", max = "2ms" }
"#,
        );
        c.check().unwrap();
        let p = c.pace(3);
        assert!(p.fresh && p.head_delay.is_zero() && p.read.is_none());
        assert_eq!(
            p.upload,
            Some(Trickle {
                bytes: 16,
                pause: Duration::from_millis(10)
            })
        );
        assert!(ClientSpec::default().is_plain() && !ClientSpec::default().pace(1).fresh);
    }

    #[test]
    fn bad_tables_name_the_key() {
        for (text, key) in [
            (
                "head_delay = { share = 2.0, min = \"1s\" }",
                "head_delay.share",
            ),
            (
                "read = { min = \"2s\", max = \"1s\", bytes = 1 }",
                "read.max",
            ),
            ("upload = { min = \"1s\" }", "upload.bytes"),
            ("head_delay = { min = \"1s\", bytes = 3 }", "head_delay"),
        ] {
            let err = spec(&format!("[clients]\n{text}")).check().unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
