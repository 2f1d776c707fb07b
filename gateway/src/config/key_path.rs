//! The TOML path of the key whose value a parse error points at, so that the message names the
//! field (`services.echo.connect_timeout`) as `validate`'s errors do, also where the parser's
//! source excerpt is dropped (a reload's one-line log).

/// The path of the `key = value` line holding byte `offset` of `text`, when `offset` lies in the
/// value: the enclosing `[table]` (or `[[array]]` with its index) and the key. `None` for an
/// offset in a key itself (the parser names unknown keys), in a value spanning lines, or in a
/// table header.
pub(super) fn at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[start..offset].split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    match table(&text[..start]) {
        Some(table) => Some(format!("{table}.{key}")),
        None => Some(key.to_owned()),
    }
}

/// The table the text before a line ends in: the last header, `routes[2]` for the third
/// `[[routes]]`.
fn table(before: &str) -> Option<String> {
    let headers: Vec<&str> = before
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('['))
        .collect();
    let last = *headers.last()?;
    if let Some(name) = last.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
        let name = name.trim();
        let index = headers
            .iter()
            .filter(|h| {
                h.strip_prefix("[[")
                    .and_then(|l| l.split("]]").next())
                    .map(str::trim)
                    == Some(name)
            })
            .count()
            - 1;
        return Some(format!("{name}[{index}]"));
    }
    last.strip_prefix('[')
        .and_then(|l| l.split(']').next())
        .map(|name| name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(text: &str, value: &str) -> Option<String> {
        at(text, text.find(value).expect("the value is in the text"))
    }

    #[test]
    fn names_root_table_and_array_keys() {
        let text = "workers = x\n[services.echo]\nconnect_timeout = \"30 seconds\"\n\
                    [[routes]]\nprefix = \"/a\"\n[[routes]]\nprefix = \"b\"\n";
        assert_eq!(path_of(text, "x").as_deref(), Some("workers"));
        assert_eq!(
            path_of(text, "\"30 seconds\"").as_deref(),
            Some("services.echo.connect_timeout")
        );
        assert_eq!(path_of(text, "\"b\"").as_deref(), Some("routes[1].prefix"));
        // The key itself (an unknown field) and a header are left to the parser's message.
        assert_eq!(path_of(text, "connect_timeout"), None);
        assert_eq!(path_of(text, "services.echo"), None);
    }
}
