//! The pooled HTTP client a service's requests go out on.

use crate::body::Body;
use crate::config::{ServiceConfig, UpstreamProtocol};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Keep-alive connections to one service's endpoints, HTTP/1.1 or h2 (prior knowledge).
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    inner: Client<HttpConnector, Body>,
}

// === impl UpstreamClient ===

impl UpstreamClient {
    pub(crate) fn new(config: &ServiceConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(30)));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.pool_max_idle_per_endpoint)
            // The gateway decides about retries itself (only where the request surely was not
            // processed); the pool's own retry covers just a reused connection closed before the
            // request was written.
            .retry_canceled_requests(true)
            .set_host(false);
        if config.protocol == UpstreamProtocol::H2 {
            builder
                .http2_only(true)
                .http2_keep_alive_interval(Duration::from_secs(20))
                .http2_keep_alive_while_idle(true)
                .http2_adaptive_window(true);
        }
        Self {
            inner: builder.build(connector),
        }
    }

    pub(crate) fn request(
        &self,
        request: http::Request<Body>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.inner.request(request)
    }
}
