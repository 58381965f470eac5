//! cargo-fuzz target `v1_body`: see `squall_fuzz::v1_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_fuzz::v1_body(data));
