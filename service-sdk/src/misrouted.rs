//! Requests meant for another service. The gateway names the service it means every request for
//! (`holdline-service` over HTTP, the `svc` field of a queued entry); an instance whose own name
//! differs refuses the request rather than serve another service's call with the wrong code.
//!
//! A mismatch is a deployment error (the gateway's `[services.NAME]` and the instance's
//! `--service` disagree, or an endpoint list points at the wrong instances) that no retry
//! fixes, so the first one is logged as an error, loudly, and every one is counted.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a mismatch has been logged yet; one per runner.
#[derive(Debug, Default)]
pub(crate) struct Misrouted {
    logged: AtomicBool,
}

// === impl Misrouted ===

impl Misrouted {
    /// Whether `named`, the service the gateway meant the request for, is not `own`; logs the
    /// first mismatch as an error (`path` says which path met it).
    pub(crate) fn is_for_another(&self, own: &str, named: &[u8], path: &'static str) -> bool {
        if named == own.as_bytes() {
            return false;
        }
        let named = String::from_utf8_lossy(named);
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                service = own,
                requested = %named,
                path,
                "refusing requests for service {named:?}: this instance serves {own:?}; the \
                 gateway's [services.NAME] and this instance's --service (HOLDLINE_SERVICE) must \
                 agree (further mismatches are counted, not logged)"
            );
        } else {
            tracing::debug!(service = own, requested = %named, path, "refused a request for another service");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_name_is_a_mismatch() {
        let misrouted = Misrouted::default();
        assert!(!misrouted.is_for_another("echo", b"echo", "http"));
        assert!(misrouted.is_for_another("echo", b"billing", "http"));
        assert!(misrouted.is_for_another("echo", b"Echo", "queue"));
        assert!(misrouted.logged.load(Ordering::Relaxed));
    }
}
