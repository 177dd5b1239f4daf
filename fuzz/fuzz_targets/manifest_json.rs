//! A JSON manifest (the API's `application/json` form): every input that
//! is a JSON document is given to the manifest parser as sent and
//! re-serialised compactly, then compiled and decided like a YAML one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    bridle_fuzz::manifest_path(source);
    // The same document as a client library would write it.
    if let Ok(compact) = serde_json::to_string(&value)
        && compact != source
    {
        bridle_fuzz::manifest_path(&compact);
    }
});
