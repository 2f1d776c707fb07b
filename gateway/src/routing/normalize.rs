//! The normal form of a request path: the string routes match, and the one upstreams receive.
//!
//! Routing and forwarding use the same string, so a path cannot mean one thing to the route table
//! and another to the service behind it: `/public/../admin`, `/public/%2e%2e/admin` and
//! `/public/%2E%2E/admin` are all `/admin` here, and are routed as `/admin`, not as something
//! under `/public` that the service then resolves to its `/admin`. The steps, in order:
//!
//! 1. Percent-encoded unreserved characters are decoded (RFC 3986 section 6.2.2.2: `%2e` is `.`,
//!    `%7E` is `~`) and every other escape is written with upper-case hex digits (section
//!    6.2.2.1), so that `%2e%2e` is a dot-segment and `%2f` and `%2F` are one thing. A `%` not
//!    followed by two hex digits is refused ([`PathError::BadEscape`]), as nginx does: such a path
//!    has no one meaning.
//! 2. With `merge_slashes`, runs of `/` become one, before dot-segments are resolved (as nginx
//!    does): a `..` after an empty segment removes the segment before it.
//! 3. Dot-segments are removed (RFC 3986 section 5.2.4). A `..` with nothing left to remove
//!    (`/..`, `/a/../..`) is refused ([`PathError::AboveRoot`]), as nginx does, where RFC 3986
//!    would resolve it to `/`: that rule is for resolving a reference against a base, and a
//!    client that resolved its reference never sends one, so a request that does is broken or a
//!    probe, and quietly sending it to whatever route serves `/` would serve it from a service
//!    its author did not name.
//!
//! Encoded slashes (`%2F`), encoded backslashes (`%5C`) and bare backslashes, which some
//! upstreams read as separators and others as data, are kept as they are and reported
//! ([`Normalized::escaped_slash`]): the route decides what is done with them
//! (`routes.escaped_slashes`). Decoding them ([`Options::decode_slashes`]) makes each a `/`
//! before the other steps, so that a `..` they delimit is resolved too.
//!
//! A path with nothing to do (no `%`, no `\`, no dot-segment, no `//` when slashes are merged),
//! which is nearly every path, is checked in one scan and returned as it is, borrowed.

use std::borrow::Cow;

/// Why a request path is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A `..` segment with no segment left before it to remove.
    AboveRoot,
    /// An encoded slash or a backslash, on a route that refuses them.
    EscapedSlash,
    /// The normal form does not parse as a request target. Not expected: it holds only what the
    /// path held, decoded unreserved characters and `/`.
    Unparsable,
}

// === impl PathError ===

impl PathError {
    /// What the client is told, which is also the `Display` text: the path is the client's own,
    /// so saying what is wrong with it tells nothing of the inside.
    pub(crate) fn public_message(self) -> &'static str {
        match self {
            Self::BadEscape => "a `%` in the path is not followed by two hex digits",
            Self::AboveRoot => "the path climbs above the root",
            Self::EscapedSlash => "the path has an encoded slash or a backslash",
            Self::Unparsable => "the normalized path is not a valid request target",
        }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.public_message())
    }
}

impl std::error::Error for PathError {}

/// How a path is normalized.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Merge runs of `/` into one.
    pub(crate) merge_slashes: bool,
    /// Read `%2F`, `%5C` and `\` as `/`.
    pub(crate) decode_slashes: bool,
}

/// A normalized path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Normalized<'a> {
    /// The path in normal form; borrowed when that is the path as it came.
    pub(crate) path: Cow<'a, str>,
    /// Whether the path as it came held a `%2F`, a `%5C` or a `\` (never with
    /// `decode_slashes`), even in a segment a `..` then removed: what the route decides about
    /// such a path is decided on what the client sent.
    pub(crate) escaped_slash: bool,
}

/// `path` (without its query) in normal form.
pub(crate) fn normalize(path: &str, options: Options) -> Result<Normalized<'_>, PathError> {
    // `*` (`OPTIONS *`) and the empty path of an authority-form target are left alone.
    if is_normal(path.as_bytes(), options.merge_slashes) || !path.starts_with('/') {
        return Ok(Normalized {
            path: Cow::Borrowed(path),
            escaped_slash: false,
        });
    }
    let mut decoded = String::with_capacity(path.len());
    let escaped_slash = decode(path, options.decode_slashes, &mut decoded)?;
    let (normal, climbed) = remove_dot_segments(&decoded, options.merge_slashes);
    if climbed {
        return Err(PathError::AboveRoot);
    }
    Ok(Normalized {
        path: if normal == path {
            Cow::Borrowed(path)
        } else {
            Cow::Owned(normal)
        },
        escaped_slash: escaped_slash && !options.decode_slashes,
    })
}

/// Whether `path` has nothing to normalize: one scan, looking at the byte after each `/` only.
#[inline(always)]
pub(crate) fn is_normal(path: &[u8], merge_slashes: bool) -> bool {
    let mut after_slash = false;
    for (i, &b) in path.iter().enumerate() {
        if b == b'%' || b == b'\\' {
            return false;
        }
        if after_slash
            && ((b == b'/' && merge_slashes) || (b == b'.' && starts_with_dot_segment(&path[i..])))
        {
            return false;
        }
        after_slash = b == b'/';
    }
    true
}

/// Whether `rest` (which starts with `.`) starts with a `.` or `..` segment.
fn starts_with_dot_segment(rest: &[u8]) -> bool {
    matches!(
        rest,
        [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..]
    )
}

/// Step 1: `path` with its unreserved escapes decoded and the others in upper case (and with
/// `decode_slashes`, encoded slashes and backslashes as `/`), appended to `out`. Returns whether
/// an encoded slash or a backslash was met.
fn decode(path: &str, decode_slashes: bool, out: &mut String) -> Result<bool, PathError> {
    let bytes = path.as_bytes();
    let mut escaped_slash = false;
    // Runs of bytes that stay as they are are copied as slices, which keeps UTF-8 whole.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push_str(&path[copied..i]);
                let byte = match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    (Some(high), Some(low)) => high << 4 | low,
                    _ => return Err(PathError::BadEscape),
                };
                if is_unreserved(byte) {
                    out.push(char::from(byte));
                } else if matches!(byte, b'/' | b'\\') && decode_slashes {
                    escaped_slash = true;
                    out.push('/');
                } else {
                    escaped_slash |= matches!(byte, b'/' | b'\\');
                    push_escape(out, byte);
                }
                i += 3;
                copied = i;
            }
            b'\\' => {
                escaped_slash = true;
                if decode_slashes {
                    out.push_str(&path[copied..i]);
                    out.push('/');
                    copied = i + 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push_str(&path[copied..]);
    Ok(escaped_slash)
}

/// RFC 3986 section 2.3: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex(byte: Option<&u8>) -> Option<u8> {
    char::from(*byte?).to_digit(16).map(|d| d as u8)
}

fn push_escape(out: &mut String, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(DIGITS[usize::from(byte >> 4)]));
    out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
}

/// Steps 2 and 3 on an absolute path: RFC 3986 section 5.2.4 worked segment by segment, empty
/// segments skipped with `merge_slashes`. Returns the result and whether a `..` found nothing to
/// remove (the RFC's result then is as if it had not been there).
pub(crate) fn remove_dot_segments(path: &str, merge_slashes: bool) -> (String, bool) {
    debug_assert!(path.starts_with('/'));
    // Holds `/seg/seg...`; empty stands for the root.
    let mut out = String::with_capacity(path.len());
    let mut climbed = false;
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => {}
            ".." => match out.rfind('/') {
                Some(at) => out.truncate(at),
                None => climbed = true,
            },
            "" if merge_slashes && !last => {}
            _ => {
                out.push('/');
                out.push_str(segment);
                continue;
            }
        }
        // A dot-segment at the end leaves the directory it names: `/a/.` is `/a/`.
        if last {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    (out, climbed)
}

#[cfg(test)]
mod tests;
