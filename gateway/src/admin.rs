//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
//! `/readyz` (ready for traffic; fails while draining so load balancers stop sending, and while
//! a failed background task waits to be restarted).

use crate::body::{self, Body};
use crate::state::Shared;
use http::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Serves admin requests until `stop` is cancelled.
///
/// The admin listener gets limits of its own: at most `admin.max_connections` at once (past it,
/// accepting waits), a header read timeout, and an idle timeout after which a connection with no
/// request is closed. Without them, idle connections could pile up until they took the file
/// descriptors the proxy needs, and a probe could be kept out.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let limits = shared.snapshot().config.admin.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stop.cancelled() => return,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let shared = shared.clone();
        let (idle, header_read) = (limits.idle_timeout, limits.header_read_timeout);
        tokio::spawn(async move {
            serve_connection(stream, shared, idle, header_read).await;
            drop(permit);
        });
    }
}

/// One admin connection, closed once it has had no request for `idle`.
async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    idle: Duration,
    header_read: Duration,
) {
    let last_request = Arc::new(Mutex::new(Instant::now()));
    let service = hyper::service::service_fn({
        let last_request = last_request.clone();
        move |request| {
            *last_request.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(respond(&shared, &request)) }
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    loop {
        let deadline = *last_request.lock().unwrap_or_else(|p| p.into_inner()) + idle;
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => {
                let last = *last_request.lock().unwrap_or_else(|p| p.into_inner());
                if last + idle <= Instant::now() {
                    break;
                }
            }
        }
    }
    // Idle: let a request in progress finish (briefly), then drop the connection.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(header_read, connection).await;
}

fn respond<B>(shared: &Shared, request: &Request<B>) -> Response<Body> {
    let (status, content_type, text) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            shared.render_metrics(),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => match shared.not_ready() {
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{reason}\n"),
            ),
            None => (StatusCode::OK, "text/plain", "ready\n".into()),
        },
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
