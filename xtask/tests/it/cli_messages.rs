//! What a user meets on bad input and in `--help`: one clear line per root
//! cause, and one convention for the flags every verb shares.

use crate::common;

use assert_cmd::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("xtask")
        .unwrap()
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_invalid_port_is_named_as_such() {
    let out = xtask(&[
        "publish",
        "--registry",
        "oci://localhost:99999/x",
        "--allow-dirty",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the port \"99999\" is not a port number (1-65535)"),
        "{err}"
    );
    assert!(!err.contains("Generic error"), "{err}");
}

#[test]
fn a_missing_tree_is_one_line_and_no_warnings_first() {
    let out = xtask(&["package", "--root", "/nonexistent/tree"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        "error: /nonexistent/tree: No such file or directory (os error 2)"
    );
}

#[test]
fn every_verb_takes_the_tree_as_root_and_clusters_by_name() {
    for verb in [
        "build",
        "diff",
        "validate",
        "package",
        "publish",
        "reconcile",
        "bootstrap",
    ] {
        let out = xtask(&[verb, "--help"]);
        common::assert_success(&out);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--root <DIR>"),
            "{verb} --help has no --root <DIR>:\n{help}"
        );
        assert!(
            !help.contains("--path <"),
            "{verb} still shows --path:\n{help}"
        );
    }
    // The verbs over the tree's clusters default to every cluster alike.
    for verb in ["build", "diff", "validate"] {
        let out = xtask(&[verb, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--cluster <NAME>"), "{verb}:\n{help}");
        assert!(
            help.contains("every cluster"),
            "{verb} does not say its default:\n{help}"
        );
    }
    // `--path` still works for scripts written before.
    let out = xtask(&["package", "--path", "/nonexistent/tree"]);
    assert!(
        stderr(&out).contains("/nonexistent/tree: No such file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn build_renders_every_cluster_by_default() {
    if exec::tools::kustomize().is_err() {
        assert!(!common::tools_required(), "kustomize is required");
        eprintln!("SKIP: kustomize is not installed");
        return;
    }
    let fixture = common::root().join("xtask/tests/fixtures/build/basic");
    let out_dir = tempfile::tempdir().unwrap();
    let out = xtask(&[
        "build",
        "--root",
        fixture.to_str().unwrap(),
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    common::assert_success(&out);
    assert!(out_dir.path().join("demo/apps.yaml").is_file());
}

/// Runs `xtask ARGS` under a pseudo-terminal (`script`), as in a user's
/// shell, and returns everything it drew. `None` (skip) without `script`.
fn on_a_terminal(args: &str) -> Option<String> {
    let script = common::tool("script")?;
    let bin = assert_cmd::cargo::cargo_bin("xtask");
    let out = std::process::Command::new(script)
        .args(["-q", "-e", "-c"])
        .arg(format!("{} {args}", bin.display()))
        .arg("/dev/null")
        // script draws nothing when its stdin is closed (as CI may leave it).
        .stdin(std::process::Stdio::null())
        .env_remove("CI")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn packaging_shows_progress_on_a_terminal() {
    let root = common::root();
    let Some(drawn) = on_a_terminal(&format!("package --list --root {}", root.display())) else {
        return;
    };
    assert!(
        drawn.contains(&format!("packaging {}", root.display())),
        "no progress drawn:\n{drawn}"
    );
}

#[test]
fn validate_progress_never_shows_more_done_than_there_is() {
    if exec::tools::kustomize().is_err() {
        assert!(!common::tools_required(), "kustomize is required");
        eprintln!("SKIP: kustomize is not installed");
        return;
    }
    let root = common::root();
    let Some(drawn) = on_a_terminal(&format!("validate --root {}", root.display())) else {
        return;
    };
    let frame = regex::Regex::new(r"\] (\d+)/(\d+)").unwrap();
    let frames: Vec<(u64, u64)> = frame
        .captures_iter(&drawn)
        .map(|c| (c[1].parse().unwrap(), c[2].parse().unwrap()))
        .collect();
    assert!(!frames.is_empty(), "no progress drawn:\n{drawn}");
    for (done, of) in frames {
        assert!(done <= of, "drew {done}/{of}");
    }
}
