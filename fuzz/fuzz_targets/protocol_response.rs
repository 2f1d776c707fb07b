//! A stored result (the encoded response under a result key): decoding never panics, whatever
//! decodes encodes to bytes that decode to the same response, and a decoded status is the one
//! written and a final one (`65736` must not wrap to `200`, nor `100` pass for an answer).

#![no_main]

use holdline_protocol::QueuedResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = QueuedResponse::decode(data) else {
        return;
    };
    let again = QueuedResponse::decode(&response.encode()).expect("an encoded response decodes");
    assert_eq!(again, response);
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
});
