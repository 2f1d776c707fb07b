//! Routing: a request's host and path pick a route; the longest matching prefix wins, and a route
//! that names the host wins over one that matches any host. Routes match the path in its normal
//! form ([`normalize`]), which is then the path the request is forwarded with.

pub(crate) mod normalize;

pub(crate) use normalize::PathError;

use crate::config::{EscapedSlashes, Paths, Route};
use normalize::{Normalized, Options, normalize};
use std::borrow::Cow;
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
    escaped_slashes: EscapedSlashes,
}

/// Every route, ordered for matching.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Arc<RouteEntry>>,
    /// `paths.merge_slashes`.
    merge_slashes: bool,
}

/// A matched route and the path it matched: the request's path in normal form, borrowed when
/// that is the path as it came.
pub(crate) type Routed<'p> = (usize, Cow<'p, str>);

// === impl RouteTable ===

impl RouteTable {
    /// Compiles the configured routes.
    pub(crate) fn new(routes: &[Route], paths: &Paths) -> Self {
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
                    escaped_slashes: r.escaped_slashes,
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
            merge_slashes: paths.merge_slashes,
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

    /// The route for a host (without port, any case) and a request path (without its query), with
    /// its place in [`Self::iter`]'s order and the path it matched, which is the one to forward:
    /// the path in normal form, its encoded slashes refused, kept or decoded as the route that
    /// matched them says. A decoded path is matched again, and is the one forwarded, with the
    /// route it matches. A path whose normal form is under the result locations, which the proxy
    /// serves itself and never routes, matches nothing.
    pub(crate) fn route<'p>(
        &self,
        host: Option<&str>,
        path: &'p str,
    ) -> Result<Option<Routed<'p>>, PathError> {
        let options = Options {
            merge_slashes: self.merge_slashes,
            decode_slashes: false,
        };
        let normalized = normalize(path, options)?;
        let Some((index, route)) = self.find_normal(host, &normalized) else {
            return Ok(None);
        };
        if !normalized.escaped_slash {
            return Ok(Some((index, normalized.path)));
        }
        match route.escaped_slashes {
            EscapedSlashes::Reject => Err(PathError::EscapedSlash),
            EscapedSlashes::Keep => Ok(Some((index, normalized.path))),
            EscapedSlashes::Decode => {
                let decoded = normalize(
                    path,
                    Options {
                        decode_slashes: true,
                        ..options
                    },
                )?;
                let found = self.find_normal(host, &decoded);
                Ok(found.map(|(index, _)| (index, decoded.path)))
            }
        }
    }

    /// Whether `path` is in normal form already, so that [`Self::find`] on it is what
    /// [`Self::route`] would do: nearly every path, told in one scan. The proxy looks here first
    /// so that such a path costs nothing more.
    #[inline]
    pub(crate) fn is_normal(&self, path: &str) -> bool {
        normalize::is_normal(path.as_bytes(), self.merge_slashes)
    }

    /// [`Self::find`] for a path in normal form, which is never one of the result locations.
    fn find_normal(
        &self,
        host: Option<&str>,
        normal: &Normalized<'_>,
    ) -> Option<(usize, &Arc<RouteEntry>)> {
        // A path that came in normal form was sent to the result fetch already if it was one.
        if matches!(&normal.path, Cow::Owned(p) if p.starts_with(crate::queue::RESULTS_PREFIX)) {
            return None;
        }
        self.find(host, &normal.path)
    }

    /// The route for a host (without port, any case) and path as it is, with its place in
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
            escaped_slashes: EscapedSlashes::Reject,
        }
    }

    fn compile(routes: &[Route]) -> RouteTable {
        RouteTable::new(routes, &Paths::default())
    }

    #[test]
    fn longest_prefix_and_host_specific_routes_win() {
        let table = compile(&[
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
            compile(&[route("/a", None, "a", false)])
                .find(None, "/b")
                .map(|(_, r)| &*r.service),
            None
        );
    }

    #[test]
    fn strips_prefixes_at_segment_boundaries() {
        let table = compile(&[route("/echo", None, "echo", true)]);
        let (_, r) = table.find(None, "/echo").unwrap();
        assert_eq!(r.rewrite("/echo"), "/");
        assert_eq!(r.rewrite("/echo?x=1"), "/?x=1");
        assert_eq!(r.rewrite("/echo/a/b?x"), "/a/b?x");
        assert!(table.find(None, "/echoes").is_none());
    }

    /// The service and path a request path is routed to.
    fn routed<'t>(
        table: &'t RouteTable,
        path: &str,
    ) -> Result<Option<(&'t str, String)>, PathError> {
        let found = table.route(None, path)?;
        Ok(found.map(|(index, normal)| (&*table.get(index).unwrap().service, normal.into_owned())))
    }

    #[test]
    fn routes_match_the_normal_form_of_the_path() {
        let table = compile(&[
            route("/", None, "root", false),
            route("/public", None, "public", true),
            route("/admin", None, "admin", false),
        ]);
        for path in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2E/admin",
            "//admin",
            "/public//../admin",
        ] {
            assert_eq!(
                routed(&table, path),
                Ok(Some(("admin", "/admin".to_owned()))),
                "{path}"
            );
        }
        assert_eq!(
            routed(&table, "/public/./x"),
            Ok(Some(("public", "/public/x".to_owned())))
        );
        // A path that needs nothing is matched as it came, without a copy.
        let (_, normal) = table.route(None, "/public/x").unwrap().unwrap();
        assert!(matches!(normal, Cow::Borrowed("/public/x")));
        assert_eq!(routed(&table, "/public/../.."), Err(PathError::AboveRoot));
        assert_eq!(routed(&table, "/public/%zz"), Err(PathError::BadEscape));
        // The result locations are the proxy's own, however they are spelled.
        assert_eq!(routed(&table, "/x/../_holdline/results/s/1"), Ok(None));
    }

    #[test]
    fn each_route_decides_what_an_encoded_slash_gets() {
        let policy = |prefix: &str, service: &str, escaped_slashes| Route {
            escaped_slashes,
            ..route(prefix, None, service, false)
        };
        let table = compile(&[
            policy("/", "root", EscapedSlashes::Reject),
            policy("/files", "files", EscapedSlashes::Keep),
            policy("/win", "win", EscapedSlashes::Decode),
            policy("/admin", "admin", EscapedSlashes::Reject),
        ]);
        let cases = [
            ("/public/..%2fadmin", Err(PathError::EscapedSlash)),
            ("/public/..\\admin", Err(PathError::EscapedSlash)),
            (
                "/files/a%2fb",
                Ok(Some(("files", "/files/a%2Fb".to_owned()))),
            ),
            (
                "/files/..%2F..%2Fadmin",
                Ok(Some(("files", "/files/..%2F..%2Fadmin".to_owned()))),
            ),
            ("/win/a%5Cb", Ok(Some(("win", "/win/a/b".to_owned())))),
            // Decoded, the path is routed again: the route it then matches serves it.
            ("/win/..%2Fadmin", Ok(Some(("admin", "/admin".to_owned())))),
            ("/win/..\\..\\x", Err(PathError::AboveRoot)),
        ];
        for (path, want) in cases {
            assert_eq!(routed(&table, path), want, "{path}");
        }
        // Decoded into a result location: never routed.
        let only_decode = super::RouteTable::new(
            &[policy("/", "root", EscapedSlashes::Decode)],
            &Paths::default(),
        );
        assert_eq!(routed(&only_decode, "/_holdline%2Fresults/s/1"), Ok(None));
    }
}
