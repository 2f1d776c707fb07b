use super::*;

const PLAIN: Options = Options {
    merge_slashes: false,
    decode_slashes: false,
};
const MERGE: Options = Options {
    merge_slashes: true,
    decode_slashes: false,
};
const DECODE: Options = Options {
    merge_slashes: true,
    decode_slashes: true,
};

/// The normal form of `path`, panicking on a refusal.
fn normal(path: &str, options: Options) -> String {
    match normalize(path, options) {
        Ok(normalized) => normalized.path.into_owned(),
        Err(error) => panic!("{path:?} refused: {error}"),
    }
}

#[test]
fn a_path_with_nothing_to_do_is_returned_borrowed() {
    for path in [
        "/",
        "/echo",
        "/a/b.c/d",
        "/.well-known/x",
        "/a/..b",
        "/a/b..",
        "/a/.b/",
        "/a/b/",
        "/ü/x",
        "*",
    ] {
        let normalized = normalize(path, MERGE).unwrap();
        assert!(
            matches!(normalized.path, Cow::Borrowed(p) if std::ptr::eq(p, path)),
            "{path:?} was copied"
        );
        assert!(!normalized.escaped_slash);
    }
    // Repeated slashes are the path as it is when they are not merged.
    let kept = normalize("/a//b", PLAIN).unwrap();
    assert!(matches!(kept.path, Cow::Borrowed("/a//b")));
    // Escapes already in normal form (upper case, not unreserved) change nothing either.
    let escaped = normalize("/100%25/caf%C3%A9", PLAIN).unwrap();
    assert!(matches!(escaped.path, Cow::Borrowed(_)));
}

/// RFC 3986 section 5.4, where the example is about the path: each reference merged with the base
/// path `/b/c/d;p` (section 5.2.3), then its dot-segments removed. `true` where a `..` finds nothing
/// to remove (the abnormal examples of section 5.4.2 that climb).
#[test]
fn rfc_3986_reference_resolution_examples() {
    let cases = [
        // 5.4.1, normal examples.
        ("/b/c/g", "/b/c/g", false),
        ("/b/c/./g", "/b/c/g", false),
        ("/b/c/g/", "/b/c/g/", false),
        ("/g", "/g", false),
        ("/b/c/;x", "/b/c/;x", false),
        ("/b/c/g;x", "/b/c/g;x", false),
        ("/b/c/.", "/b/c/", false),
        ("/b/c/./", "/b/c/", false),
        ("/b/c/..", "/b/", false),
        ("/b/c/../", "/b/", false),
        ("/b/c/../g", "/b/g", false),
        ("/b/c/../..", "/", false),
        ("/b/c/../../", "/", false),
        ("/b/c/../../g", "/g", false),
        // 5.4.2, abnormal examples.
        ("/b/c/../../../g", "/g", true),
        ("/b/c/../../../../g", "/g", true),
        ("/./g", "/g", false),
        ("/../g", "/g", true),
        ("/b/c/g.", "/b/c/g.", false),
        ("/b/c/.g", "/b/c/.g", false),
        ("/b/c/g..", "/b/c/g..", false),
        ("/b/c/..g", "/b/c/..g", false),
        ("/b/c/./../g", "/b/g", false),
        ("/b/c/./g/.", "/b/c/g/", false),
        ("/b/c/g/./h", "/b/c/g/h", false),
        ("/b/c/g/../h", "/b/c/h", false),
        ("/b/c/g;x=1/./y", "/b/c/g;x=1/y", false),
        ("/b/c/g;x=1/../y", "/b/c/y", false),
        // 5.2.4's own example.
        ("/a/b/c/./../../g", "/a/g", false),
    ];
    for (merged, want, climbs) in cases {
        assert_eq!(
            remove_dot_segments(merged, false),
            (want.to_owned(), climbs),
            "{merged}"
        );
        match normalize(merged, PLAIN) {
            Ok(normalized) if !climbs => assert_eq!(normalized.path, want, "{merged}"),
            Err(PathError::AboveRoot) if climbs => {}
            other => panic!("{merged}: {other:?}"),
        }
    }
}

#[test]
fn traversal_out_of_a_prefix_resolves_before_routing() {
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/%2e%2E/admin",
        "/public/.%2e/admin",
        "/public/%2e./admin",
        "/public/x/%2e%2e/%2E%2e/admin",
        "/public/./../admin",
        "/public/%2e/../admin",
    ] {
        assert_eq!(normal(path, PLAIN), "/admin", "{path}");
    }
    // `..;` is a segment like any other to RFC 3986 (a servlet container's path parameters are
    // its own reading).
    assert_eq!(normal("/public/..;/admin", PLAIN), "/public/..;/admin");
}

#[test]
fn encoded_slashes_and_backslashes_are_reported_and_decoded_on_request() {
    for path in [
        "/public/..%2fadmin",
        "/public/..%2Fadmin",
        "/public/..%5cadmin",
        "/public/..%5Cadmin",
        "/public/..\\admin",
    ] {
        let kept = normalize(path, MERGE).unwrap();
        assert!(kept.escaped_slash, "{path}");
        // Kept as they came, hex digits in upper case: not a separator, so not a dot-segment.
        assert!(kept.path.starts_with("/public/.."), "{path}: {}", kept.path);
        assert!(!kept.path.contains("%2f") && !kept.path.contains("%5c"));
        let decoded = normalize(path, DECODE).unwrap();
        assert_eq!(decoded.path, "/admin", "{path}");
        assert!(!decoded.escaped_slash);
    }
    assert_eq!(normal("/a%2fb", MERGE), "/a%2Fb");
    assert_eq!(normal("/a%2Fb/%5c", DECODE), "/a/b/");
    // Decoded slashes merge like any other.
    assert_eq!(normal("/a%2F%2F/b", DECODE), "/a/b");
}

#[test]
fn unreserved_escapes_are_decoded_and_the_others_upper_cased() {
    let cases = [
        ("/%7euser", "/~user"),
        ("/%41%62%2D%5f%2E%7E", "/Ab-_.~"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/a%3fb%23c", "/a%3Fb%23c"),
        ("/100%25", "/100%25"),
        // Decoding happens once: `%252e` is `%25` then `2e`, not a dot.
        ("/a/%252e%252e/b", "/a/%252e%252e/b"),
    ];
    for (path, want) in cases {
        assert_eq!(normal(path, PLAIN), want, "{path}");
    }
}

#[test]
fn trailing_dot_segments_leave_a_directory() {
    let cases = [
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/%2e%2e", "/a/"),
        ("/a/b/%2E", "/a/b/"),
        ("/a/..", "/"),
        ("/.", "/"),
    ];
    for (path, want) in cases {
        assert_eq!(normal(path, PLAIN), want, "{path}");
    }
}

#[test]
fn empty_segments_are_kept_or_merged() {
    let cases = [
        ("/a//b", "/a//b", "/a/b"),
        ("//a", "//a", "/a"),
        ("/a///", "/a///", "/a/"),
        ("//", "//", "/"),
        // Unmerged, the empty segment is the one `..` removes; merged, there is none.
        ("/a//../b", "/a/b", "/b"),
        ("/a//./b", "/a//b", "/a/b"),
        ("/a//.", "/a//", "/a/"),
    ];
    for (path, kept, merged) in cases {
        assert_eq!(normal(path, PLAIN), kept, "{path} unmerged");
        assert_eq!(normal(path, MERGE), merged, "{path} merged");
    }
}

#[test]
fn broken_escapes_and_climbs_above_the_root_are_refused() {
    for path in ["/a%", "/a%2", "/a%zz", "/a%2g/b", "/%%32%65"] {
        assert_eq!(normalize(path, MERGE), Err(PathError::BadEscape), "{path}");
    }
    for path in [
        "/..",
        "/../a",
        "/a/../..",
        "/%2e%2e/a",
        "/%2E.",
        "/a/./../../b",
        "//..",
    ] {
        assert_eq!(normalize(path, MERGE), Err(PathError::AboveRoot), "{path}");
    }
    // Unmerged, `//..` removes the empty segment and stays at the root.
    assert_eq!(normal("//..", PLAIN), "/");
    // Decoded slashes can make a climb too.
    assert_eq!(
        normalize("/a/..%2F..%2Fb", DECODE),
        Err(PathError::AboveRoot)
    );
}

#[test]
fn text_outside_ascii_travels_as_it_came() {
    assert_eq!(normal("/ü/../x/ß", PLAIN), "/x/ß");
    assert_eq!(normal("/日本/%2e/語", PLAIN), "/日本/語");
}

/// Every path of up to five characters from an alphabet of separators, dots and escapes: each
/// normal form is its own normal form, and holds no dot-segment, no escaped unreserved character
/// and, merged, no `//`.
#[test]
fn every_normal_form_is_final() {
    const ALPHABET: [char; 9] = ['/', '.', '%', '2', 'e', 'E', 'f', 'a', '\\'];
    let mut paths = vec![String::from("/")];
    let mut next = 0;
    while next < paths.len() {
        if paths[next].len() <= 5 {
            for c in ALPHABET {
                paths.push(format!("{}{c}", paths[next]));
            }
        }
        next += 1;
    }
    for path in &paths {
        for options in [PLAIN, MERGE, DECODE] {
            let Ok(normalized) = normalize(path, options) else {
                continue;
            };
            let normal = &*normalized.path;
            let again = normalize(normal, options).expect("a normal form is accepted");
            assert!(
                matches!(again.path, Cow::Borrowed(_)),
                "{path:?} -> {normal:?} -> {:?}",
                again.path
            );
            // What the normal form still holds, and no more, is reported on it.
            let holds = normal.contains("%2F") || normal.contains("%5C") || normal.contains('\\');
            assert_eq!(again.escaped_slash, holds, "{path:?} -> {normal:?}");
            assert!(!holds || normalized.escaped_slash, "{path:?} -> {normal:?}");
            assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
            assert!(
                normal[1..].split('/').all(|s| s != "." && s != ".."),
                "{path:?} -> {normal:?}"
            );
            assert!(!normal.contains("%2e") && !normal.contains("%2E") && !normal.contains("%2f"));
            if options.merge_slashes {
                assert!(!normal.contains("//"), "{path:?} -> {normal:?}");
            }
            if options.decode_slashes {
                assert!(
                    !normal.contains('\\') && !normal.contains("%2F"),
                    "{path:?} -> {normal:?}"
                );
            }
        }
    }
}
