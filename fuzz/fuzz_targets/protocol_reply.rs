//! A reply-stream entry as the gateway's reply listener reads it from Redis: decoding never
//! panics, and whatever decodes encodes back to fields that decode to the same reply.

#![no_main]

use holdline_fuzz::{borrowed, fields};
use holdline_protocol::Reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reply) = Reply::from_fields(fields(data)) else {
        return;
    };
    let encoded = reply.to_fields();
    let again = Reply::from_fields(borrowed(&encoded)).expect("an encoded reply decodes");
    assert_eq!(again, reply);
});
