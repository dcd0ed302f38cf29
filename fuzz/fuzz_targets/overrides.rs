#![no_main]
//! See `fuzz_targets::overrides`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::overrides::run(data));
