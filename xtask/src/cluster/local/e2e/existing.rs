//! `cargo xtask e2e --cluster dev|prod`: the local control plane stands in
//! for the existing cluster, and the existing-cluster bootstrap
//! ([`crate::cluster::existing::run`]) runs against it unchanged, except
//! that the Flux controllers are local processes instead of install.yaml.
//! Nodes do not exist here, so none waits for a CNI and the CNI step skips
//! itself (the real helm path stays the default).
//!
//! The temporary copy of the tree is the cluster's e2e profile (see
//! [`super::e2e`]) plus:
//! - `.sops.yaml`'s rule for the cluster names an age key made for this
//!   run, and the cluster's secrets are encrypted for it;
//! - the OCIRepository verifies cosign signatures with a key pair made for
//!   this run (`spec.verify.secretRef` → Secret `cosign-pub` in the
//!   cluster's `flux-system` folder) and keeps its pull `secretRef`, which
//!   the bootstrap fills with test credentials (the loopback registry
//!   ignores them).
//!
//! Assertions: a placeholder in the cluster's secrets stops the bootstrap
//! in preflight, by name; the signed artifact is verified by source-controller
//! (SourceVerified=True), the Kustomization chain reaches Ready with the
//! test key, a second bootstrap converges, and an unsigned artifact and one signed with another key are
//! refused (Ready=False, VerificationError) while the cluster stays at the
//! verified revision.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::{E2eOptions, E2eReport, LocalError, io_err};
use super::{
    PROBE, READY_TIMEOUT, Scenario, encrypt_secret, fail, probe_yaml, read_docs, write_docs,
    yaml_files,
};
use crate::cluster::{age_key, existing};
use oci_artifact::cosign::{self, SigningKey};
use oci_artifact::{Auth, RegistryRef};

/// The Secret holding the public key Flux verifies with.
pub const COSIGN_SECRET: &str = "cosign-pub";
/// Flux's reason for a refused signature.
pub const VERIFICATION_ERROR: &str = "VerificationError";

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    hex::encode(bytes)
}

/// A cosign key pair made for this run: (signing key, `cosign.pub` PEM).
fn test_key() -> Result<(SigningKey, String), LocalError> {
    let password = random_hex();
    let (private, public) = SigningKey::generate(password.as_bytes());
    let key = SigningKey::from_pem(&private, password.as_bytes(), "the test cosign key")
        .map_err(|e| LocalError::Other(format!("the test cosign key: {e}")))?;
    Ok((key, public))
}

/// `.sops.yaml` of the copy with the cluster's recipient(s) replaced by the
/// test recipient.
pub fn retarget_sops_rule(text: &str, old: &[String], new: &str) -> String {
    old.iter()
        .fold(text.to_string(), |t, r| t.replace(r.as_str(), new))
}

/// The OCIRepository of `docs` set to verify with the key in
/// [`COSIGN_SECRET`]; its other fields (url, ref, pull secretRef) are kept.
pub fn verify_with_key(docs: &mut [Value]) -> bool {
    let mut changed = false;
    for d in docs.iter_mut() {
        if d.get("kind").and_then(Value::as_str) == Some("OCIRepository") {
            d["spec"]["verify"] =
                json!({"provider": "cosign", "secretRef": {"name": COSIGN_SECRET}});
            changed = true;
        }
    }
    changed
}

/// Re-creates every SOPS Secret under `dir` that is not yet encrypted for
/// `recipient`: the same keys, random values, encrypted for `recipient`.
/// Returns how many files were rewritten.
pub fn regenerate_secrets(dir: &Path, recipient: &str) -> Result<usize, LocalError> {
    let mut count = 0;
    for file in yaml_files(dir)? {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.ends_with(".enc.yaml") || name.ends_with(".enc.yml")) {
            continue;
        }
        let docs = read_docs(&file)?;
        let ours = docs.iter().all(|d| {
            d.pointer("/sops/age")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|r| r["recipient"] == recipient))
        });
        if ours {
            continue;
        }
        let mut out = String::new();
        for d in &docs {
            if d.get("kind").and_then(Value::as_str) != Some("Secret") {
                return Err(LocalError::Other(format!(
                    "{}: only Secrets can be regenerated for the test key",
                    file.display()
                )));
            }
            let mut fresh = d.clone();
            let keys: Vec<String> = ["stringData", "data"]
                .into_iter()
                .filter_map(|f| d.get(f).and_then(Value::as_object))
                .flat_map(|m| m.keys().cloned())
                .collect();
            if let Some(o) = fresh.as_object_mut() {
                o.remove("sops");
                o.remove("data");
            }
            fresh["stringData"] = keys.into_iter().map(|k| (k, json!(random_hex()))).collect();
            if !out.is_empty() {
                out.push_str("---\n");
            }
            out.push_str(&encrypt_secret(&fresh, recipient)?);
        }
        std::fs::write(&file, out).map_err(io_err(file.display()))?;
        count += 1;
    }
    Ok(count)
}

/// The variable set back to a placeholder by [`placeholder_refused`].
pub const PLACEHOLDER_PROBE: &str = "hcloud_luks_passphrase";

/// Sets [`PLACEHOLDER_PROBE`] of the cluster's variables Secret to a
/// `REPLACE-ME-...` placeholder, runs the bootstrap's preflight against the
/// stand-in, and puts the file back. Returns the refusal's first line; an
/// error when preflight accepts the placeholder or refuses for another reason.
fn placeholder_refused(o: &existing::Options, recipient: &str) -> Result<String, LocalError> {
    let file = o
        .root
        .join("clusters")
        .join(&o.cluster)
        .join("variables/variables-cluster-secret.enc.yaml");
    let original = std::fs::read(&file).map_err(io_err(file.display()))?;
    let rule = sops::CreationRule::new(
        vec![recipient.to_string()],
        sops::Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let marked = sops::regenerate(&original, sops::Format::Yaml, &rule, &mut |path| {
        if path.last().map(String::as_str) == Some(PLACEHOLDER_PROBE) {
            format!("{}-{PLACEHOLDER_PROBE}", crate::placeholders::MARKER)
        } else {
            random_hex()
        }
    })
    .map_err(|e| LocalError::Other(format!("{}: {e}", file.display())))?;
    std::fs::write(&file, marked).map_err(io_err(file.display()))?;
    let mut kube = o.kube.clone();
    let verdict = existing::preflight(o, &mut kube);
    std::fs::write(&file, &original).map_err(io_err(file.display()))?;
    match verdict {
        Ok(_) => Err(LocalError::Other(format!(
            "bootstrap's preflight accepted the placeholder {PLACEHOLDER_PROBE}"
        ))),
        Err(problems) => problems
            .iter()
            .find(|p| p.contains(crate::placeholders::MARKER) && p.contains(PLACEHOLDER_PROBE))
            .map(|p| p.replace("\n ", ""))
            .ok_or_else(|| {
                LocalError::Other(format!(
                    "bootstrap's preflight did not name the placeholder {PLACEHOLDER_PROBE}: {}",
                    problems.join("; ")
                ))
            }),
    }
}

impl Scenario {
    /// Signs `digest` in the scenario's registry with `key`.
    fn sign(&self, key: &SigningKey) -> Result<cosign::SignOutcome, LocalError> {
        let r = RegistryRef::parse(&self.reference)
            .map_err(|e| LocalError::Other(format!("{}: {e}", self.reference)))?;
        self.registry
            .sign(&r, &self.digest, key, &Auth::Anonymous, true)
            .map_err(|e| LocalError::Other(format!("signing {}: {e}", self.digest)))
    }

    /// Writes the probe with `value` and publishes the tree.
    fn publish_probe(&mut self, value: &str) -> Result<(), LocalError> {
        let path = self
            .tree
            .path()
            .join(&self.probe_dir)
            .join(format!("{PROBE}.yaml"));
        std::fs::write(&path, probe_yaml(value)).map_err(io_err(path.display()))?;
        self.publish()?;
        Ok(())
    }

    /// Asks for a reconcile and waits for source-controller to refuse the
    /// current digest; returns the refusal line.
    fn assert_refused(
        &self,
        number: u8,
        what: &str,
        verified: &str,
        probe: &str,
    ) -> Result<String, LocalError> {
        let (ns, name) = self.source();
        let token = self.kube().request_reconcile("OCIRepository", &ns, &name)?;
        let o = existing::wait_refused(self.kube(), &ns, &name, &token, READY_TIMEOUT)
            .map_err(|e| fail(number, what, format!("{e:#}")))?;
        let (_, reason, message) = crate::cluster::flux::ready_condition(&o);
        let sv = existing::condition(&o, "SourceVerified");
        let served = o
            .pointer("/status/artifact/revision")
            .and_then(Value::as_str)
            .unwrap_or("");
        if reason != VERIFICATION_ERROR
            || sv.as_ref().map(|c| (c.0.as_str(), c.1.as_str()))
                != Some(("False", VERIFICATION_ERROR))
        {
            return Err(fail(
                number,
                what,
                format!(
                    "expected Ready=False and SourceVerified=False with {VERIFICATION_ERROR}; got Ready {reason}: {message}; SourceVerified {sv:?}"
                ),
            ));
        }
        if !message.contains(&self.digest) && !message.contains(short(&self.digest)) {
            return Err(fail(
                number,
                what,
                format!("the refusal does not name {}: {message}", self.digest),
            ));
        }
        if served != verified {
            return Err(fail(
                number,
                what,
                format!("the OCIRepository serves {served}, expected the verified {verified}"),
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
        let live = self.probe_value()?;
        if live.as_deref() != Some(probe) {
            return Err(fail(
                number,
                what,
                format!("{PROBE} is {live:?}, expected the verified {probe:?}"),
            ));
        }
        Ok(format!(
            "source-controller refused it: Ready=False, SourceVerified=False ({reason}: {}); the cluster stays at {verified}, {PROBE} keeps {probe:?}",
            one_line(&message, 200)
        ))
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}...", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

/// Runs the scenario; `say` receives progress and one line per passed assertion.
pub fn run(opts: &E2eOptions, mut say: impl FnMut(&str)) -> Result<E2eReport, LocalError> {
    let started = Instant::now();
    let mut report = E2eReport::default();
    let mut s = Scenario::setup_profile(opts, &mut say)?;
    report.timings.extend(s.cp.timings.iter().cloned());
    report
        .timings
        .push(("control plane ready".into(), started.elapsed()));
    let result = scenario(&mut s, &mut say, &mut report);
    if let Err(e) = result {
        super::explain_failure(&mut s, &mut say);
        return Err(e);
    }
    report.total = started.elapsed();
    Ok(report)
}

fn scenario(
    s: &mut Scenario,
    say: &mut impl FnMut(&str),
    report: &mut E2eReport,
) -> Result<(), LocalError> {
    let tree = s.tree.path().to_path_buf();
    let cluster = s.cluster.clone();

    // The cluster's secrets, for a key made for this run.
    let old =
        age_key::recipients(&tree, &cluster).map_err(|e| LocalError::Other(format!("{e:#}")))?;
    let sops_file = tree.join(".sops.yaml");
    let text = std::fs::read_to_string(&sops_file).map_err(io_err(sops_file.display()))?;
    exec::fsutil::write_atomic(
        &sops_file,
        retarget_sops_rule(&text, &old, &s.recipient).as_bytes(),
    )
    .map_err(io_err(sops_file.display()))?;

    // Any other SOPS file of the cluster (the variables Secret already is).
    let regenerated = regenerate_secrets(&s.cluster_dir(), &s.recipient)?;

    // Signature verification with a key pair made for this run.
    let (key, public) = test_key()?;
    let flux_dir = s.cluster_dir().join("flux-system");
    let mut patched = 0;
    for entry in std::fs::read_dir(&flux_dir).map_err(io_err(flux_dir.display()))? {
        let path = entry.map_err(io_err(flux_dir.display()))?.path();
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let mut docs = read_docs(&path)?;
        if verify_with_key(&mut docs) {
            write_docs(&path, &docs)?;
            patched += 1;
        }
    }
    if patched != 1 {
        return Err(LocalError::Other(format!(
            "clusters/{cluster}/flux-system: expected one OCIRepository, patched {patched}"
        )));
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": COSIGN_SECRET, "namespace": "flux-system"},
        "type": "Opaque",
        "stringData": {"cosign.pub": public},
    });
    s.add_resource(
        Path::new(&format!("clusters/{cluster}/flux-system")),
        &format!("{COSIGN_SECRET}.yaml"),
        &flux_render::to_yaml_stream(&[secret]),
    )?;
    say(&format!(
        "e2e profile of clusters/{cluster}: .sops.yaml's {cluster} rule and the cluster's secrets use an age key made for this run ({regenerated} more SOPS file(s) regenerated besides the variables Secret); the OCIRepository verifies cosign signatures with a key pair made for this run (Secret {COSIGN_SECRET}) and keeps its pull secretRef"
    ));

    // 1. Publish and sign.
    let t = Instant::now();
    s.publish()?;
    let signed = s.sign(&key)?;
    let verified_revision = s.revision();
    let line = format!(
        "1. published {} and signed it with the test key ({}, {} ms)",
        s.digest,
        signed.signature,
        t.elapsed().as_millis()
    );
    say(&line);
    report.passed.push(line);

    // The existing-cluster bootstrap, against the stand-in.
    let local = "source-controller and kustomize-controller run as local processes on this machine (the e2e stand-in for the cluster), instead of install.yaml";
    say(&format!("Flux: {local}"));
    let o = existing::Options {
        root: tree.clone(),
        cluster: cluster.clone(),
        kube: s.kube().clone(),
        timeout: READY_TIMEOUT,
        age_sources: vec![(
            "a test age key made for this run".into(),
            s.identity.clone(),
        )],
        credentials: existing::Credentials::Given {
            username: "e2e".into(),
            password: random_hex(),
            origin: "test credentials (the loopback registry ignores them)".into(),
        },
        flux: existing::FluxMode::LocalProcesses(local.into()),
        wait_helm_releases: false,
    };
    // A placeholder left in the cluster's secrets stops the bootstrap in
    // preflight, by name, before anything is applied.
    let refused = placeholder_refused(&o, &s.recipient)?;
    say(&format!(
        "placeholders refused before anything is applied: {refused}"
    ));

    let t = Instant::now();
    let summary = existing::run(&o).map_err(|e| LocalError::Other(format!("bootstrap: {e}")))?;
    report
        .timings
        .push(("existing-cluster bootstrap".into(), t.elapsed()));
    for (title, outcome) in &summary.steps {
        say(&format!("bootstrap step {title}: {outcome}"));
    }

    // 2. source-controller verified the signature.
    let what = "source-controller verified the signature";
    let src = summary
        .objects
        .iter()
        .find(|x| x.kind == "OCIRepository")
        .ok_or_else(|| fail(2, what, "the bootstrap waited for no OCIRepository"))?;
    let served = src
        .object
        .pointer("/status/artifact/revision")
        .and_then(Value::as_str)
        .unwrap_or("");
    match src.condition("SourceVerified") {
        Some((status, reason, message)) if status == "True" && served == verified_revision => {
            let line = format!(
                "2. source-controller verified the signature: OCIRepository {}/{} SourceVerified=True ({reason}: {}), serving {served}",
                src.namespace,
                src.name,
                one_line(&message, 160)
            );
            say(&line);
            report.passed.push(line);
        }
        other => {
            return Err(fail(
                2,
                what,
                format!(
                    "SourceVerified is {other:?}, serving {served} (expected {verified_revision})"
                ),
            ));
        }
    }

    // 3. The chain reached Ready with the test key.
    let what = "the Kustomization chain reaches Ready at the verified revision";
    let mut chain = Vec::new();
    for name in &s.order {
        let k = summary
            .objects
            .iter()
            .find(|x| x.kind == "Kustomization" && &x.name == name)
            .ok_or_else(|| fail(3, what, format!("Kustomization {name} was not waited for")))?;
        let applied = k
            .object
            .pointer("/status/lastAppliedRevision")
            .and_then(Value::as_str)
            .unwrap_or("");
        if applied != verified_revision {
            return Err(fail(
                3,
                what,
                format!("{name} applied {applied}, expected {verified_revision}"),
            ));
        }
        chain.push(name.clone());
    }
    let secret_line = s.check_secret().map_err(|e| fail(3, what, e.to_string()))?;
    let line = format!(
        "3. Kustomizations Ready at the verified revision: {} (HelmReleases applied, not installed: no helm-controller); {}",
        chain.join(" -> "),
        secret_line.trim_start_matches("5. ")
    );
    say(&line);
    report.passed.push(line);
    let probe = s
        .probe_value()?
        .ok_or_else(|| fail(3, what, format!("{PROBE} was not applied")))?;

    // 4. A second run converges: same objects, still Ready and verified.
    let t = Instant::now();
    let again = existing::run(&o)
        .map_err(|e| fail(4, "re-running the bootstrap converges", format!("{e}")))?;
    let same = again.objects.len() == summary.objects.len()
        && again.objects.iter().all(|x| {
            x.object.pointer("/metadata/generation")
                == summary
                    .objects
                    .iter()
                    .find(|y| y.kind == x.kind && y.name == x.name)
                    .and_then(|y| y.object.pointer("/metadata/generation"))
        });
    if !same {
        return Err(fail(
            4,
            "re-running the bootstrap converges",
            "the second run changed the spec of an object it applied (a generation moved)",
        ));
    }
    let line = format!(
        "4. re-running the bootstrap converges: all 7 steps again in {:.1} s, {} object(s) Ready, no generation moved",
        t.elapsed().as_secs_f64(),
        again.objects.len()
    );
    say(&line);
    report.passed.push(line);

    // 5. An unsigned artifact is refused.
    s.publish_probe("unsigned")?;
    let line = format!(
        "5. an unsigned artifact ({}): {}",
        s.digest,
        s.assert_refused(
            5,
            "an unsigned artifact is refused",
            &verified_revision,
            &probe
        )?
    );
    say(&line);
    report.passed.push(line);

    // 6. One signed with another key is refused.
    s.publish_probe("signed-by-another-key")?;
    let (other, _) = test_key()?;
    s.sign(&other)?;
    let line = format!(
        "6. an artifact signed with another key ({}): {}",
        s.digest,
        s.assert_refused(
            6,
            "an artifact signed with another key is refused",
            &verified_revision,
            &probe
        )?
    );
    say(&line);
    report.passed.push(line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_verifies_with_the_test_key_and_keeps_the_rest() {
        let mut docs = vec![
            json!({"kind": "OCIRepository", "spec": {
                "url": "oci://127.0.0.1:1/platform",
                "secretRef": {"name": "ghcr-auth"},
                "verify": {"provider": "cosign", "matchOIDCIdentity": [{"issuer": "x", "subject": "y"}]}}}),
            json!({"kind": "Kustomization", "spec": {}}),
        ];
        assert!(verify_with_key(&mut docs));
        assert_eq!(
            docs[0]["spec"]["verify"],
            json!({"provider": "cosign", "secretRef": {"name": "cosign-pub"}})
        );
        assert_eq!(docs[0]["spec"]["secretRef"]["name"], "ghcr-auth");
        assert_eq!(docs[1], json!({"kind": "Kustomization", "spec": {}}));
    }

    #[test]
    fn secrets_are_regenerated_for_the_test_key_with_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (_, other) = sops::generate_identity();
        let (identity, test) = sops::generate_identity();
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"},
            "stringData": {"a": "real-a", "b": "real-b"}});
        let file = dir.path().join("s.enc.yaml");
        std::fs::write(&file, encrypt_secret(&secret, &other).unwrap()).unwrap();
        std::fs::write(
            dir.path().join("plain.yaml"),
            "kind: ConfigMap
",
        )
        .unwrap();
        assert_eq!(regenerate_secrets(dir.path(), &test).unwrap(), 1);
        let docs = read_docs(&file).unwrap();
        let ids = sops::Identities::from_keys_text(&identity).unwrap();
        let plain = sops::decrypt_object(&docs[0], &ids).unwrap();
        let data = plain["stringData"].as_object().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(data.values().all(|v| v.as_str().unwrap().len() == 32));
        assert_eq!(plain["metadata"]["name"], "s");
        // Already for the test key: left alone.
        assert_eq!(regenerate_secrets(dir.path(), &test).unwrap(), 0);
    }

    #[test]
    fn the_cluster_rule_is_retargeted() {
        let text =
            "- path_regex: ^clusters/dev/\n  age: age1dev\n- age:\n  - age1local\n  - age1dev\n";
        assert_eq!(
            retarget_sops_rule(text, &["age1dev".into()], "age1test"),
            "- path_regex: ^clusters/dev/\n  age: age1test\n- age:\n  - age1local\n  - age1test\n"
        );
    }
}
