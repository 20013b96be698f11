//! The event parser must answer every body with events or an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    weir::fuzzing::event_parse(data);
});
