//! The function parser and validator must refuse bad definitions, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(init: weir::fuzzing::tolerate_caught_parser_panics(), |data: &[u8]| {
    weir::fuzzing::function_parse(data);
});
