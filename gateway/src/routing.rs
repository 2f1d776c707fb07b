//! Routing: a request's host and path pick a route; the longest matching prefix wins, and a route
//! that names the host wins over one that matches any host.

use crate::config::Route;
use std::sync::Arc;

/// Metric handles resolved once per route for its most common outcome (`200` on the sync
/// path), so the hot path skips the label hashing of `with_label_values`.
#[derive(Debug, Clone)]
pub(crate) struct RouteMetrics {
    /// `holdline_requests_total{route, service, status="200", path="sync"}`.
    pub ok_sync: prometheus::IntCounter,
    /// `holdline_request_duration_seconds{service, path="sync"}`.
    pub sync_duration: prometheus::Histogram,
}

/// A compiled route.
#[derive(Debug)]
pub(crate) struct RouteEntry {
    /// Pre-resolved metric handles, once [`RouteTable::attach_metrics`] ran.
    pub metrics: Option<RouteMetrics>,
    /// Label used in metrics and logs: `host/prefix` or `prefix`.
    pub label: Arc<str>,
    /// Service name.
    pub service: Arc<str>,
    prefix: String,
    host: Option<String>,
    strip_prefix: bool,
}

/// Every route, ordered for matching.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Arc<RouteEntry>>,
}

// === impl RouteTable ===

impl RouteTable {
    /// Compiles the configured routes.
    pub(crate) fn new(routes: &[Route]) -> Self {
        let mut compiled: Vec<RouteEntry> = routes
            .iter()
            .map(|r| {
                let prefix = r.prefix.trim_end_matches('/').to_owned();
                let host = r.host.as_deref().map(str::to_ascii_lowercase);
                let label = match &host {
                    Some(h) => format!("{h}{}", r.prefix),
                    None => r.prefix.clone(),
                };
                RouteEntry {
                    metrics: None,
                    label: label.into(),
                    service: r.service.as_str().into(),
                    prefix,
                    host,
                    strip_prefix: r.strip_prefix,
                }
            })
            .collect();
        // Host-specific routes first, then longer prefixes first.
        compiled.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        Self {
            routes: compiled.into_iter().map(Arc::new).collect(),
        }
    }

    /// Resolves every route's common-case metric handles.
    pub(crate) fn attach_metrics(&mut self, metrics: &crate::metrics::Metrics) {
        for route in &mut self.routes {
            let route = Arc::get_mut(route).expect("routes are not shared before they are served");
            route.metrics = Some(RouteMetrics {
                ok_sync: metrics.requests.with_label_values(&[
                    &*route.label,
                    &*route.service,
                    "200",
                    "sync",
                ]),
                sync_duration: metrics
                    .duration
                    .with_label_values(&[&*route.service, "sync"]),
            });
        }
    }

    /// The route for a host (without port, any case) and path, with its place in
    /// [`Self::iter`]'s order.
    pub(crate) fn find(&self, host: Option<&str>, path: &str) -> Option<(usize, &Arc<RouteEntry>)> {
        self.routes.iter().enumerate().find(|(_, r)| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.prefix, path)
        })
    }

    /// The route at `index` of [`Self::iter`]'s order.
    pub(crate) fn get(&self, index: usize) -> Option<&Arc<RouteEntry>> {
        self.routes.get(index)
    }

    /// Every route, in matching order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<RouteEntry>> {
        self.routes.iter()
    }
}

/// `/echo` matches `/echo`, `/echo/` and `/echo/x`, never `/echoes`. The root prefix (stored as
/// the empty string) matches everything.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

// === impl RouteEntry ===

impl RouteEntry {
    /// The path and query the upstream sees for `path_and_query`.
    pub(crate) fn rewrite<'a>(&self, path_and_query: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.strip_prefix || self.prefix.is_empty() {
            return path_and_query.into();
        }
        let rest = &path_and_query[self.prefix.len()..];
        if rest.is_empty() || rest.starts_with('?') {
            format!("/{rest}").into()
        } else {
            rest.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, host: Option<&str>, service: &str, strip: bool) -> Route {
        Route {
            prefix: prefix.into(),
            host: host.map(Into::into),
            service: service.into(),
            strip_prefix: strip,
        }
    }

    #[test]
    fn longest_prefix_and_host_specific_routes_win() {
        let table = RouteTable::new(&[
            route("/", None, "root", false),
            route("/api", None, "api", false),
            route("/api/v2", None, "v2", true),
            route("/", Some("Admin.Example"), "admin", false),
        ]);
        let svc = |host, path| table.find(host, path).map(|(_, r)| &*r.service);
        assert_eq!(svc(None, "/api/x"), Some("api"));
        assert_eq!(svc(None, "/api/v2/x"), Some("v2"));
        assert_eq!(svc(None, "/apix"), Some("root"));
        assert_eq!(svc(Some("admin.example"), "/api"), Some("admin"));
        assert_eq!(
            RouteTable::new(&[route("/a", None, "a", false)])
                .find(None, "/b")
                .map(|(_, r)| &*r.service),
            None
        );
    }

    #[test]
    fn strips_prefixes_at_segment_boundaries() {
        let table = RouteTable::new(&[route("/echo", None, "echo", true)]);
        let (_, r) = table.find(None, "/echo").unwrap();
        assert_eq!(r.rewrite("/echo"), "/");
        assert_eq!(r.rewrite("/echo?x=1"), "/?x=1");
        assert_eq!(r.rewrite("/echo/a/b?x"), "/a/b?x");
        assert!(table.find(None, "/echoes").is_none());
    }
}
