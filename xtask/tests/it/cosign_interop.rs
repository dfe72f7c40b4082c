//! Signatures in cosign's format, checked both ways against the real cosign
//! CLI and a real registry (Debian's `docker-registry`): cosign verifies what
//! `publish`/`promote --sign-key` signed, `verify` accepts what `cosign sign`
//! wrote, both refuse the wrong key, and our payload is cosign's byte for
//! byte. Keys are made at test time by `cosign generate-key-pair`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::registry::Registry;
use assert_cmd::Command;
use oci_artifact::cosign;
use serde_json::Value;

pub(crate) const PASSWORD: &str = "correct horse";

/// The cosign binary and a registry, or `None` (skip notice printed).
pub(crate) fn setup() -> Option<(PathBuf, Registry)> {
    let cosign = common::tool("cosign")?;
    // The oracle is the pinned build, not whatever cosign is first on PATH.
    let pins = exec::tools::Manifest::of_repo(&common::root()).unwrap();
    let pin = pins.get("cosign").unwrap();
    common::assert_go_build(&cosign, &pin.module, &pin.version);
    let reg = Registry::start(None)?;
    Some((cosign, reg))
}

/// cosign with no access to the developer's docker config or sigstore cache.
pub(crate) fn cosign_cmd(bin: &Path, home: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("TUF_ROOT", home.join(".sigstore"))
        .env("COSIGN_PASSWORD", PASSWORD)
        .env_remove("COSIGN_REPOSITORY")
        .env_remove("COSIGN_DOCKER_MEDIA_TYPES")
        .stdin(std::process::Stdio::null());
    c
}

/// `cosign generate-key-pair` into `dir`: (`<prefix>.key`, `<prefix>.pub`).
pub(crate) fn key_pair(bin: &Path, dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let out = cosign_cmd(bin, dir)
        .current_dir(dir)
        .args(["generate-key-pair", "--output-key-prefix", prefix])
        .output()
        .unwrap();
    common::assert_success(&out);
    (
        dir.join(format!("{prefix}.key")),
        dir.join(format!("{prefix}.pub")),
    )
}

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
    ] {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

pub(crate) fn xtask(home: &Path) -> Command {
    let mut c = Command::cargo_bin("xtask").unwrap();
    c.env("DOCKER_CONFIG", home.join(".no-docker-config"))
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN")
        .env_remove("COSIGN_PASSWORD");
    c
}

/// `cargo xtask publish` of a small tree to `url` with `--tag v1`, plus
/// `extra` arguments; returns the command's output.
pub(crate) fn publish(home: &Path, url: &str, extra: &[&str], password: Option<&str>) -> Output {
    let tree = home.join("tree");
    make_tree(&tree);
    let mut c = xtask(home);
    c.arg("publish")
        .arg("--root")
        .arg(&tree)
        .args([
            "--created",
            "2025-01-02T03:04:05Z",
            "--revision",
            "main@sha1:0123456789abcdef0123456789abcdef01234567",
            "--registry",
            url,
            "--tag",
            "v1",
        ])
        .args(extra);
    if let Some(p) = password {
        c.env("COSIGN_PASSWORD", p);
    }
    c.output().unwrap()
}

/// The digest in `oci://host/repo@sha256:...` on stdout.
pub(crate) fn digest_of(out: &Output) -> String {
    common::assert_success(out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (_, digest) = stdout.trim().rsplit_once('@').expect("a digest reference");
    digest.to_string()
}

/// `cosign sign --key KEY --tlog-upload=false` of `image` plus `extra`.
pub(crate) fn cosign_sign(bin: &Path, home: &Path, key: &Path, image: &str, extra: &[&str]) {
    let out = cosign_cmd(bin, home)
        .args(["sign", "--key"])
        .arg(key)
        .args([
            "--tlog-upload=false",
            "--allow-http-registry",
            "--allow-insecure-registry",
        ])
        .args(extra)
        .arg(image)
        .output()
        .unwrap();
    common::assert_success(&out);
}

pub(crate) fn cosign_verify(bin: &Path, home: &Path, public: &Path, image: &str) -> Output {
    cosign_cmd(bin, home)
        .args(["verify", "--key"])
        .arg(public)
        .args([
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "--allow-insecure-registry",
            image,
        ])
        .output()
        .unwrap()
}

pub(crate) fn our_verify(home: &Path, reference: &str, public: &Path) -> Output {
    xtask(home)
        .args(["verify", reference, "--key"])
        .arg(public)
        .args(["--output", "json"])
        .output()
        .unwrap()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cosign_verifies_what_publish_signed_and_both_refuse_another_key() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (key, public) = key_pair(&bin, home, "ours");
    let (other_key, other_public) = key_pair(&bin, home, "other");
    let url = reg.url("team/app");

    let out = publish(
        home,
        &url,
        &["--sign-key", key.to_str().unwrap()],
        Some(PASSWORD),
    );
    let digest = digest_of(&out);
    assert!(
        stderr(&out).contains(&format!("signed {digest}")),
        "{}",
        stderr(&out)
    );
    let image = format!("{}/team/app@{digest}", reg.host());

    // The real cosign accepts our signature and reports our payload.
    let out = cosign_verify(&bin, home, &public, &image);
    common::assert_success(&out);
    let payloads: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        payloads[0]["critical"]["identity"]["docker-reference"],
        format!("{}/team/app", reg.host())
    );

    // Ours agrees, by tag and by digest.
    for reference in [format!("{url}:v1"), format!("{url}@{digest}")] {
        let out = our_verify(home, &reference, &public);
        common::assert_success(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["digest"], digest.as_str());
        assert_eq!(
            (v["verified"].as_u64(), v["total"].as_u64()),
            (Some(1), Some(1))
        );
    }

    // Another key: both refuse.
    let out = cosign_verify(&bin, home, &other_public, &image);
    assert!(!out.status.success(), "cosign accepted another key");
    assert!(
        stderr(&out).contains("no matching signatures"),
        "{}",
        stderr(&out)
    );
    let out = our_verify(home, &format!("{url}:v1"), &other_public);
    assert!(!out.status.success(), "verify accepted another key");
    let err = stderr(&out);
    assert!(
        err.contains("no signature of") && err.contains("does not match the key"),
        "{err}"
    );

    // cosign appends its signature after ours; both verify, for either tool.
    cosign_sign(&bin, home, &other_key, &image, &[]);
    for public in [&public, &other_public] {
        let out = our_verify(home, &format!("{url}@{digest}"), public);
        common::assert_success(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["verified"].as_u64(), v["total"].as_u64()),
            (Some(1), Some(2))
        );
        common::assert_success(&cosign_verify(&bin, home, public, &image));
    }

    // Signing the same digest again with the same key adds nothing.
    let out = publish(
        home,
        &url,
        &["--sign-key", key.to_str().unwrap(), "--tag", "again"],
        Some(PASSWORD),
    );
    common::assert_success(&out);
    assert!(stderr(&out).contains("already signed"), "{}", stderr(&out));
}

/// Raw bytes from `crane` (manifest or blob) at a loopback registry.
pub(crate) fn crane(args: &[&str]) -> Vec<u8> {
    let bin = common::tool("crane").expect("crane is installed with cosign");
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--insecure")
        .output()
        .unwrap();
    common::assert_success(&out);
    out.stdout
}

/// The `.sig` image cosign wrote for `digest` (one signature) is, byte for
/// byte, the one we write for the same payload and signature.
fn assert_same_sig_image(reg: &Registry, repo: &str, digest: &str) {
    if common::tool("crane").is_none() {
        return;
    }
    let sig_ref = format!("{}/{repo}:{}", reg.host(), cosign::signature_tag(digest));
    let manifest = crane(&["manifest", &sig_ref]);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let config = crane(&["blob", &format!("{}/{repo}@{config_digest}", reg.host())]);
    let signature = m["layers"][0]["annotations"][cosign::SIGNATURE_ANNOTATION]
        .as_str()
        .unwrap();
    let payload = cosign::payload(&format!("{}/{repo}", reg.host()), digest);
    let ours = cosign::signature_image(None, &payload, signature).unwrap();
    assert_eq!(
        String::from_utf8(ours.config).unwrap(),
        String::from_utf8(config).unwrap()
    );
    assert_eq!(
        String::from_utf8(ours.manifest).unwrap(),
        String::from_utf8(manifest).unwrap()
    );
}

#[test]
fn verify_accepts_cosigns_signature_and_promote_appends_ours() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (cosign_key, cosign_public) = key_pair(&bin, home, "cosign");
    let (our_key, our_public) = key_pair(&bin, home, "ours");
    let url = reg.url("app");
    let digest = digest_of(&publish(home, &url, &[], None));
    let image = format!("{}/app@{digest}", reg.host());

    // No such tag: said as such.
    let out = our_verify(home, &format!("{url}:nope"), &cosign_public);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("there is no artifact {url}:nope to verify")),
        "{}",
        stderr(&out)
    );

    // Unsigned: refused, saying so.
    let out = our_verify(home, &format!("{url}:v1"), &cosign_public);
    assert!(!out.status.success(), "an unsigned artifact was accepted");
    let err = stderr(&out);
    assert!(
        err.contains("is not signed") && err.contains(&cosign::signature_tag(&digest)),
        "{err}"
    );

    // cosign signs; we accept it, and its payload is ours byte for byte.
    let payload_file = home.join("payload.json");
    cosign_sign(
        &bin,
        home,
        &cosign_key,
        &image,
        &["--output-payload", payload_file.to_str().unwrap()],
    );
    assert_eq!(
        String::from_utf8(std::fs::read(&payload_file).unwrap()).unwrap(),
        String::from_utf8(cosign::payload(&format!("{}/app", reg.host()), &digest)).unwrap()
    );
    let out = our_verify(home, &format!("{url}:v1"), &cosign_public);
    common::assert_success(&out);
    assert_same_sig_image(&reg, "app", &digest);
    let out = our_verify(home, &format!("{url}:v1"), &our_public);
    assert!(!out.status.success(), "accepted a key that never signed");

    // promote --sign-key appends our signature after cosign's.
    let out = xtask(home)
        .args([
            "promote",
            "--registry",
            &url,
            "--from",
            "v1",
            "--to",
            "prod",
        ])
        .arg("--sign-key")
        .arg(&our_key)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    common::assert_success(&out);
    assert!(
        stderr(&out).contains("(2 signature(s))"),
        "{}",
        stderr(&out)
    );
    for public in [&cosign_public, &our_public] {
        let out = our_verify(home, &format!("{url}:prod"), public);
        common::assert_success(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["verified"].as_u64(), v["total"].as_u64()),
            (Some(1), Some(2))
        );
        // cosign still reads the appended manifest, for either key.
        common::assert_success(&cosign_verify(&bin, home, public, &image));
    }
}

#[test]
fn a_wrong_or_missing_password_stops_before_pushing() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (key, _) = key_pair(&bin, home, "ours");
    let url = reg.url("app");
    let before = reg.stored_files();

    let out = publish(
        home,
        &url,
        &["--sign-key", key.to_str().unwrap()],
        Some("nope"),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("wrong password") && err.contains("COSIGN_PASSWORD"),
        "{err}"
    );

    let out = publish(home, &url, &["--sign-key", key.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("set COSIGN_PASSWORD"),
        "{}",
        stderr(&out)
    );
    assert_eq!(reg.stored_files(), before, "something was pushed");
}

#[test]
fn cosign_reads_a_key_pair_we_generate() {
    let Some(bin) = common::tool("cosign") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let (private, public) = cosign::SigningKey::generate(PASSWORD.as_bytes());
    let key = home.path().join("ours.key");
    std::fs::write(&key, private).unwrap();
    // cosign decrypts our file and derives the same public key.
    let out = cosign_cmd(&bin, home.path())
        .args(["public-key", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), public);
}

#[test]
fn signing_and_verifying_use_the_registry_credentials() {
    let Some(reg) = Registry::start(Some(("ci", "s3cret"))) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (private, public) = cosign::SigningKey::generate(b"");
    let (key, public_file) = (home.join("k.key"), home.join("k.pub"));
    std::fs::write(&key, private).unwrap();
    std::fs::write(&public_file, public).unwrap();
    let url = reg.url("app");
    // An empty COSIGN_PASSWORD is a key without a password, as in cosign.
    let digest = digest_of(&publish(
        home,
        &url,
        &["--creds", "ci:s3cret", "--sign-key", key.to_str().unwrap()],
        Some(""),
    ));
    let out = xtask(home)
        .args(["verify", &format!("{url}@{digest}"), "--key"])
        .arg(&public_file)
        .args(["--creds", "ci:s3cret"])
        .output()
        .unwrap();
    common::assert_success(&out);
    assert!(
        stderr(&out).contains(&format!("verified: 1 of 1 signature(s) of {digest}")),
        "{}",
        stderr(&out)
    );
    let out = our_verify(home, &format!("{url}@{digest}"), &public_file);
    assert!(!out.status.success(), "verified without credentials");
    assert!(
        stderr(&out).contains("needs credentials"),
        "{}",
        stderr(&out)
    );
}
