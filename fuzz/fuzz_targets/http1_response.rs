//! An upstream's response head, as the client half parses it (the first byte says whether the request was `HEAD`): see `holdline_gateway::fuzzing::response_head` for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline_gateway::fuzzing::response_head(data));
