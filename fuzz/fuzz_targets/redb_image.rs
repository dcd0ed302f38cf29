#![no_main]
//! See `fuzz_targets::redb_image`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::redb_image::run(data));
