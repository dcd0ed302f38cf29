#![no_main]
//! See `fuzz_targets::btail_wire`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::btail_wire::run(data));
