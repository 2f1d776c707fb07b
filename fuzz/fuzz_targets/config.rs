//! A configuration file as `check-config` and the gateway's start and reload read it: parsing
//! and validation never panic, whatever the text.

#![no_main]

use holdline_gateway::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text);
    }
});
