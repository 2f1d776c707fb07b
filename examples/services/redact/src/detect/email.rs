//! E-mail addresses: `local@domain.tld`, with the local part's usual characters and a domain of
//! dot-separated labels ending in an alphabetic top-level domain.

use super::{Detector, builtin};
use regex::Regex;
use std::ops::Range;

/// Finds e-mail addresses.
pub(crate) struct Email {
    pattern: Regex,
}

// === impl Email ===

impl Email {
    pub(crate) fn new() -> Self {
        // ASCII-only classes keep the regex on its fast DFA engines. Domain labels may contain
        // but not start or end with a hyphen, and the top-level domain must be letters, so a
        // trailing full stop or `user@host` without a domain is not taken.
        Self {
            pattern: builtin(
                r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
            ),
        }
    }
}

impl Detector for Email {
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>) {
        // Most texts have no `@` at all: skip the regex for them.
        if !text.contains('@') {
            return;
        }
        out.extend(
            self.pattern
                .find_iter(text)
                .map(|m| m.range())
                // `a.b@c.d` inside `xa.b@c.dy` is not an address of its own.
                .filter(|r| super::free_after(text, r)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing::matches;

    #[test]
    fn finds_addresses_in_running_text() {
        let email = Email::new();
        assert_eq!(
            matches(
                &email,
                "Write to jane.doe+news@example.co.uk or <ops@mail-1.example.org>."
            ),
            ["jane.doe+news@example.co.uk", "ops@mail-1.example.org"]
        );
    }

    #[test]
    fn ignores_things_that_only_look_similar() {
        let email = Email::new();
        for text in [
            "no address here",
            "@handle on social media",
            "user@localhost is not routable",
            "a@-bad-.com",
            "git@github:repo",
            "price 5@ 3.00",
        ] {
            assert!(matches(&email, text).is_empty(), "{text}");
        }
    }
}
