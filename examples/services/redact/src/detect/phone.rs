//! Phone numbers in the two shapes that text reliably gives away: international numbers written
//! with a leading `+` (E.164, at most 15 digits), and ten-digit national numbers written in
//! groups of 3-3-4 (`555-123-4567`, `(555) 123 4567`, `555.123.4567`).
//!
//! A bare run of digits is deliberately not a phone number: order numbers, amounts and ids look
//! exactly like one, and redacting them would destroy the text's meaning.

use super::{Detector, builtin};
use regex::Regex;
use std::ops::Range;

/// Digits an international number has at least (country code included) and at most (E.164).
const INTERNATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// Finds phone numbers.
pub(crate) struct Phone {
    pattern: Regex,
}

// === impl Phone ===

impl Phone {
    pub(crate) fn new() -> Self {
        Self {
            pattern: builtin(
                r"(?x)
                  # International: +CC, an optional (area code), then groups of digits.
                  \+[0-9]{1,3}[\ .-]?(?:\([0-9]{1,4}\)[\ .-]?)?[0-9]{1,4}(?:[\ .-]?[0-9]{2,4}){1,5}
                  # National: (555) 123-4567, with or without a space after the parenthesis.
                | \([0-9]{3}\)\ ?[0-9]{3}[\ .-][0-9]{4}
                  # National: 555-123-4567, 555.123.4567, 555 123 4567.
                | [0-9]{3}[\ .-][0-9]{3}[\ .-][0-9]{4}
                ",
            ),
        }
    }
}

impl Detector for Phone {
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>) {
        for found in self.pattern.find_iter(text) {
            let range = found.range();
            let digits = found.as_str().bytes().filter(u8::is_ascii_digit).count();
            let plausible = if found.as_str().starts_with('+') {
                INTERNATIONAL_DIGITS.contains(&digits)
            } else {
                digits == 10
            };
            // Part of a longer number (`1555-123-4567-9`) or word is not a phone number.
            if plausible && super::standalone(text, &range) && !continues_number(text, &range) {
                out.push(range);
            }
        }
    }
}

/// Whether the match is glued to more digits by a separator, as in a date-time or a serial.
fn continues_number(text: &str, range: &Range<usize>) -> bool {
    let after = &text.as_bytes()[range.end..];
    let before = &text.as_bytes()[..range.start];
    let glued = |sep: Option<&u8>, digit: Option<&u8>| {
        matches!(sep, Some(b'-' | b'.' | b'/')) && digit.is_some_and(u8::is_ascii_digit)
    };
    glued(after.first(), after.get(1))
        || glued(
            before.last(),
            before.len().checked_sub(2).map(|i| &before[i]),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing::matches;

    #[test]
    fn finds_international_and_national_numbers() {
        let phone = Phone::new();
        assert_eq!(
            matches(
                &phone,
                "Call +1 (555) 123-4567, +44 20 7946 0958 or +4915112345678; \
                 office 555-123-4567, (555) 987 6543 and 555.010.9999."
            ),
            [
                "+1 (555) 123-4567",
                "+44 20 7946 0958",
                "+4915112345678",
                "555-123-4567",
                "(555) 987 6543",
                "555.010.9999",
            ]
        );
    }

    #[test]
    fn leaves_dates_amounts_and_ids_alone() {
        let phone = Phone::new();
        for text in [
            "on 2024-01-15 at 10:30",
            "order 5551234567 shipped",
            "total 1 234 567.89",
            "serial 555-123-4567-12",
            "ISBN 978-3-16-148410-0",
            "+12 is a small number",
            "+1234567890123456789 is too long for E.164",
            "v555-123-4567",
        ] {
            assert!(matches(&phone, text).is_empty(), "{text}");
        }
    }
}
