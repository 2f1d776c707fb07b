//! Payment card numbers: 13 to 19 digits, unbroken or in blocks separated by single spaces or
//! hyphens (`4111 1111 1111 1111`, `3782-822463-10005`), that pass the Luhn checksum.
//!
//! The checksum is what keeps random digit runs (order numbers, timestamps, ids) unredacted: a
//! random number passes it one time in ten, and only runs of whole blocks are considered, so a
//! card-length slice of a longer number is never taken.

use super::{Detector, builtin};
use regex::Regex;
use std::ops::Range;

/// Digits a card number has (ISO/IEC 7812 primary account numbers).
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

/// Finds card numbers.
pub(crate) struct Card {
    /// A run of digit blocks joined by single separators.
    groups: Regex,
}

// === impl Card ===

impl Card {
    pub(crate) fn new() -> Self {
        Self {
            groups: builtin(r"[0-9]+(?:[ -][0-9]+)*"),
        }
    }
}

impl Detector for Card {
    fn find(&self, text: &str, out: &mut Vec<Range<usize>>) {
        for group in self.groups.find_iter(text) {
            let range = group.range();
            if group.len() < *CARD_DIGITS.start() || !super::standalone(text, &range) {
                continue;
            }
            find_in_group(group.as_str(), range.start, out);
        }
    }
}

/// Looks for card numbers made of whole blocks of one group, leftmost first and, from each
/// starting block, the longest window that is valid. A group can hold several numbers
/// (`card 4111 1111 1111 1111 exp 12 29` is two groups, but a list of numbers may be one).
fn find_in_group(group: &str, offset: usize, out: &mut Vec<Range<usize>>) {
    // Block boundaries as byte ranges within the group.
    let mut blocks: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    for (i, b) in group.bytes().enumerate() {
        if !b.is_ascii_digit() {
            blocks.push(start..i);
            start = i + 1;
        }
    }
    blocks.push(start..group.len());

    let mut first = 0;
    while first < blocks.len() {
        let mut found = None;
        let mut digits = 0;
        for (last, block) in blocks.iter().enumerate().skip(first) {
            digits += block.len();
            if digits > *CARD_DIGITS.end() {
                break;
            }
            let candidate = &group[blocks[first].start..block.end];
            if CARD_DIGITS.contains(&digits)
                && card_layout(candidate, &blocks[first..=last])
                && plausible_card(candidate)
            {
                found = Some(last);
            }
        }
        match found {
            Some(last) => {
                out.push(offset + blocks[first].start..offset + blocks[last].end);
                first = last + 1;
            }
            None => first += 1,
        }
    }
}

/// Whether the blocks are laid out as card numbers are printed: one run of digits, or blocks
/// of at least three digits (4-4-4-4, 4-6-5, 4-4-4-4-3...) joined by one kind of separator. This
/// keeps a date or a short number in front (`2024-01-14 4111 1111 1111 1111`) out of the card.
fn card_layout(candidate: &str, blocks: &[Range<usize>]) -> bool {
    if blocks.len() == 1 {
        return true;
    }
    let mut separators = candidate.bytes().filter(|b| !b.is_ascii_digit());
    let first = separators.next();
    separators.all(|b| Some(b) == first) && blocks.iter().all(|b| b.len() >= 3)
}

/// Luhn-valid, not starting with `0` (no card issuer range does) and not one digit repeated
/// (`0000 0000 0000 0000` passes Luhn but is a placeholder, not a card).
fn plausible_card(candidate: &str) -> bool {
    let mut digits = candidate.bytes().filter(u8::is_ascii_digit);
    let Some(lead) = digits.next() else {
        return false;
    };
    lead != b'0' && !digits.all(|d| d == lead) && luhn_valid(candidate)
}

/// The Luhn (mod 10) checksum over the ASCII digits of `number`; anything else is skipped.
fn luhn_valid(number: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for digit in number.bytes().rev().filter(u8::is_ascii_digit) {
        let mut value = u32::from(digit - b'0');
        if !count.is_multiple_of(2) {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
        count += 1;
    }
    count > 0 && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing::matches;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_one_digit_changes() {
        for number in [
            "4111111111111111",
            "5500 0000 0000 0004",
            "3782-822463-10005",
            "6011000990139424",
            "79927398713",
        ] {
            assert!(luhn_valid(number), "{number}");
        }
        for number in ["4111111111111112", "5500 0000 0000 0005", "79927398710", ""] {
            assert!(!luhn_valid(number), "{number}");
        }
    }

    #[test]
    fn finds_cards_in_the_usual_layouts() {
        let card = Card::new();
        assert_eq!(
            matches(
                &card,
                "Visa 4111 1111 1111 1111, Amex 3782-822463-10005, MC 5500000000000004."
            ),
            [
                "4111 1111 1111 1111",
                "3782-822463-10005",
                "5500000000000004"
            ]
        );
    }

    #[test]
    fn random_digit_runs_are_not_cards() {
        let card = Card::new();
        for text in [
            // Card length but failing Luhn.
            "order 4111111111111112",
            "tracking 1234 5678 9012 3456",
            // A valid card number inside a longer run of digits.
            "id 94111111111111111",
            "id 41111111111111110000",
            // Luhn-valid but a placeholder or a leading zero.
            "0000 0000 0000 0000",
            "04111111111111111",
            // Too short to be a card, though Luhn-valid.
            "79927398713",
            // Glued to letters.
            "ref4111111111111111",
        ] {
            assert!(matches(&card, text).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_card_followed_by_more_numbers_in_the_same_group_is_found() {
        let card = Card::new();
        assert_eq!(
            matches(&card, "4111 1111 1111 1111 2029"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            matches(&card, "12 4111111111111111 4111111111111111"),
            ["4111111111111111", "4111111111111111"]
        );
    }

    #[test]
    fn a_date_in_front_is_not_taken_into_the_card() {
        // `14 4111 1111 1111` is Luhn-valid (14 digits), but `14` is no card block.
        let card = Card::new();
        assert_eq!(
            matches(&card, "paid 2024-01-14 4111 1111 1111 1111"),
            ["4111 1111 1111 1111"]
        );
        // Mixed separators do not make one number.
        assert!(matches(&card, "4111-1111 1111-1111").is_empty());
    }
}
