//! `cargo xtask publish` against a real registry: Debian's `docker-registry`
//! (distribution 2.8), started per test on a free port. No mocks.

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use exec::runner::Cmd;
use oci_artifact::PackageOptions;

const CREATED: &str = "2025-01-02T03:04:05Z";
const SOURCE: &str = "https://github.com/devantler-tech/platform";
const REVISION: &str = "main@sha1:0123456789abcdef0123456789abcdef01234567";

use crate::registry::Registry;

fn make_tree(dir: &Path) {
    for (name, body) in [
        (
            "clusters/local/kustomization.yaml",
            "resources:\n  - ../../apps\n",
        ),
        ("apps/kustomization.yaml", "resources:\n  - app.yaml\n"),
        (
            "apps/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        ),
        ("README.md", "left out by .sourceignore\n"),
        (".sourceignore", "*.md\n"),
    ] {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

fn opts(root: &Path) -> PackageOptions {
    PackageOptions {
        root: root.to_path_buf(),
        source: Some(SOURCE.into()),
        revision: REVISION.into(),
        created: CREATED.into(),
    }
}

fn publish_cmd(tree: &Path, registry: &str) -> Command {
    let mut c = Command::cargo_bin("xtask").unwrap();
    c.arg("publish")
        .args(["--root"])
        .arg(tree)
        .args([
            "--created",
            CREATED,
            "--source",
            SOURCE,
            "--revision",
            REVISION,
        ])
        .args(["--registry", registry])
        // never pick up the developer's own credentials
        .env("DOCKER_CONFIG", tree.join(".no-docker-config"))
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN");
    c
}

fn run_ok(mut c: Command) -> (String, String) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed:\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

fn run_err(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn skopeo_raw(skopeo: &Path, image: &str, config: bool) -> Result<Vec<u8>, exec::runner::RunError> {
    let mut c = Cmd::new(skopeo).args(["inspect", "--raw", "--tls-verify=false"]);
    if config {
        c = c.arg("--config");
    }
    c.arg(format!("docker://{image}")).read_bytes()
}

/// Extracts a tar.gz into `dest` (regular files and directories only).
fn untar(gz: &[u8], dest: &Path) {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    ar.unpack(dest).unwrap();
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in oci_artifact::tree::collect(root).unwrap() {
        if let oci_artifact::tree::Kind::File { .. } = e.kind {
            out.push((e.name.clone(), std::fs::read(&e.path).unwrap()));
        }
    }
    out
}

#[test]
fn push_is_exact_then_a_second_push_is_a_no_op() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let a = oci_artifact::package(&opts(tree.path())).unwrap();
    let url = reg.url("platform/manifests");

    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "abc1234", "--tag", "latest"]);
    let (stdout, stderr) = run_ok(c);
    assert_eq!(stdout.trim(), format!("{url}@{}", a.manifest_digest));
    assert!(stderr.contains("pushed 2 blob(s)"), "{stderr}");
    assert!(stderr.contains(" ms"), "{stderr}");

    let Some(skopeo) = common::tool("skopeo") else {
        return;
    };
    let image = format!("{}/platform/manifests", reg.host());
    for tag in ["abc1234", "latest"] {
        assert_eq!(
            skopeo_raw(&skopeo, &format!("{image}:{tag}"), false).unwrap(),
            a.manifest
        );
    }
    assert_eq!(
        skopeo_raw(&skopeo, &format!("{image}:latest"), true).unwrap(),
        a.config
    );

    // skopeo copy to an OCI layout: the blobs are ours, the layer untars to the tree
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    Cmd::new(&skopeo)
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{image}:latest"))
        .arg(format!("oci:{}:latest", layout.display()))
        .read()
        .unwrap();
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    assert_eq!(blob(&a.layer_digest), a.layer);
    assert_eq!(blob(&a.config_digest), a.config);
    assert_eq!(blob(&a.manifest_digest), a.manifest);
    let extracted = work.path().join("x");
    untar(&a.layer, &extracted);
    let mut want = read_tree(tree.path());
    want.retain(|(n, _)| n != "README.md" && n != ".sourceignore");
    let got = read_tree(&extracted);
    assert_eq!(got, want);

    // second push: nothing sent, nothing stored
    let before = reg.stored_files();
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "abc1234", "--tag", "latest", "--output", "json"]);
    let (stdout, _) = run_ok(c);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["up_to_date"], true);
    assert_eq!(v["pushed_blobs"], serde_json::json!([]));
    assert_eq!(v["pushed_tags"], serde_json::json!([]));
    assert_eq!(v["digest"], a.manifest_digest);
    assert_eq!(reg.stored_files(), before);
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "abc1234", "--tag", "latest"]);
    let (_, stderr) = run_ok(c);
    assert!(stderr.contains("up to date"), "{stderr}");

    // a new tag of the same content: blobs skipped, only the tag written
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "abc1234", "--tag", "v2", "--output", "json"]);
    let (stdout, _) = run_ok(c);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["up_to_date"], false);
    assert_eq!(v["pushed_blobs"], serde_json::json!([]));
    assert_eq!(v["pushed_tags"], serde_json::json!(["v2"]));

    // our own --inspect reads it back from the registry
    let out = Command::cargo_bin("xtask")
        .unwrap()
        .args(["package", "--inspect", &format!("{url}:v2")])
        .env("DOCKER_CONFIG", tree.path().join(".no-docker-config"))
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&a.manifest_digest), "{text}");
    assert!(text.contains("  apps/app.yaml"), "{text}");
}

#[test]
fn auth_is_refused_without_credentials_and_works_with_them() {
    let Some(reg) = Registry::start(Some(("ci", "s3cret-token"))) else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let a = oci_artifact::package(&opts(tree.path())).unwrap();
    let url = reg.url("platform/manifests");

    // No credentials at all: the registry wants some, and we say how to give them.
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "t1"]);
    let err = run_err(c);
    assert!(
        err.contains("needs credentials and none were found") && err.contains("--creds USER:TOKEN"),
        "{err}"
    );
    assert!(!err.contains("refused the credentials"), "{err}");

    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "t1", "--creds", "ci:wrong"]);
    let err = run_err(c);
    assert!(err.contains("refused the credentials"), "{err}");

    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "t1", "--creds", "ci:s3cret-token"]);
    let (stdout, _) = run_ok(c);
    assert!(stdout.contains(&a.manifest_digest), "{stdout}");

    // docker config auths (DOCKER_CONFIG points at it)
    use base64::Engine;
    let docker = tempfile::tempdir().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("ci:s3cret-token");
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "t2"]).env("DOCKER_CONFIG", docker.path());
    let (_, stderr) = run_ok(c);
    assert!(stderr.contains("tagged t2"), "{stderr}");

    // env vars
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "t3"])
        .env("REGISTRY_USERNAME", "ci")
        .env("REGISTRY_PASSWORD", "s3cret-token");
    run_ok(c);

    // a credential helper (credHelpers), run with the host on stdin
    let helper_dir = tempfile::tempdir().unwrap();
    let helper = helper_dir.path().join("docker-credential-xtasktest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread host\n[ \"$host\" = {} ] || {{ echo 'credentials not found in native keychain' >&2; exit 1; }}\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"ci\",\"Secret\":\"s3cret-token\"}}'\n",
            reg.host()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let docker2 = tempfile::tempdir().unwrap();
    std::fs::write(
        docker2.path().join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"xtasktest"}}}}"#, reg.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helper_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "t4"])
        .env("DOCKER_CONFIG", docker2.path())
        .env("PATH", &path);
    let (_, stderr) = run_ok(c);
    assert!(stderr.contains("tagged t4"), "{stderr}");
}

#[test]
fn clear_errors_for_down_registries_and_wrong_schemes() {
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = run_err(publish_cmd(
        tree.path(),
        &format!("oci://127.0.0.1:{port}/x"),
    ));
    assert!(
        err.contains(&format!("registry 127.0.0.1:{port} is unreachable")),
        "{err}"
    );

    let err = run_err(publish_cmd(tree.path(), "https://ghcr.io/o/r"));
    assert!(err.contains("use the oci:// scheme"), "{err}");
    let err = run_err(publish_cmd(tree.path(), "ghcr.io/o/r"));
    assert!(err.contains("add the oci:// prefix"), "{err}");
}

/// A deterministic incompressible file, so the layer is big and slow to send.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_killed_push_leaves_no_tag_and_a_rerun_completes() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    std::fs::write(tree.path().join("apps/big.bin"), noise(96 << 20)).unwrap();
    let url = reg.url("big/manifests");
    let uploads = reg
        .storage
        .join("docker/registry/v2/repositories/big/manifests/_uploads");

    let bin = assert_cmd::cargo::cargo_bin("xtask");
    let mut child = std::process::Command::new(&bin)
        .args(["publish", "--path"])
        .arg(tree.path())
        .args([
            "--created",
            CREATED,
            "--source",
            SOURCE,
            "--revision",
            REVISION,
        ])
        .args(["--registry", &url, "--tag", "v1"])
        .env("DOCKER_CONFIG", tree.path().join(".no-docker-config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // kill as soon as the first blob upload has started
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let started = std::fs::read_dir(&uploads).is_ok_and(|mut d| d.next().is_some());
        if started {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("publish ended ({status}) before an upload was seen");
        }
        assert!(Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // nothing is tagged
    let Some(skopeo) = common::tool("skopeo") else {
        return;
    };
    let image = format!("{}/big/manifests:v1", reg.host());
    assert!(
        skopeo_raw(&skopeo, &image, false).is_err(),
        "the tag must not exist after a killed push"
    );

    // a re-run completes; the tag resolves to the full artifact
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "v1"]);
    let (stdout, _) = run_ok(c);
    let a = oci_artifact::package(&opts(tree.path())).unwrap();
    assert_eq!(stdout.trim(), format!("{url}@{}", a.manifest_digest));
    assert_eq!(skopeo_raw(&skopeo, &image, false).unwrap(), a.manifest);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    Cmd::new(&skopeo)
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:v1", layout.display()))
        .read()
        .unwrap();
    let layer = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(a.layer_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(layer.len(), a.layer.len());
    assert_eq!(oci_artifact::sha256_digest(&layer), a.layer_digest);
}

#[test]
fn crane_reads_what_we_pushed() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let Some(crane) = common::tool("crane") else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let a = oci_artifact::package(&opts(tree.path())).unwrap();
    let url = reg.url("platform/manifests");
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "v1"]);
    run_ok(c);

    let image = format!("{}/platform/manifests:v1", reg.host());
    let manifest = Cmd::new(&crane)
        .args(["manifest", "--insecure", &image])
        .read_bytes()
        .unwrap();
    assert_eq!(manifest, a.manifest);
    let digest = Cmd::new(&crane)
        .args(["digest", "--insecure", &image])
        .read()
        .unwrap();
    assert_eq!(digest.trim(), a.manifest_digest);

    // crane pull --format oci: a layout holding our exact blobs
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("pulled");
    Cmd::new(&crane)
        .args(["pull", "--insecure", "--format", "oci", &image])
        .arg(&layout)
        .read()
        .unwrap();
    let insp = oci_artifact::inspect_layout(&layout, None).unwrap();
    assert_eq!(insp.digest, a.manifest_digest);
    assert_eq!(insp.files, a.entries);
    let layer = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(a.layer_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let extracted = work.path().join("x");
    untar(&layer, &extracted);
    let mut want = read_tree(tree.path());
    want.retain(|(n, _)| n != "README.md" && n != ".sourceignore");
    assert_eq!(read_tree(&extracted), want);
}

#[test]
fn an_oras_pushed_flux_artifact_is_inspected() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let Some(oras) = common::tool("oras") else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let a = oci_artifact::package(&opts(tree.path())).unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("layer.tgz"), &a.layer).unwrap();
    std::fs::write(work.path().join("config.json"), b"{}").unwrap();
    let image = format!("{}/oras/manifests:o1", reg.host());
    Cmd::new(&oras)
        .args(["push", "--plain-http", &image])
        .args([
            "--config",
            "config.json:application/vnd.cncf.flux.config.v1+json",
        ])
        .args([
            "--annotation",
            &format!("org.opencontainers.image.revision={REVISION}"),
        ])
        .arg("layer.tgz:application/vnd.cncf.flux.content.v1.tar+gzip")
        .dir(work.path())
        .read()
        .unwrap();
    let out = Command::cargo_bin("xtask")
        .unwrap()
        .args([
            "package",
            "--inspect",
            &format!("oci://{image}"),
            "--output",
            "json",
        ])
        .env("DOCKER_CONFIG", work.path().join(".none"))
        .output()
        .unwrap();
    common::assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["layer_media_type"],
        "application/vnd.cncf.flux.content.v1.tar+gzip"
    );
    assert_eq!(
        v["config_media_type"],
        "application/vnd.cncf.flux.config.v1+json"
    );
    assert_eq!(v["layer_digest"], a.layer_digest);
    assert_eq!(v["files"], serde_json::json!(a.entries));
    let ann: Vec<(String, String)> = serde_json::from_value(v["annotations"].clone()).unwrap();
    assert!(
        ann.contains(&("org.opencontainers.image.revision".into(), REVISION.into())),
        "{ann:?}"
    );
}

fn promote_cmd(registry: &str, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("xtask").unwrap();
    c.arg("promote")
        .args(["--registry", registry])
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN");
    c
}

/// Files the registry holds under its blob store (content, not tag links).
fn blob_files(reg: &Registry) -> Vec<PathBuf> {
    reg.stored_files()
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "blobs"))
        .collect()
}

#[test]
fn promote_retags_by_tag_or_digest_without_uploading() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path());
    let url = reg.url("platform/manifests");
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "abc1234"]);
    run_ok(c);
    let digest = oci_artifact::package(&opts(tree.path()))
        .unwrap()
        .manifest_digest;
    let blobs = blob_files(&reg);

    // By tag, to two tags: old and new digests reported, no blob uploaded.
    let (stdout, stderr) = run_ok(promote_cmd(
        &url,
        &[
            "--from", "abc1234", "--to", "dev", "--to", "v1.2.3", "--output", "json",
        ],
    ));
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["digest"], digest.as_str(), "{stderr}");
    for (i, tag) in ["dev", "v1.2.3"].iter().enumerate() {
        assert_eq!(out["tags"][i]["tag"], *tag);
        assert_eq!(out["tags"][i]["old"], serde_json::Value::Null);
        assert_eq!(out["tags"][i]["new"], digest.as_str());
        assert_eq!(out["tags"][i]["changed"], true);
    }
    assert_eq!(blob_files(&reg), blobs, "promote uploaded a blob");
    let inspected = |tag: &str| {
        let out = Command::cargo_bin("xtask")
            .unwrap()
            .args([
                "package",
                "--inspect",
                &format!("{url}:{tag}"),
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(inspected("dev"), digest);
    assert_eq!(inspected("v1.2.3"), digest);

    // By digest; an unchanged tag says so, in text.
    let (_, stderr) = run_ok(promote_cmd(&url, &["--from", &digest, "--to", "dev"]));
    assert!(
        stderr.contains(&format!("dev: {digest} -> {digest} (unchanged)")),
        "{stderr}"
    );

    // A tag moving from another digest names both.
    let other = tree.path().join("apps/other.yaml");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: o\n",
    )
    .unwrap();
    let mut c = publish_cmd(tree.path(), &url);
    c.args(["--tag", "def5678"]);
    run_ok(c);
    let newer = oci_artifact::package(&opts(tree.path()))
        .unwrap()
        .manifest_digest;
    let (_, stderr) = run_ok(promote_cmd(&url, &["--from", "def5678", "--to", "dev"]));
    assert!(
        stderr.contains(&format!("dev: {digest} -> {newer}")),
        "{stderr}"
    );

    // A missing --from is refused and moves nothing.
    let before = reg.stored_files();
    let err = run_err(promote_cmd(&url, &["--from", "nope", "--to", "prod"]));
    assert!(
        err.contains("there is no manifest nope") && err.contains("nothing to promote"),
        "{err}"
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let err = run_err(promote_cmd(&url, &["--from", &missing, "--to", "prod"]));
    assert!(err.contains("nothing to promote"), "{err}");
    assert_eq!(reg.stored_files(), before);
}
