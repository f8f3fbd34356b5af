//! The resource-definition parser on arbitrary bytes: a catalog file from
//! any git source goes through `parse_file` (size, encoding, documents,
//! each interpreted and validated), a published body through
//! `parse_definition_yaml`; neither may panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nestor_core::parse_file(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nestor_core::parse_definition_yaml(text);
    }
});
