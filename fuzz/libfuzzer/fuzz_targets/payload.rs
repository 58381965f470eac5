//! cargo-fuzz target `payload`: see `squall_fuzz::payload`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_fuzz::payload(data));
