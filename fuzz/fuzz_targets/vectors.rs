#![no_main]
//! See `fuzz_targets::vectors`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::vectors::run(data));
