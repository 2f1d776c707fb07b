//! A scripted fake upstream for the accounting tests: it decides the fate of each request from
//! its sequence number, so the test knows exactly what the report must say.

#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use holdline_load::identity::RunIds;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the fake does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Echo it correctly, marked with this `holdline-path`.
    Echo(&'static str),
    /// Close the connection without answering.
    Drop,
    /// Answer with a copy of the last answer it gave another request.
    Duplicate,
    /// Echo it with one body byte changed.
    Corrupt,
    /// Answer `200` with a body that is not an echo.
    Malformed,
    /// Echo it correctly after this long.
    Delay(Duration),
    /// Answer `202` with a result location; the result is ready on the second poll.
    Accepted,
    /// Answer `202`; the result location then says `404`.
    AcceptedGone,
    /// Answer with this status.
    Status(u16),
    /// Never answer.
    Hang,
}

type Script = dyn Fn(u64) -> Fate + Send + Sync;

struct State {
    ids: RunIds,
    script: Box<Script>,
    last_answer: Mutex<Option<Bytes>>,
    polls: Mutex<HashMap<String, u32>>,
}

/// Starts the fake on a free loopback port; it runs until the test's runtime ends.
pub async fn start(
    ids: RunIds,
    script: impl Fn(u64) -> Fate + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State {
        ids,
        script: Box::new(script),
        last_answer: Mutex::new(None),
        polls: Mutex::new(HashMap::new()),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The echo service's JSON for a request id and body.
pub fn echo_json(id: &str, body: &str) -> Bytes {
    let json = serde_json::json!({
        "method": "POST", "path": "/echo", "headers": {"x-request-id": id},
        "body": body, "instance": "fake", "via": "http"
    });
    Bytes::from(json.to_string())
}

fn response(status: u16, path: Option<&str>, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(p) = path {
        r.headers_mut().insert("holdline-path", p.parse().unwrap());
    }
    r
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let seq = state
        .ids
        .seq_of(&id)
        .expect("every request carries an id of the run");

    if let Some(result_id) = path.strip_prefix("/_holdline/results/") {
        assert_eq!(result_id, id, "a poll carries the id of its request");
        let n = {
            let mut polls = state.polls.lock().unwrap();
            let n = polls.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        return Ok(match (state.script)(seq) {
            Fate::AcceptedGone => response(404, None, Bytes::new()),
            _ if n < 2 => {
                let mut r = response(202, Some("async"), Bytes::new());
                r.headers_mut().insert("retry-after", "0".parse().unwrap());
                r
            }
            // The stored result echoes the original request.
            _ => response(
                200,
                Some("async"),
                echo_json(&id, &state.ids.body(seq, body_len(&state, seq))),
            ),
        });
    }

    let fate = (state.script)(seq);
    let answer = match fate {
        Fate::Echo(p) => response(200, Some(p), echo_json(&id, &body)),
        Fate::Drop => return Err(std::io::Error::other("scripted drop")),
        Fate::Duplicate => {
            let last = state.last_answer.lock().unwrap().clone();
            let last = last.unwrap_or_else(|| echo_json(&state.ids.id(u64::MAX), "x"));
            return Ok(response(200, Some("sync"), last));
        }
        Fate::Corrupt => {
            let mut bytes = body.into_bytes();
            let i = bytes.len() - 1;
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            response(
                200,
                Some("queue"),
                echo_json(&id, &String::from_utf8(bytes).unwrap()),
            )
        }
        Fate::Malformed => response(200, Some("sync"), Bytes::from_static(b"not an echo")),
        Fate::Delay(d) => {
            tokio::time::sleep(d).await;
            response(200, Some("queue"), echo_json(&id, &body))
        }
        Fate::Accepted | Fate::AcceptedGone => {
            let mut r = response(202, Some("async"), Bytes::new());
            let location = format!("/_holdline/results/{id}");
            r.headers_mut()
                .insert("location", location.parse().unwrap());
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            return Ok(r);
        }
        Fate::Status(s) => response(s, Some("sync"), Bytes::from_static(b"no")),
        Fate::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            response(500, None, Bytes::new())
        }
    };
    if answer.status() == 200 {
        let bytes = echo_json(&id, &state.ids.body(seq, body_len(&state, seq)));
        *state.last_answer.lock().unwrap() = Some(bytes);
    }
    Ok(answer)
}

/// Body length the tests send (see `BODY_BYTES`).
fn body_len(_state: &State, _seq: u64) -> usize {
    BODY_BYTES
}

/// Body length every test request has.
pub const BODY_BYTES: usize = 48;
