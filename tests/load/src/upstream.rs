//! `holdline-load upstream`: a minimal HTTP/1.1 service to put behind the system under test.
//!
//! By default it answers `200 ok` at once, the fast upstream of the sync-proxy benchmark. With
//! `--delay-ms` each answer takes that long; with `--capacity` at most that many requests are
//! worked on at once and the rest get `503` with `holdline-not-processed: 1` (the signal the
//! gateway reads as "safe to queue"), like an overloaded service instance. With `--echo` the
//! answer is the echo service's JSON, so the load tool can verify every response.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How the upstream answers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Time each request takes.
    pub delay: Duration,
    /// Requests worked on at once; `None` is unlimited.
    pub capacity: Option<usize>,
    /// Answer with the echo service's JSON instead of `ok`.
    pub echo: bool,
    /// Instance name reported in echo answers.
    pub instance: String,
}

/// The echo service's answer format.
#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    headers: BTreeMap<&'a str, &'a str>,
    body: &'a str,
    instance: &'a str,
    via: &'static str,
}

struct State {
    options: Options,
    slots: Option<Semaphore>,
}

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let state = Arc::new(State {
        slots: options.capacity.map(Semaphore::new),
        options,
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors or a reset during accept: keep serving the others.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _slot = match &state.slots {
        Some(slots) => match slots.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => return Ok(overloaded()),
        },
        None => None,
    };
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if !state.options.delay.is_zero() {
        tokio::time::sleep(state.options.delay).await;
    }
    if !state.options.echo {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok"))));
    }
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let echo = Echo {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers,
        body: &String::from_utf8_lossy(&body),
        instance: &state.options.instance,
        via: "http",
    };
    let json = serde_json::to_vec(&echo).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(json)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn overloaded() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"overloaded")));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = response.headers_mut();
    h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    h.insert(
        "holdline-not-processed",
        header::HeaderValue::from_static("1"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Body, Pool};
    use http_body_util::{Either, Empty};

    async fn start(options: Options) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, options, async {
            let _ = rx.await;
        }));
        (addr.to_string(), tx)
    }

    fn request(
        authority: &str,
        path: &str,
        id: &str,
        body: Option<&'static [u8]>,
    ) -> Request<Body> {
        let body = match body {
            Some(b) => Either::Left(Full::new(Bytes::from_static(b))),
            None => Either::Right(Empty::new()),
        };
        Request::post(path)
            .header(header::HOST, authority)
            .header("x-request-id", id)
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn answers_ok_echo_and_overload() {
        let pool = Pool::new();
        let (plain, _stop) = start(Options::default()).await;
        let (parts, body) = pool
            .exchange(&plain, request(&plain, "/x", "r-0", None))
            .await
            .unwrap();
        assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok"[..]));

        let echo = Options {
            echo: true,
            instance: "u1".into(),
            ..Options::default()
        };
        let (echo_at, _stop2) = start(echo).await;
        let req = request(&echo_at, "/a/b", "r-1", Some(b"r-1:xyz"));
        let (_, body) = pool.exchange(&echo_at, req).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["body"], "r-1:xyz");
        assert_eq!(json["headers"]["x-request-id"], "r-1");
        assert_eq!(json["instance"], "u1");
        assert_eq!(json["path"], "/a/b");

        // One slot, two requests at once: one is worked on, the other turned away as not
        // processed. The long delay keeps the two overlapping even on a loaded machine.
        let slow = Options {
            delay: Duration::from_secs(2),
            capacity: Some(1),
            ..Options::default()
        };
        let (slow_at, _stop3) = start(slow).await;
        let (a, b) = tokio::join!(
            pool.exchange(&slow_at, request(&slow_at, "/", "a", None)),
            pool.exchange(&slow_at, request(&slow_at, "/", "b", None))
        );
        let (a, b) = (a.unwrap().0, b.unwrap().0);
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 503]);
        let refused = if a.status == 503 { &a } else { &b };
        assert_eq!(refused.headers["holdline-not-processed"], "1");
    }
}
