#![no_main]
//! See `fuzz_targets::dbtail`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::dbtail::run(data));
