//! The WIT package in `wit/` parses and describes the contract weir runs.

use wit_parser::Resolve;

#[test]
fn the_step_world_is_a_wasi_command() {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/wit"))
        .expect("wit/ parses");
    let step = resolve
        .select_world(&[pkg], Some("step"))
        .expect("world `step` exists");
    let exports: Vec<String> = resolve.worlds[step]
        .exports
        .keys()
        .map(|k| resolve.name_world_key(k))
        .collect();
    assert!(
        exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2")),
        "{exports:?}"
    );
    let typed = resolve
        .select_world(&[pkg], Some("typed-step"))
        .expect("world `typed-step` exists");
    let typed_exports: Vec<String> = resolve.worlds[typed]
        .exports
        .keys()
        .map(|k| resolve.name_world_key(k))
        .collect();
    assert_eq!(typed_exports, vec!["weir:step/handler@0.1.0".to_string()]);
}
