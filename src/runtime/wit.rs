//! weir's WIT (`wit/`), built into the binary: for `weir new`'s generated builds, and for
//! wrapping a core module that exports the typed entry point into a `typed-step`
//! component.

use wit_parser::{PackageId, Resolve, WorldId};

/// The files of `wit/`, as (path under `wit/`, contents), dependencies first.
pub const FILES: [(&str, &str); 7] = [
    ("deps/io.wit", include_str!("../../wit/deps/io.wit")),
    ("deps/clocks.wit", include_str!("../../wit/deps/clocks.wit")),
    ("deps/random.wit", include_str!("../../wit/deps/random.wit")),
    (
        "deps/filesystem.wit",
        include_str!("../../wit/deps/filesystem.wit"),
    ),
    (
        "deps/sockets.wit",
        include_str!("../../wit/deps/sockets.wit"),
    ),
    ("deps/cli.wit", include_str!("../../wit/deps/cli.wit")),
    ("step.wit", include_str!("../../wit/step.wit")),
];

/// weir's step package, `weir:step@<this>`.
pub const PACKAGE_VERSION: &str = "0.1.0";
/// The typed entry point's interface, as components name it.
pub const HANDLER: &str = "weir:step/handler@0.1.0";
/// The host functions' interface, as components name it.
pub const HOST: &str = "weir:step/host@0.1.0";
/// The exported function of a typed core module (before it is a component).
pub const CORE_RUN: &str = "weir:step/handler@0.1.0#run";

/// weir's WIT resolved, with the `weir:step` package.
pub fn resolve() -> Result<(Resolve, PackageId), String> {
    let mut r = Resolve::default();
    let mut last = None;
    for (path, text) in FILES {
        last = Some(
            r.push_str(format!("wit/{path}"), text)
                .map_err(|e| format!("weir's own WIT does not parse ({path}): {e:#}"))?,
        );
    }
    let pkg = last.ok_or("no WIT")?;
    Ok((r, pkg))
}

/// The world `name` of weir's WIT.
pub fn world(name: &str) -> Result<(Resolve, WorldId), String> {
    let (r, pkg) = resolve()?;
    let w = r
        .select_world(&[pkg], Some(name))
        .map_err(|e| format!("weir's WIT has no world {name}: {e:#}"))?;
    Ok((r, w))
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_worlds_resolve() {
        for w in ["step", "typed-step"] {
            super::world(w).unwrap();
        }
    }
}
