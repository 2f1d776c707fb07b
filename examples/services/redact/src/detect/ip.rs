//! IP addresses. The regular expressions only propose candidates; the standard library's address
//! parsers decide, so `256.1.1.1`, `01.2.3.4`, clock times and MAC addresses are never taken.

use super::{Detector, builtin};
use regex::Regex;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Finds IPv4 addresses in dotted-quad form.
pub(crate) struct Ipv4 {
    pattern: Regex,
}

/// Finds IPv6 addresses, compressed (`::`), full, with an embedded IPv4 tail
/// (`::ffff:192.0.2.1`) or a zone (`fe80::1%eth0`).
pub(crate) struct Ipv6 {
    pattern: Regex,
}

// === impl Ipv4 ===

impl Ipv4 {
    pub(crate) fn new() -> Self {
        Self {
            pattern: builtin(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"),
        }
    }
}

impl Detector for Ipv4 {
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>) {
        for found in self.pattern.find_iter(text) {
            let range = found.range();
            if found.as_str().parse::<Ipv4Addr>().is_ok()
                && super::standalone(text, &range)
                && !dotted_neighbour(text, &range)
            {
                out.push(range);
            }
        }
    }
}

/// Whether the candidate is a slice of a longer dotted number (`1.2.3.4.5`, a version or an OID).
fn dotted_neighbour(text: &str, range: &Range<usize>) -> bool {
    let before = &text.as_bytes()[..range.start];
    let after = &text.as_bytes()[range.end..];
    before.last() == Some(&b'.')
        || (after.first() == Some(&b'.') && after.get(1).is_some_and(u8::is_ascii_digit))
}

// === impl Ipv6 ===

impl Ipv6 {
    pub(crate) fn new() -> Self {
        Self {
            pattern: builtin(
                r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}(?:%[0-9a-z_.-]+)?",
            ),
        }
    }
}

impl Detector for Ipv6 {
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>) {
        // Every IPv6 address has at least two colons; most texts have none.
        if !text.contains(':') {
            return;
        }
        for found in self.pattern.find_iter(text) {
            let range = found.range();
            let candidate = found.as_str();
            let address = candidate.split('%').next().unwrap_or_default();
            // Requiring a decimal digit keeps `::` and code like `a::b` out; every address
            // people actually write down has one.
            if address.bytes().any(|b| b.is_ascii_digit())
                && address.parse::<Ipv6Addr>().is_ok()
                && super::standalone(text, &range)
                && !text[..range.start].ends_with(':')
            {
                out.push(range);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing::matches;

    #[test]
    fn finds_ipv4_addresses() {
        let ip = Ipv4::new();
        assert_eq!(
            matches(
                &ip,
                "from 192.168.1.10, then 10.0.0.1/8 and 8.8.8.8. Done at 255.255.255.255"
            ),
            ["192.168.1.10", "10.0.0.1", "8.8.8.8", "255.255.255.255"]
        );
    }

    #[test]
    fn ipv4_ignores_versions_and_impossible_octets() {
        let ip = Ipv4::new();
        for text in [
            "256.1.1.1",
            "01.2.3.4",
            "version 1.2.3.4.5",
            "oid 1.3.6.1.4.1",
            "v1.2.3.4",
            "1.2.3",
            "pi is 3.14159",
        ] {
            assert!(matches(&ip, text).is_empty(), "{text}");
        }
    }

    #[test]
    fn finds_ipv6_addresses() {
        let ip = Ipv6::new();
        assert_eq!(
            matches(
                &ip,
                "hosts 2001:db8::1, [fe80::1%eth0]:80, ::1 and ::ffff:192.0.2.1 \
                 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334."
            ),
            [
                "2001:db8::1",
                "fe80::1%eth0",
                "::1",
                "::ffff:192.0.2.1",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334"
            ]
        );
    }

    #[test]
    fn ipv6_ignores_times_macs_and_paths() {
        let ip = Ipv6::new();
        for text in [
            "at 12:30:45 today",
            "mac 00:1a:2b:3c:4d:5e",
            "std::vec::Vec and a::b",
            "ratio 1:2:3",
            "just :: here",
        ] {
            assert!(matches(&ip, text).is_empty(), "{text}");
        }
    }
}
