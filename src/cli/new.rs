//! `weir new --lang c|rust|js|python|wat NAME`: scaffolds a step in a folder of its own
//! — its source, a build script that installs its toolchain if missing, a function file
//! that uses it and an event to try it with — that builds and runs with `weir dev` (or
//! `weir run`) as generated.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

/// The languages a step can be scaffolded in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    /// C, built with clang for wasm32-wasi.
    C,
    /// Rust (std only), built with Debian's rustc for wasm32-wasi.
    Rust,
    /// JavaScript, built with componentize-js.
    Js,
    /// Python, built with componentize-py.
    Python,
    /// WebAssembly text, read by weir as it is.
    Wat,
}

#[derive(clap::Args)]
pub struct Args {
    /// The language of the step.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The step's name: the folder, the function id and the component's file name.
    name: String,
    /// Where to make the folder (default: here).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// The files of a step in `lang`: (name, contents, executable); `STEP` stands for its
/// name. The Python, JavaScript and WAT sources are the example guests themselves, so
/// what `weir new` writes is what `guest-examples/build.sh` builds and the tests run. The component it builds, and the file the function names.
fn files(lang: Lang) -> (Vec<(&'static str, &'static str, bool)>, &'static str) {
    match lang {
        Lang::C => (
            vec![
                ("STEP.c", include_str!("new/step.c"), false),
                ("build.sh", include_str!("new/build-c.sh"), true),
            ],
            "STEP.wasm",
        ),
        Lang::Rust => (
            vec![
                ("STEP.rs", include_str!("new/step.rs"), false),
                ("build.sh", include_str!("new/build-rust.sh"), true),
            ],
            "STEP.wasm",
        ),
        Lang::Wat => (
            vec![
                (
                    "STEP.wat",
                    include_str!("../../guest-examples/wat/echo.wat"),
                    false,
                ),
                ("build.sh", include_str!("new/build-wat.sh"), true),
            ],
            "STEP.wat",
        ),
        Lang::Python => (
            vec![
                (
                    "app.py",
                    include_str!("../../guest-examples/python/greet.py"),
                    false,
                ),
                ("build.sh", include_str!("new/build-python.sh"), true),
            ],
            "STEP.wasm",
        ),
        Lang::Js => (
            vec![
                (
                    "STEP.js",
                    include_str!("../../guest-examples/js/greet.js"),
                    false,
                ),
                ("build.sh", include_str!("new/build-js.sh"), true),
            ],
            "STEP.wasm",
        ),
    }
}

pub fn main(a: Args) -> Result<ExitCode> {
    let name = &a.name;
    let valid = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("`{name}` is not a step name: 1-40 lower-case letters, digits and `-`, starting with a letter");
    }
    let dir = a.dir.join(name);
    if dir.exists() {
        bail!(
            "{} exists already; pick another name or --dir",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (sources, component) = files(a.lang);
    let write = |rel: &str, text: &str, exec: bool| -> Result<()> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text.replace("STEP", name))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    };
    for (file, text, exec) in sources {
        write(&file.replace("STEP", name), text, exec)?;
    }
    if matches!(a.lang, Lang::Js | Lang::Python) {
        for (file, text) in weir::runtime::wit::FILES {
            // The WIT is weir's own: written as it is (it names no step).
            let path = dir.join("wit").join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
            std::fs::write(&path, text)?;
        }
    }
    let function = serde_json::json!({
        "id": name,
        "triggers": [{"event": format!("{name}/run")}],
        "steps": {"main": {"path": format!("file://./{}", component.replace("STEP", name))}},
    });
    write(
        &format!("{name}.json"),
        &serde_json::to_string_pretty(&function)?,
        false,
    )?;
    let event = serde_json::json!({"name": format!("{name}/run"), "data": {"name": "Ada"}});
    write("event.json", &event.to_string(), false)?;
    let label = match a.lang {
        Lang::C => "C",
        Lang::Rust => "Rust",
        Lang::Js => "JavaScript",
        Lang::Python => "Python",
        Lang::Wat => "WAT",
    };
    println!("made {}/ (a {label} step); next:", dir.display());
    println!("  {}/build.sh", dir.display());
    println!(
        "  weir run {0}/{name}.json --event {0}/event.json",
        dir.display()
    );
    println!(
        "  weir dev --functions {}    # then: weir send {name}/run --data '{{\"name\": \"Ada\"}}'",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
