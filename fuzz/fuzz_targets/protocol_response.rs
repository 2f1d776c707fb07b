//! A stored result (the encoded response under a result key): decoding never panics, and
//! whatever decodes encodes to bytes that decode to the same response. With
//! `HOLDLINE_STRICT_WIRE=1` it also checks that a decoded status is the one written and a final
//! one (a known defect: `65736` decodes as `200`, and `100` is taken as a final answer).

#![no_main]

use holdline_protocol::QueuedResponse;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var("HOLDLINE_STRICT_WIRE").is_ok_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(response) = QueuedResponse::decode(data) else {
        return;
    };
    let again = QueuedResponse::decode(&response.encode()).expect("an encoded response decodes");
    assert_eq!(again, response);
    if strict() {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a status line");
        let written = String::from_utf8_lossy(&data[2..line_end]);
        let status = response.status.as_u16();
        assert_eq!(
            written.parse::<u64>().ok(),
            Some(u64::from(status)),
            "status {written}"
        );
        assert!(
            status >= 200,
            "interim status {status} decoded as a final response"
        );
    }
});
