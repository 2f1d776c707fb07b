//! A response as a worker publishes it.

use crate::{DecodeError, headers, parse_u64};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// One response, encoded as a single binary value:
///
/// ```text
/// 1 SP status CRLF
/// *( name ": " value CRLF )
/// CRLF
/// body
/// ```
///
/// The leading `1` is the protocol version. The same bytes are stored under the result key and
/// carried in the `resp` field of a reply-stream entry (whose other fields are `v` and `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole response body.
    pub body: Bytes,
}

impl QueuedResponse {
    /// Encodes the response into its single-value form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.headers.len() * 32 + self.body.len());
        out.extend_from_slice(b"1 ");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        headers::encode(&self.headers, &mut out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Decodes the single-value form.
    ///
    /// # Errors
    /// When the value is not version 1, the status is not a [final status](crate::is_final_status)
    /// (an interim `1xx`, `101` included, has no place in a stored answer, and a number outside
    /// `200..=599` is no HTTP status), or the header block is broken or has more than
    /// [`MAX_HEADER_LINES`](crate::MAX_HEADER_LINES) lines. Never panics.
    pub fn decode(raw: &[u8]) -> Result<Self, DecodeError> {
        let invalid = |reason: &str| DecodeError::Invalid {
            field: "resp",
            reason: reason.to_owned(),
        };
        let line_end = headers::find(raw, b"\r\n").ok_or_else(|| invalid("no status line"))?;
        let status_line = &raw[..line_end];
        let status = status_line
            .strip_prefix(b"1 ")
            .ok_or_else(|| DecodeError::Version(String::from_utf8_lossy(status_line).into()))?;
        let status = u16::try_from(parse_u64("resp", status)?)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|&status| crate::is_final_status(status))
            .ok_or_else(|| invalid("status is not a final HTTP status (200 to 599)"))?;
        let rest = &raw[line_end + 2..];
        let (block, body) = if let Some(body) = rest.strip_prefix(b"\r\n") {
            (&rest[..0], body)
        } else {
            let end =
                headers::find(rest, b"\r\n\r\n").ok_or_else(|| invalid("unterminated headers"))?;
            (&rest[..end + 2], &rest[end + 4..])
        };
        Ok(Self {
            status,
            headers: headers::decode("resp", block)?,
            body: Bytes::copy_from_slice(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_with_and_without_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let with = QueuedResponse {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"a\":1}\r\n\r\n"),
        };
        assert_eq!(QueuedResponse::decode(&with.encode()).unwrap(), with);
        let bare = QueuedResponse {
            status: StatusCode::NO_CONTENT,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        assert_eq!(QueuedResponse::decode(&bare.encode()).unwrap(), bare);
    }

    #[test]
    fn rejects_garbage() {
        assert!(QueuedResponse::decode(b"").is_err());
        assert!(QueuedResponse::decode(b"2 200\r\n\r\n").is_err());
        assert!(QueuedResponse::decode(b"1 abc\r\n\r\n").is_err());
        assert!(QueuedResponse::decode(b"1 200\r\nx: y\r\n").is_err());
    }

    #[test]
    fn refuses_interim_and_out_of_range_statuses() {
        // 65736 is 200 modulo 2^16; 999 is a valid `StatusCode` but no HTTP status.
        for status in [
            "100", "101", "103", "199", "600", "999", "65736", "0", "1200",
        ] {
            let raw = format!("1 {status}\r\n\r\nbody");
            assert!(
                QueuedResponse::decode(raw.as_bytes()).is_err(),
                "status {status} was accepted"
            );
        }
        for status in [200u16, 204, 302, 404, 599] {
            let raw = format!("1 {status}\r\n\r\n");
            let decoded = QueuedResponse::decode(raw.as_bytes()).unwrap();
            assert_eq!(decoded.status.as_u16(), status);
        }
    }

    #[test]
    fn a_reply_with_a_huge_header_block_is_an_error_not_a_panic() {
        let mut raw = b"1 200\r\n".to_vec();
        raw.extend(b"x-a: 1\r\n".repeat(40_000));
        raw.extend_from_slice(b"\r\n");
        let reply = Reply {
            id: "abc".into(),
            service: "echo".into(),
            response: QueuedResponse {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            },
        };
        let mut fields = reply.to_fields();
        fields[3].1 = raw;
        let decoded = Reply::from_fields(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())));
        assert!(
            matches!(decoded, Err(DecodeError::Invalid { field: "resp", .. })),
            "{decoded:?}"
        );
    }
}

/// One entry of a gateway replica's [`reply_stream`](crate::keys::reply_stream): fields `v`, `id`,
/// `svc` and `resp` (an encoded [`QueuedResponse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The id of the request this answers.
    pub id: String,
    /// The service that answered.
    pub service: String,
    /// The response.
    pub response: QueuedResponse,
}

impl Reply {
    /// The entry's fields in the order they are written with `XADD`.
    pub fn to_fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("v", crate::VERSION.as_bytes().to_vec()),
            ("id", self.id.as_bytes().to_vec()),
            ("svc", self.service.as_bytes().to_vec()),
            ("resp", self.response.encode()),
        ]
    }

    /// Decodes a reply-stream entry from its `(field, value)` pairs.
    pub fn from_fields<'a, I>(fields: I) -> Result<Self, DecodeError>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let (mut v, mut id, mut svc, mut resp) = (None, None, None, None);
        for (name, value) in fields {
            match name {
                b"v" => v = Some(value),
                b"id" => id = Some(value),
                b"svc" => svc = Some(value),
                b"resp" => resp = Some(value),
                _ => {}
            }
        }
        crate::check_version(v)?;
        let text = |field: &'static str, raw: Option<&[u8]>| {
            String::from_utf8(raw.ok_or(DecodeError::Missing(field))?.to_vec()).map_err(|_| {
                DecodeError::Invalid {
                    field,
                    reason: "not UTF-8".into(),
                }
            })
        };
        Ok(Self {
            id: text("id", id)?,
            service: text("svc", svc)?,
            response: QueuedResponse::decode(resp.ok_or(DecodeError::Missing("resp"))?)?,
        })
    }
}
