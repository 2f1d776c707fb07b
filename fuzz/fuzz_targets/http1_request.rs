//! A client's request head, as the server half parses it: see `holdline_gateway::fuzzing::request_head` for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline_gateway::fuzzing::request_head(data));
