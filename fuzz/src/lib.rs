//! What the fuzz targets share: how one fuzzer input becomes the `(field, value)` pairs of a
//! Redis stream entry.

/// Splits `data` at NUL bytes into alternating field names and values; a name without a value
/// gets an empty one. A NUL cannot appear inside a piece, which costs nothing: no field name
/// has one, and the decoders treat every value byte alike.
pub fn fields(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut pieces = data.split(|&b| b == 0);
    let mut fields = Vec::new();
    while let Some(name) = pieces.next() {
        fields.push((name, pieces.next().unwrap_or_default()));
    }
    fields
}

/// Borrows encoded fields the way the decoders take them.
pub fn borrowed<'a>(fields: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'a [u8], &'a [u8])> {
    fields
        .iter()
        .map(|(name, value)| (name.as_bytes(), value.as_slice()))
        .collect()
}
