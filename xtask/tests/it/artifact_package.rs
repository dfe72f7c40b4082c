//! `oci_artifact` packaging: Flux's tar rules, reproducibility, the OCI
//! layout, and the `package` verb.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use oci_artifact::PackageOptions;

const CREATED: &str = "2025-01-02T03:04:05Z";

/// Writes a small manifest tree with things that must stay out.
/// `order` reverses the creation order; `perm_variant` changes the on-disk
/// modes (as a different umask would).
fn make_tree(dir: &Path, reverse: bool, loose_perms: bool) {
    let mut files: Vec<(&str, &str)> = vec![
        ("clusters/local/kustomization.yaml", "resources: []\n"),
        ("apps/app.yaml", "kind: ConfigMap\n"),
        ("a/b", "in a\n"),
        ("a-b/x", "in a-b\n"),
        ("scripts/run.sh", "#!/bin/sh\necho hi\n"),
        ("README.md", "docs\n"),
        (".sourceignore", "*.md\nignored-dir/\n"),
        ("ignored-dir/x.yaml", "x: 1\n"),
        (".git/config", "[core]\n"),
        ("xtask/src/main.rs", "fn main() {}\n"),
        ("target/debug/x", "bin\n"),
        ("Cargo.toml", "[workspace]\n"),
        ("secret.dec.yaml", "password: plain\n"),
        ("keys.txt", "# an age keys file is never packaged\n"),
        (".github/workflows/ci.yaml", "on: push\n"),
    ];
    if reverse {
        files.reverse();
    }
    for (name, body) in &files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        set(
            &dir.join("scripts/run.sh"),
            if loose_perms { 0o775 } else { 0o700 },
        );
        set(
            &dir.join("apps/app.yaml"),
            if loose_perms { 0o664 } else { 0o600 },
        );
        set(&dir.join("apps"), if loose_perms { 0o775 } else { 0o700 });
        // symlinks, one pointing outside the tree: skipped, never followed
        symlink("/etc", dir.join("apps/outside")).unwrap();
        symlink("app.yaml", dir.join("apps/link.yaml")).unwrap();
    }
    // different mtimes
    let when = if reverse {
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)
    } else {
        std::time::SystemTime::now()
    };
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("apps/app.yaml"))
        .unwrap();
    f.set_modified(when).unwrap();
}

fn opts(root: &Path) -> PackageOptions {
    PackageOptions {
        root: root.to_path_buf(),
        source: Some("https://github.com/devantler-tech/platform".into()),
        revision: "main@sha1:0123456789abcdef0123456789abcdef01234567".into(),
        created: CREATED.into(),
    }
}

const EXPECTED: &[&str] = &[
    ".",
    "a",
    "a/b",
    "a-b",
    "a-b/x",
    "apps",
    "apps/app.yaml",
    "clusters",
    "clusters/local",
    "clusters/local/kustomization.yaml",
    "scripts",
    "scripts/run.sh",
];

#[test]
fn entries_follow_fluxs_builder_rules() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false, false);
    let a = oci_artifact::package(&opts(dir.path())).unwrap();
    assert_eq!(a.entries, EXPECTED);

    // gzip header: magic, deflate, no flags (no name), mtime 0, OS 255
    assert_eq!(&a.layer[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&a.layer[4..8], &[0, 0, 0, 0]);
    assert_eq!(a.layer[9], 255);

    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(a.layer.as_slice()));
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        assert!(!name.starts_with('/') && !name.contains(".."), "{name}");
        assert_eq!(h.uid().unwrap(), 0, "{name}");
        assert_eq!(h.gid().unwrap(), 0, "{name}");
        assert_eq!(h.username().unwrap().unwrap_or(""), "", "{name}");
        assert_eq!(h.groupname().unwrap().unwrap_or(""), "", "{name}");
        assert_eq!(h.mtime().unwrap(), 0, "{name}");
        let mode = h.mode().unwrap();
        match h.entry_type() {
            tar::EntryType::Directory => assert_eq!(mode, 0o755, "{name}"),
            tar::EntryType::Regular => {
                let want = if name == "scripts/run.sh" {
                    0o755
                } else {
                    0o644
                };
                assert_eq!(mode, want, "{name}");
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                assert_eq!(
                    body,
                    std::fs::read(dir.path().join(&name)).unwrap(),
                    "{name}"
                );
            }
            other => panic!("{name}: unexpected entry type {other:?}"),
        }
        names.push(name);
    }
    assert_eq!(names, EXPECTED);
}

#[test]
fn same_tree_gives_the_same_digests_anywhere() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    make_tree(one.path(), false, false);
    make_tree(two.path(), true, true);
    let a = oci_artifact::package(&opts(one.path())).unwrap();
    let b = oci_artifact::package(&opts(two.path())).unwrap();
    assert_eq!(a.layer_digest, b.layer_digest);
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_eq!(a.manifest, b.manifest);
    assert_eq!(a.layer, b.layer);

    // created changes the manifest, not the layer
    let mut o = opts(one.path());
    o.created = "2025-01-02T04:04:05+01:00".into(); // the same instant
    assert_eq!(
        oci_artifact::package(&o).unwrap().manifest_digest,
        a.manifest_digest
    );
    o.created = "2026-01-01T00:00:00Z".into();
    let c = oci_artifact::package(&o).unwrap();
    assert_eq!(c.layer_digest, a.layer_digest);
    assert_ne!(c.manifest_digest, a.manifest_digest);

    // a content change changes the layer
    std::fs::write(two.path().join("apps/app.yaml"), "kind: Secret\n").unwrap();
    assert_ne!(
        oci_artifact::package(&opts(two.path()))
            .unwrap()
            .layer_digest,
        a.layer_digest
    );
}

#[test]
fn manifest_and_config_are_fluxs() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false, false);
    let a = oci_artifact::package(&opts(dir.path())).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.flux.config.v1+json"
    );
    assert_eq!(
        m["config"]["digest"],
        oci_artifact::sha256_digest(&a.config)
    );
    assert_eq!(m["config"]["size"], a.config.len());
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.cncf.flux.content.v1.tar+gzip"
    );
    assert_eq!(layers[0]["digest"], a.layer_digest);
    assert_eq!(layers[0]["size"], a.layer.len());
    assert_eq!(
        m["annotations"],
        serde_json::json!({
            "org.opencontainers.image.created": CREATED,
            "org.opencontainers.image.revision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
            "org.opencontainers.image.source": "https://github.com/devantler-tech/platform",
        })
    );
    assert_eq!(a.manifest_digest, oci_artifact::sha256_digest(&a.manifest));
    let c: serde_json::Value = serde_json::from_slice(&a.config).unwrap();
    assert_eq!(c["created"], CREATED);
    assert_eq!(c["rootfs"]["type"], "layers");
    assert!(
        c["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn bad_created_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.created = "last tuesday".into();
    let e = oci_artifact::package(&o).unwrap_err().to_string();
    assert!(e.contains("RFC 3339"), "{e}");
}

#[test]
fn oci_layout_is_read_by_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false, false);
    let a = oci_artifact::package(&opts(dir.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    oci_artifact::write_oci_layout(&a, &layout, "v1").unwrap();
    oci_artifact::write_oci_layout(&a, &layout, "latest").unwrap();
    oci_artifact::write_oci_layout(&a, &layout, "latest").unwrap(); // idempotent
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let insp = oci_artifact::inspect_layout(&layout, Some("v1")).unwrap();
    assert_eq!(insp.digest, a.manifest_digest);
    assert_eq!(insp.files, EXPECTED);

    let Some(skopeo) = common::tool("skopeo") else {
        return;
    };
    let raw = exec::runner::Cmd::new(&skopeo)
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:v1", layout.display()))
        .read_bytes()
        .unwrap();
    assert_eq!(raw, a.manifest);
    let cfg = exec::runner::Cmd::new(&skopeo)
        .args(["inspect", "--raw", "--config"])
        .arg(format!("oci:{}:latest", layout.display()))
        .read_bytes()
        .unwrap();
    assert_eq!(cfg, a.config);
    // skopeo copies it like any OCI artifact, blobs intact
    let copy = out.path().join("copy");
    exec::runner::Cmd::new(&skopeo)
        .arg("copy")
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("oci:{}:v1", copy.display()))
        .read()
        .unwrap();
    let blob = |d: &str| {
        copy.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    assert_eq!(std::fs::read(blob(&a.layer_digest)).unwrap(), a.layer);
    assert_eq!(std::fs::read(blob(&a.manifest_digest)).unwrap(), a.manifest);
}

fn xtask() -> Command {
    Command::cargo_bin("xtask").unwrap()
}

fn verb_args(tree: &Path) -> Vec<String> {
    vec![
        "--path".into(),
        tree.display().to_string(),
        "--created".into(),
        CREATED.into(),
        "--source".into(),
        "https://github.com/devantler-tech/platform".into(),
        "--revision".into(),
        "main@sha1:0123456789abcdef0123456789abcdef01234567".into(),
    ]
}

#[test]
fn package_verb_lists_writes_and_inspects() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), false, false);
    let out = xtask()
        .arg("package")
        .args(verb_args(dir.path()))
        .arg("--list")
        .output()
        .unwrap();
    common::assert_success(&out);
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, EXPECTED);

    let elsewhere = tempfile::tempdir().unwrap();
    let layout: PathBuf = elsewhere.path().join("oci");
    let out = xtask()
        .arg("package")
        .args(verb_args(dir.path()))
        .args(["--tag", "t1", "--output", "json", "--out"])
        .arg(&layout)
        .output()
        .unwrap();
    common::assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = oci_artifact::package(&opts(dir.path())).unwrap();
    assert_eq!(v["manifest_digest"], a.manifest_digest);

    let out = xtask()
        .args(["package", "--inspect"])
        .arg(format!("oci:{}:t1", layout.display()))
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&a.manifest_digest), "{text}");
    assert!(
        text.contains("org.opencontainers.image.revision: main@sha1:0123"),
        "{text}"
    );
    assert!(
        text.contains("  clusters/local/kustomization.yaml"),
        "{text}"
    );
}

#[test]
fn the_repository_tree_packages_without_tooling_or_secrets() {
    let a = oci_artifact::package(&opts(&common::root())).unwrap();
    for e in &a.entries {
        for banned in [
            ".git/", "xtask/", "target/", ".tools/", ".github/", "Cargo.",
        ] {
            assert!(!e.starts_with(banned), "{e} must not be packaged");
        }
        assert!(!e.ends_with(".dec.yaml") && !e.ends_with("keys.txt"), "{e}");
    }
    assert_eq!(a.entries[0], ".");
}
