//! Any bytes as a registry file: loading never panics, and whatever loads
//! is consistent (each entry found by its id).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let registry = wafer::Registry::from_yaml("fuzz.yaml", text);
    for entry in registry.entries() {
        assert!(registry.get(&entry.id).is_some());
    }
});
