//! What a scan finds out about an upload: its SHA-256, size and byte statistics, a guess at its
//! kind from its first bytes, and a verdict. The verdict only knows the EICAR test file, the
//! harmless string every anti-virus product agrees to flag, so the example can show an
//! "infected" answer without shipping anything harmful.

use sha2::{Digest, Sha256};

/// The EICAR anti-virus test file's signature.
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// File kinds recognised by their leading bytes (magic numbers).
const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"\x7fELF", "elf"),
];

/// The result of scanning one upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// SHA-256 of the whole body, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: usize,
    /// Newline characters, as `wc -l` counts them.
    pub lines: usize,
    /// NUL bytes: text has none.
    pub nul_bytes: usize,
    /// Share of bytes that are printable ASCII or whitespace (1 for an empty body).
    pub text_ratio: f64,
    /// Shannon entropy in bits per byte, 0 to 8: near 8 means compressed or encrypted data.
    pub entropy: f64,
    /// `pdf`, `png`, `jpeg`, `gif`, `zip`, `gzip`, `elf`, else `text` or `binary`.
    pub kind: &'static str,
    /// `clean`, or `infected` when the EICAR test signature is present.
    pub verdict: &'static str,
}

// === impl Report ===

impl Report {
    /// Scans `body`. Linear in its size: one pass for the hash, one for the statistics.
    pub fn of(body: &[u8]) -> Self {
        let digest = Sha256::digest(body);
        let mut histogram = [0usize; 256];
        for &b in body {
            histogram[usize::from(b)] += 1;
        }
        let texty: usize = histogram
            .iter()
            .enumerate()
            .filter(|&(b, _)| matches!(b as u8, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
            .map(|(_, n)| n)
            .sum();
        let kind = MAGIC
            .iter()
            .find(|(magic, _)| body.starts_with(magic))
            .map(|(_, kind)| *kind)
            .unwrap_or(if histogram[0] == 0 && std::str::from_utf8(body).is_ok() {
                "text"
            } else {
                "binary"
            });
        let infected = body.windows(EICAR.len()).any(|w| w == EICAR);
        Self {
            sha256: hex(&digest),
            bytes: body.len(),
            lines: histogram[usize::from(b'\n')],
            nul_bytes: histogram[0],
            text_ratio: if body.is_empty() {
                1.0
            } else {
                texty as f64 / body.len() as f64
            },
            entropy: entropy(&histogram, body.len()),
            kind,
            verdict: if infected { "infected" } else { "clean" },
        }
    }

    /// The report as JSON, with ratios rounded to four decimals for readability.
    pub fn to_json(&self) -> serde_json::Value {
        let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
        serde_json::json!({
            "sha256": self.sha256,
            "bytes": self.bytes,
            "lines": self.lines,
            "nul_bytes": self.nul_bytes,
            "text_ratio": round(self.text_ratio),
            "entropy_bits_per_byte": round(self.entropy),
            "kind": self.kind,
            "verdict": self.verdict,
        })
    }
}

/// Shannon entropy of a byte histogram, in bits per byte.
fn entropy(histogram: &[usize; 256], total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    histogram
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = n as f64 / total;
            -p * p.log2()
        })
        .sum()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_published_test_vectors() {
        // FIPS 180-2 examples.
        assert_eq!(
            Report::of(b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Report::of(b"").sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn statistics_of_text_and_of_uniform_bytes() {
        let text = Report::of(b"hello\nworld\n");
        assert_eq!((text.bytes, text.lines, text.nul_bytes), (12, 2, 0));
        assert_eq!((text.kind, text.verdict), ("text", "clean"));
        assert_eq!(text.text_ratio, 1.0);

        let all: Vec<u8> = (0..=255u8).collect();
        let uniform = Report::of(&all);
        assert!((uniform.entropy - 8.0).abs() < 1e-9, "{}", uniform.entropy);
        assert_eq!((uniform.kind, uniform.nul_bytes), ("binary", 1));
        assert!((uniform.text_ratio - 98.0 / 256.0).abs() < 1e-9);

        assert_eq!(Report::of(b"aaaa").entropy, 0.0);
        assert_eq!(Report::of(b"").entropy, 0.0);
        assert_eq!(Report::of(b"").text_ratio, 1.0);
    }

    #[test]
    fn recognises_kinds_by_magic_number() {
        assert_eq!(Report::of(b"%PDF-1.7\n...").kind, "pdf");
        assert_eq!(Report::of(b"\x89PNG\r\n\x1a\n\0\0").kind, "png");
        assert_eq!(Report::of(b"PK\x03\x04rest").kind, "zip");
        assert_eq!(Report::of(b"\x1f\x8b\x08\0").kind, "gzip");
        assert_eq!(Report::of(b"\x7fELF\x02\x01").kind, "elf");
        assert_eq!(Report::of("naïve text".as_bytes()).kind, "text");
        assert_eq!(Report::of(b"\xff\xfe\x00").kind, "binary");
    }

    #[test]
    fn flags_the_eicar_test_file_anywhere_in_the_body() {
        let mut body = b"harmless prefix ".to_vec();
        body.extend_from_slice(EICAR);
        body.extend_from_slice(b"\n");
        assert_eq!(Report::of(&body).verdict, "infected");
        // One character off is not the signature.
        let mut near = EICAR.to_vec();
        near[0] = b'Y';
        assert_eq!(Report::of(&near).verdict, "clean");
    }

    #[test]
    fn json_has_every_field() {
        let json = Report::of(b"abc").to_json();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "bytes",
                "entropy_bits_per_byte",
                "kind",
                "lines",
                "nul_bytes",
                "sha256",
                "text_ratio",
                "verdict"
            ]
        );
        assert_eq!(json["entropy_bits_per_byte"], 1.585);
    }
}
