//! A stored result (the encoded response under a result key): decoding never panics, and
//! whatever decodes encodes to bytes that decode to the same response.

#![no_main]

use holdline_protocol::QueuedResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = QueuedResponse::decode(data) else {
        return;
    };
    let again = QueuedResponse::decode(&response.encode()).expect("an encoded response decodes");
    assert_eq!(again, response);
});
