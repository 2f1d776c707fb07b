//! How a message's body is delimited and whether its connection persists (RFC 9112 sections 6
//! and 9.3): one reading of a head's `Content-Length`, `Transfer-Encoding` and `Connection`
//! fields, gathered while the head is parsed, and one decision from them for a request (the
//! server half) or a response (the client half).

use super::fields::{WireError, parse_content_length, parse_decimal};
use http::StatusCode;

/// How a message body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the connection closes (a response only).
    UntilClose,
}

/// What a head's parser does with a `Content-Length` field it was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LengthField {
    /// The first such field, one plain decimal: kept as it is.
    Keep,
    /// The first such field, a list of equal values: kept as the one decimal, so that nothing
    /// after the parser reads a value it cannot parse.
    Normalize(u64),
    /// A repetition of the first: dropped.
    Drop,
}

/// The delimiting fields of one head, in the order they came.
#[derive(Debug, Default)]
pub(crate) struct Delimiters {
    length: Option<u64>,
    /// A `Transfer-Encoding` field was present.
    coded: bool,
    /// The last transfer coding listed was `chunked`.
    chunked_last: bool,
    /// How many times `chunked` was listed.
    chunked: u32,
    /// A coding other than `chunked` was listed (or an empty list item).
    other_coding: bool,
    close: bool,
    keep_alive: bool,
    /// `Connection` names `upgrade`: the message asks to switch protocols (RFC 9110 section 7.8).
    upgrade: bool,
}

impl Delimiters {
    /// A `Content-Length` field: digits, or a list of identical values (RFC 9110 section 8.6).
    /// Several fields must agree.
    #[inline]
    pub(crate) fn content_length(&mut self, value: &[u8]) -> Result<LengthField, WireError> {
        // Plain: digits without a leading zero, what the gateway passes on as it came.
        let plain = parse_decimal(value).filter(|_| value.len() == 1 || value[0] != b'0');
        let length = match plain {
            Some(n) => n,
            None => parse_content_length(value)?,
        };
        match self.length {
            Some(earlier) if earlier != length => {
                Err(WireError::Invalid("differing content-length values"))
            }
            Some(_) => Ok(LengthField::Drop),
            None => {
                self.length = Some(length);
                Ok(if plain.is_some() {
                    LengthField::Keep
                } else {
                    LengthField::Normalize(length)
                })
            }
        }
    }

    /// A `Transfer-Encoding` field; several fields form one list (RFC 9110 section 5.3).
    #[inline]
    pub(crate) fn transfer_encoding(&mut self, value: &[u8]) {
        self.coded = true;
        for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            // Parameters (`;q=...`) make a coding another coding, never `chunked`.
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            self.chunked += u32::from(chunked);
            self.other_coding |= !chunked;
            self.chunked_last = chunked;
        }
    }

    /// A `Connection` field; `named` is called with every option other than `close` and
    /// `keep-alive` (the names of more hop-by-hop fields).
    #[inline]
    pub(crate) fn connection(&mut self, value: &[u8], mut named: impl FnMut(&[u8])) {
        for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                self.upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                named(token);
            }
        }
    }

    /// Whether `Connection` names `upgrade`.
    pub(crate) fn asks_upgrade(&self) -> bool {
        self.upgrade
    }

    /// Whether a `Transfer-Encoding` field was present.
    pub(crate) fn is_coded(&self) -> bool {
        self.coded
    }

    /// Whether the connection may carry another message after this one: HTTP/1.1 unless a side
    /// said `close`, HTTP/1.0 only when asked (RFC 9112 section 9.3).
    pub(crate) fn keep_alive(&self, http10: bool) -> bool {
        !self.close && (!http10 || self.keep_alive)
    }

    /// A request's framing (RFC 9112 section 6.3). A request with a transfer coding other than
    /// `chunked` is not implemented (`501`, as nginx answers); with `chunked` anywhere but once
    /// and last, or in HTTP/1.0 (which has no chunked coding), it cannot be delimited. A request
    /// with both `Transfer-Encoding` and `Content-Length` is refused rather than guessed at: it
    /// is the classic request-smuggling shape.
    pub(crate) fn request(&self, http10: bool) -> Result<Framing, WireError> {
        if self.coded {
            if self.length.is_some() {
                return Err(WireError::Invalid(
                    "both transfer-encoding and content-length",
                ));
            }
            if http10 || !self.chunked_last {
                return Err(WireError::Invalid("transfer-encoding"));
            }
            if self.other_coding {
                return Err(WireError::NotImplemented);
            }
            if self.chunked > 1 {
                return Err(WireError::Invalid("chunked applied more than once"));
            }
            return Ok(Framing::Chunked);
        }
        Ok(match self.length {
            None | Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
        })
    }

    /// A final response's framing and whether its connection persists (RFC 9112 section 6.3):
    /// no body after `HEAD`, `204` and `304`; `Transfer-Encoding` overrides `Content-Length`,
    /// and a response with both, or whose last coding is not `chunked`, can only end with the
    /// connection, which is not reused after it; no length at all also reads to the close.
    pub(crate) fn response(
        &self,
        status: StatusCode,
        head_request: bool,
        http10: bool,
    ) -> (Framing, bool) {
        let keep_alive = self.keep_alive(http10);
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return (Framing::None, keep_alive);
        }
        if self.coded {
            let chunked = self.chunked_last && !http10;
            let trusted = chunked && self.length.is_none();
            let framing = if chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            };
            return (framing, keep_alive && trusted);
        }
        match self.length {
            Some(n) => (Framing::Length(n), keep_alive),
            None => (Framing::UntilClose, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)], http10: bool) -> Result<Framing, WireError> {
        let mut d = Delimiters::default();
        for (name, value) in fields {
            match *name {
                "cl" => {
                    d.content_length(value.as_bytes())?;
                }
                "te" => d.transfer_encoding(value.as_bytes()),
                _ => d.connection(value.as_bytes(), |_| {}),
            }
        }
        d.request(http10)
    }

    #[test]
    fn a_request_is_chunked_only_with_exactly_chunked() {
        assert_eq!(
            request(&[("te", "chunked")], false).unwrap(),
            Framing::Chunked
        );
        assert_eq!(
            request(&[("te", "Chunked")], false).unwrap(),
            Framing::Chunked
        );
        for (fields, not_implemented) in [
            (&[("te", "gzip, chunked")][..], true),
            (&[("te", "identity"), ("te", "chunked")][..], true),
            (&[("te", "chunked, gzip")][..], false),
            (&[("te", "chunked, chunked")][..], false),
            (&[("te", "chunked"), ("te", "chunked")][..], false),
            (&[("te", "xchunked")][..], false),
            (&[("te", "chunked;q=1")][..], false),
            (&[("te", "")][..], false),
            (&[("te", "chunked"), ("cl", "3")][..], false),
        ] {
            let error = request(fields, false).expect_err("refused");
            assert_eq!(
                matches!(error, WireError::NotImplemented),
                not_implemented,
                "{fields:?}: {error}"
            );
        }
        assert!(request(&[("te", "chunked")], true).is_err());
    }

    #[test]
    fn lengths_must_agree_and_repeats_are_dropped() {
        let mut d = Delimiters::default();
        assert_eq!(d.content_length(b"5").unwrap(), LengthField::Keep);
        assert_eq!(d.content_length(b"5").unwrap(), LengthField::Drop);
        assert_eq!(d.content_length(b"5, 5").unwrap(), LengthField::Drop);
        assert!(d.content_length(b"6").is_err());
        let mut d = Delimiters::default();
        assert_eq!(
            d.content_length(b"7, 7").unwrap(),
            LengthField::Normalize(7)
        );
        assert_eq!(d.request(false).unwrap(), Framing::Length(7));
        assert_eq!(request(&[("cl", "0")], false).unwrap(), Framing::None);
    }

    #[test]
    fn responses_frame_and_persist_as_rfc_9112_says() {
        let ok = StatusCode::OK;
        let response = |fields: &[(&str, &str)], http10: bool| {
            let mut d = Delimiters::default();
            for (name, value) in fields {
                match *name {
                    "cl" => {
                        d.content_length(value.as_bytes()).unwrap();
                    }
                    "te" => d.transfer_encoding(value.as_bytes()),
                    _ => d.connection(value.as_bytes(), |_| {}),
                }
            }
            d.response(ok, false, http10)
        };
        assert_eq!(response(&[("cl", "5")], false), (Framing::Length(5), true));
        assert_eq!(
            response(&[("te", "chunked")], false),
            (Framing::Chunked, true)
        );
        assert_eq!(
            response(&[("te", "chunked"), ("cl", "3")], false),
            (Framing::Chunked, false)
        );
        assert_eq!(
            response(&[("te", "chunked, gzip")], false),
            (Framing::UntilClose, false)
        );
        assert_eq!(response(&[], false), (Framing::UntilClose, false));
        assert_eq!(response(&[("cl", "1")], true), (Framing::Length(1), false));
        assert_eq!(
            response(&[("cl", "1"), ("c", "keep-alive")], true),
            (Framing::Length(1), true)
        );
        assert_eq!(
            response(&[("cl", "1"), ("c", "close, keep-alive")], true),
            (Framing::Length(1), false)
        );
        let d = Delimiters::default();
        assert_eq!(
            d.response(StatusCode::NO_CONTENT, false, false),
            (Framing::None, true)
        );
        assert_eq!(d.response(ok, true, false), (Framing::None, true));
    }
}
