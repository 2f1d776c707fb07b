//! A request as it sits in a service's request stream.

use crate::{DecodeError, VERSION, check_version, headers, parse_u64};
use bytes::Bytes;
use http::{HeaderMap, Method};

/// One queued HTTP request: the fields of one entry of
/// [`request_stream`](crate::keys::request_stream).
///
/// The request is exactly what the service would have received over HTTP from the gateway: the
/// URI is already rewritten (prefix stripped) and the headers already carry `x-request-id`,
/// `x-forwarded-*` and `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    /// Unique, unguessable id (the gateway writes 32 lowercase hex digits; decoding accepts any
    /// [valid name](crate::keys::is_valid_name)); names the result key.
    pub id: String,
    /// The service the request is for.
    pub service: String,
    /// The reply stream of the gateway replica holding the client's connection, or `None` when
    /// nobody is waiting (the client asked for `Prefer: respond-async`). Decoding accepts only
    /// [reply streams](crate::keys::is_reply_stream).
    pub reply_to: Option<String>,
    /// When the request was enqueued, in Unix milliseconds (for queue-wait metrics).
    pub enqueued_ms: u64,
    /// After this instant (Unix ms) nobody can use the result any more: a worker acknowledges the
    /// request without running the handler.
    pub deadline_ms: u64,
    /// How long the worker keeps the result key, in milliseconds.
    pub result_ttl_ms: u64,
    /// HTTP method.
    pub method: Method,
    /// Path and query, as the service sees them.
    pub uri: String,
    /// Request headers (hop-by-hop headers already removed).
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
}

impl QueuedRequest {
    /// The entry's fields in the order they are written with `XADD`.
    pub fn to_fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut header_block = Vec::with_capacity(self.headers.len() * 32);
        headers::encode(&self.headers, &mut header_block);
        vec![
            ("v", VERSION.as_bytes().to_vec()),
            ("id", self.id.as_bytes().to_vec()),
            ("svc", self.service.as_bytes().to_vec()),
            (
                "reply",
                self.reply_to.as_deref().unwrap_or("").as_bytes().to_vec(),
            ),
            ("enq", self.enqueued_ms.to_string().into_bytes()),
            ("deadline", self.deadline_ms.to_string().into_bytes()),
            ("ttl", self.result_ttl_ms.to_string().into_bytes()),
            ("method", self.method.as_str().as_bytes().to_vec()),
            ("uri", self.uri.as_bytes().to_vec()),
            ("headers", header_block),
            ("body", self.body.to_vec()),
        ]
    }

    /// Decodes an entry from its `(field, value)` pairs, in any order. Unknown fields are ignored
    /// so that later minor revisions can add fields.
    ///
    /// # Errors
    /// When the version is not this one, a required field is missing, or a value is invalid:
    /// an `id` that is not a [name](crate::keys::is_valid_name), a `reply` that is neither empty
    /// nor a [reply stream](crate::keys::is_reply_stream), a number that is not a decimal `u64`,
    /// a broken header block (more than
    /// [`MAX_HEADER_LINES`](crate::MAX_HEADER_LINES) lines included). Never panics.
    pub fn from_fields<'a, I>(fields: I) -> Result<Self, DecodeError>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut f: [Option<&[u8]>; 11] = [None; 11];
        const NAMES: [&str; 11] = [
            "v", "id", "svc", "reply", "enq", "deadline", "ttl", "method", "uri", "headers", "body",
        ];
        for (name, value) in fields {
            if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == name) {
                f[i] = Some(value);
            }
        }
        check_version(f[0])?;
        let text = |i: usize| -> Result<String, DecodeError> {
            let raw = f[i].ok_or(DecodeError::Missing(NAMES[i]))?;
            String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::Invalid {
                field: NAMES[i],
                reason: "not UTF-8".into(),
            })
        };
        let number = |i: usize| parse_u64(NAMES[i], f[i].ok_or(DecodeError::Missing(NAMES[i]))?);
        let method =
            Method::from_bytes(f[7].ok_or(DecodeError::Missing("method"))?).map_err(|_| {
                DecodeError::Invalid {
                    field: "method",
                    reason: "not an HTTP method".into(),
                }
            })?;
        let id = text(1)?;
        if !crate::keys::is_valid_name(&id) {
            return Err(DecodeError::Invalid {
                field: "id",
                reason: "not 1 to 64 of [A-Za-z0-9_.-]".into(),
            });
        }
        let reply = text(3)?;
        if !reply.is_empty() && !crate::keys::is_reply_stream(&reply) {
            return Err(DecodeError::Invalid {
                field: "reply",
                reason: "not a gateway reply stream".into(),
            });
        }
        Ok(Self {
            id,
            service: text(2)?,
            reply_to: (!reply.is_empty()).then_some(reply),
            enqueued_ms: number(4)?,
            deadline_ms: number(5)?,
            result_ttl_ms: number(6)?,
            method,
            uri: text(8)?,
            headers: headers::decode("headers", f[9].unwrap_or_default())?,
            body: Bytes::copy_from_slice(f[10].unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueuedRequest {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "r-1".parse().unwrap());
        headers.append("accept", "text/plain".parse().unwrap());
        headers.append("accept", "application/json".parse().unwrap());
        QueuedRequest {
            id: "0123456789abcdef0123456789abcdef".into(),
            service: "echo".into(),
            reply_to: Some(crate::keys::reply_stream("g1")),
            enqueued_ms: 1,
            deadline_ms: 2,
            result_ttl_ms: 3,
            method: Method::POST,
            uri: "/a?b=c".into(),
            headers,
            body: Bytes::from_static(b"\x00binary\r\n body"),
        }
    }

    fn roundtrip(req: &QueuedRequest) -> Result<QueuedRequest, DecodeError> {
        let fields = req.to_fields();
        QueuedRequest::from_fields(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())))
    }

    #[test]
    fn roundtrips_every_field() {
        let req = sample();
        assert_eq!(roundtrip(&req).unwrap(), req);
        let no_reply = QueuedRequest {
            reply_to: None,
            ..sample()
        };
        assert_eq!(roundtrip(&no_reply).unwrap(), no_reply);
    }

    #[test]
    fn rejects_other_versions_and_missing_fields() {
        let fields = sample().to_fields();
        let mut pairs: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_slice()))
            .collect();
        pairs[0].1 = b"2";
        assert_eq!(
            QueuedRequest::from_fields(pairs.clone()),
            Err(DecodeError::Version("2".into()))
        );
        pairs[0].1 = b"1";
        pairs.retain(|(n, _)| *n != b"id");
        assert_eq!(
            QueuedRequest::from_fields(pairs),
            Err(DecodeError::Missing("id"))
        );
    }

    /// Decodes `sample()` with one field's value replaced.
    fn with_field(name: &str, value: &[u8]) -> Result<QueuedRequest, DecodeError> {
        let fields = sample().to_fields();
        QueuedRequest::from_fields(fields.iter().map(|(n, v)| {
            let v = if *n == name { value } else { v.as_slice() };
            (n.as_bytes(), v)
        }))
    }

    fn invalid_field(result: Result<QueuedRequest, DecodeError>) -> &'static str {
        match result {
            Err(DecodeError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn reply_addresses_outside_the_gateway_namespace_are_refused() {
        for bad in [
            &b"mykey"[..],
            b"holdline:{echo}:requests",
            b"holdline:{gw:}:replies",
        ] {
            assert_eq!(invalid_field(with_field("reply", bad)), "reply");
        }
        let ok = with_field("reply", b"holdline:{gw:other-1}:replies").unwrap();
        assert_eq!(
            ok.reply_to.as_deref(),
            Some("holdline:{gw:other-1}:replies")
        );
        assert_eq!(with_field("reply", b"").unwrap().reply_to, None);
    }

    #[test]
    fn ids_that_could_break_the_key_layout_are_refused() {
        for bad in [&b""[..], b"a}b", b"a:b", b"with space", &[b'a'; 65]] {
            assert_eq!(invalid_field(with_field("id", bad)), "id");
        }
    }

    #[test]
    fn a_huge_header_block_is_an_error_not_a_panic() {
        let block = b"x-a: 1\r\n".repeat(40_000);
        assert_eq!(invalid_field(with_field("headers", &block)), "headers");
    }
}
