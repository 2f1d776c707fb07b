//! Headers a handler adds to its response by returning them in a tuple: a `HeaderMap`, or an
//! array of `(name, value)` pairs.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt::Display;

/// Headers that can go in front of a body in a tuple, as in `([(header::LOCATION, "/x")], body)`.
/// They replace any header of the same name the body set (its `content-type`, say).
pub trait ResponseHeaders {
    /// Adds the headers to `headers`; fails with a description when a name or value is invalid.
    fn add_to(self, headers: &mut HeaderMap) -> Result<(), String>;
}

impl ResponseHeaders for HeaderMap {
    fn add_to(self, headers: &mut HeaderMap) -> Result<(), String> {
        headers.extend(self);
        Ok(())
    }
}

impl<K, V, const N: usize> ResponseHeaders for [(K, V); N]
where
    K: TryInto<HeaderName>,
    K::Error: Display,
    V: TryInto<HeaderValue>,
    V::Error: Display,
{
    fn add_to(self, headers: &mut HeaderMap) -> Result<(), String> {
        for (name, value) in self {
            let name = name
                .try_into()
                .map_err(|error| format!("invalid header name: {error}"))?;
            let value = value
                .try_into()
                .map_err(|error| format!("invalid value for {name}: {error}"))?;
            headers.insert(name, value);
        }
        Ok(())
    }
}
