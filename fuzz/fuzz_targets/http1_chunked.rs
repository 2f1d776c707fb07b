//! A chunked body, decoded whole and a byte at a time: see `holdline_gateway::fuzzing::chunked_body` for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline_gateway::fuzzing::chunked_body(data));
