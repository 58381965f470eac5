//! cargo-fuzz target `alert_config`: see `squall_fuzz::alert_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_fuzz::alert_config(data));
