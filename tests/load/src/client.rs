//! One request exchange with the system under test: send, follow a `202` to its result, verify
//! the answer, and classify what happened as an [`Outcome`].
//!
//! Requests go out through [`Wire`] and result polls through [`Pool`]; both open a new
//! connection whenever every pooled one is busy, so the number of requests in flight is never
//! capped by the tool: a gateway that holds calls while it queues sees every one of them.

use crate::identity::{RunIds, VerifyMode};
use crate::outcome::{Lost, Outcome, ServedPath};
use crate::pool::{Body, Pool, SendError};
use crate::scenario::ClientSpec;
use crate::wire::{Wire, WireError};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use http_body_util::{Either, Empty};
use std::sync::Arc;
use std::time::Duration;

/// Where and how requests are sent.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, loopback only.
    pub base: Uri,
    /// Path (and query) of every request.
    pub path: String,
    /// Method of every request.
    pub method: Method,
    /// How answers are verified.
    pub verify: VerifyMode,
    /// Length of each request body.
    pub body_bytes: usize,
    /// Send the request id as the `Idempotency-Key` header too.
    pub idempotency_key: bool,
    /// Longest wait between two polls of a result location (caps `Retry-After`).
    pub poll_max: Duration,
    /// How the clients use connections, and which are slow.
    pub clients: ClientSpec,
}

/// Everything a request task needs, shared by all of them.
#[derive(Debug, Clone)]
pub struct Exchange {
    pool: Pool,
    target: Target,
    ids: RunIds,
    /// Worked out once, not per request: `host:port` of the target, the same as a `Host`
    /// header, and the request path as a URI.
    wire: Wire,
    /// Request line and fixed headers up to the request id's value; `None` when the method or
    /// path cannot be sent.
    head: Option<Arc<[u8]>>,
}

/// A classified answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What became of the request.
    pub outcome: Outcome,
    /// Which path served it.
    pub path: ServedPath,
    /// The echo instance that answered, when verified.
    pub instance: Option<String>,
}

/// Shortest wait between polls, so a `Retry-After: 0` does not spin.
const POLL_MIN: Duration = Duration::from_millis(20);

// === impl Exchange ===

impl Exchange {
    /// An exchange for `target` over connections from `pool`, naming requests with `ids`.
    pub fn new(pool: Pool, target: Target, ids: RunIds) -> Self {
        let authority = authority(&target.base);
        let wire = Wire::new(&authority);
        // The same checks the request builder made: a valid method token and an origin-form
        // path that parses as a URI, with no byte that would break the request line.
        let path_ok = target.path.starts_with('/')
            && target.path.parse::<Uri>().is_ok()
            && !target.path.bytes().any(|b| b <= b' ' || b == 0x7f);
        let head = path_ok.then(|| {
            let head = format!(
                "{} {} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: text/plain\r\nx-request-id: ",
                target.method, target.path
            );
            Arc::from(head.into_bytes())
        });
        Self {
            pool,
            target,
            ids,
            wire,
            head,
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The request ids of this run.
    pub fn ids(&self) -> &RunIds {
        &self.ids
    }

    /// Sends request `seq` and follows it to its final answer. The caller bounds it with the
    /// request timeout.
    pub async fn run(&self, seq: u64) -> Answer {
        let (body, id_len) = self.ids.body_bytes(seq, self.target.body_bytes);
        let pace = self.target.clients.pace(seq);
        let Some(head) = &self.head else {
            return answer(Outcome::SendFailed, ServedPath::Unmarked);
        };
        let written = self
            .wire
            .exchange(self.target.method == Method::HEAD, &pace, |out| {
                // The whole request in one buffer and one write; the id header is the start of
                // the body.
                out.extend_from_slice(head);
                out.extend_from_slice(&body[..id_len]);
                if self.target.idempotency_key {
                    out.extend_from_slice(b"\r\nidempotency-key: ");
                    out.extend_from_slice(&body[..id_len]);
                }
                out.extend_from_slice(b"\r\ncontent-length: ");
                push_decimal(out, body.len());
                out.extend_from_slice(b"\r\n\r\n");
                out.extend_from_slice(&body);
            })
            .await;
        let a = match written {
            Ok(a) => a,
            Err(WireError::NotSent) => return answer(Outcome::SendFailed, ServedPath::Unmarked),
            Err(WireError::NoAnswer) => {
                return answer(Outcome::Lost(Lost::Connection), ServedPath::Unmarked);
            }
        };
        let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if status == StatusCode::ACCEPTED
            && let Some(location) = &a.location
        {
            // Boxed: the follow-up is the rare path, and keeping it out of line keeps every
            // request's task small.
            let body = Bytes::from(body);
            let id = std::str::from_utf8(&body[..id_len]).unwrap_or_default();
            let wait = retry_after_value(a.retry_after.as_deref());
            let follow = self.follow(seq, id, &body, location, wait);
            return Box::pin(follow).await;
        }
        let path = ServedPath::from_header(a.path.as_deref());
        self.classify(seq, &body, status, path, &a.body)
    }

    /// Polls a result location until it stops answering `202`.
    async fn follow(
        &self,
        seq: u64,
        id: &str,
        sent: &Bytes,
        location: &[u8],
        first_wait: Duration,
    ) -> Answer {
        let Some(uri) = self.resolve(location) else {
            return answer(
                Outcome::Mismatched(crate::outcome::Mismatch::Malformed),
                ServedPath::Async,
            );
        };
        let mut wait = first_wait;
        loop {
            tokio::time::sleep(wait.clamp(POLL_MIN, self.target.poll_max)).await;
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let poll = Request::builder()
                .method(Method::GET)
                .uri(path)
                .header(header::HOST, authority(&uri))
                .header("x-request-id", id)
                .body(Either::Right(Empty::new()));
            let Ok(poll) = poll else {
                return answer(Outcome::SendFailed, ServedPath::Async);
            };
            // A failed poll is retried: the result is stored, and a gateway restarting under a
            // reload must not turn a kept call into a lost one. The request timeout ends it.
            let Ok((status, headers, body)) = self.send(&uri, poll).await else {
                wait = self.target.poll_max;
                continue;
            };
            match status {
                StatusCode::ACCEPTED => wait = retry_after(&headers),
                StatusCode::NOT_FOUND | StatusCode::GONE => {
                    return answer(Outcome::Lost(Lost::ResultGone), ServedPath::Async);
                }
                _ => return self.classify(seq, sent, status, ServedPath::Async, &body),
            }
        }
    }

    /// Sends one request to the authority of `to` and reads the whole answer.
    async fn send(
        &self,
        to: &Uri,
        request: Request<Body>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Outcome> {
        self.send_to(&authority(to), request).await
    }

    /// Sends one request to `authority` (`host:port`) and reads the whole answer.
    async fn send_to(
        &self,
        authority: &str,
        request: Request<Body>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Outcome> {
        match self.pool.exchange(authority, request).await {
            Ok((parts, body)) => Ok((parts.status, parts.headers, body)),
            Err(SendError::NotSent(_)) => Err(Outcome::SendFailed),
            Err(SendError::NoAnswer(_)) => Err(Outcome::Lost(Lost::Connection)),
        }
    }

    fn classify(
        &self,
        seq: u64,
        sent: &[u8],
        status: StatusCode,
        path: ServedPath,
        body: &[u8],
    ) -> Answer {
        if !status.is_success() {
            return answer(Outcome::Error(status.as_u16()), path);
        }
        match self.target.verify {
            VerifyMode::Status => answer(Outcome::Ok, path),
            VerifyMode::Echo => {
                let sent = std::str::from_utf8(sent).unwrap_or_default();
                match self.ids.verify_echo(seq, sent, body) {
                    Ok(served) => Answer {
                        outcome: Outcome::Ok,
                        path,
                        instance: served.instance,
                    },
                    Err(m) => answer(Outcome::Mismatched(m), path),
                }
            }
        }
    }

    /// Resolves a `Location` against the target: absolute URLs are taken as they are,
    /// anything else is a path on the target.
    fn resolve(&self, location: &[u8]) -> Option<Uri> {
        let location = std::str::from_utf8(location).ok()?;
        if location.starts_with("http://") || location.starts_with("https://") {
            return location.parse().ok();
        }
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            format!("/{location}")
        };
        format!("{}{path}", base_str(&self.target.base))
            .parse()
            .ok()
    }
}

fn answer(outcome: Outcome, path: ServedPath) -> Answer {
    Answer {
        outcome,
        path,
        instance: None,
    }
}

/// `host:port` of a URI, with the scheme's default port when it names none.
fn authority(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `scheme://authority` of a base URI, without a trailing slash.
fn base_str(base: &Uri) -> String {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("127.0.0.1");
    format!("{scheme}://{authority}")
}

/// The `Retry-After` of a response in seconds; one second when absent or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Duration {
    retry_after_value(headers.get(header::RETRY_AFTER).map(|v| v.as_bytes()))
}

/// A `Retry-After` value in seconds; one second when absent or an HTTP date.
fn retry_after_value(value: Option<&[u8]>) -> Duration {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(base: &str) -> Exchange {
        let target = Target {
            base: base.parse().unwrap(),
            path: "/echo".into(),
            method: Method::POST,
            verify: VerifyMode::Echo,
            body_bytes: 16,
            idempotency_key: false,
            poll_max: Duration::from_secs(1),
            clients: ClientSpec::default(),
        };
        Exchange::new(Pool::new(), target, RunIds::new("t"))
    }

    #[tokio::test]
    async fn locations_resolve_against_the_target() {
        let e = exchange("http://127.0.0.1:8080");
        let abs = e
            .resolve(b"http://127.0.0.1:9/_holdline/results/1")
            .unwrap();
        assert_eq!(abs.to_string(), "http://127.0.0.1:9/_holdline/results/1");
        let rel = e.resolve(b"/_holdline/results/2").unwrap();
        assert_eq!(rel.to_string(), "http://127.0.0.1:8080/_holdline/results/2");
        let bare = e.resolve(b"_holdline/results/3").unwrap();
        assert_eq!(
            bare.to_string(),
            "http://127.0.0.1:8080/_holdline/results/3"
        );
    }

    #[test]
    fn authorities_have_ports() {
        let a = |s: &str| authority(&s.parse().unwrap());
        assert_eq!(a("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(a("http://localhost/x"), "localhost:80");
        assert_eq!(a("http://[::1]:9/"), "[::1]:9");
    }

    #[test]
    fn retry_after_reads_seconds_and_defaults_to_one() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(3));
        h.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Duration::from_secs(1));
    }
}
