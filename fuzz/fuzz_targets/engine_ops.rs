#![no_main]
//! See `fuzz_targets::engine_ops`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::engine_ops::run(data));
