//! A manifest as the apply endpoint and `bridle check` take it (YAML, or
//! JSON as YAML's subset): parse, compile with its Cedar conditions, decide.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The apply endpoint refuses a body that is not UTF-8 before parsing.
    if let Ok(source) = std::str::from_utf8(data) {
        bridle_fuzz::manifest_path(source);
    }
});
