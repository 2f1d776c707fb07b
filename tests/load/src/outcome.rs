//! What became of one request: the closed set of outcomes every request ends in exactly once, and
//! the path (from the `holdline-path` header) that served it.

use std::fmt;

/// The final outcome of one request. Every issued request ends in exactly one of these, which is
/// what lets the report prove that nothing went missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A `2xx` answer (after following any `202`) that passed verification.
    Ok,
    /// A final answer with a status outside `2xx`.
    Error(u16),
    /// A `2xx` answer that does not belong to its request.
    Mismatched(Mismatch),
    /// No answer before the request timeout; the tool stopped waiting.
    TimedOut,
    /// Sent but never answered.
    Lost(Lost),
    /// The connection could not be opened, so the request never left the tool.
    SendFailed,
}

/// Why an answer did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mismatch {
    /// The answer carries the id of another request of this run: crossed or duplicated.
    OtherRequest,
    /// The answer names this request but its body differs from what was sent.
    Corrupt,
    /// The answer is not an echo of any request (unparseable, or without a request id).
    Malformed,
}

/// How a sent request came to have no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lost {
    /// The connection closed or failed after the request was written, without an answer.
    Connection,
    /// Still unanswered when the drain grace period ran out.
    Drain,
    /// A `202` was answered but its result location later said the result does not exist.
    ResultGone,
    /// Still unanswered when a signal ended the run early: not the system's fault, but not an
    /// answer either.
    Interrupted,
}

/// Which way the system under test served a request, from the `holdline-path` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServedPath {
    /// Proxied directly to an instance.
    Sync,
    /// Moved to the queue and answered while the client was held.
    Queue,
    /// Answered `202` and fetched later from the result location.
    Async,
    /// No (or an unknown) `holdline-path` header: nginx, haproxy, a direct upstream.
    Unmarked,
}

// === impl Outcome ===

impl Outcome {
    /// True for outcomes that count against the system under test.
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Ok)
    }
}

// === impl Mismatch ===

impl Mismatch {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtherRequest => "other_request",
            Self::Corrupt => "corrupt",
            Self::Malformed => "malformed",
        }
    }
}

// === impl Lost ===

impl Lost {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Drain => "drain",
            Self::ResultGone => "result_gone",
            Self::Interrupted => "interrupted",
        }
    }
}

// === impl ServedPath ===

impl ServedPath {
    /// Every path, in report order.
    pub const ALL: [ServedPath; 4] = [Self::Sync, Self::Queue, Self::Async, Self::Unmarked];

    /// Reads the `holdline-path` header value.
    pub fn from_header(value: Option<&[u8]>) -> Self {
        match value {
            Some(b"sync") => Self::Sync,
            Some(b"queue") => Self::Queue,
            Some(b"async") => Self::Async,
            _ => Self::Unmarked,
        }
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Queue => "queue",
            Self::Async => "async",
            Self::Unmarked => "unmarked",
        }
    }

    /// Position in [`ServedPath::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ServedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_header_values_map_to_paths() {
        assert_eq!(ServedPath::from_header(Some(b"sync")), ServedPath::Sync);
        assert_eq!(ServedPath::from_header(Some(b"queue")), ServedPath::Queue);
        assert_eq!(ServedPath::from_header(Some(b"async")), ServedPath::Async);
        assert_eq!(
            ServedPath::from_header(Some(b"other")),
            ServedPath::Unmarked
        );
        assert_eq!(ServedPath::from_header(None), ServedPath::Unmarked);
        for (i, p) in ServedPath::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
    }
}
