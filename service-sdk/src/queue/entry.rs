//! Stream entries as Redis returns them, parsed from raw [`Value`]s.
//!
//! redis-rs's typed stream replies keep fields in a `HashMap<String, _>`, which loses their order
//! and rejects non-UTF-8 names. A malformed entry must reach the dead-letter stream byte for byte,
//! so the worker parses replies itself. Both RESP2 arrays and RESP3 maps are accepted.

use redis::Value;

/// One stream entry: its id and its `(field, value)` pairs in stream order. `fields` is `None`
/// for an entry that is still pending but was deleted from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// A reply that did not have the documented shape.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("unexpected {what} reply shape")]
pub(crate) struct ShapeError {
    what: &'static str,
}

/// The reply of `XAUTOCLAIM`: the cursor for the next call, the claimed entries, and the ids that
/// were pending but no longer exist in the stream (Redis removes those from the PEL itself).
#[derive(Debug, Default)]
pub(crate) struct AutoClaim {
    pub(crate) cursor: String,
    pub(crate) entries: Vec<RawEntry>,
    pub(crate) deleted: Vec<String>,
}

// === impl RawEntry ===

impl RawEntry {
    /// The field pairs as borrowed slices, the form the protocol decoders take.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .flatten()
            .map(|(name, value)| (name.as_slice(), value.as_slice()))
    }

    /// The value of the first field called `name`.
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.pairs()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }
}

/// Parses an `XREADGROUP` reply for a single stream: nil on timeout, else the stream's entries.
pub(crate) fn parse_read(value: Value) -> Result<Vec<RawEntry>, ShapeError> {
    const WHAT: ShapeError = ShapeError { what: "XREADGROUP" };
    let streams = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.pop().expect("len is 2")),
                _ => Err(WHAT),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err(WHAT),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(parse_entries(entries, WHAT)?);
    }
    Ok(out)
}

/// Parses an `XAUTOCLAIM` reply: `[cursor, entries, deleted-ids]` (the third element is absent
/// before Redis 7).
pub(crate) fn parse_autoclaim(value: Value) -> Result<AutoClaim, ShapeError> {
    const WHAT: ShapeError = ShapeError { what: "XAUTOCLAIM" };
    let Value::Array(parts) = value else {
        return Err(WHAT);
    };
    let mut parts = parts.into_iter();
    let cursor = parts.next().and_then(text).ok_or(WHAT)?;
    let entries = parse_entries(parts.next().ok_or(WHAT)?, WHAT)?;
    let deleted = match parts.next() {
        Some(Value::Array(ids)) => ids.into_iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    Ok(AutoClaim {
        cursor,
        entries,
        deleted,
    })
}

/// Parses the extended `XPENDING key group start end count` reply down to the delivery count of
/// its first row, if any.
pub(crate) fn parse_pending_count(value: Value) -> Option<u64> {
    let Value::Array(rows) = value else {
        return None;
    };
    let Value::Array(row) = rows.into_iter().next()? else {
        return None;
    };
    match row.get(3)? {
        Value::Int(count) => u64::try_from(*count).ok(),
        _ => None,
    }
}

fn parse_entries(value: Value, what: ShapeError) -> Result<Vec<RawEntry>, ShapeError> {
    let Value::Array(entries) = value else {
        return Err(what);
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            // Redis 6 reports entries deleted while pending as nil in XAUTOCLAIM; nothing to do.
            Value::Nil => continue,
            Value::Array(pair) if pair.len() == 2 => {
                let mut pair = pair.into_iter();
                let id = pair.next().and_then(text).ok_or(what)?;
                let fields = match pair.next() {
                    Some(Value::Nil) => None,
                    Some(Value::Array(flat)) => Some(pairs_of(flat).ok_or(what)?),
                    Some(Value::Map(map)) => Some(
                        map.into_iter()
                            .map(|(n, v)| Some((bytes(n)?, bytes(v)?)))
                            .collect::<Option<Vec<_>>>()
                            .ok_or(what)?,
                    ),
                    _ => return Err(what),
                };
                out.push(RawEntry { id, fields });
            }
            _ => return Err(what),
        }
    }
    Ok(out)
}

fn pairs_of(flat: Vec<Value>) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if !flat.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        out.push((bytes(name)?, bytes(value)?));
    }
    Some(out)
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    String::from_utf8(bytes(value)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn parses_read_replies_keeping_order_and_bytes() {
        assert!(parse_read(Value::Nil).unwrap().is_empty());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"stream"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk(b"1-0"),
                    Value::Array(vec![bulk(b"b"), bulk(b"\xff"), bulk(b"a"), bulk(b"2")]),
                ]),
                Value::Array(vec![bulk(b"2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = parse_read(reply).unwrap();
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(
            entries[0].fields.as_deref().unwrap(),
            [
                (b"b".to_vec(), b"\xff".to_vec()),
                (b"a".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(entries[0].field("a"), Some(&b"2"[..]));
        assert_eq!(entries[1].fields, None);
        assert!(parse_read(Value::Int(3)).is_err());
    }

    #[test]
    fn parses_autoclaim_and_pending() {
        let reply = Value::Array(vec![
            bulk(b"0-0"),
            Value::Array(vec![Value::Array(vec![
                bulk(b"5-1"),
                Value::Array(vec![bulk(b"v"), bulk(b"1")]),
            ])]),
            Value::Array(vec![bulk(b"4-0")]),
        ]);
        let claim = parse_autoclaim(reply).unwrap();
        assert_eq!(claim.cursor, "0-0");
        assert_eq!(claim.entries.len(), 1);
        assert_eq!(claim.deleted, ["4-0"]);

        let pending = Value::Array(vec![Value::Array(vec![
            bulk(b"5-1"),
            bulk(b"c1"),
            Value::Int(10),
            Value::Int(3),
        ])]);
        assert_eq!(parse_pending_count(pending), Some(3));
        assert_eq!(parse_pending_count(Value::Array(vec![])), None);
    }
}
