//! What a client connection runs over: plain TCP, or TLS on TCP. The HTTP/1.1 connection is the
//! same for both; it only needs to learn, without reading, that the client sent something or
//! closed while a call is in flight.

use std::io;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection's byte stream.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when the socket under the stream has something to read (or has closed); reads
    /// nothing.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Transport for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// Readiness is the TCP socket's: a TLS record is read only when the connection reads.
impl Transport for TlsStream<TcpStream> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }
}
