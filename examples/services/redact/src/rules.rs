//! The rules file: which built-in detectors run, and extra patterns with their labels.
//!
//! TOML, or JSON when the file name ends in `.json`:
//!
//! ```toml
//! [builtins]        # every built-in is on unless switched off here
//! phone = false
//!
//! [[custom]]        # redacted as `[EMPLOYEE_ID]`
//! label = "EMPLOYEE_ID"
//! pattern = "EMP-[0-9]{6}"
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole rules file. Without a file, every built-in runs and there are no custom rules.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// The built-in detectors, each on by default.
    pub builtins: Builtins,
    /// Extra patterns, each redacted as `[LABEL]`.
    pub custom: Vec<CustomRule>,
}

/// Switches for the built-in detectors.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Builtins {
    /// E-mail addresses, as `[EMAIL]`.
    pub email: bool,
    /// Phone numbers, as `[PHONE]`.
    pub phone: bool,
    /// Luhn-valid payment card numbers, as `[CARD]`.
    pub card: bool,
    /// IPv4 and IPv6 addresses, as `[IP]`.
    pub ip: bool,
}

/// One custom rule.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// The replacement's label: `[LABEL]`. 1 to 64 of `A-Z a-z 0-9 _ -`.
    pub label: String,
    /// A regular expression in the `regex` crate's syntax; `(?i)` makes it case-insensitive.
    pub pattern: String,
}

/// Why a rules file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON, or has an unknown key.
    #[error("invalid rules file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, naming the key or line.
        reason: String,
    },
    /// A custom rule's label cannot be used in a replacement.
    #[error("custom rule {index}: label {label:?} must be 1-64 of [A-Za-z0-9_-]")]
    Label {
        /// The rule's position in the file, from 0.
        index: usize,
        /// The label.
        label: String,
    },
    /// A custom rule's pattern does not compile.
    #[error("custom rule {index} ({label}): invalid pattern")]
    Pattern {
        /// The rule's position in the file, from 0.
        index: usize,
        /// The rule's label.
        label: String,
        /// The compiler's error, which points at the offending part.
        #[source]
        source: regex::Error,
    },
}

// === impl Rules ===

impl Rules {
    /// Reads a rules file: JSON if its name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_owned(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let parsed = if is_json {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|reason| RulesError::Parse {
            path: path.to_owned(),
            reason,
        })
    }
}

impl Default for Builtins {
    fn default() -> Self {
        Self {
            email: true,
            phone: true,
            card: true,
            ip: true,
        }
    }
}

// === impl CustomRule ===

impl CustomRule {
    /// Whether the label is safe to put between brackets in the output.
    pub(crate) fn label_ok(&self) -> bool {
        (1..=64).contains(&self.label.len())
            && self
                .label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_toml_and_json_with_defaults_for_what_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            &dir,
            "rules.toml",
            "[builtins]\nphone = false\n[[custom]]\nlabel = \"EMP\"\npattern = \"EMP-[0-9]+\"\n",
        );
        let json = write(
            &dir,
            "rules.json",
            r#"{"builtins": {"phone": false}, "custom": [{"label": "EMP", "pattern": "EMP-[0-9]+"}]}"#,
        );
        let expected = Rules {
            builtins: Builtins {
                phone: false,
                ..Builtins::default()
            },
            custom: vec![CustomRule {
                label: "EMP".into(),
                pattern: "EMP-[0-9]+".into(),
            }],
        };
        assert_eq!(Rules::load(&toml).unwrap(), expected);
        assert_eq!(Rules::load(&json).unwrap(), expected);
        assert_eq!(
            Rules::load(&write(&dir, "empty.toml", "")).unwrap(),
            Rules::default()
        );
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let typo = write(&dir, "typo.toml", "[builtins]\nemial = false\n");
        let error = Rules::load(&typo).unwrap_err();
        assert!(matches!(error, RulesError::Parse { .. }), "{error}");
        assert!(error.to_string().contains("emial"), "{error}");

        let missing = dir.path().join("missing.toml");
        let error = Rules::load(&missing).unwrap_err();
        assert!(matches!(error, RulesError::Read { .. }), "{error}");
        assert!(error.to_string().contains("missing.toml"), "{error}");
    }

    #[test]
    fn the_shipped_example_file_loads_and_compiles() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.example.toml");
        let rules = Rules::load(&path).unwrap();
        assert_eq!(rules.builtins, Builtins::default());
        let redactor = crate::Redactor::new(&rules).unwrap();
        assert_eq!(
            redactor
                .redact("EMP-004211 used sk_live_0123456789abcdefXYZ")
                .text,
            "[EMPLOYEE_ID] used [API_KEY]"
        );
    }

    #[test]
    fn labels_are_restricted_to_safe_characters() {
        let rule = |label: &str| CustomRule {
            label: label.into(),
            pattern: "x".into(),
        };
        assert!(rule("EMPLOYEE_ID").label_ok());
        assert!(rule("ticket-no").label_ok());
        assert!(!rule("").label_ok());
        assert!(!rule("A]B").label_ok());
        assert!(!rule(&"A".repeat(65)).label_ok());
    }
}
