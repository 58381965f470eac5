//! cargo-fuzz target `v2_body`: see `squall_fuzz::v2_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_fuzz::v2_body(data));
