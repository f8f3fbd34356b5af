//! The composition parser and its checks on arbitrary text: what a team
//! posts to `/api/v1/teams/{team}/compositions` as YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = nestor_core::parse_composition_yaml(text) {
        let _ = nestor_core::check_composition(&c);
    }
});
