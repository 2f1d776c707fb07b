//! A lean HTTP/1.1 connection pool for the generator: reuse an idle connection if there is one,
//! otherwise open a new one at once. There is no limit on connections and no waiting for a busy
//! one to free up, so the number of requests in flight is never capped by the tool.
//!
//! hyper-util's pooled client keeps a queue of waiters per host; with tens of thousands of
//! requests held open by a queueing gateway, that bookkeeping costs more than the requests.
//! This pool is a stack of idle senders per authority: O(1) to take and to return.

use bytes::{Bytes, BytesMut};
use http::{Request, response};
use http_body_util::BodyExt;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Request body type of the pool.
pub type Body = http_body_util::Either<http_body_util::Full<Bytes>, http_body_util::Empty<Bytes>>;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per authority; more are closed when they come back.
const MAX_IDLE: usize = 50_000;

/// Shared by every request of a run; cloning shares the pool.
#[derive(Clone, Default)]
pub struct Pool {
    idle: Arc<Mutex<Idle>>,
}

/// Idle connections per authority. A run talks to one or two authorities (the target, and a
/// result location's), so a short list searched by comparing strings beats hashing the key on
/// every take and allocating it on every return.
#[derive(Default)]
struct Idle {
    by_authority: Vec<(String, Vec<SendRequest<Body>>)>,
}

impl Idle {
    fn get_mut(&mut self, authority: &str) -> Option<&mut Vec<SendRequest<Body>>> {
        self.by_authority
            .iter_mut()
            .find(|(a, _)| a == authority)
            .map(|(_, stack)| stack)
    }

    fn get_or_insert(&mut self, authority: &str) -> &mut Vec<SendRequest<Body>> {
        let i = match self.by_authority.iter().position(|(a, _)| a == authority) {
            Some(i) => i,
            None => {
                self.by_authority.push((authority.to_owned(), Vec::new()));
                self.by_authority.len() - 1
            }
        };
        &mut self.by_authority[i].1
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened, or the request was never written: it did not leave.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have been written, but no complete answer came back.
    #[error("no answer: {0}")]
    NoAnswer(#[source] hyper::Error),
}

// === impl Pool ===

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `request` to `authority` (`host:port`) and reads the whole answer. The request's
    /// URI should be in origin form (a path) and carry a `Host` header.
    pub async fn exchange(
        &self,
        authority: &str,
        mut request: Request<Body>,
    ) -> Result<(response::Parts, Bytes), SendError> {
        loop {
            let (mut sender, reused) = match self.take(authority).await {
                Some(s) => (s, true),
                // Boxed: opening a connection is the rare path, and keeping its future out of
                // line keeps every request's task small.
                None => (Box::pin(connect(authority)).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = read_body(body).await.map_err(SendError::NoAnswer)?;
                    self.put(authority, sender);
                    return Ok((parts, body));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: an idle connection closed under us. Safe to send again on
                    // a fresh one, as any client does.
                    Some(r) if reused => request = r,
                    Some(_) => return Err(SendError::NotSent(e.into_error().to_string())),
                    None => return Err(SendError::NoAnswer(e.into_error())),
                },
            }
        }
    }

    /// The most recently returned idle connection that is still open.
    async fn take(&self, authority: &str) -> Option<SendRequest<Body>> {
        loop {
            let mut sender = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.get_mut(authority)?.pop()?
            };
            if sender.is_closed() {
                continue;
            }
            // A connection comes back as soon as its answer is read; its task may not have
            // marked it ready yet, which takes one poll at most.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put(&self, authority: &str, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let stack = idle.get_or_insert(authority);
        if stack.len() < MAX_IDLE {
            stack.push(sender);
        }
    }

    /// Idle connections held for `authority`.
    pub fn idle(&self, authority: &str) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(authority).map_or(0, |stack| stack.len())
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// Reads a whole answer body. Most answers come in one piece, which is returned as it is
/// (no copy, no list of pieces); longer ones are gathered into one buffer.
async fn read_body(mut body: hyper::body::Incoming) -> Result<Bytes, hyper::Error> {
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut all = BytesMut::with_capacity(f.len() + data.len());
                all.extend_from_slice(f);
                all.extend_from_slice(&data);
                more = Some(all);
            }
            (Some(_), Some(all)) => all.extend_from_slice(&data),
        }
    }
    Ok(match (first, more) {
        (_, Some(all)) => all.freeze(),
        (Some(first), None) => first,
        (None, None) => Bytes::new(),
    })
}

/// Opens a connection and spawns its driver task.
async fn connect(authority: &str) -> Result<SendRequest<Body>, SendError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| SendError::NotSent(format!("connect to {authority} timed out")))?
        .map_err(|e| SendError::NotSent(format!("connect to {authority}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::NotSent(format!("handshake with {authority}: {e}")))?;
    tokio::spawn(async move {
        // Errors surface on the request that was in flight; nothing to do with them here.
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Either, Empty};

    fn get(authority: &str) -> Request<Body> {
        Request::get("/")
            .header(http::header::HOST, authority)
            .body(Either::Right(Empty::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn connections_are_reused_and_refusals_are_not_sent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(crate::upstream::serve(
            listener,
            Default::default(),
            async {
                let _ = rx.await;
            },
        ));
        let pool = Pool::new();
        for _ in 0..3 {
            let (parts, body) = pool.exchange(&authority, get(&authority)).await.unwrap();
            assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(pool.idle(&authority), 1, "one connection served all three");
        // Two at once need two connections.
        let (a, b) = tokio::join!(
            pool.exchange(&authority, get(&authority)),
            pool.exchange(&authority, get(&authority))
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(pool.idle(&authority), 2);
        drop(tx);

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let closed = closed.to_string();
        let err = pool.exchange(&closed, get(&closed)).await.unwrap_err();
        assert!(matches!(err, SendError::NotSent(_)), "{err}");
    }
}
