//! The layers of `src/` (see `src/lib.rs`) kept honest: the judgement and the policy name no
//! Kubernetes, HTTP or I/O crate, and no layer reaches into one below it in the list.
//!
//! Reads the source files as text, comments left out; a `use` or a path that names a
//! forbidden crate or module is reported with its file and line.

use std::path::{Path, PathBuf};

/// What the pure layers must not name: Kubernetes, HTTP, and tokio's I/O and clock.
const IO: [&str; 10] = [
    "kube::",
    "kube_lease_manager::",
    "k8s_openapi::",
    "reqwest::",
    "axum::",
    "hyper::",
    "prometheus_http_query::",
    "tokio::net",
    "tokio::fs",
    "tokio::time",
];

/// Each layer, and the layers it must not use (those below it, and the simulation).
const BELOW: [(&str, &[&str]); 5] = [
    (
        "analysis",
        &[
            "policy",
            "adapters",
            "controller",
            "records",
            "report",
            "app",
            "sim",
        ],
    ),
    (
        "policy",
        &["adapters", "controller", "records", "report", "app", "sim"],
    ),
    (
        "adapters",
        &["controller", "records", "report", "app", "sim"],
    ),
    ("controller", &["report", "app", "sim"]),
    ("report", &["adapters", "controller", "app", "sim"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every line of code under `src/<layer>` (or `src/<layer>.rs`) with its place, comments
/// left out.
fn code_lines(layer: &str) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let dir = src.join(layer);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    let file = src.join(format!("{layer}.rs"));
    if file.is_file() {
        files.push(file);
    }
    assert!(!files.is_empty(), "no sources for layer {layer}");
    let mut lines = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("").trim();
            if !code.is_empty() {
                lines.push((format!("{}:{}", f.display(), n + 1), code.to_string()));
            }
        }
    }
    lines
}

/// Places in `layer` whose code names any of `needles`.
fn naming(layer: &str, needles: &[String]) -> Vec<String> {
    code_lines(layer)
        .into_iter()
        .filter(|(_, code)| needles.iter().any(|n| code.contains(n.as_str())))
        .map(|(at, code)| format!("{at}: {code}"))
        .collect()
}

#[test]
fn the_judgement_and_the_policy_name_no_kubernetes_http_or_io() {
    let needles: Vec<String> = IO.iter().map(|s| s.to_string()).collect();
    for layer in ["analysis", "policy"] {
        let found = naming(layer, &needles);
        assert!(found.is_empty(), "{layer} names I/O:\n{}", found.join("\n"));
    }
}

#[test]
fn no_layer_uses_one_below_it() {
    for (layer, below) in BELOW {
        let needles: Vec<String> = below.iter().map(|b| format!("crate::{b}::")).collect();
        let found = naming(layer, &needles);
        assert!(
            found.is_empty(),
            "{layer} uses a layer below it:\n{}",
            found.join("\n")
        );
    }
}

/// The file that declares the module in `file` (`a/b.rs` and `a/b/mod.rs` are declared in
/// `a.rs` or `a/mod.rs`), and the module's name.
fn declared_in(file: &Path) -> (PathBuf, String) {
    let module = if file.file_name().is_some_and(|n| n == "mod.rs") {
        file.parent().unwrap()
    } else {
        file
    };
    let name = module.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = module.parent().unwrap();
    let parent = if dir.with_extension("rs").is_file() {
        dir.with_extension("rs")
    } else {
        dir.join("mod.rs")
    };
    (parent, name)
}

#[test]
fn what_uses_the_simulation_is_compiled_only_with_the_sim_feature() {
    // The image is built without the `sim` feature: outside `src/sim`, only modules declared
    // under `#[cfg(feature = "sim")]` may use it.
    let mut users = Vec::new();
    for layer in [
        "analysis",
        "policy",
        "adapters",
        "controller",
        "records",
        "report",
        "app",
    ] {
        for (at, code) in code_lines(layer) {
            if code.contains("crate::sim::") {
                users.push(PathBuf::from(at.rsplit_once(':').unwrap().0));
            }
        }
    }
    users.sort();
    users.dedup();
    assert!(
        !users.is_empty(),
        "the demo uses the simulation; the scan must see it"
    );
    for file in users {
        let (parent, name) = declared_in(&file);
        let text = std::fs::read_to_string(&parent).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let gated = lines.windows(2).any(|w| {
            w[0] == "#[cfg(feature = \"sim\")]"
                && ["", "pub ", "pub(crate) "]
                    .iter()
                    .any(|vis| w[1] == format!("{vis}mod {name};"))
        });
        assert!(
            gated,
            "{} uses crate::sim but `mod {name}` in {} is not under #[cfg(feature = \"sim\")]",
            file.display(),
            parent.display()
        );
    }
}

#[test]
fn the_check_sees_what_it_looks_for() {
    // The scan finds the crates the adapters do use, so an empty answer above means absent.
    let found = naming("adapters", &["reqwest::".to_string(), "kube::".to_string()]);
    assert!(!found.is_empty());
}
