//! Detectors: each finds the byte ranges of one kind of personal data in a text.
//!
//! A detector is a regular expression that proposes candidates plus, where a pattern alone would
//! redact too much, a validation step (Luhn for card numbers, a real address parser for IPs,
//! digit counts for phone numbers). Detectors never resolve overlaps between each other; the
//! [`Redactor`](crate::Redactor) does that once for all of them.

mod card;
mod email;
mod ip;
mod phone;

pub(crate) use card::Card;
pub(crate) use email::Email;
pub(crate) use ip::{Ipv4, Ipv6};
pub(crate) use phone::Phone;

use regex::Regex;
use std::ops::Range;

/// Finds one kind of personal data.
pub(crate) trait Detector: Send + Sync {
    /// Appends the byte range of every match in `text` to `out`. Ranges of one detector do not
    /// overlap each other and always fall on `char` boundaries.
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>);
}

/// A user-supplied pattern from the rules file: every non-empty match is redacted as is.
pub(crate) struct Custom {
    pattern: Regex,
}

// === impl Custom ===

impl Custom {
    pub(crate) fn new(pattern: Regex) -> Self {
        Self { pattern }
    }
}

impl Detector for Custom {
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>) {
        out.extend(
            self.pattern
                .find_iter(text)
                .filter(|m| !m.is_empty())
                .map(|m| m.range()),
        );
    }
}

/// Compiles one of the built-in patterns, which are fixed and covered by tests.
fn builtin(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in patterns compile")
}

/// Whether the byte before `range` is not a letter or digit (or `range` starts the text).
fn free_before(text: &str, range: &Range<usize>) -> bool {
    text[..range.start]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric())
}

/// Whether the character after `range` is not a letter or digit (or `range` ends the text).
fn free_after(text: &str, range: &Range<usize>) -> bool {
    text[range.end..]
        .chars()
        .next()
        .is_none_or(|c| !c.is_alphanumeric())
}

/// A match that is a whole token, not the middle of a longer word or number.
fn standalone(text: &str, range: &Range<usize>) -> bool {
    free_before(text, range) && free_after(text, range)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the detectors' unit tests.

    use super::Detector;

    /// The matched substrings, in order.
    pub(crate) fn matches<'t>(detector: &dyn Detector, text: &'t str) -> Vec<&'t str> {
        let mut ranges = Vec::new();
        detector.find(text, &mut ranges);
        ranges.into_iter().map(|r| &text[r]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_patterns_skip_empty_matches() {
        let custom = Custom::new(Regex::new(r"EMP-[0-9]{6}|x*").unwrap());
        assert_eq!(
            testing::matches(&custom, "id EMP-004211, not EMP-12"),
            ["EMP-004211"]
        );
    }

    #[test]
    fn token_boundaries_look_at_whole_characters() {
        let text = "é1.2é 1.2";
        assert!(!standalone(text, &(2..5)));
        assert!(standalone(text, &(8..11)));
    }
}
