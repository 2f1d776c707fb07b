//! The redactor: runs every enabled detector over a text, settles overlapping matches, and
//! replaces what is left with `[LABEL]`.
//!
//! Built once at start-up from the [`Rules`], so every regular expression is compiled once and
//! shared by all requests.

use crate::detect::{self, Detector};
use crate::rules::{Rules, RulesError};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

/// The compiled rules. Cheap to share behind an `Arc`; `redact` takes `&self`.
pub struct Redactor {
    /// Detectors in priority order: on a tie between overlapping matches of equal length the
    /// earlier one wins. Custom rules come first, since a user who wrote one meant it.
    detectors: Vec<(Arc<str>, Box<dyn Detector>)>,
}

/// One piece of personal data that was replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The label it was replaced with (`EMAIL`, `CARD`, a custom label...).
    pub label: Arc<str>,
    /// Its byte range in the original text.
    pub range: Range<usize>,
}

/// A redacted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The text with every finding replaced by `[LABEL]`.
    pub text: String,
    /// What was replaced, in text order.
    pub findings: Vec<Finding>,
}

// === impl Redactor ===

impl Redactor {
    /// Compiles the rules.
    pub fn new(rules: &Rules) -> Result<Self, RulesError> {
        let mut detectors: Vec<(Arc<str>, Box<dyn Detector>)> = Vec::new();
        for (index, rule) in rules.custom.iter().enumerate() {
            if !rule.label_ok() {
                return Err(RulesError::Label {
                    index,
                    label: rule.label.clone(),
                });
            }
            let pattern =
                regex::Regex::new(&rule.pattern).map_err(|source| RulesError::Pattern {
                    index,
                    label: rule.label.clone(),
                    source,
                })?;
            detectors.push((
                rule.label.as_str().into(),
                Box::new(detect::Custom::new(pattern)),
            ));
        }
        let builtins = &rules.builtins;
        // Cards before phones: a spaced card number can also read as a long international
        // number, and the Luhn check makes the card reading the more certain one.
        if builtins.email {
            detectors.push(("EMAIL".into(), Box::new(detect::Email::new())));
        }
        if builtins.card {
            detectors.push(("CARD".into(), Box::new(detect::Card::new())));
        }
        if builtins.ip {
            detectors.push(("IP".into(), Box::new(detect::Ipv6::new())));
            detectors.push(("IP".into(), Box::new(detect::Ipv4::new())));
        }
        if builtins.phone {
            detectors.push(("PHONE".into(), Box::new(detect::Phone::new())));
        }
        Ok(Self { detectors })
    }

    /// Redacts `text`.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut candidates: Vec<(usize, Range<usize>)> = Vec::new();
        let mut ranges = Vec::new();
        for (priority, (_, detector)) in self.detectors.iter().enumerate() {
            detector.find(text, &mut ranges);
            candidates.extend(ranges.drain(..).map(|r| (priority, r)));
        }
        let chosen = settle_overlaps(candidates);

        let mut out = String::with_capacity(text.len());
        let mut findings = Vec::with_capacity(chosen.len());
        let mut copied = 0;
        for (start, (end, priority)) in chosen {
            let label = &self.detectors[priority].0;
            out.push_str(&text[copied..start]);
            out.push('[');
            out.push_str(label);
            out.push(']');
            copied = end;
            findings.push(Finding {
                label: Arc::clone(label),
                range: start..end,
            });
        }
        out.push_str(&text[copied..]);
        Redacted {
            text: out,
            findings,
        }
    }
}

/// Picks a set of non-overlapping matches: the longest first (a whole e-mail address beats the
/// phone-like digits inside it), then by detector priority, then leftmost. Returns them keyed by
/// start, as `start -> (end, priority)`.
fn settle_overlaps(mut candidates: Vec<(usize, Range<usize>)>) -> BTreeMap<usize, (usize, usize)> {
    candidates.sort_by_key(|(priority, r)| (std::cmp::Reverse(r.len()), *priority, r.start));
    let mut chosen: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (priority, range) in candidates {
        // The chosen match starting last before this one's end is the only one that can
        // overlap it, since chosen matches never overlap each other.
        let overlaps = chosen
            .range(..range.end)
            .next_back()
            .is_some_and(|(_, (end, _))| *end > range.start);
        if !overlaps {
            chosen.insert(range.start, (range.end, priority));
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Builtins, CustomRule};

    fn redact(text: &str) -> String {
        Redactor::new(&Rules::default()).unwrap().redact(text).text
    }

    #[test]
    fn redacts_every_kind_and_reports_findings_in_order() {
        let redactor = Redactor::new(&Rules::default()).unwrap();
        let text = "Jane <jane@example.com>, card 4111 1111 1111 1111, phone +1 555 123 4567, \
                    from 10.1.2.3 and 2001:db8::7.";
        let redacted = redactor.redact(text);
        assert_eq!(
            redacted.text,
            "Jane <[EMAIL]>, card [CARD], phone [PHONE], from [IP] and [IP]."
        );
        let labels: Vec<&str> = redacted.findings.iter().map(|f| &*f.label).collect();
        assert_eq!(labels, ["EMAIL", "CARD", "PHONE", "IP", "IP"]);
        assert_eq!(
            &text[redacted.findings[0].range.clone()],
            "jane@example.com"
        );
    }

    #[test]
    fn leaves_ordinary_text_untouched() {
        let text =
            "Order 4111111111111112 of 2024-01-15 costs 1 234.50; build 1.2.3.4.5 at 12:30:45.";
        assert_eq!(redact(text), text);
        assert_eq!(redact(""), "");
        assert_eq!(redact("ünïcödé ✓ 日本語"), "ünïcödé ✓ 日本語");
    }

    #[test]
    fn overlapping_matches_resolve_to_the_longest() {
        // The phone-shaped digits are inside the e-mail address; the address wins whole.
        assert_eq!(
            redact("mail 555-123-4567@example.com now"),
            "mail [EMAIL] now"
        );
        // An IPv4 tail inside an IPv6 address is part of the address.
        assert_eq!(redact("peer ::ffff:192.0.2.1 up"), "peer [IP] up");
        // Adjacent findings stay separate.
        assert_eq!(redact("a@example.com,b@example.org"), "[EMAIL],[EMAIL]");
    }

    #[test]
    fn custom_rules_add_labels_and_builtins_can_be_switched_off() {
        let rules = Rules {
            builtins: Builtins {
                email: false,
                ..Builtins::default()
            },
            custom: vec![
                CustomRule {
                    label: "EMPLOYEE_ID".into(),
                    pattern: "EMP-[0-9]{6}".into(),
                },
                // Same span as the card: the custom rule has priority on a tie.
                CustomRule {
                    label: "TEST_CARD".into(),
                    pattern: "4111111111111111".into(),
                },
            ],
        };
        let redactor = Redactor::new(&rules).unwrap();
        assert_eq!(
            redactor
                .redact("EMP-004211 paid with 4111111111111111, mail me@example.com")
                .text,
            "[EMPLOYEE_ID] paid with [TEST_CARD], mail me@example.com"
        );
    }

    #[test]
    fn bad_custom_rules_are_rejected_with_their_index() {
        let bad_pattern = Rules {
            custom: vec![CustomRule {
                label: "X".into(),
                pattern: "(unclosed".into(),
            }],
            ..Rules::default()
        };
        let error = Redactor::new(&bad_pattern).err().unwrap();
        assert!(
            matches!(error, RulesError::Pattern { index: 0, .. }),
            "{error}"
        );

        let bad_label = Rules {
            custom: vec![CustomRule {
                label: "no spaces".into(),
                pattern: "x".into(),
            }],
            ..Rules::default()
        };
        let error = Redactor::new(&bad_label).err().unwrap();
        assert!(
            matches!(error, RulesError::Label { index: 0, .. }),
            "{error}"
        );
    }

    #[test]
    fn settles_overlaps_by_length_then_priority_then_position() {
        let chosen = settle_overlaps(vec![
            (1, 0..4),
            (0, 2..5),
            (2, 3..10),
            (0, 10..12),
            (1, 10..12),
        ]);
        let picked: Vec<_> = chosen.into_iter().collect();
        // 3..10 is the longest; 0..4 and 2..5 overlap it; at 10..12 priority 0 wins the tie.
        assert_eq!(picked, [(3, (10, 2)), (10, (12, 0))]);
    }
}
