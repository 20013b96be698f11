//! `weir new`: each language's scaffold builds with its own script and runs with
//! `weir run` as generated; bad names and existing folders are refused.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Scaffolds `name` in `lang` under `dir`, builds it, runs it on its event; the run.
fn scaffold_build_run(dir: &Path, lang: &str, name: &str) -> Value {
    let weir = common::weir_bin();
    let made = Command::new(&weir)
        .args(["new", "--lang", lang, name, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let step = dir.join(name);
    let built = Command::new(step.join("build.sh")).output().unwrap();
    assert!(
        built.status.success(),
        "{lang}: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let ran = Command::new(&weir)
        .arg("run")
        .arg(step.join(format!("{name}.json")))
        .arg("--event")
        .arg(step.join("event.json"))
        .arg("--json")
        .env("WEIR_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{lang}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    serde_json::from_slice(&ran.stdout).unwrap()
}

#[test]
fn c_rust_and_wat_scaffolds_build_and_run_as_generated() {
    let tmp = tempfile::tempdir().unwrap();
    for (lang, name) in [("c", "hello-c"), ("rust", "hello-rust")] {
        let run = scaffold_build_run(tmp.path(), lang, name);
        assert_eq!(run["status"], "completed", "{run:#}");
        let body = &run["steps"]["main"]["output"]["body"];
        assert_eq!(body["lang"], lang);
        // The step saw its input document: the event weir gave it.
        assert_eq!(body["input"]["event"]["data"]["name"], "Ada");
        assert_eq!(body["input"]["ctx"]["function_id"], name);
        assert!(run["steps"]["main"]["log"]
            .as_str()
            .unwrap()
            .contains("bytes of input"));
    }
    let run = scaffold_build_run(tmp.path(), "wat", "hello-wat");
    assert_eq!(
        run["steps"]["main"]["output"]["event"]["data"]["name"],
        "Ada"
    );
}

#[test]
fn python_and_javascript_scaffolds_build_and_run_as_generated() {
    let tmp = tempfile::tempdir().unwrap();
    for (lang, name, says) in [
        ("python", "hello-py", "Python"),
        ("js", "hello-js", "JavaScript"),
    ] {
        let run = scaffold_build_run(tmp.path(), lang, name);
        assert_eq!(run["status"], "completed", "{run:#}");
        assert_eq!(
            run["steps"]["main"]["output"]["body"]["message"],
            "Hello, Ada!"
        );
        assert_eq!(
            run["steps"]["main"]["log"],
            format!("greeting Ada from {says}\n")
        );
    }
}

#[test]
fn bad_names_and_existing_folders_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let new = |name: &str| {
        Command::new(common::weir_bin())
            .args(["new", "--lang", "c", name, "--dir"])
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    for bad in ["Hello", "1st", "a/b", "has space", ""] {
        let out = new(bad);
        assert!(!out.status.success(), "{bad:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a step name"), "{bad:?}: {err}");
    }
    assert!(new("twice").status.success());
    let out = new("twice");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
}
