//! The chain from a signed digest to a promoted one, against a real registry
//! (Debian's `docker-registry`) with the real cosign CLI as the oracle:
//! `promote --verify-key` moves no tag to an unsigned or wrongly signed
//! source; `verify` checks the whole simple-signing payload (type, digest,
//! repository) and the size limits of a `.sig` tag; two signers racing on
//! one digest both stay in its `.sig` tag.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::common;
use crate::cosign_interop::{
    PASSWORD, cosign_cmd, cosign_sign, cosign_verify, digest_of, key_pair, our_verify, publish,
    setup, stderr, xtask,
};
use crate::registry::Registry;
use oci_artifact::{Auth, RegistryRef, cosign};

fn promote(home: &Path, url: &str, from: &str, extra: &[&str]) -> Output {
    xtask(home)
        .args(["promote", "--registry", url, "--from", from, "--to", "prod"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn promote_verify_key_refuses_unsigned_and_wrong_key_sources_and_moves_no_tag() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (key, public) = key_pair(&bin, home, "ours");
    let (other_key, _) = key_pair(&bin, home, "other");
    let url = reg.url("app");
    let digest = digest_of(&publish(home, &url, &[], None));
    let image = format!("{}/app@{digest}", reg.host());
    let public = public.to_str().unwrap();

    // Unsigned: refused, naming the digest; nothing written.
    let before = reg.stored_files();
    let out = promote(home, &url, "v1", &["--verify-key", public]);
    assert!(!out.status.success(), "an unsigned source was promoted");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "refusing to promote {digest} (--from v1); no tag moved"
        )) && err.contains("is not signed"),
        "{err}"
    );
    assert_eq!(reg.stored_files(), before, "a tag moved");

    // Signed by another key: refused the same way.
    cosign_sign(&bin, home, &other_key, &image, &[]);
    let before = reg.stored_files();
    let out = promote(home, &url, "v1", &["--verify-key", public]);
    assert!(
        !out.status.success(),
        "a source signed by another key was promoted"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("refusing to promote {digest}"))
            && err.contains("does not match the key"),
        "{err}"
    );
    assert_eq!(reg.stored_files(), before, "a tag moved");

    // Signed by our key (cosign's signature): promoted, by digest.
    cosign_sign(&bin, home, &key, &image, &[]);
    let out = promote(
        home,
        &url,
        "v1",
        &["--verify-key", public, "--reference", "--output", "json"],
    );
    common::assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["verified_by"], json!([public]));
    assert_eq!(v["tags"][0]["tag"], "prod");
    assert_eq!(v["tags"][0]["new"], digest.as_str());
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    // The oracle resolves `prod` to the digest and accepts its signature.
    let out = cosign_verify(
        &bin,
        home,
        Path::new(public),
        &format!("{}/app:prod", reg.host()),
    );
    common::assert_success(&out);
    let payloads: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );

    // Without a key it still promotes, and says plainly that it checked nothing.
    let out = promote(home, &url, &digest, &[]);
    common::assert_success(&out);
    assert!(
        stderr(&out).contains(&format!(
            "warning: no --verify-key: promoting {digest} without checking who signed it"
        )),
        "{}",
        stderr(&out)
    );
    // --reference alone checks nothing: refused.
    let out = promote(home, &url, "v1", &["--reference"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--verify-key"), "{}", stderr(&out));
}

/// `verify` with `--reference` and JSON output.
fn verify_ref(home: &Path, reference: &str, public: &Path, check: Option<&str>) -> Output {
    let mut c = xtask(home);
    c.args(["verify", reference, "--key"]).arg(public);
    match check {
        Some("") => {
            c.arg("--reference");
        }
        Some(repo) => {
            c.arg(format!("--reference={repo}"));
        }
        None => {}
    }
    c.output().unwrap()
}

#[test]
fn verify_checks_the_payloads_type_and_repository_not_only_its_digest() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (key, public) = key_pair(&bin, home, "ours");
    // One digest in three repositories: one signature tag each.
    let [typed, moved, blob] = ["typed", "moved", "blob"].map(|repo| {
        let url = reg.url(repo);
        (url.clone(), digest_of(&publish(home, &url, &[], None)))
    });
    let digest = typed.1.clone();
    assert!(moved.1 == digest && blob.1 == digest);

    // A payload of another type, signed with `cosign sign --payload`:
    // cosign accepts it (it checks only the digest); we refuse.
    let wrong_type = home.join("wrong-type.json");
    std::fs::write(
        &wrong_type,
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{}/typed"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"atomic container signature"}},"optional":null}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let image = format!("{}/typed@{digest}", reg.host());
    cosign_sign(
        &bin,
        home,
        &key,
        &image,
        &["--payload", wrong_type.to_str().unwrap()],
    );
    common::assert_success(&cosign_verify(&bin, home, &public, &image));
    let out = our_verify(home, &format!("{}@{digest}", typed.0), &public);
    assert!(
        !out.status.success(),
        "a payload of another type was accepted"
    );
    let err = stderr(&out);
    assert!(
        err.contains("critical.type is \"atomic container signature\""),
        "{err}"
    );

    // Signed for another repository: accepted unless --reference asks.
    let image = format!("{}/moved@{digest}", reg.host());
    cosign_sign(
        &bin,
        home,
        &key,
        &image,
        &["--sign-container-identity", "elsewhere.example/team/app"],
    );
    let reference = format!("{}:v1", moved.0);
    common::assert_success(&verify_ref(home, &reference, &public, None));
    let out = verify_ref(home, &reference, &public, Some(""));
    assert!(
        !out.status.success(),
        "another repository's signature was accepted"
    );
    assert!(
        stderr(&out).contains(&format!(
            "signed for \"elsewhere.example/team/app\", not \"{}/moved\"",
            reg.host()
        )),
        "{}",
        stderr(&out)
    );
    common::assert_success(&verify_ref(
        home,
        &reference,
        &public,
        Some("elsewhere.example/team/app"),
    ));

    // A document signed with `cosign sign-blob` that names the digest, put
    // where signatures go: cosign's claim check passes it; we refuse it.
    let doc = home.join("statement.json");
    std::fs::write(
        &doc,
        format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","critical":{{"image":{{"docker-manifest-digest":"{digest}"}}}}}}"#
        ),
    )
    .unwrap();
    let sig_file = home.join("statement.sig");
    let out = cosign_cmd(&bin, home)
        .args(["sign-blob", "--key"])
        .arg(&key)
        .args(["--tlog-upload=false", "--output-signature"])
        .arg(&sig_file)
        .arg(&doc)
        .output()
        .unwrap();
    common::assert_success(&out);
    let signature = std::fs::read_to_string(&sig_file).unwrap();
    let (target, _) = cosign::parse_target(&blob.0).unwrap();
    oci_artifact::Registry::new()
        .unwrap()
        .append_signature(
            &target,
            &digest,
            &std::fs::read(&doc).unwrap(),
            signature.trim(),
            &Auth::Anonymous,
            false,
        )
        .unwrap();
    let image = format!("{}/blob@{digest}", reg.host());
    common::assert_success(&cosign_verify(&bin, home, &public, &image));
    let out = our_verify(home, &format!("{}@{digest}", blob.0), &public);
    assert!(!out.status.success(), "a sign-blob document was accepted");
    let err = stderr(&out);
    assert!(
        err.contains("not a simple-signing payload") && err.contains("missing field"),
        "{err}"
    );
    // Our own signature there too: now it verifies, one of two.
    common::assert_success(
        &xtask(home)
            .args([
                "promote",
                "--registry",
                &blob.0,
                "--from",
                &digest,
                "--to",
                "x",
            ])
            .arg("--sign-key")
            .arg(&key)
            .env("COSIGN_PASSWORD", PASSWORD)
            .output()
            .unwrap(),
    );
    let out = our_verify(home, &format!("{}@{digest}", blob.0), &public);
    common::assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["verified"].as_u64(), v["total"].as_u64()),
        (Some(1), Some(2))
    );
}

/// `oras` pushes raw bytes: a blob, or a manifest under a tag.
fn oras(args: &[&str], input: &Path) {
    let bin = common::tool("oras").expect("oras is a test tool");
    let out = std::process::Command::new(bin)
        .args(args)
        .arg(input)
        .args(["--plain-http"])
        .output()
        .unwrap();
    common::assert_success(&out);
}

/// Stores `manifest` (with its `blobs`) as the `.sig` tag of `digest` in
/// `repo`, with oras, bypassing our own writer.
fn push_sig(
    reg: &Registry,
    home: &Path,
    repo: &str,
    digest: &str,
    blobs: &[&[u8]],
    manifest: &[u8],
) {
    for (i, b) in blobs.iter().enumerate() {
        let file = home.join(format!("blob-{i}"));
        std::fs::write(&file, b).unwrap();
        let d = oci_artifact::sha256_digest(b);
        oras(
            &["blob", "push", &format!("{}/{repo}@{d}", reg.host())],
            &file,
        );
    }
    let file = home.join("manifest.json");
    std::fs::write(&file, manifest).unwrap();
    oras(
        &[
            "manifest",
            "push",
            "--media-type",
            oci_artifact::MANIFEST_MEDIA_TYPE,
            &format!("{}/{repo}:{}", reg.host(), cosign::signature_tag(digest)),
        ],
        &file,
    );
}

/// A `.sig` manifest with these layers over a minimal config.
fn sig_manifest(config: &[u8], layers: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": oci_artifact::MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": oci_artifact::sha256_digest(config),
        },
        "layers": layers,
    }))
    .unwrap()
}

#[test]
fn verify_refuses_a_signature_tag_over_the_limits() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (_, public) = key_pair(&bin, home, "ours");
    let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let layer = |payload: &[u8]| {
        json!({
            "mediaType": cosign::SIMPLE_SIGNING_MEDIA_TYPE,
            "size": payload.len(),
            "digest": oci_artifact::sha256_digest(payload),
            "annotations": {cosign::SIGNATURE_ANNOTATION: "AAAA"},
        })
    };

    // Each case in a repository of its own, its `.sig` tag pushed by oras.
    let refused = |repo: &str, payload: &[u8], layers: usize, expected: &str| {
        let url = reg.url(repo);
        let digest = digest_of(&publish(home, &url, &[], None));
        let manifest = sig_manifest(&config, vec![layer(payload); layers]);
        push_sig(
            &reg,
            home,
            repo,
            &digest,
            &[config.as_slice(), payload],
            &manifest,
        );
        let out = our_verify(home, &format!("{url}@{digest}"), &public);
        assert!(!out.status.success(), "{repo} was accepted");
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    };
    // 1001 layers: refused before any blob is read (what they sign is moot).
    let payload = cosign::payload("elsewhere/many", &format!("sha256:{}", "0".repeat(64)));
    refused(
        "many",
        &payload,
        1001,
        "it holds 1001 signature layers, more than 1000",
    );
    // A payload over 1 MiB: refused by its size.
    refused(
        "big",
        &vec![b' '; 1024 * 1024 + 1],
        1,
        "is 1048577 bytes, more than 1048576 for a payload",
    );
}

/// A stand-in for a registry that serves a `.sig` manifest larger than any
/// registry here stores (docker-registry itself caps manifests at 4 MiB):
/// it answers `/v2/` and streams an endless manifest body, with or without
/// a Content-Length, counting what it managed to send. Named as the fake it
/// is; only this boundary cannot run against the real registry.
struct EndlessManifest {
    port: u16,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EndlessManifest {
    fn start(with_length: bool) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut request = String::new();
                        if reader.read_line(&mut request).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut line = String::new();
                        while reader.read_line(&mut line).unwrap_or(0) > 2 {
                            line.clear();
                        }
                        if !request.contains("/manifests/") {
                            let _ = stream.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
                            );
                            continue;
                        }
                        let head = if with_length {
                            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 67108864\r\n\r\n"
                        } else {
                            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
                        };
                        if stream.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        let chunk = vec![b' '; 64 * 1024];
                        for _ in 0..1024 {
                            if stream.write_all(&chunk).is_err() {
                                return;
                            }
                            counter
                                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::SeqCst);
                        }
                        return;
                    }
                });
            }
        });
        Self { port, sent }
    }
}

#[test]
fn verify_reads_no_more_than_4_mib_of_a_signature_manifest() {
    let Some(bin) = common::tool("cosign") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (_, public) = key_pair(&bin, home, "ours");
    let digest = format!("sha256:{}", "ab".repeat(32));
    for with_length in [true, false] {
        let fake = EndlessManifest::start(with_length);
        let reference = format!("oci://127.0.0.1:{}/huge@{digest}", fake.port);
        let out = our_verify(home, &reference, &public);
        assert!(!out.status.success(), "an endless manifest was accepted");
        assert!(
            stderr(&out).contains(&format!(
                "the signature tag {} is refused: the manifest {} is larger than 4194304 bytes",
                cosign::signature_tag(&digest),
                cosign::signature_tag(&digest)
            )),
            "{}",
            stderr(&out)
        );
        // 64 MiB were on offer; the reader stopped at its limit (what the
        // socket buffers took is all that went past it).
        let sent = fake.sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(sent < 16 * 1024 * 1024, "{sent} bytes were read");
    }
}

#[test]
fn two_signers_racing_on_one_digest_both_stay_in_the_signature_tag() {
    let Some((bin, reg)) = setup() else { return };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (key_a, public_a) = key_pair(&bin, home, "a");
    let (key_b, public_b) = key_pair(&bin, home, "b");
    let keys = [key_a, key_b].map(|k| cosign::SigningKey::load(&k, PASSWORD.as_bytes()).unwrap());
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        let repo = format!("race{round}");
        let url = reg.url(&repo);
        let digest = digest_of(&publish(home, &url, &[], None));
        let target = RegistryRef::parse(&url).unwrap();
        // Both start at once, each with its own connection.
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<cosign::SignOutcome> = std::thread::scope(|s| {
            let handles: Vec<_> = keys
                .iter()
                .map(|key| {
                    let (barrier, target, digest) = (&barrier, &target, &digest);
                    s.spawn(move || {
                        let registry = oci_artifact::Registry::new().unwrap();
                        barrier.wait();
                        registry
                            .sign(target, digest, key, &Auth::Anonymous, false)
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(outcomes.iter().all(|o| !o.already_signed), "{outcomes:?}");
        let attempts: Vec<usize> = outcomes.iter().map(|o| o.attempts).collect();
        eprintln!("round {round}: writes per signer {attempts:?}");
        let image = format!("{}/{repo}@{digest}", reg.host());
        for public in [&public_a, &public_b] {
            // The oracle accepts each signer's signature; ours sees both.
            common::assert_success(&cosign_verify(&bin, home, public, &image));
            let out = our_verify(home, &format!("{url}@{digest}"), public);
            common::assert_success(&out);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                (v["verified"].as_u64(), v["total"].as_u64()),
                (Some(1), Some(2)),
                "round {round}"
            );
        }
    }
}
