//! The event parser must answer every body with events or an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(init: weir::fuzzing::tolerate_caught_parser_panics(), |data: &[u8]| {
    weir::fuzzing::event_parse(data);
});
