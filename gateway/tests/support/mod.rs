//! Helpers shared by the gateway's integration tests: an in-process gateway on port 0, fake
//! upstreams built on hyper, and clients (pooled hyper, raw sockets, TLS).
//!
//! Every test file includes this module and uses only part of it, hence the `dead_code` allowance.

#![allow(dead_code, unused_imports)]

pub(crate) mod client;
pub(crate) mod gateway;
pub(crate) mod queue;
pub(crate) mod tls;
pub(crate) mod upstream;
pub(crate) mod worker;

pub(crate) use client::{Reply, client, get, h2c_client, raw_exchange, send, spawn_get, try_get};
pub(crate) use gateway::{LISTEN, TestGateway, one_service};
pub(crate) use tls::TlsClient;
pub(crate) use upstream::{Echo, Upstream};
pub(crate) use worker::Worker;

use std::net::SocketAddr;

/// An address on which nothing listens: bound for a moment, then released.
pub(crate) fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// Whether `text` is a request id the gateway generates: 32 lowercase hex digits.
pub(crate) fn is_generated_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The value of the first Prometheus sample of `name` whose labels include every `name="value"`
/// pair in `labels`.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let label_text = match rest.strip_prefix('{') {
                Some(inner) => inner.strip_suffix('}')?,
                None if rest.is_empty() => "",
                None => return None,
            };
            let all = labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse().ok()).flatten()
        })
        .next()
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns whether it did.
pub(crate) async fn eventually<F, Fut>(limit: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
