//! Differential request smuggling: a table of hostile requests written byte for byte to the
//! gateway, in front of a raw upstream that records exactly what it receives and parses it more
//! strictly than any real server would. Each case asserts that the upstream saw exactly the
//! request(s) the gateway decided on (method, target, body, the header fields that matter), or
//! nothing at all with a `4xx`/`501` and a close to the client; and that the client got one
//! answer per forwarded request, each the upstream's own.
//!
//! Then the malicious upstream: responses with both lengths, two lengths, split responses, bytes
//! after a response, interim-response games. None of it may reach the next client of a reused
//! upstream connection, which is checked by asking again on a new client connection.
//!
//! Both tables run against the plain listener and the TLS one (HTTP/1.1 by ALPN), which must
//! behave alike (they are the same server); a listener's own table of known defects would say
//! where they differ.
//!
//! Cases marked `known_defect` assert the right behaviour only with `HOLDLINE_STRICT_WIRE=1`;
//! otherwise they print whether the defect still reproduces, and fail once it no longer does (so
//! the mark is removed with the fix). References: RFC 9112 (HTTP/1.1), RFC 9110 (semantics).

mod support;
mod wire;

use futures_util::future::join_all;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use support::{LISTEN, TestGateway};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wire::{Answer, End, Message, RawClient, RawUpstream, Verdict, judge, lossy};

/// A request that, sent after a case on a connection that stays open, shows that the
/// connection still frames requests where the client thinks they are.
const END: &[u8] = b"GET /end HTTP/1.1\r\nHost: h\r\n\r\n";

/// The statuses a refused ambiguous request may get: `400`, or `501` for a transfer coding the
/// gateway does not implement (RFC 9112 section 6.1; nginx answers 501, haproxy 422).
const BAD: &[u16] = &[400];
const BAD_CODING: &[u16] = &[400, 422, 501];

/// A gateway with one service, routed from `/`, at `upstream`; bodies above 1 MiB are refused.
/// With `tls`, it also has an `https` listener.
async fn gateway(upstream: &RawUpstream, tls: Option<&Tls>) -> TestGateway {
    let listen = match tls {
        None => LISTEN.to_owned(),
        Some(tls) => tls.sections(),
    };
    TestGateway::start(&format!(
        r#"{listen}
[limits]
max_body_bytes = 1048576
header_read_timeout = "5s"
[services.up]
endpoints = ["{}"]
first_byte_timeout = "5s"
[[routes]]
prefix = "/"
service = "up"
"#,
        upstream.url()
    ))
    .await
}

/// A self-signed certificate for `localhost` in files the gateway reads, and a client config
/// that trusts it and offers only HTTP/1.1.
struct Tls {
    dir: tempfile::TempDir,
    connector: TlsConnector,
}

impl Tls {
    fn new() -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("write cert");
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .expect("write key");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).expect("trust");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            dir,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// The `[listen]` and `[tls]` sections of a gateway with both listeners.
    fn sections(&self) -> String {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        format!(
            "[listen]\nhttp = \"127.0.0.1:1\"\nhttps = \"127.0.0.1:1\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            path("cert.pem"),
            path("key.pem")
        )
    }
}

/// Which of the gateway's listeners a client connects to.
#[derive(Clone, Copy)]
enum Listener<'a> {
    Plain,
    /// The `https` listener, speaking HTTP/1.1 (by ALPN).
    Tls(&'a Tls),
}

impl Listener<'_> {
    fn tls(&self) -> Option<&Tls> {
        match self {
            Self::Plain => None,
            Self::Tls(tls) => Some(tls),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Tls(_) => "tls",
        }
    }

    async fn connect(&self, gw: &TestGateway) -> RawClient {
        match self {
            Self::Plain => RawClient::connect(gw.addr).await,
            Self::Tls(tls) => {
                let tcp = TcpStream::connect(gw.https.expect("https listener"))
                    .await
                    .expect("connect");
                let name = ServerName::try_from("localhost").expect("name");
                let stream = tokio::time::timeout(wire::IO_LIMIT, tls.connector.connect(name, tcp))
                    .await
                    .expect("handshake in time")
                    .expect("handshake");
                RawClient::over(stream)
            }
        }
    }
}

// === the request table ===

/// What the upstream must receive for one forwarded request.
#[derive(Debug, Clone, Copy)]
struct Want {
    method: &'static str,
    target: &'static str,
    body: &'static [u8],
    /// Fields that must arrive exactly once, with exactly this value.
    has: &'static [(&'static str, &'static [u8])],
    /// Fields that must arrive exactly once, whatever their value.
    once: &'static [&'static str],
    /// Fields that must not arrive.
    lacks: &'static [&'static str],
    /// Trailer fields that must not arrive.
    trailers_lack: &'static [&'static str],
}

const fn want(method: &'static str, target: &'static str) -> Want {
    Want {
        method,
        target,
        body: b"",
        has: &[],
        once: &[],
        lacks: &[],
        trailers_lack: &[],
    }
}

impl Want {
    const fn body(self, body: &'static [u8]) -> Self {
        Self { body, ..self }
    }
    const fn has(self, has: &'static [(&'static str, &'static [u8])]) -> Self {
        Self { has, ..self }
    }
    const fn once(self, once: &'static [&'static str]) -> Self {
        Self { once, ..self }
    }
    const fn lacks(self, lacks: &'static [&'static str]) -> Self {
        Self { lacks, ..self }
    }
    const fn trailers_lack(self, trailers_lack: &'static [&'static str]) -> Self {
        Self {
            trailers_lack,
            ..self
        }
    }

    fn check(&self, got: &Message) -> Result<(), String> {
        if (got.method(), got.target()) != (self.method, self.target) {
            return Err(format!(
                "upstream got {} {}, expected {} {}",
                got.method(),
                got.target(),
                self.method,
                self.target
            ));
        }
        if got.body != self.body {
            return Err(format!(
                "upstream got body {:?}, expected {:?}",
                lossy(&got.body),
                lossy(self.body)
            ));
        }
        for (name, value) in self.has {
            let values = got.values(name);
            if values != [*value] {
                return Err(format!(
                    "upstream got {name}: {:?}, expected exactly {:?}",
                    values.iter().map(|v| lossy(v)).collect::<Vec<_>>(),
                    lossy(value)
                ));
            }
        }
        for name in self.once {
            let count = got.values(name).len();
            if count != 1 {
                return Err(format!("upstream got {name} {count} times, expected once"));
            }
        }
        for name in self.lacks {
            if !got.values(name).is_empty() {
                return Err(format!("upstream got {name}, which must not cross"));
            }
        }
        for name in self.trailers_lack {
            if !got.trailer_values(name).is_empty() {
                return Err(format!("upstream got trailer {name}, which must not cross"));
            }
        }
        Ok(())
    }
}

/// Whether the client connection stays open after the forwarded requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Open: [`END`] is sent on it and must be answered.
    Open,
    /// Closed by the gateway after the last response.
    Closed,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Refused with one of these statuses and a close; the upstream saw nothing.
    Refused(&'static [u16]),
    /// The head is fine, the body is not: an error status (or a close), and the upstream never
    /// saw a complete request (at most one cut off in its body).
    BodyRefused(&'static [u16]),
    /// Forwarded exactly as these requests, each answered with its own response.
    Forwarded(&'static [Want], After),
    /// These requests forwarded and answered, then a refusal with one of the statuses and a
    /// close; nothing after them reached the upstream.
    ThenRefused(&'static [Want], &'static [u16]),
    /// Either refused (as [`Expect::Refused`]) or forwarded (as [`Expect::Forwarded`]): RFC 9112
    /// lets a recipient do both, and both are safe because the gateway re-frames what it
    /// forwards. The upstream's strict parser still has to accept what it got.
    Either(&'static [u16], &'static [Want], After),
    /// Answered by the gateway itself with one of these statuses and forwarded nowhere; the
    /// connection may close or stay open.
    Answered(&'static [u16]),
}

struct Case {
    name: &'static str,
    /// Everything the client writes at once.
    send: Vec<u8>,
    /// When set: wait for an interim response of this status, then write these bytes.
    then_send: Option<(u16, Vec<u8>)>,
    expect: Expect,
    /// Why this is the right behaviour, with what nginx and haproxy do where it guided the
    /// choice.
    why: &'static str,
    /// Set while the gateway is known to get this case wrong.
    known_defect: Option<&'static str>,
}

fn case(name: &'static str, send: &str, expect: Expect, why: &'static str) -> Case {
    Case {
        name,
        send: send.as_bytes().to_vec(),
        then_send: None,
        expect,
        why,
        known_defect: None,
    }
}

const GET_ROOT: &[Want] = &[want("GET", "/")];
const POST_HELLO: &[Want] = &[want("POST", "/").body(b"hello")];

fn cases() -> Vec<Case> {
    use After::{Closed, Open};
    use Expect::*;
    let mut cases = vec![
        // --- CL.TE and TE.CL: both framings in one request.
        case(
            "cl_te",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            Refused(BAD),
            "RFC 9112 6.1: a request with both may be refused and the connection must close; \
             refusing is what nginx does",
        ),
        case(
            "te_cl",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            Refused(BAD),
            "RFC 9112 6.1, as cl_te with the fields the other way round",
        ),
        case(
            "cl_zero_te",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD),
            "RFC 9112 6.1: a zero length does not make both fields less ambiguous",
        ),
        case(
            "te_identity_cl",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello",
            Refused(BAD_CODING),
            "RFC 9112 6.1: any Transfer-Encoding next to Content-Length is the smuggling shape",
        ),
        // --- TE.TE: obfuscated Transfer-Encoding.
        case(
            "te_xchunked_cl",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello",
            Refused(BAD_CODING),
            "RFC 9112 6.1: an unknown coding with a length is refused, never read as the length",
        ),
        case(
            "te_xchunked",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9112 6.1: a coding the server does not understand is 501 (nginx 501, haproxy 400)",
        ),
        case(
            "te_leading_space",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 5.5: whitespace around a field value is not part of it",
        ),
        case(
            "te_tab",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 5.6.3: HTAB is optional whitespace like SP",
        ),
        case(
            "te_upper_case",
            "POST / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 5.1, 7.1: field names and coding names are case-insensitive",
        ),
        case(
            "te_space_before_colon",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
            Refused(BAD),
            "RFC 9112 5.1: whitespace between name and colon MUST be answered with 400",
        ),
        case(
            "te_chunked_identity",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9112 6.3: chunked not last leaves a request without a length: 400",
        ),
        case(
            "te_gzip_chunked",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9112 6.1: the gateway decodes no gzip, so it cannot forward the body as plain \
             chunked; nginx answers 501, haproxy 422",
        ),
        case(
            "te_identity_chunked",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9112 6.1 and 7: identity is no registered coding any more, so this is an unknown \
             coding before chunked, as te_gzip_chunked",
        ),
        case(
            "te_two_fields_chunked_last",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9110 5.3: two fields form one list, `gzip, chunked`, as te_gzip_chunked",
        ),
        case(
            "te_two_fields_chunked_first",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9112 6.3: the list is `chunked, xchunked`: chunked is not last",
        ),
        case(
            "te_duplicate_chunked",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Either(BAD_CODING, POST_HELLO, Open),
            "RFC 9112 7: chunked MUST NOT be applied twice; refusing is right, and so is decoding \
             once and re-framing, since the upstream then sees one chunked body",
        ),
        case(
            "te_obs_fold",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD),
            "RFC 9112 5.2: obs-fold in a request MUST be refused or replaced by SP; a folded \
             framing field is refused",
        ),
        case(
            "te_vertical_tab",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 5.5: VT is no whitespace but a control byte, invalid in a field value",
        ),
        case(
            "te_nul",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\x00\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD),
            "RFC 9110 5.5: NUL in a field value MUST be refused or replaced; never ignored",
        ),
        case(
            "te_quoted",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD_CODING),
            "RFC 9112 7: a coding is a token; a quoted string is no coding the gateway knows",
        ),
        case(
            "te_empty_list_element",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Either(BAD_CODING, POST_HELLO, Open),
            "RFC 9110 5.6.1: empty list elements are to be ignored, so this is chunked; \
             refusing it is safe too",
        ),
        case(
            "te_in_http10",
            "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused(BAD),
            "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing; refuse and close",
        ),
        case(
            "te_underscore_name",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(
                const {
                    &[want("POST", "/")
                        .body(b"hello")
                        .lacks(&["transfer-encoding"])]
                },
                Open,
            ),
            "RFC 9110 5.1: `Transfer_Encoding` is another field; the framing is the length",
        ),
        case(
            "te_get_chunked",
            "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(const { &[want("GET", "/").body(b"hello")] }, Open),
            "RFC 9110 9.3.1: a GET body has no meaning but is framed like any other",
        ),
        // --- Content-Length games.
        case(
            "cl_duplicate_same",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            Either(
                BAD,
                const {
                    &[want("POST", "/")
                        .body(b"hello")
                        .has(&[("content-length", b"5")])]
                },
                Open,
            ),
            "RFC 9110 8.6: identical lengths may be taken as one (then forwarded as one value) \
             or refused (nginx)",
        ),
        case(
            "cl_list_same",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
            Either(
                BAD,
                const {
                    &[want("POST", "/")
                        .body(b"hello")
                        .has(&[("content-length", b"5")])]
                },
                Open,
            ),
            "RFC 9110 8.6: a list of identical lengths may be taken as one, and is then \
             forwarded as one normalized value; nginx answers 400",
        ),
        case(
            "cl_differing",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            Refused(BAD),
            "RFC 9112 6.3: differing lengths are unrecoverable: 400 and close",
        ),
        case(
            "cl_list_differing",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!",
            Refused(BAD),
            "RFC 9112 6.3, as cl_differing",
        ),
        case(
            "cl_plus",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 8.6: Content-Length is 1*DIGIT; a sign is invalid",
        ),
        case(
            "cl_negative",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 8.6: 1*DIGIT",
        ),
        case(
            "cl_hex",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 8.6: 1*DIGIT, decimal only",
        ),
        case(
            "cl_overflow",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
            Refused(&[400, 413]),
            "a length that wraps to 5 in 64 bits must not be read as 5",
        ),
        case(
            "cl_huge",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\nhello",
            Refused(&[413]),
            "above max_body_bytes: 413 before anything reaches the upstream",
        ),
        case(
            "cl_leading_zeros",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\nhello",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 8.6: 005 is 1*DIGIT, five bytes",
        ),
        case(
            "cl_inner_space",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 8.6: not 1*DIGIT",
        ),
        case(
            "cl_empty",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 8.6: an empty length is invalid, not zero",
        ),
        case(
            "cl_trailing_garbage",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5x\r\n\r\nhello",
            Refused(BAD),
            "RFC 9110 8.6: not 1*DIGIT",
        ),
        case(
            "cl_space_before_colon",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello",
            Refused(BAD),
            "RFC 9112 5.1: whitespace before the colon MUST get 400",
        ),
        case(
            "cl_tab_value",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\t5\r\n\r\nhello",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 5.6.3: HTAB is optional whitespace",
        ),
        case(
            "cl_body_is_a_request",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(
                const { &[want("POST", "/").body(b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")] },
                Open,
            ),
            "the body is a body, whatever it looks like",
        ),
        case(
            "cl_get_with_body",
            "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(const { &[want("GET", "/").body(b"hello")] }, Open),
            "RFC 9110 9.3.1: a GET with a body keeps its framing, or its body becomes the next \
             request upstream",
        ),
        case(
            "cl_then_pipelined",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /second HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(
                const { &[want("POST", "/").body(b"abc"), want("GET", "/second")] },
                Open,
            ),
            "RFC 9112 9.3.2: a pipelined request starts where the length ends",
        ),
        // --- Chunked coding.
        case(
            "chunk_size_overflow",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
            BodyRefused(&[400, 413]),
            "a chunk size that wraps to 5 in 64 bits must not be read as 5",
        ),
        case(
            "chunk_size_negative",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            BodyRefused(BAD),
            "RFC 9112 7.1: chunk-size is 1*HEXDIG",
        ),
        case(
            "chunk_size_0x",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
            BodyRefused(BAD),
            "RFC 9112 7.1: 1*HEXDIG, no prefix; `0x5` must not be read as a last chunk",
        ),
        case(
            "chunk_size_upper_hex",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
            Forwarded(const { &[want("POST", "/").body(b"0123456789")] }, Open),
            "RFC 9112 7.1: HEXDIG includes upper case",
        ),
        case(
            "chunk_extension",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"va;lue\";x\r\nhello\r\n0;last\r\n\r\n",
            Forwarded(POST_HELLO, Open),
            "RFC 9112 7.1.1: extensions are ignored by a recipient that does not know them",
        ),
        case(
            "chunk_extension_too_long",
            &format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n",
                "x".repeat(8000)
            ),
            Either(&[400, 413], POST_HELLO, Open),
            "RFC 9112 7.1.1: a recipient ignores extensions it does not know; what has to be \
             bounded is the line the gateway buffers while it waits for its end, and a line that \
             arrives whole is bounded by the read buffer",
        ),
        case(
            "chunk_size_leading_space",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
            Either(BAD, POST_HELLO, Open),
            "RFC 9112 7.1 has no whitespace before the size; refusing is right, and reading 5 is \
             safe as the gateway re-frames the body",
        ),
        case(
            "chunk_size_trailing_space",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
            Either(BAD, POST_HELLO, Open),
            "RFC 9112 7.1.1 allows BWS only before an extension; safe either way after re-framing",
        ),
        case(
            "chunk_data_without_crlf",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            BodyRefused(BAD),
            "RFC 9112 7.1: chunk data is followed by CRLF; anything else is a broken body",
        ),
        case(
            "chunk_data_longer_than_size",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            BodyRefused(BAD),
            "RFC 9112 7.1: the size decides, and `lo` is no CRLF",
        ),
        case(
            "chunk_lf_only",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
            BodyRefused(BAD),
            "RFC 9112 7.1 writes CRLF after chunk data; a lone LF there is refused (a size line \
             ended by LF alone is not read as a different size either)",
        ),
        case(
            "chunk_body_is_a_request",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n\r\n0\r\n\r\n",
            Forwarded(
                const { &[want("POST", "/").body(b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")] },
                Open,
            ),
            "chunk data is data, whatever it looks like",
        ),
        case(
            "chunked_then_pipelined",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(
                const { &[want("POST", "/").body(b"abc"), want("GET", "/second")] },
                Open,
            ),
            "RFC 9112 9.3.2: the next request starts after the last chunk and trailers",
        ),
        case(
            "chunked_trailer_allowed",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 6.5: trailers end the body; what follows is the next request",
        ),
        case(
            "chunked_trailer_forbidden",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n",
            Forwarded(
                const {
                    &[want("POST", "/")
                        .body(b"hello")
                        .has(&[("host", b"h")])
                        .trailers_lack(&["content-length", "transfer-encoding", "host"])]
                },
                Open,
            ),
            "RFC 9110 6.5.1: framing, routing and Host fields are forbidden in trailers and must \
             not be forwarded, lest an upstream merge them into the head",
        ),
        // --- Line endings, bare CR, control bytes, whitespace.
        case(
            "lf_only_head",
            "GET / HTTP/1.1\nHost: h\n\n",
            Either(BAD, GET_ROOT, Open),
            "RFC 9112 2.2: a recipient MAY take a lone LF as a line end; the upstream must then \
             get CRLF",
        ),
        case(
            "bare_cr_in_value",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
            Either(
                BAD,
                const { &[want("GET", "/").has(&[("x-a", b"a b")])] },
                Open,
            ),
            "RFC 9112 2.2: a bare CR MUST be refused or replaced with SP before forwarding",
        ),
        case(
            "bare_cr_line_end",
            "GET / HTTP/1.1\r\nHost: h\rX-A: a\r\n\r\n",
            Refused(BAD),
            "RFC 9112 2.2: a bare CR is no line end",
        ),
        case(
            "nul_in_value",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
            Refused(BAD),
            "RFC 9110 5.5: NUL MUST be refused (or replaced), never forwarded",
        ),
        case(
            "control_in_value",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n",
            Refused(BAD),
            "RFC 9110 5.5: control bytes are invalid in a field value",
        ),
        case(
            "del_in_value",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n",
            Refused(BAD),
            "RFC 9110 5.5: DEL is a control byte",
        ),
        case(
            "nul_in_target",
            "GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n",
            Refused(BAD),
            "RFC 9112 3.2: a target is URI characters only",
        ),
        case(
            "space_in_target",
            "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
            Refused(BAD),
            "RFC 9112 3: a request line has exactly three parts",
        ),
        case(
            "space_before_colon",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n",
            Refused(BAD),
            "RFC 9112 5.1: whitespace between a field name and the colon MUST get 400",
        ),
        case(
            "whitespace_before_first_field",
            "GET / HTTP/1.1\r\n Host: h\r\n\r\n",
            Refused(BAD),
            "RFC 9112 2.2: a field line starting with whitespace after the start line is refused \
             (or ignored, which leaves no Host: 400 as well)",
        ),
        case(
            "obs_fold",
            "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",
            Either(
                BAD,
                const { &[want("GET", "/").has(&[("x-a", b"a b")])] },
                Open,
            ),
            "RFC 9112 5.2: obs-fold MUST be refused or replaced with SP before forwarding",
        ),
        case(
            "bad_name_byte",
            "GET / HTTP/1.1\r\nHost: h\r\nX@A: b\r\n\r\n",
            Refused(BAD),
            "RFC 9110 5.1: a field name is a token",
        ),
        case(
            "empty_name",
            "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n",
            Refused(BAD),
            "RFC 9110 5.1: a field name is a non-empty token",
        ),
        Case {
            send: b"GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xe9\r\n\r\n".to_vec(),
            ..case(
                "obs_text_value",
                "",
                Forwarded(
                    const { &[want("GET", "/").has(&[("x-a", b"caf\xe9")])] },
                    Open,
                ),
                "RFC 9110 5.5: obs-text is allowed in values and forwarded as it is",
            )
        },
        case(
            "two_spaces_in_request_line",
            "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            Either(BAD, GET_ROOT, Open),
            "RFC 9112 3: SP separates the parts; a recipient MAY split on whitespace runs",
        ),
        case(
            "version_1_2",
            "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
            Either(&[400, 505], GET_ROOT, Open),
            "RFC 9110 2.5: a 1.x minor version the server lacks is served as 1.1, or refused",
        ),
        case(
            "http_0_9",
            "GET /\r\n\r\n",
            Refused(&[400, 505]),
            "HTTP/0.9 has no headers to frame anything by: refused",
        ),
        case(
            "lowercase_method",
            "get / HTTP/1.1\r\nHost: h\r\n\r\n",
            Either(&[400, 405, 501], const { &[want("get", "/")] }, Open),
            "RFC 9110 9.1: methods are case-sensitive; `get` is another method, forwarded as it is",
        ),
        // --- Host and the request target.
        case(
            "two_hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Refused(BAD),
            "RFC 9112 3.2: more than one Host MUST get 400",
        ),
        case(
            "two_hosts_same",
            "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
            Refused(BAD),
            "RFC 9112 3.2: more than one Host MUST get 400, equal or not",
        ),
        case(
            "no_host",
            "GET / HTTP/1.1\r\n\r\n",
            Refused(BAD),
            "RFC 9112 3.2: an HTTP/1.1 request without Host MUST get 400",
        ),
        case(
            "host_userinfo",
            "GET / HTTP/1.1\r\nHost: user@h\r\n\r\n",
            Refused(BAD),
            "RFC 9110 7.2: Host is uri-host and port, no userinfo",
        ),
        case(
            "absolute_form_other_host",
            "GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
            Forwarded(
                const { &[want("GET", "/x").has(&[("host", b"a.example")])] },
                Open,
            ),
            "RFC 9112 3.2.2: with an absolute-form target the Host field MUST be ignored and \
             the target's authority used; the upstream gets origin-form (3.2.1)",
        ),
        case(
            "absolute_form_userinfo",
            "GET http://user:pw@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
            Refused(BAD),
            "RFC 9110 4.2.4: userinfo is deprecated and a recipient ought to treat it as an error; \
             nginx refuses it and haproxy answers 400",
        ),
        case(
            "absolute_form_same_host",
            "GET http://h/x?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(
                const { &[want("GET", "/x?q=1").has(&[("host", b"h")])] },
                Open,
            ),
            "RFC 9112 3.2.1: the upstream gets origin-form",
        ),
        case(
            "absolute_form_no_host",
            "GET http://h/x HTTP/1.1\r\n\r\n",
            Refused(BAD),
            "RFC 9112 3.2: HTTP/1.1 needs Host even with an absolute-form target",
        ),
        // --- HTTP/1.0 and connection persistence.
        case(
            "http10_keep_alive",
            "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Forwarded(const { &[want("GET", "/a"), want("GET", "/b")] }, Open),
            "RFC 9112 9.3 and C.2.2: an HTTP/1.0 client that asks for keep-alive keeps its \
             connection; each response is length-delimited",
        ),
        case(
            "http10_closes",
            "GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
            Forwarded(const { &[want("GET", "/a")] }, Closed),
            "RFC 9112 9.3: HTTP/1.0 without keep-alive closes after the response; /b is never read",
        ),
        case(
            "http10_body",
            "POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(POST_HELLO, Closed),
            "RFC 9112 6.3: a length frames an HTTP/1.0 body",
        ),
        case(
            "connection_close_then_pipelined",
            "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(const { &[want("GET", "/a")] }, Closed),
            "RFC 9112 9.6: nothing after a request with `close` is processed",
        ),
        // --- Expect: 100-continue.
        case(
            "expect_body_sent_at_once",
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(POST_HELLO, Open),
            "RFC 9110 10.1.1: a client may send its body without waiting for 100",
        ),
        case(
            "expect_without_body",
            "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            Forwarded(GET_ROOT, Open),
            "RFC 9110 10.1.1: 100-continue without content is not to be waited for",
        ),
        case(
            "expect_unknown",
            "GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
            Either(&[417], GET_ROOT, Open),
            "RFC 9110 10.1.1: another expectation MAY get 417",
        ),
        case(
            "expect_zero_length_then_pipelined",
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(const { &[want("POST", "/"), want("GET", "/second")] }, Open),
            "a zero length has no body to wait for: what follows is the next request",
        ),
        case(
            "expect_body_is_a_request",
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            Forwarded(
                const { &[want("POST", "/").body(b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")] },
                Open,
            ),
            "bytes sent instead of waiting for 100 are the body, not a request",
        ),
        Case {
            then_send: Some((100, b"hello".to_vec())),
            ..case(
                "expect_waits_for_100",
                "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                Forwarded(POST_HELLO, Open),
                "RFC 9110 10.1.1: a client that waits gets 100 Continue, then its answer",
            )
        },
        // --- Pipelining after a malformed request.
        case(
            "good_then_malformed",
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
            ThenRefused(const { &[want("GET", "/a")] }, BAD),
            "the good request is answered, the bad one refused, and nothing after it is read",
        ),
        case(
            "malformed_then_good",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n",
            Refused(BAD),
            "after a refused head the connection closes: /second is never forwarded",
        ),
        case(
            "cl_te_then_pipelined",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            Refused(BAD),
            "RFC 9112 6.1: refused and closed, so neither framing's next request is read",
        ),
        // --- Connection-named and reserved fields.
        case(
            "connection_names_host",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: host\r\n\r\n",
            Forwarded(const { &[want("GET", "/").once(&["host"])] }, Open),
            "RFC 9110 7.6.1: Connection names hop-by-hop fields, but the gateway's own Host is \
             set after removing them",
        ),
        case(
            "connection_names_request_id",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-request-id\r\n\r\n",
            Forwarded(const { &[want("GET", "/").once(&["x-request-id"])] }, Open),
            "the request id is the gateway's field: a client cannot remove it",
        ),
        case(
            "connection_names_forwarded_for",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-forwarded-for\r\n\r\n",
            Forwarded(
                const { &[want("GET", "/").once(&["x-forwarded-for"])] },
                Open,
            ),
            "x-forwarded-for is the gateway's field: a client cannot remove it",
        ),
        case(
            "connection_names_content_length",
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(POST_HELLO, Open),
            "the body keeps a framing upstream whatever Connection names, or it becomes the next \
             request there",
        ),
        case(
            "connection_names_transfer_encoding",
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(POST_HELLO, Open),
            "as connection_names_content_length, for a chunked body",
        ),
        case(
            "connection_named_fields_removed",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\r\n",
            Forwarded(
                const {
                    &[want("GET", "/").lacks(&[
                        "x-secret",
                        "keep-alive",
                        "proxy-connection",
                        "connection",
                    ])]
                },
                Open,
            ),
            "RFC 9110 7.6.1: fields that Connection names, and Connection itself, are not forwarded",
        ),
        case(
            "upgrade_not_forwarded",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
            Forwarded(
                const { &[want("GET", "/").lacks(&["upgrade", "http2-settings", "connection"])] },
                Open,
            ),
            "RFC 9110 7.8: an upgrade is hop-by-hop; a forwarded h2c upgrade that the upstream \
             accepted would switch a connection the gateway still reads as HTTP/1.1",
        ),
        case(
            "reserved_holdline_fields",
            "GET / HTTP/1.1\r\nHost: h\r\nHoldline-Not-Processed: 1\r\nHoldline-Dead-Letter: 1\r\nHoldline-Queue-Id: x\r\nHoldline-Path: queue\r\n\r\n",
            Forwarded(
                const {
                    &[want("GET", "/").lacks(&[
                        "holdline-not-processed",
                        "holdline-dead-letter",
                        "holdline-queue-id",
                        "holdline-path",
                    ])]
                },
                Open,
            ),
            "holdline-* is the gateway's own namespace: removed from client requests",
        ),
        // --- Limits.
        case(
            "too_many_fields",
            &format!(
                "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
                (0..150)
                    .map(|i| format!("X-{i}: 1\r\n"))
                    .collect::<String>()
            ),
            Refused(&[400, 431]),
            "RFC 6585 5: too many fields is 431 before anything is forwarded",
        ),
        case(
            "head_too_large",
            &format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
                "a".repeat(70_000)
            ),
            Refused(&[400, 431]),
            "RFC 6585 5: a head larger than max_header_bytes is 431",
        ),
        case(
            "connect_method",
            "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
            Answered(&[400, 405, 501]),
            "RFC 9110 9.3.6: a 2xx to CONNECT tells the client a tunnel is open and carries no \
             framing; a reverse proxy that opens no tunnel answers CONNECT itself (405 or 501) \
             and forwards nothing",
        ),
    ];
    cases.push(Case {
        send: {
            let mut send =
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000, 2000000\r\n\r\n".to_vec();
            send.resize(send.len() + 2_000_000, b'a');
            send
        },
        ..case(
            "cl_list_over_the_body_limit",
            "",
            Refused(&[400, 413]),
            "a list of lengths is held to max_body_bytes like one length (nginx answers 400)",
        )
    });
    cases
}

#[tokio::test]
async fn every_request_reaches_the_upstream_exactly_as_the_gateway_decided() {
    request_table(Listener::Plain, &[]).await;
}

/// How the TLS listener's known defects differ from the plain one's: `Some` marks a case that
/// fails on TLS only, `None` clears the mark of one that fails on the plain listener only. (Both
/// listeners serve HTTP/1.1 with the gateway's own server, so there are none.)
const TLS_DEFECTS: &[(&str, Option<&str>)] = &[];

#[tokio::test]
async fn every_request_over_tls_reaches_the_upstream_exactly_as_the_gateway_decided() {
    let tls = Tls::new();
    request_table(Listener::Tls(&tls), TLS_DEFECTS).await;
}

/// The known defect of case `name` on a listener: the listener's own entry in `extra` if it has
/// one, else the case's mark.
fn defect_of(
    name: &str,
    mark: Option<&'static str>,
    extra: &[(&'static str, Option<&'static str>)],
) -> Option<&'static str> {
    match extra.iter().find(|(n, _)| *n == name) {
        Some((_, entry)) => *entry,
        None => mark,
    }
}

async fn request_table(listener: Listener<'_>, extra: &[(&'static str, Option<&'static str>)]) {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for (name, _) in extra {
        assert!(names.contains(name), "no case {name}");
    }
    // In batches: every case has its own gateway and upstream, and 2 cores to share.
    let mut verdicts = Vec::new();
    for batch in cases.chunks(12) {
        let results = join_all(batch.iter().map(|case| run_case(case, listener))).await;
        verdicts.extend(batch.iter().zip(results).map(|(case, result)| Verdict {
            name: case.name,
            known_defect: defect_of(case.name, case.known_defect, extra),
            result: result.map_err(|e| format!("{e} (expected because: {})", case.why)),
        }));
    }
    judge(
        &format!("request smuggling ({})", listener.name()),
        &verdicts,
    );
}

async fn run_case(case: &Case, listener: Listener<'_>) -> Result<(), String> {
    let upstream = RawUpstream::start(|request| {
        Answer::ok(format!("{} {}", request.method(), request.target()).as_bytes())
    })
    .await;
    let gw = gateway(&upstream, listener.tls()).await;
    let mut client = listener.connect(&gw).await;
    // A write may fail when the gateway refused early and closed: what it answered still counts.
    client.send(&case.send).await;
    if let Some((status, bytes)) = &case.then_send {
        let interim = client.response(false).await.map_err(|e| format!("{e:?}"))?;
        if interim.status() != *status {
            return Err(format!("got {} instead of {status}", interim.status()));
        }
        client.send(bytes).await;
    }
    let outcome = match case.expect {
        Expect::Refused(statuses) => refused(&mut client, statuses).await,
        Expect::BodyRefused(statuses) => body_refused(&mut client, statuses).await,
        Expect::Forwarded(wants, after) => answered(&mut client, wants, after).await,
        Expect::ThenRefused(wants, statuses) => match answered_only(&mut client, wants).await {
            Ok(()) => refused(&mut client, statuses).await.map(|_| wants.to_vec()),
            Err(e) => Err(e),
        },
        Expect::Either(statuses, wants, after) => {
            match client.final_response(false).await {
                Ok(first) if statuses.contains(&first.status()) => {
                    println!("{}: refused with {}", case.name, first.status());
                    closed(&mut client).await.map(|()| Vec::new())
                }
                Ok(first) => {
                    println!("{}: forwarded", case.name);
                    // Forwarded: the first answer has to be the first request's.
                    check_answer(&first, &wants[0])?;
                    answered_after(&mut client, &wants[1..], after)
                        .await
                        .map(|()| forwarded_list(wants, after))
                }
                Err(end) => Err(format!("no answer: {end:?}")),
            }
        }
        Expect::Answered(statuses) => match client.final_response(false).await {
            Ok(answer) if statuses.contains(&answer.status()) => Ok(Vec::new()),
            Ok(answer) => Err(format!(
                "answered {} {:?}, expected one of {statuses:?}",
                answer.status(),
                lossy(&answer.body)
            )),
            Err(end) => Err(format!("no answer: {end:?}")),
        },
    };
    let wants = outcome?;
    // What a misframed request would have smuggled arrives with or right after the answers.
    tokio::time::sleep(Duration::from_millis(100)).await;
    check_upstream(&upstream.received(), &wants, case.expect)
}

/// What the upstream should have received when `wants` were forwarded.
fn forwarded_list(wants: &[Want], after: After) -> Vec<Want> {
    let mut list = wants.to_vec();
    if after == After::Open {
        list.push(want("GET", "/end"));
    }
    list
}

async fn refused(client: &mut RawClient, statuses: &[u16]) -> Result<Vec<Want>, String> {
    let answer = client
        .final_response(false)
        .await
        .map_err(|e| format!("expected a refusal, got {e:?}"))?;
    if !statuses.contains(&answer.status()) {
        return Err(format!(
            "answered {} ({:?}), expected one of {statuses:?}",
            answer.status(),
            lossy(&answer.body)
        ));
    }
    closed(client).await?;
    Ok(Vec::new())
}

async fn body_refused(client: &mut RawClient, statuses: &[u16]) -> Result<Vec<Want>, String> {
    match client.final_response(false).await {
        Ok(answer) if statuses.contains(&answer.status()) => {}
        Ok(answer) => {
            return Err(format!(
                "answered {} ({:?}), expected one of {statuses:?} or a close",
                answer.status(),
                lossy(&answer.body)
            ));
        }
        Err(End::Closed) => return Ok(Vec::new()),
        Err(end) => return Err(format!("expected a refusal, got {end:?}")),
    }
    closed(client).await?;
    Ok(Vec::new())
}

async fn closed(client: &mut RawClient) -> Result<(), String> {
    client
        .closed()
        .await
        .map_err(|e| format!("connection not closed after the refusal: {e:?}"))
}

/// Reads one answer per want, then checks what `after` says of the connection.
async fn answered(
    client: &mut RawClient,
    wants: &[Want],
    after: After,
) -> Result<Vec<Want>, String> {
    answered_after(client, wants, after).await?;
    Ok(forwarded_list(wants, after))
}

async fn answered_after(
    client: &mut RawClient,
    wants: &[Want],
    after: After,
) -> Result<(), String> {
    answered_only(client, wants).await?;
    match after {
        After::Open => {
            if !client.send(END).await {
                return Err("connection closed; expected it open".to_owned());
            }
            let end = client
                .final_response(false)
                .await
                .map_err(|e| format!("no answer to a request after the case: {e:?}"))?;
            check_answer(&end, &want("GET", "/end"))
        }
        After::Closed => client
            .closed()
            .await
            .map_err(|e| format!("connection not closed: {e:?}")),
    }
}

async fn answered_only(client: &mut RawClient, wants: &[Want]) -> Result<(), String> {
    for want in wants {
        let answer = client
            .final_response(want.method == "HEAD")
            .await
            .map_err(|e| format!("no answer for {} {}: {e:?}", want.method, want.target))?;
        check_answer(&answer, want)?;
    }
    Ok(())
}

/// The answer is the upstream's own for `want`: the upstream echoes method and target.
fn check_answer(answer: &Message, want: &Want) -> Result<(), String> {
    let expected = format!("{} {}", want.method, want.target);
    if answer.status() != 200 || answer.body != expected.as_bytes() {
        return Err(format!(
            "answered {} {:?}, expected 200 {expected:?}",
            answer.status(),
            lossy(&answer.body)
        ));
    }
    Ok(())
}

fn check_upstream(
    received: &[wire::Received],
    wants: &[Want],
    expect: Expect,
) -> Result<(), String> {
    let cut_off_allowed = matches!(expect, Expect::BodyRefused(_));
    let mut complete = Vec::new();
    for got in received {
        match &got.message {
            Ok(message) => complete.push(message),
            Err(error) if cut_off_allowed && error.starts_with("closed in the middle") => {}
            Err(error) => {
                return Err(format!(
                    "upstream could not parse what it got ({error}): {:?}",
                    lossy(&got.raw)
                ));
            }
        }
    }
    if complete.len() != wants.len() {
        return Err(format!(
            "upstream got {} requests, expected {}: {:?}",
            complete.len(),
            wants.len(),
            received.iter().map(|r| lossy(&r.raw)).collect::<Vec<_>>()
        ));
    }
    for (got, want) in complete.iter().zip(wants) {
        want.check(got)?;
    }
    Ok(())
}

// === the malicious upstream ===

/// What the first client, whose request the malicious response answers, must get.
#[derive(Debug, Clone, Copy)]
enum First {
    /// `200` with exactly this body.
    Body(&'static [u8]),
    /// `200` with exactly this body, or `502`.
    BodyOr502(&'static [u8]),
    /// This status and no body.
    Status(u16),
    /// `502`, or a response cut off before its end (when the fault came after its head).
    Failed,
}

/// Whether the gateway may reuse the upstream connection that carried the malicious response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    /// It must (the control case: proves the later requests go through the pool).
    Must,
    /// It must not: the connection holds bytes nobody asked for, or broke its framing.
    Never,
    /// Either is safe.
    Any,
}

struct Malicious {
    name: &'static str,
    answer: Answer,
    /// The first client's request.
    request: &'static str,
    first: First,
    reuse: Reuse,
    /// Trailer fields the first client must not get.
    trailers_lack: &'static [&'static str],
    why: &'static str,
    known_defect: Option<&'static str>,
}

const EVIL_GET: &str = "GET /evil HTTP/1.1\r\nHost: h\r\n\r\n";
const GOOD: &[u8] = b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n";
/// A response the upstream tries to slip to whoever asks next.
const EVIL: &str = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil";

fn mal(
    name: &'static str,
    bytes: &str,
    first: First,
    reuse: Reuse,
    why: &'static str,
) -> Malicious {
    Malicious {
        name,
        answer: Answer::raw(bytes.as_bytes()),
        request: EVIL_GET,
        first,
        reuse,
        trailers_lack: &[],
        why,
        known_defect: None,
    }
}

fn malicious() -> Vec<Malicious> {
    use First::*;
    use Reuse::*;
    let hello_then_evil = format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello{EVIL}");
    let thirty = "abcdefghijklmnopqrstuvwxyz0123";
    vec![
        mal(
            "control_clean",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Body(b"hello"),
            Must,
            "a clean response leaves the connection in the pool: the other cases' second \
             requests would go through it",
        ),
        Malicious {
            ..mal(
                "cl_and_te",
                &format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n1e\r\n{thirty}\r\n0\r\n\r\n"
                ),
                BodyOr502(b"abcdefghijklmnopqrstuvwxyz0123"),
                Any,
                "RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and an intermediary \
                 MUST remove the length before forwarding",
            )
        },
        mal(
            "two_lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
            Failed,
            Never,
            "RFC 9112 6.3: differing lengths are unrecoverable; a proxy MUST close the \
             connection to the server and answer 502",
        ),
        mal(
            "length_list_differing",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 7\r\n\r\nhello",
            Failed,
            Never,
            "RFC 9112 6.3, as two_lengths",
        ),
        mal(
            "length_list_same",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
            BodyOr502(b"hello"),
            Any,
            "RFC 9110 8.6: identical lengths may be read as one (and forwarded as one)",
        ),
        mal(
            "length_signed",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            Failed,
            Never,
            "RFC 9110 8.6: 1*DIGIT; an invalid length is unrecoverable (RFC 9112 6.3)",
        ),
        mal(
            "length_hex",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello",
            Failed,
            Never,
            "as length_signed",
        ),
        mal(
            "extra_bytes_at_once",
            &hello_then_evil,
            Body(b"hello"),
            Never,
            "bytes after a response that nobody asked for must not answer the next request: \
             response splitting",
        ),
        Malicious {
            answer: Answer {
                later: Some((Duration::from_millis(50), EVIL.as_bytes().to_vec())),
                ..Answer::ok(b"hello")
            },
            ..mal(
                "extra_bytes_later",
                "",
                Body(b"hello"),
                Never,
                "as extra_bytes_at_once, for bytes that arrive while the connection is idle in \
                 the pool",
            )
        },
        mal(
            "bare_lf_in_head",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\nSet-Cookie: injected\r\n\r\nhello",
            BodyOr502(b"hello"),
            Any,
            "RFC 9112 2.2: a lone LF may end a line; what reaches the client is CRLF-framed \
             either way",
        ),
        mal(
            "bare_cr_in_head",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\rSet-Cookie: injected\r\n\r\nhello",
            BodyOr502(b"hello"),
            Any,
            "RFC 9112 2.2: a bare CR MUST be refused or replaced with SP before forwarding",
        ),
        mal(
            "nul_in_head",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\x00b\r\n\r\nhello",
            BodyOr502(b"hello"),
            Any,
            "RFC 9110 5.5: NUL MUST be refused or replaced, never forwarded",
        ),
        mal(
            "obs_fold_in_head",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\r\n b\r\n\r\nhello",
            BodyOr502(b"hello"),
            Any,
            "RFC 9112 5.2: a proxy MUST refuse obs-fold or replace it with SP before forwarding",
        ),
        mal(
            "interim_100",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Body(b"hello"),
            Any,
            "RFC 9110 15.2: an interim response precedes the final one, which answers the request",
        ),
        mal(
            "interim_103_three_times",
            "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Body(b"hello"),
            Any,
            "RFC 9110 15.2: any number of interim responses may come first",
        ),
        mal(
            "interim_with_length",
            "HTTP/1.1 100 Continue\r\nContent-Length: 4\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Body(b"hello"),
            Any,
            "RFC 9112 6.3: a 1xx ends at its empty line whatever its fields say",
        ),
        Malicious {
            answer: Answer {
                close: true,
                ..Answer::raw(b"HTTP/1.1 100 Continue\r\n\r\n")
            },
            ..mal(
                "interim_then_close",
                "",
                Failed,
                Never,
                "no final response came before the close: 502",
            )
        },
        mal(
            "unasked_101",
            &format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\n{EVIL}"
            ),
            Failed,
            Never,
            "RFC 9110 15.2.2: a server MUST NOT switch protocols the request did not ask for",
        ),
        mal(
            "no_content_with_length",
            "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil",
            Status(204),
            Never,
            "RFC 9112 6.3: a 204 ends at its empty line; the bytes after it are nobody's",
        ),
        mal(
            "not_modified_with_length",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\nevil",
            Status(304),
            Never,
            "RFC 9112 6.3: a 304 ends at its empty line (its length describes the \
             representation); the bytes after it are nobody's",
        ),
        Malicious {
            request: "HEAD /evil HTTP/1.1\r\nHost: h\r\n\r\n",
            ..mal(
                "head_with_body",
                "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
                Status(200),
                Never,
                "RFC 9112 6.3: a response to HEAD ends at its empty line",
            )
        },
        mal(
            "chunk_size_invalid",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            Failed,
            Never,
            "a broken chunked body is a failed response, and its connection is done",
        ),
        mal(
            "chunk_size_overflow",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
            Failed,
            Never,
            "a chunk size that wraps to 5 must not be read as 5",
        ),
        Malicious {
            answer: Answer {
                close: true,
                ..Answer::raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
            },
            ..mal(
                "shorter_than_length",
                "",
                Failed,
                Never,
                "RFC 9112 8: a response cut short is incomplete, never passed off as whole",
            )
        },
        Malicious {
            answer: Answer {
                close: true,
                ..Answer::raw(b"HTTP/1.1 200 OK\r\n\r\nhello")
            },
            ..mal(
                "until_close",
                "",
                Body(b"hello"),
                Never,
                "RFC 9112 6.3: without a length, a response ends when the connection closes",
            )
        },
        Malicious {
            answer: Answer {
                close: true,
                ..Answer::raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello")
            },
            ..mal(
                "coding_without_chunked",
                "",
                BodyOr502(b"hello"),
                Never,
                "RFC 9112 6.3: a response whose last coding is not chunked ends at the close",
            )
        },
        Malicious {
            request: "GET /evil HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
            trailers_lack: &["set-cookie", "content-length", "transfer-encoding"],
            ..mal(
                "forbidden_trailers",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\nSet-Cookie: a=b\r\nContent-Length: 9\r\nTransfer-Encoding: gzip\r\n\r\n",
                Body(b"hello"),
                Any,
                "RFC 9110 6.5.1: framing and authentication fields (Set-Cookie) are forbidden in \
                 trailers and must not be forwarded",
            )
        },
        mal(
            "status_four_digits",
            "HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello",
            Failed,
            Never,
            "RFC 9112 4: a status code is three digits",
        ),
        mal(
            "no_status_line",
            "hello\r\n\r\n",
            Failed,
            Never,
            "not HTTP: 502",
        ),
    ]
}

#[tokio::test]
async fn nothing_a_malicious_upstream_sends_reaches_the_next_client() {
    malicious_table(Listener::Plain, &[]).await;
}

/// How the TLS listener's known defects differ for the malicious upstream, as [`TLS_DEFECTS`].
const TLS_MALICIOUS_DEFECTS: &[(&str, Option<&str>)] = &[];

#[tokio::test]
async fn nothing_a_malicious_upstream_sends_reaches_the_next_client_over_tls() {
    let tls = Tls::new();
    malicious_table(Listener::Tls(&tls), TLS_MALICIOUS_DEFECTS).await;
}

async fn malicious_table(listener: Listener<'_>, extra: &[(&'static str, Option<&'static str>)]) {
    let cases = malicious();
    for (name, _) in extra {
        assert!(cases.iter().any(|c| c.name == *name), "no case {name}");
    }
    let mut verdicts = Vec::new();
    for batch in cases.chunks(10) {
        let results = join_all(batch.iter().map(|case| run_malicious(case, listener))).await;
        verdicts.extend(batch.iter().zip(results).map(|(case, result)| Verdict {
            name: case.name,
            known_defect: defect_of(case.name, case.known_defect, extra),
            result: result.map_err(|e| format!("{e} (expected because: {})", case.why)),
        }));
    }
    judge(
        &format!("malicious upstream ({})", listener.name()),
        &verdicts,
    );
}

async fn run_malicious(case: &Malicious, listener: Listener<'_>) -> Result<(), String> {
    let evil = case.answer.clone();
    let upstream = RawUpstream::start(move |request| match request.target() {
        "/good" => Answer::ok(b"good"),
        _ => evil.clone(),
    })
    .await;
    let gw = gateway(&upstream, listener.tls()).await;
    let mut first = listener.connect(&gw).await;
    first.send(case.request.as_bytes()).await;
    let head = case.request.starts_with("HEAD");
    let answer = first.final_response(head).await;
    let reusable = check_first(case, &answer)?;
    // Bytes the upstream sends late arrive while its connection idles in the pool.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if reusable {
        first.send(GOOD).await;
        let again = first
            .final_response(false)
            .await
            .map_err(|e| format!("first client's next request: {e:?}"))?;
        check_good(&again, "first client's next request")?;
    }
    let mut second = listener.connect(&gw).await;
    second.send(GOOD).await;
    let good = second
        .final_response(false)
        .await
        .map_err(|e| format!("second client: {e:?}"))?;
    check_good(&good, "second client")?;

    let received = upstream.received();
    let mut evil_conn = None;
    let mut good_conns = Vec::new();
    for got in &received {
        let message = got.message.as_ref().map_err(|e| {
            format!(
                "upstream could not parse what it got ({e}): {:?}",
                lossy(&got.raw)
            )
        })?;
        match message.target() {
            "/good" => good_conns.push(got.conn),
            _ => evil_conn = Some(got.conn),
        }
    }
    let evil_conn = evil_conn.ok_or("the first request never reached the upstream")?;
    let reused = good_conns.contains(&evil_conn);
    match case.reuse {
        Reuse::Must if !reused => Err("the clean connection was not reused".to_owned()),
        Reuse::Never if reused => Err(format!(
            "the connection that carried the malicious response was reused (connections \
             {good_conns:?}, malicious {evil_conn})"
        )),
        _ => Ok(()),
    }
}

/// Checks the first client's answer; whether its connection can carry another request.
fn check_first(case: &Malicious, answer: &Result<Message, End>) -> Result<bool, String> {
    let describe = |m: &Message| format!("{} {:?}", m.status(), lossy(&m.body));
    match (case.first, answer) {
        (First::Failed, Ok(m)) if m.status() == 502 => Ok(false),
        (First::Failed, Err(End::Closed | End::Truncated(_))) => Ok(false),
        (First::Failed, other) => Err(format!("first client got {other:?}, expected 502 or a cut")),
        (First::BodyOr502(_), Ok(m)) if m.status() == 502 => Ok(false),
        (First::Body(body) | First::BodyOr502(body), Ok(m)) => {
            if m.status() != 200 || m.body != body {
                return Err(format!(
                    "first client got {}, expected 200 {:?}",
                    describe(m),
                    lossy(body)
                ));
            }
            for name in case.trailers_lack {
                if !m.trailer_values(name).is_empty() {
                    return Err(format!(
                        "first client got trailer {name}, which must not cross"
                    ));
                }
            }
            Ok(m.keep_alive())
        }
        (First::Status(status), Ok(m)) => {
            if m.status() != status || !m.body.is_empty() {
                return Err(format!(
                    "first client got {}, expected {status} without a body",
                    describe(m)
                ));
            }
            Ok(m.keep_alive())
        }
        (_, Err(end)) => Err(format!("first client got no valid response: {end:?}")),
    }
}

fn check_good(answer: &Message, who: &str) -> Result<(), String> {
    if answer.status() != 200 || answer.body != b"good" {
        return Err(format!(
            "{who} got {} {:?}, not its own answer",
            answer.status(),
            lossy(&answer.body)
        ));
    }
    Ok(())
}
