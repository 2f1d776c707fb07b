//! Endpoint URLs as written in the config: `http://host:port`, optionally with a path prefix.
//! Parsed once, when the config is read: everything after it holds the typed value.

use std::net::{IpAddr, SocketAddr};

/// A parsed endpoint URL. In the config it is a string; `gateway describe` shows its parts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String")]
pub struct EndpointUrl {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path prefix prepended to every forwarded path, without a trailing `/` (usually empty).
    pub base_path: String,
}

// === impl EndpointUrl ===

impl TryFrom<String> for EndpointUrl {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl EndpointUrl {
    /// Parses `http://host[:port][/base]`. Only plain `http` is supported to upstreams.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw.strip_prefix("http://").ok_or_else(|| {
            if raw.starts_with("https://") {
                format!(
                    "{raw:?}: https endpoints are not supported yet (the gateway speaks plain \
                         HTTP to upstreams); use http://"
                )
            } else {
                format!("{raw:?} must start with http://")
            }
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!("{raw:?} must not have a query or fragment"));
        }
        let uri_authority: http::uri::Authority = authority
            .parse()
            .map_err(|_| format!("{raw:?} has an invalid host or port"))?;
        let port_text = authority
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.contains(']'));
        if port_text.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(format!("{raw:?} has an invalid port"));
        }
        if authority.contains('@') {
            return Err(format!("{raw:?} must not contain credentials"));
        }
        let host = uri_authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{raw:?} has no host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port: uri_authority.port_u16().unwrap_or(80),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The address, when the host is an IP literal (no resolution needed).
    pub fn socket_addr(&self) -> Option<(&Self, SocketAddr)> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some((self, SocketAddr::new(ip, self.port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_paths() {
        let u = EndpointUrl::parse("http://127.0.0.1:18080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base_path.as_str()),
            ("127.0.0.1", 18080, "")
        );
        let u = EndpointUrl::parse("http://echo.svc:8080/api/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base_path.as_str()),
            ("echo.svc", 8080, "/api")
        );
        let u = EndpointUrl::parse("http://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert!(u.socket_addr().is_some());
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        for bad in [
            "https://a:1",
            "a:1",
            "http://",
            "http://a:99999",
            "http://u@a:1",
            "http://a/x?y",
        ] {
            assert!(EndpointUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
