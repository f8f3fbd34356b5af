//! The `# nestor:` annotation scanner of source files (Terraform, Helm
//! values) and the `key=value` assignment parser of the CLI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = nestor_core::scan_annotations(text);
    let _ = nestor_core::parse_assignments(text.split_whitespace());
    let _ = nestor_core::typed_value(text);
});
