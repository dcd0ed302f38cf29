#![no_main]
//! See `fuzz_targets::topology`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::topology::run(data));
