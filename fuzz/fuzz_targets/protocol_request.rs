//! A request-stream entry as a worker reads it from Redis: decoding never panics, and whatever
//! decodes encodes back to fields that decode to the same request.

#![no_main]

use holdline_fuzz::{borrowed, fields};
use holdline_protocol::QueuedRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = QueuedRequest::from_fields(fields(data)) else {
        return;
    };
    let encoded = request.to_fields();
    let again = QueuedRequest::from_fields(borrowed(&encoded)).expect("an encoded request decodes");
    assert_eq!(again, request);
});
