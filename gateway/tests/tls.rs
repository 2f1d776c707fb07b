//! TLS on the `https` listener: a certificate generated with rcgen, rustls clients trusting it,
//! HTTP/1.1 and h2 chosen by ALPN, TLS 1.2 and 1.3 offered and nothing older.

mod support;

use holdline_gateway::body;
use http::{Request, Version};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{Echo, TestGateway, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A gateway with an `https` listener and a self-signed certificate for `localhost`.
struct TlsSetup {
    gw: TestGateway,
    cert: CertificateDer<'static>,
    _dir: tempfile::TempDir,
    _upstream: Upstream,
}

async fn setup() -> TlsSetup {
    let upstream = Upstream::echo("echo").await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start(&format!(
        r#"
[listen]
http = "127.0.0.1:1"
https = "127.0.0.1:1"
[tls]
cert = "{}"
key = "{}"
[services.echo]
endpoints = ["{}"]
[[routes]]
prefix = "/"
service = "echo"
"#,
        cert_path.display(),
        key_path.display(),
        upstream.url()
    ))
    .await;
    TlsSetup {
        gw,
        cert: certified.cert.der().clone(),
        _dir: dir,
        _upstream: upstream,
    }
}

async fn connect(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds")
}

/// One request over HTTP/1.1 on an established TLS stream; returns the response version and
/// what the upstream saw.
async fn http1_exchange(stream: TlsStream<TcpStream>) -> (Version, Echo) {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/tls")
        .header("host", "localhost")
        .body(body::empty())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let version = response.version();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (version, Echo::parse(&bytes))
}

#[tokio::test]
async fn http1_and_h2_by_alpn_over_tls() {
    let setup = setup().await;
    let addr = setup.gw.https.expect("https listener");
    let all = rustls::ALL_VERSIONS;

    // ALPN http/1.1.
    let stream = connect(addr, &setup.cert, all, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (version, echo) = http1_exchange(stream).await;
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
    assert_eq!(echo.header("host"), Some("localhost"));

    // No ALPN at all: HTTP/1.1.
    let stream = connect(addr, &setup.cert, all, &[]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    let (version, _) = http1_exchange(stream).await;
    assert_eq!(version, Version::HTTP_11);

    // ALPN h2, preferred by the client.
    let stream = connect(addr, &setup.cert, all, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("https://localhost/tls-h2")
                .body(body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let echo = Echo::parse(&bytes);
    assert_eq!(echo.uri(), "/tls-h2");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));

    // The plain listener keeps working next to the TLS one.
    let reply = support::get(&setup.gw.url("/plain")).await;
    assert_eq!(reply.echo().header("x-forwarded-proto"), Some("http"));
}

#[tokio::test]
async fn tls12_only_and_tls13_only_clients_both_work() {
    let setup = setup().await;
    let addr = setup.gw.https.expect("https listener");
    for (version, want) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let stream = connect(addr, &setup.cert, &[version], &[b"http/1.1"]).await;
        assert_eq!(stream.get_ref().1.protocol_version(), Some(want));
        let (_, echo) = http1_exchange(stream).await;
        assert_eq!(echo.uri(), "/tls");
    }
}

/// A minimal ClientHello offering at most `version` (no `supported_versions` extension), with
/// the suites and extensions a TLS 1.2 server needs for an ECDSA certificate.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x42; 32]); // client random
    body.push(0); // no session id
    // ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA
    // (a TLS 1.0/1.1 suite), and the renegotiation SCSV.
    body.extend_from_slice(&[0x00, 0x08, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x09, 0x00, 0xff]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression only
    let extensions: &[u8] = &[
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, // supported groups
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // EC point formats: uncompressed
        0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03, // signature algorithms
    ];
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends a ClientHello and returns the first bytes the server answers with (empty on EOF).
async fn first_answer(addr: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut answer = vec![0u8; 7];
    let mut filled = 0;
    while filled < answer.len() {
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer[filled..]))
            .await
            .expect("server answers in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    answer.truncate(filled);
    answer
}

#[tokio::test]
async fn tls11_is_not_offered() {
    let setup = setup().await;
    let addr = setup.gw.https.expect("https listener");
    // Control: the same hello offering TLS 1.2 gets a ServerHello (a handshake record), so the
    // hello itself is well-formed.
    let answer = first_answer(addr, &client_hello([0x03, 0x03])).await;
    assert_eq!(answer.first(), Some(&0x16), "TLS 1.2 hello: {answer:02x?}");
    // Offering at most TLS 1.1 gets a fatal protocol_version alert (70), never a ServerHello.
    let answer = first_answer(addr, &client_hello([0x03, 0x02])).await;
    assert_eq!(answer.first(), Some(&0x15), "TLS 1.1 hello: {answer:02x?}");
    assert_eq!(answer.get(6), Some(&70), "TLS 1.1 hello: {answer:02x?}");
}
