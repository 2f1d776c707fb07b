//! The `Prefer` request header (RFC 7240): `respond-async` and `wait=SECONDS`.

use http::HeaderMap;
use std::time::Duration;

/// The preferences the gateway honours.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefer {
    /// Answer `202 Accepted` at once when the request is queued.
    pub(crate) respond_async: bool,
    /// Hold the call at most this long.
    pub(crate) wait: Option<Duration>,
}

impl Prefer {
    /// Parses every `Prefer` header; unknown preferences and malformed values are ignored, as
    /// the RFC asks.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut prefer = Self::default();
        let preferences = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for preference in preferences {
            // Parameters after `;` do not concern these two preferences.
            let token = preference.split(';').next().unwrap_or_default().trim();
            let (name, value) = match token.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (token, None),
            };
            if name.eq_ignore_ascii_case("respond-async") {
                prefer.respond_async = true;
            } else if name.eq_ignore_ascii_case("wait")
                && let Some(seconds) = value.and_then(|v| v.parse::<u64>().ok())
            {
                prefer.wait = Some(Duration::from_secs(seconds));
            }
        }
        prefer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Prefer {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("prefer", v.parse().unwrap());
        }
        Prefer::parse(&headers)
    }

    #[test]
    fn parses_wait_and_respond_async_in_any_form() {
        assert_eq!(parse(&[]), Prefer::default());
        assert_eq!(
            parse(&["respond-async, wait=10"]),
            Prefer {
                respond_async: true,
                wait: Some(Duration::from_secs(10))
            }
        );
        assert_eq!(
            parse(&["Wait = \"3\"", "handling=lenient"]).wait,
            Some(Duration::from_secs(3))
        );
        assert!(parse(&["respond-async; foo=bar"]).respond_async);
        assert_eq!(parse(&["wait=soon"]).wait, None);
    }
}
