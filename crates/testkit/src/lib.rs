//! Helpers shared by the workspace's integration tests: where the checkout
//! is, whether a tool is there (skip with a notice, or fail under
//! `cargo xtask test`), the shared fixtures, and small assertions.

pub mod flux_compare;
pub mod flux_layouts;

use std::path::{Path, PathBuf};

/// The checkout the tests run in: the folder above `crates/testkit`.
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("xtask/tools.toml").is_file())
        .unwrap_or(here)
        .to_path_buf()
}

/// `cargo xtask test` sets this: a missing prerequisite is then a failure,
/// not a skip. A plain `cargo test` skips with a notice instead.
pub fn tools_required() -> bool {
    std::env::var_os("XTASK_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// Finds an external tool in `.tools/bin` or on PATH. Returns `None` (after
/// printing a skip notice) when it is absent and tools are not required.
pub fn tool(name: &str) -> Option<PathBuf> {
    let local = root().join(".tools/bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    if let Some(found) = which(name) {
        return Some(found);
    }
    if tools_required() {
        panic!(
            "{name} is required (XTASK_REQUIRE_TOOLS=1) but not installed; run `cargo xtask test`"
        );
    }
    eprintln!("SKIP: {name} not installed; `cargo xtask test` installs it");
    None
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `../shared/fixtures/<sub>` next to the repository, which exists only on the
/// project's own machines. `None` (with a printed notice) elsewhere.
pub fn shared_fixtures(sub: &str) -> Option<PathBuf> {
    let dir = root().join("../shared/fixtures").join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} is absent (it exists only on the project's machines)",
            dir.display()
        );
        None
    }
}

/// Copies a directory tree (files and folders only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Writes each `(path, text)` below `root`, making the folders.
pub fn write_files<T: AsRef<str>>(root: &Path, files: &[(&str, T)]) {
    for (path, text) in files {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text.as_ref()).unwrap();
    }
}

/// Fails the test with the command's stderr when it did not succeed.
#[track_caller]
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A ConfigMap whose YAML is an alias bomb: nine levels of ten aliases
/// (`l1` … `l9`), 10^9 nodes once expanded. go-yaml's excessive-aliasing
/// rule trips at the first `*l2`, on line 8.
pub fn alias_bomb() -> String {
    let mut bomb = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n");
    bomb.push_str(&format!("l0: &l0 [{}]\n", ["\"lol\""; 10].join(",")));
    for level in 1..=9 {
        let items = vec![format!("*l{}", level - 1); 10].join(",");
        bomb.push_str(&format!("l{level}: &l{level} [{items}]\n"));
    }
    bomb
}

/// Asserts that `binary` was built from `module` at `version`, by its Go
/// build info (`go version -m`): an oracle must be the pinned build, not
/// whatever comes first on PATH, and a `go install`/`go build` binary often
/// prints no real version of its own.
pub fn assert_go_build(binary: &Path, module: &str, version: &str) {
    let out = std::process::Command::new("go")
        .args(["version", "-m"])
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("go version -m {}: {e}", binary.display()));
    let info = String::from_utf8_lossy(&out.stdout);
    let pinned = info.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 3 && matches!(f[0], "mod" | "dep") && module.starts_with(f[1]) && f[2] == version
    });
    assert!(
        pinned,
        "{} is not {module}@{version}:\n{info}",
        binary.display()
    );
}
