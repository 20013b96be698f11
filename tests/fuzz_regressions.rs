//! Replays every input kept under `tests/fuzz-corpus/<target>/` (seeds, and inputs that
//! once crashed a fuzz target) through the fuzz targets' code: none may panic.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| f(&data));
        assert!(ok.is_ok(), "{target}: {} panics", path.display());
        n += 1;
    }
    n
}

#[test]
fn saved_fuzz_inputs_do_not_panic() {
    assert!(replay("event_parse", weir::fuzzing::event_parse) > 0);
    assert!(replay("function_parse", weir::fuzzing::function_parse) > 0);
    assert!(replay("cel_compile", weir::fuzzing::cel_compile) > 0);
}
