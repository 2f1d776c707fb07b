//! The client a service's requests go out on, over connections kept per endpoint
//! ([`super::pool`]): HTTP/1.1 with the gateway's own connection ([`super::h1`]), h2 with hyper's
//! connection-level API.
//!
//! hyper-util's pooled client did the same job, but for any host: it keyed its pool by scheme and
//! authority behind locks, and built large futures per request. An [`Endpoint`] is already one
//! socket address, so here a request goes straight to that endpoint's pool.

use super::Endpoint;
use super::h1;
use super::pool::{H2Connect, H2Sender};
use crate::body::{Body, BoxError};
use crate::config::{ServiceConfig, UpstreamProtocol};
use crate::forwarding::Forwarding;
use crate::hop_by_hop::remove_hop_by_hop;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// TCP keep-alive probes start after this long without traffic.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// h2 pings on an idle connection, so that a dead peer is noticed before a request needs it.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);

/// How an exchange with an endpoint failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// No connection could be made: the request was not sent.
    #[error(transparent)]
    Connect(Arc<io::Error>),
    /// The exchange failed on an established connection; the request may have been sent.
    #[error(transparent)]
    Exchange(BoxError),
    /// No response head by the deadline; the request may have been sent.
    #[error("no response head in time")]
    Timeout,
    /// The client's request body failed (the client went away, or sent more or less than it
    /// declared) while it was being forwarded: the client's fault, not the endpoint's.
    #[error("request body failed: {0}")]
    ClientBody(BoxError),
}

/// A request that failed, and the request itself when none of it left the gateway because no
/// connection could be made: it may go to another endpoint as it is. (Boxed: it is rare, and the
/// error stays small in every request's future.)
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) error: ClientError,
    pub(crate) unsent: Option<Box<Request<Body>>>,
}

impl From<ClientError> for SendError {
    fn from(error: ClientError) -> Self {
        Self {
            error,
            unsent: None,
        }
    }
}

/// A response body from an endpoint, of either protocol.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    H1(h1::ResponseBody),
    H2(Incoming),
}

/// Sends requests to a service's endpoints, HTTP/1.1 or h2 (prior knowledge), over connections
/// kept in each endpoint's pool.
pub(crate) struct UpstreamClient {
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
}

// === impl UpstreamClient ===

impl UpstreamClient {
    pub(crate) fn new(config: &ServiceConfig) -> Self {
        Self {
            protocol: config.protocol,
            connect_timeout: config.connect_timeout,
            first_byte_timeout: config.first_byte_timeout,
        }
    }

    /// Sends `request` to `endpoint` and returns the response head, hop-by-hop headers removed;
    /// the body streams. See [`Self::send_or_return`]; this is it for callers that do not send
    /// a request elsewhere when connecting fails.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        request: Request<Body>,
        deadline: Instant,
        forwarding: Option<&Forwarding<'_>>,
    ) -> Result<Response<UpstreamBody>, ClientError> {
        self.send_or_return(endpoint, request, deadline, forwarding)
            .await
            .map_err(|failed| failed.error)
    }

    /// Sends `request` to `endpoint` and returns the response head, hop-by-hop headers removed;
    /// the body streams. When no connection could be made the request comes back unsent in the
    /// error, as it was given, for the caller to send to another endpoint.
    ///
    /// The request is the same whichever endpoint it goes to; the endpoint's part is added here.
    /// An origin-form URI gets the endpoint's base path: for HTTP/1.1 it is written before the
    /// request-target, for h2 it goes into the absolute URI h2 requires, with the endpoint as
    /// authority. An absolute URI (a request the gateway makes itself) is sent as it is.
    ///
    /// `forwarding` is written into an HTTP/1.1 request head as it is encoded (see
    /// [`Forwarding`]), with the endpoint's host as `Host` when the client named none; for h2
    /// it is applied to the header map once a connection is there.
    ///
    /// A request that a reused connection failed before any of it was written (and before its
    /// body was read) is sent again on another connection; nothing else is retried here.
    ///
    /// `deadline` bounds everything up to the response head ([`ClientError::Timeout`]). An
    /// HTTP/1.1 connection keeps one timer for all its exchanges and pushes it forward for each
    /// (an atomic update, where a new timer per request would be registered in the runtime's
    /// timer wheel and taken out again).
    pub(crate) async fn send_or_return(
        &self,
        endpoint: &Endpoint,
        request: Request<Body>,
        deadline: Instant,
        forwarding: Option<&Forwarding<'_>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        match self.protocol {
            UpstreamProtocol::Http1 => {
                self.send_http1(endpoint, request, deadline, forwarding)
                    .await
            }
            UpstreamProtocol::H2 => {
                // Boxed: hyper's h2 send and the timer would otherwise size every request's
                // future, h1 ones included (each await moves that whole future).
                let send = Box::pin(tokio::time::timeout_at(
                    deadline,
                    self.send_h2(endpoint, request, forwarding),
                ));
                let mut response = send
                    .await
                    .map_err(|_| SendError::from(ClientError::Timeout))??;
                remove_hop_by_hop(response.headers_mut());
                Ok(response.map(UpstreamBody::H2))
            }
        }
    }

    async fn send_http1(
        &self,
        endpoint: &Endpoint,
        mut request: Request<Body>,
        deadline: Instant,
        forwarding: Option<&Forwarding<'_>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let pool = endpoint.pool();
        loop {
            let (conn, reused) = match pool.checkout_http1() {
                Some(conn) => (conn, true),
                // Boxed with its timer: the hot path's future stays small.
                None => {
                    let connect = Box::pin(tokio::time::timeout_at(
                        deadline,
                        self.connect_http1(endpoint.addr()),
                    ));
                    match connect.await {
                        Ok(Ok(conn)) => (conn, false),
                        Ok(Err(error)) => {
                            return Err(SendError {
                                error,
                                unsent: Some(Box::new(request)),
                            });
                        }
                        // Past the deadline nothing is tried again, sent or not.
                        Err(_) => return Err(ClientError::Timeout.into()),
                    }
                }
            };
            match h1::Exchange::new(
                conn,
                request,
                endpoint,
                forwarding,
                deadline,
                self.first_byte_timeout,
            )
            .await
            {
                Ok(response) => return Ok(response.map(UpstreamBody::H1)),
                Err(h1::Failed {
                    error: h1::H1Error::Timeout,
                    ..
                }) => return Err(ClientError::Timeout.into()),
                Err(h1::Failed {
                    error,
                    unsent: Some(unsent),
                }) if reused => {
                    tracing::debug!(endpoint = %endpoint.addr(), %error, "pooled connection failed before the request was sent, sending on another");
                    request = unsent;
                }
                Err(h1::Failed {
                    error: h1::H1Error::RequestBody(error),
                    ..
                }) => return Err(ClientError::ClientBody(error).into()),
                Err(failed) => return Err(ClientError::Exchange(failed.error.into()).into()),
            }
        }
    }

    async fn send_h2(
        &self,
        endpoint: &Endpoint,
        mut request: Request<Body>,
        forwarding: Option<&Forwarding<'_>>,
    ) -> Result<Response<Incoming>, SendError> {
        let pool = endpoint.pool();
        let mut stale = None;
        // Whether the endpoint's part was added to the request: once, when the first
        // connection is there. Only a request without it can go to another endpoint.
        let mut prepared = false;
        loop {
            let (generation, mut sender) = match pool.checkout_h2().filter(|_| stale.is_none()) {
                Some(found) => found,
                None => {
                    match Box::pin(pool.connect_h2(stale, || self.connect_h2(endpoint.addr())))
                        .await
                    {
                        Ok(found) => found,
                        Err(error) => {
                            return Err(SendError {
                                error: ClientError::Connect(error),
                                unsent: (!prepared).then(|| Box::new(request)),
                            });
                        }
                    }
                }
            };
            if !prepared {
                prepare_h2(&mut request, endpoint, forwarding);
                prepared = true;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(mut error) => match error.take_message() {
                    // A connection is replaced once; one that fails a request it just carried
                    // returns that request's error.
                    Some(unsent) if stale.is_none() => {
                        tracing::debug!(endpoint = %endpoint.addr(), error = %error.error(), "h2 connection closed, reconnecting");
                        stale = Some(generation);
                        request = unsent;
                    }
                    _ => {
                        let error = ClientError::Exchange(error.into_error().into());
                        return Err(error.into());
                    }
                },
            }
        }
    }

    async fn connect_http1(&self, addr: SocketAddr) -> Result<h1::Conn, ClientError> {
        let stream = self
            .connect_tcp(addr)
            .await
            .map_err(|e| ClientError::Connect(Arc::new(e)))?;
        Ok(h1::Conn::new(stream))
    }

    fn connect_h2(&self, addr: SocketAddr) -> H2Connect {
        let tcp = self.connect_tcp(addr);
        async move {
            let io = TokioIo::new(tcp.await?);
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(H2_KEEPALIVE)
                .keep_alive_while_idle(true)
                .adaptive_window(true)
                .handshake(io)
                .await
                .map_err(io::Error::other)?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%addr, %error, "upstream h2 connection failed");
                }
            });
            Ok::<H2Sender, io::Error>(sender)
        }
        .map(|result| result.map_err(Arc::new))
        .boxed()
    }

    /// Connects within the connect timeout, with Nagle off (requests and responses are written
    /// whole) and TCP keep-alive on (a vanished peer is noticed even on an idle connection).
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<TcpStream>> + Send + 'static {
        let timeout = self.connect_timeout;
        async move {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect to {addr} timed out after {timeout:?}"),
                    )
                })??;
            stream.set_nodelay(true)?;
            socket2::SockRef::from(&stream)
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE))?;
            Ok(stream)
        }
    }
}

/// Adds the endpoint's part to a request for h2: an origin-form URI becomes the absolute URI h2
/// requires (the endpoint as authority, its base path before the path), and `forwarding` goes
/// into the header map with the endpoint's host as the fallback `Host`.
fn prepare_h2(
    request: &mut Request<Body>,
    endpoint: &Endpoint,
    forwarding: Option<&Forwarding<'_>>,
) {
    if request.uri().authority().is_none() {
        *request.uri_mut() = absolute_form(request.uri(), endpoint);
    }
    *request.version_mut() = http::Version::HTTP_2;
    if let Some(forwarding) = forwarding {
        crate::forwarding::apply(request.headers_mut(), forwarding, endpoint.host());
    }
}

/// An origin-form URI completed with the endpoint as authority and its base path, as h2
/// requires.
fn absolute_form(uri: &Uri, endpoint: &Endpoint) -> Uri {
    let path = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let path_and_query = if endpoint.base_path().is_empty() {
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))
    } else {
        format!("{}{path}", endpoint.base_path())
            .parse()
            .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"))
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(endpoint.authority().clone());
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).expect("scheme, authority and path are all set")
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// The whole body, if nothing of it is left to read from the endpoint: it came with the
    /// head, or there is none.
    pub(crate) fn take_complete(&mut self) -> Option<Bytes> {
        match self {
            Self::H1(body) => body.take_complete(),
            Self::H2(body) => http_body::Body::is_end_stream(body).then(Bytes::new),
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::H1(body) => Pin::new(body).poll_frame(cx),
            Self::H2(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::H1(body) => body.is_end_stream(),
            Self::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::H1(body) => body.size_hint(),
            Self::H2(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
