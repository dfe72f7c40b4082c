//! The end-to-end scenario of `cargo xtask e2e`: our artifact, reconciled by
//! the real Flux controllers against the local control plane, with seven
//! assertions; and the edit→Ready loop of `cargo xtask bench reconcile`.
//!
//! It works on a temporary copy of the manifest tree, never on the
//! repository's own files. The copy is the e2e profile of a cluster folder:
//! - the OCIRepository points at the local registry;
//! - every Flux Kustomization gets `wait: false` and no health checks, since
//!   no kubelet runs here, so no Pod ever starts;
//! - a SOPS Secret `variables-cluster`, encrypted for an age key generated
//!   for this run, feeds postBuild substitution;
//! - a ConfigMap `e2e-probe` in the last Kustomization is what the edit test
//!   changes.
//!
//! HelmReleases are applied as objects but not reconciled: there is no
//! helm-controller and no chart repository is reachable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{ControlPlane, LocalError, crds, io_err};
use crate::artifact::{self, Auth, PackageOptions};
use crate::cluster::flux::{self, Kube};
use crate::render::{self, RenderOptions, RenderedCluster};
use crate::sops::{self, CreationRule, Format, Identities, Selection};

const SOURCE: &str = "https://github.com/devantler-tech/platform";
const CREATED: &str = "2025-01-01T00:00:00Z";
const REPOSITORY: &str = "platform";
const TAG: &str = "latest";
const PROBE: &str = "e2e-probe";
const WRONG_KEY_SECRET: &str = "e2e-wrong-key";
const SECRET_NAME: &str = "variables-cluster";
/// How long a Flux object may take to become Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// What to run.
#[derive(Clone, Debug)]
pub struct E2eOptions {
    /// The cluster folder to profile (`clusters/<cluster>`).
    pub cluster: String,
    /// Build missing binaries first (else a missing one is an error).
    pub build: bool,
}

impl Default for E2eOptions {
    fn default() -> Self {
        Self {
            cluster: "local".into(),
            build: true,
        }
    }
}

/// What a passing run measured.
#[derive(Clone, Debug, Default)]
pub struct E2eReport {
    /// One line per assertion that passed, in order.
    pub passed: Vec<String>,
    /// Named durations (start-up steps, first reconcile, ...).
    pub timings: Vec<(String, Duration)>,
    /// Edit → new value in the API server.
    pub edit_to_applied: Duration,
    /// Edit → every Kustomization Ready at the new revision.
    pub edit_to_ready: Duration,
    /// Third-party kinds that got permissive CRDs.
    pub permissive_kinds: Vec<String>,
    pub total: Duration,
}

/// Edit→Ready cycles.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// Control plane start and first full reconcile.
    pub setup: Duration,
    /// Edit → every Kustomization Ready at the new revision, one per cycle.
    pub edit_to_ready: Vec<Duration>,
    /// Edit → the new value in the API server, one per cycle.
    pub edit_to_applied: Vec<Duration>,
}

/// A failed assertion: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("assertion {number} failed ({what}): {detail}")]
pub struct AssertionFailed {
    pub number: u8,
    pub what: String,
    pub detail: String,
}

fn fail(number: u8, what: &str, detail: impl Into<String>) -> LocalError {
    LocalError::Assertion(AssertionFailed {
        number,
        what: what.into(),
        detail: detail.into(),
    })
}

/// The running scenario: control plane, the temp tree and the test key.
pub struct Scenario {
    pub cp: ControlPlane,
    pub tree: tempfile::TempDir,
    pub cluster: String,
    /// `oci://127.0.0.1:<port>/platform`
    pub reference: String,
    /// The Flux Kustomizations of the cluster, in dependency order.
    pub order: Vec<String>,
    /// name → dependsOn
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// The folder (relative to the tree) holding `e2e-probe.yaml`.
    pub probe_dir: PathBuf,
    /// The folder holding the SOPS Secret (the first Kustomization's path).
    pub secret_dir: PathBuf,
    pub identity: String,
    pub recipient: String,
    /// Plaintext of the SOPS Secret we encrypted: key → value.
    pub secret_values: BTreeMap<String, String>,
    pub rendered: RenderedCluster,
    /// The last digest published.
    pub digest: String,
    publishes: u32,
    registry: artifact::Registry,
}

/// Builds (or finds) the binaries and returns their paths.
fn binaries(
    build: bool,
    say: &mut impl FnMut(&str),
) -> Result<BTreeMap<String, PathBuf>, LocalError> {
    if !build {
        return super::built_binaries();
    }
    Ok(super::build_binaries(|e| match e {
        super::BuildEvent::Cached { .. } => {}
        super::BuildEvent::Started { name, log } => say(&format!(
            "building {name} from its Go module (once per version; log {})",
            log.display()
        )),
        super::BuildEvent::Built { name, took, .. } => {
            say(&format!("built {name} in {:.0} s", took.as_secs_f64()))
        }
    })?)
}

impl Scenario {
    /// Starts the control plane, writes the e2e profile of the tree, renders
    /// it, installs the CRDs it needs, and creates the sops-age Secret.
    pub fn setup(opts: &E2eOptions, say: &mut impl FnMut(&str)) -> Result<Self, LocalError> {
        let bins = binaries(opts.build, say)?;
        let cp = ControlPlane::start(&bins, &mut *say)?;
        let root = crate::project_root();
        let tree = tempfile::Builder::new()
            .prefix("tree-")
            .tempdir_in(super::e2e_dir().join("run"))
            .map_err(io_err("creating the temp tree"))?;
        copy_manifests(&root, tree.path())?;
        let (identity, recipient) = sops::generate_identity();
        let reference = format!("oci://{}/{REPOSITORY}", cp.registry);
        let mut s = Scenario {
            cp,
            tree,
            cluster: opts.cluster.clone(),
            reference,
            order: Vec::new(),
            depends_on: BTreeMap::new(),
            probe_dir: PathBuf::new(),
            secret_dir: PathBuf::new(),
            identity,
            recipient,
            secret_values: BTreeMap::new(),
            rendered: RenderedCluster {
                name: String::new(),
                root_objects: Vec::new(),
                kustomizations: Vec::new(),
                warnings: Vec::new(),
            },
            digest: String::new(),
            publishes: 0,
            registry: artifact::Registry::new().map_err(|e| LocalError::Other(e.to_string()))?,
        };
        s.write_profile()?;
        say(&format!(
            "e2e profile of clusters/{} in {}: OCIRepository -> {}, every Flux Kustomization patched to wait: false with no health checks (no kubelet: Pods never run); HelmReleases are applied as objects but not reconciled (no helm-controller, no chart access)",
            s.cluster,
            s.tree.path().display(),
            s.reference
        ));
        s.render()?;
        let missing = s.install_permissive_crds()?;
        if !missing.is_empty() {
            say(&format!(
                "permissive CRDs (x-kubernetes-preserve-unknown-fields) for kinds nobody installs here: {}",
                missing.join(", ")
            ));
        }
        let key = base64::engine::general_purpose::STANDARD.encode(format!("{}\n", s.identity));
        s.kube().apply(&[json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sops-age", "namespace": "flux-system"},
            "type": "Opaque",
            "data": {"age.agekey": key},
        })])?;
        Ok(s)
    }

    pub fn kube(&self) -> &Kube {
        &self.cp.kube
    }

    fn cluster_dir(&self) -> PathBuf {
        self.tree.path().join("clusters").join(&self.cluster)
    }

    /// Patches the temp copy into the e2e profile (see the module docs).
    fn write_profile(&mut self) -> Result<(), LocalError> {
        let dir = self.cluster_dir();
        if !dir.join("kustomization.yaml").is_file() {
            return Err(LocalError::Other(format!(
                "clusters/{} has no kustomization.yaml",
                self.cluster
            )));
        }
        let cluster_path = format!("clusters/{}", self.cluster);
        let mut declared = Vec::new();
        for file in yaml_files(&dir)? {
            let mut docs = read_docs(&file)?;
            let mut changed = false;
            for d in &mut docs {
                let kind = d.get("kind").and_then(Value::as_str).unwrap_or("");
                if kind == "OCIRepository" {
                    d["spec"]["url"] = json!(self.reference);
                    d["spec"]["insecure"] = json!(true);
                    d["spec"]["ref"] = json!({"tag": TAG});
                    changed = true;
                } else if render::is_flux_kustomization(d) {
                    let path = d
                        .pointer("/spec/path")
                        .and_then(Value::as_str)
                        .unwrap_or("./")
                        .trim_start_matches("./")
                        .trim_end_matches('/')
                        .to_string();
                    if path == cluster_path {
                        continue;
                    }
                    let spec = d["spec"].as_object_mut().ok_or_else(|| {
                        LocalError::Other(format!(
                            "{}: a Kustomization without spec",
                            file.display()
                        ))
                    })?;
                    spec.insert("wait".into(), json!(false));
                    spec.remove("healthChecks");
                    spec.remove("healthCheckExprs");
                    spec.insert("retryInterval".into(), json!("5s"));
                    spec.insert("timeout".into(), json!("1m"));
                    changed = true;
                    let name = d
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let deps: Vec<String> = d
                        .pointer("/spec/dependsOn")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.get("name").and_then(Value::as_str))
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    declared.push((name, PathBuf::from(path), deps));
                }
            }
            if changed {
                write_docs(&file, &docs)?;
            }
        }
        // Dependency order: repeatedly take those whose dependencies are placed.
        let mut order: Vec<(String, PathBuf)> = Vec::new();
        while order.len() < declared.len() {
            let before = order.len();
            for (name, path, deps) in &declared {
                if !order.iter().any(|(n, _)| n == name)
                    && deps.iter().all(|d| order.iter().any(|(n, _)| n == d))
                {
                    order.push((name.clone(), path.clone()));
                }
            }
            if order.len() == before {
                return Err(LocalError::Other(
                    "the Flux Kustomizations have a dependsOn cycle or a missing dependency".into(),
                ));
            }
        }
        let (Some(first), Some(last)) = (order.first().cloned(), order.last().cloned()) else {
            return Err(LocalError::Other(format!(
                "clusters/{} declares no Flux Kustomization besides its own",
                self.cluster
            )));
        };
        self.depends_on = declared
            .iter()
            .map(|(n, _, d)| (n.clone(), d.clone()))
            .collect();
        self.order = order.iter().map(|(n, _)| n.clone()).collect();

        // The SOPS Secret, in the first Kustomization (the variables).
        self.secret_dir = first.1.clone();
        let mut rng_bytes = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut rng_bytes);
        let random = hex::encode(rng_bytes);
        self.secret_values = [
            ("e2e_secret".to_string(), format!("flux-decrypted-{random}")),
            ("nextcloud_password".to_string(), format!("pw-{random}")),
        ]
        .into_iter()
        .collect();
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": "flux-system"},
            "type": "Opaque",
            "stringData": self.secret_values,
        });
        let encrypted = encrypt_secret(&secret, &self.recipient)?;
        // The tree's own Secret of that name is encrypted for a key we do not
        // have: our Secret takes its place in the copy.
        let existing = yaml_files(&self.tree.path().join(&self.secret_dir))?
            .into_iter()
            .find(|f| {
                read_docs(f).is_ok_and(|docs| {
                    docs.iter().any(|d| {
                        d.get("kind").and_then(Value::as_str) == Some("Secret")
                            && d.pointer("/metadata/name").and_then(Value::as_str)
                                == Some(SECRET_NAME)
                    })
                })
            });
        match existing {
            Some(file) => {
                std::fs::write(&file, &encrypted).map_err(io_err(file.display()))?;
            }
            None => {
                self.add_resource(&self.secret_dir.clone(), "e2e-secret.enc.yaml", &encrypted)?
            }
        }

        // The probe, in the last Kustomization (the apps).
        self.probe_dir = last.1.clone();
        let probe = probe_yaml("initial");
        self.add_resource(&self.probe_dir.clone(), &format!("{PROBE}.yaml"), &probe)?;
        Ok(())
    }

    /// Writes `file` into `dir` of the tree and lists it in its kustomization.yaml.
    pub fn add_resource(&self, dir: &Path, file: &str, text: &str) -> Result<(), LocalError> {
        let dir = self.tree.path().join(dir);
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(io_err(path.display()))?;
        let kfile = dir.join("kustomization.yaml");
        let mut docs = read_docs(&kfile)?;
        let k = docs
            .first_mut()
            .ok_or_else(|| LocalError::Other(format!("{} is empty", kfile.display())))?;
        if k.get("resources").and_then(Value::as_array).is_none() {
            k["resources"] = json!([]);
        }
        let resources = k["resources"].as_array_mut().expect("just made an array");
        if !resources.iter().any(|r| r == file) {
            resources.push(json!(file));
        }
        write_docs(&kfile, &docs)
    }

    /// Removes `file` from `dir` and from its kustomization.yaml.
    pub fn remove_resource(&self, dir: &Path, file: &str) -> Result<(), LocalError> {
        let dir = self.tree.path().join(dir);
        let _ = std::fs::remove_file(dir.join(file));
        let kfile = dir.join("kustomization.yaml");
        let mut docs = read_docs(&kfile)?;
        if let Some(resources) = docs
            .first_mut()
            .and_then(|k| k.get_mut("resources"))
            .and_then(Value::as_array_mut)
        {
            resources.retain(|r| r != file);
        }
        write_docs(&kfile, &docs)
    }

    /// Renders the temp tree as Flux would (decrypting with the test key).
    fn render(&mut self) -> Result<(), LocalError> {
        let ids = Identities::from_keys_text(&self.identity)
            .map_err(|e| LocalError::Other(format!("the test key: {e}")))?;
        let ids = Arc::new(ids);
        let decryptor: render::Decryptor =
            Arc::new(move |o: &Value| sops::decrypt_object(o, &ids).map_err(|e| e.to_string()));
        self.rendered = render::render_cluster(
            self.tree.path(),
            &self.cluster,
            &RenderOptions {
                decryptor: Some(decryptor),
                reveal_secrets: true,
            },
        )
        .map_err(|e| LocalError::Other(format!("rendering the e2e tree: {e}")))?;
        Ok(())
    }

    fn install_permissive_crds(&self) -> Result<Vec<String>, LocalError> {
        let missing = crds::missing_kinds(
            self.rendered.root_objects.iter().chain(
                self.rendered
                    .kustomizations
                    .iter()
                    .flat_map(|k| k.objects.iter()),
            ),
        );
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let objects: Vec<Value> = missing.iter().map(crds::permissive_crd).collect();
        self.kube().apply(&objects)?;
        self.kube()
            .cmd()
            .args([
                "wait",
                "--for=condition=Established",
                "crd",
                "-l",
                "xtask.devantler.tech/permissive=true",
                "--timeout=60s",
            ])
            .read()?;
        Ok(missing
            .iter()
            .map(|k| format!("{}/{}", k.group, k.kind))
            .collect())
    }

    /// Packages the temp tree and pushes it with our `publish`; returns the digest.
    pub fn publish(&mut self) -> Result<artifact::PublishOutcome, LocalError> {
        self.publishes += 1;
        let a = artifact::package(&PackageOptions {
            root: self.tree.path().to_path_buf(),
            source: Some(SOURCE.into()),
            revision: format!("e2e@sha1:{:040x}", self.publishes),
            created: CREATED.into(),
        })
        .map_err(|e| LocalError::Other(format!("package: {e}")))?;
        let outcome = self
            .registry
            .publish(
                &a,
                &self.reference,
                &[TAG.to_string()],
                &Auth::Anonymous,
                true,
                false,
            )
            .map_err(|e| LocalError::Other(format!("publish: {e}")))?;
        if outcome.digest != a.manifest_digest {
            return Err(LocalError::Other(format!(
                "publish reported {} for a manifest whose digest is {}",
                outcome.digest, a.manifest_digest
            )));
        }
        self.digest = outcome.digest.clone();
        Ok(outcome)
    }

    /// Applies the cluster's flux-system folder (OCIRepository and the root
    /// Kustomization), as `flux bootstrap` leaves it.
    fn bootstrap(&self) -> Result<(), LocalError> {
        let dir = self.cluster_dir().join("flux-system");
        let objects = render::kustomize_build(&dir)
            .map_err(|e| LocalError::Other(format!("kustomize build {}: {e}", dir.display())))?;
        self.kube().apply(&objects)?;
        Ok(())
    }

    /// The OCIRepository of the cluster: (namespace, name).
    fn source(&self) -> (String, String) {
        self.rendered
            .root_objects
            .iter()
            .find(|o| o.get("kind").and_then(Value::as_str) == Some("OCIRepository"))
            .map(|o| {
                (
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("flux-system")
                        .to_string(),
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("flux-system")
                        .to_string(),
                )
            })
            .unwrap_or_else(|| ("flux-system".into(), "flux-system".into()))
    }

    /// The revision Flux reports for our current digest.
    pub fn revision(&self) -> String {
        format!("{TAG}@{}", self.digest)
    }

    /// Asks source-controller to pull now and waits until the OCIRepository
    /// is Ready at our digest.
    fn wait_source(&self, request: bool) -> Result<Value, LocalError> {
        let (ns, name) = self.source();
        let kube = self.kube();
        if request {
            kube.request_reconcile("OCIRepository", &ns, &name)?;
        }
        let started = Instant::now();
        loop {
            let o = kube.wait_ready("OCIRepository", &ns, &name, READY_TIMEOUT, |_| {})?;
            let rev = o
                .pointer("/status/artifact/revision")
                .and_then(Value::as_str)
                .unwrap_or("");
            if rev == self.revision() {
                return Ok(o);
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(fail(
                    2,
                    "the OCIRepository serves exactly our manifest digest",
                    format!("it reports {rev}, we pushed {}", self.revision()),
                ));
            }
            std::thread::sleep(flux::POLL);
        }
    }

    /// Waits until every Kustomization is Ready at the current revision,
    /// checking at every poll that none is Ready before its dependencies.
    /// Returns when each became Ready (relative to the call).
    fn wait_all_ready(&self) -> Result<Vec<(String, Duration)>, LocalError> {
        let started = Instant::now();
        let revision = self.revision();
        let mut ready_at: BTreeMap<String, Duration> = BTreeMap::new();
        loop {
            let items = self.kube().list(&flux::resource_for("Kustomization"))?;
            let now = started.elapsed();
            let ready: BTreeSet<String> = items
                .iter()
                .filter(|o| {
                    flux::readiness(o) == flux::Readiness::Ready
                        && o.pointer("/status/lastAppliedRevision")
                            .and_then(Value::as_str)
                            == Some(revision.as_str())
                })
                .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            for name in &self.order {
                if ready.contains(name) {
                    for dep in &self.depends_on[name] {
                        if !ready.contains(dep) && !ready_at.contains_key(dep) {
                            return Err(fail(
                                3,
                                "Kustomizations become Ready in dependency order",
                                format!(
                                    "{name} is Ready at {revision} before its dependency {dep}"
                                ),
                            ));
                        }
                    }
                    ready_at.entry(name.clone()).or_insert(now);
                }
            }
            if self.order.iter().all(|n| ready_at.contains_key(n)) {
                let mut out: Vec<(String, Duration)> = ready_at.into_iter().collect();
                out.sort_by_key(|(_, d)| *d);
                return Ok(out);
            }
            if now > READY_TIMEOUT {
                let pending: Vec<String> = self
                    .order
                    .iter()
                    .filter(|n| !ready_at.contains_key(*n))
                    .map(|n| {
                        let o = self
                            .kube()
                            .get(&flux::resource_for("Kustomization"), Some("flux-system"), n)
                            .ok()
                            .flatten();
                        format!(
                            "{n}: {}",
                            self.kube().describe_failure(
                                "Kustomization",
                                "flux-system",
                                n,
                                o.as_ref()
                            )
                        )
                    })
                    .collect();
                return Err(fail(
                    3,
                    "every Kustomization becomes Ready",
                    format!(
                        "after {now:?}, not Ready at {revision}: {}",
                        pending.join(" || ")
                    ),
                ));
            }
            std::thread::sleep(flux::POLL);
        }
    }

    /// Writes the probe with `value`, publishes, requests a reconcile, and
    /// measures edit → value in the API server and edit → all Ready.
    pub fn edit_cycle(&mut self, value: &str) -> Result<(Duration, Duration), LocalError> {
        let started = Instant::now();
        let path = self
            .tree
            .path()
            .join(&self.probe_dir)
            .join(format!("{PROBE}.yaml"));
        std::fs::write(&path, probe_yaml(value)).map_err(io_err(path.display()))?;
        self.publish()?;
        let (ns, name) = self.source();
        self.kube().request_reconcile("OCIRepository", &ns, &name)?;
        let mut applied = None;
        loop {
            if applied.is_none() && self.probe_value()?.as_deref() == Some(value) {
                applied = Some(started.elapsed());
            }
            if let Some(applied) = applied {
                self.wait_all_ready()?;
                return Ok((applied, started.elapsed()));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(fail(
                    6,
                    "an edited ConfigMap value reaches the API server",
                    format!(
                        "{PROBE} still has {:?} after {:?}; {}",
                        self.probe_value()?,
                        started.elapsed(),
                        self.kube().describe_failure(
                            "Kustomization",
                            "flux-system",
                            self.order.last().map(String::as_str).unwrap_or("apps"),
                            None
                        )
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn probe_value(&self) -> Result<Option<String>, LocalError> {
        Ok(self
            .kube()
            .get("configmap", Some("flux-system"), PROBE)?
            .and_then(|o| {
                o.pointer("/data/value")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }))
    }

    /// Publishes, bootstraps and waits for the first full reconcile.
    pub fn first_reconcile(
        &mut self,
        say: &mut impl FnMut(&str),
        report: &mut E2eReport,
    ) -> Result<(), LocalError> {
        // 1. publish pushes the tree.
        let started = Instant::now();
        let outcome = self.publish()?;
        let registry_port: u16 = self
            .cp
            .registry
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let served = registry_digest(registry_port, REPOSITORY, TAG)
            .map_err(|e| fail(1, "publish pushes the tree", e))?;
        if served != outcome.digest || outcome.pushed_blobs.is_empty() {
            return Err(fail(
                1,
                "publish pushes the tree",
                format!(
                    "the registry serves {served} for {TAG}, publish reported {} ({} blobs pushed)",
                    outcome.digest,
                    outcome.pushed_blobs.len()
                ),
            ));
        }
        let line = format!(
            "1. publish pushed the tree: {} ({} blobs, {} ms)",
            outcome.reference,
            outcome.pushed_blobs.len(),
            started.elapsed().as_millis()
        );
        say(&line);
        report.passed.push(line);

        // 2. OCIRepository Ready with exactly our digest.
        let started = Instant::now();
        self.bootstrap()?;
        let o = self.wait_source(false)?;
        let rev = o
            .pointer("/status/artifact/revision")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !rev.ends_with(&format!("@{}", self.digest)) {
            return Err(fail(
                2,
                "the OCIRepository serves exactly our manifest digest",
                format!("it reports {rev}, we pushed {}", self.digest),
            ));
        }
        report
            .timings
            .push(("OCIRepository Ready".into(), started.elapsed()));
        let line = format!(
            "2. OCIRepository Ready at {rev}, exactly our manifest digest ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        say(&line);
        report.passed.push(line);

        // 3. The Kustomizations Ready in dependency order.
        let order = self.wait_all_ready()?;
        let line = format!(
            "3. Kustomizations Ready in dependency order: {} (first reconcile {:.1} s)",
            order
                .iter()
                .map(|(n, d)| format!("{n} +{:.1}s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" -> "),
            started.elapsed().as_secs_f64()
        );
        report
            .timings
            .push(("first full reconcile".into(), started.elapsed()));
        say(&line);
        report.passed.push(line);
        Ok(())
    }

    /// Assertion 4: every rendered object exists, with substitution applied.
    fn check_objects(&self) -> Result<String, LocalError> {
        let what = "every object of the rendered tree exists, substituted";
        let ids = Identities::from_keys_text(&self.identity)
            .map_err(|e| LocalError::Other(format!("the test key: {e}")))?;
        let mut count = 0;
        let mut compared = 0;
        for k in &self.rendered.kustomizations {
            let expected: Vec<Value> = k
                .objects
                .iter()
                .map(|o| {
                    if o.get("sops").is_some() {
                        sops::decrypt_object(o, &ids).unwrap_or_else(|_| o.clone())
                    } else {
                        o.clone()
                    }
                })
                .collect();
            let live = self
                .live_objects(&expected)
                .map_err(|e| fail(4, what, format!("Kustomization {}: {e}", k.flux.name)))?;
            for (exp, got) in expected.iter().zip(&live) {
                count += 1;
                let Some(got) = got else {
                    return Err(fail(
                        4,
                        what,
                        format!(
                            "{} (Kustomization {}) is not in the API server",
                            render::describe(exp),
                            k.flux.name
                        ),
                    ));
                };
                if let Some(diff) = compare(exp, got) {
                    return Err(fail(
                        4,
                        what,
                        format!(
                            "{} (Kustomization {}): {diff}",
                            render::describe(exp),
                            k.flux.name
                        ),
                    ));
                }
                if compared_field_by_field(exp) {
                    compared += 1;
                }
            }
        }
        // The example the issue names: the whoami Ingress host.
        let domain = self
            .kube()
            .get("configmap", Some("flux-system"), "variables-cluster")?
            .and_then(|o| {
                o.pointer("/data/domain")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let mut example = String::new();
        if let Some(hr) = self.kube().get(
            "helmreleases.helm.toolkit.fluxcd.io",
            Some("whoami"),
            "whoami",
        )? {
            let host = hr
                .pointer("/spec/values/ingress/hosts/0/host")
                .and_then(Value::as_str)
                .unwrap_or("");
            if domain.is_empty() || host != format!("whoami.{domain}") {
                return Err(fail(
                    4,
                    what,
                    format!(
                        "HelmRelease whoami/whoami has ingress host {host:?}, expected whoami.{domain}"
                    ),
                ));
            }
            example = format!("; HelmRelease whoami's Ingress host is {host}");
        }
        Ok(format!(
            "4. all {count} rendered objects exist in the API server; {compared} of them (ConfigMaps, Secrets, custom resources) match the rendered fields after substitution{example}"
        ))
    }

    /// `kubectl get -f` of the expected objects: the live object for each, or `None`.
    fn live_objects(&self, expected: &[Value]) -> Result<Vec<Option<Value>>, String> {
        let mut out = Vec::new();
        for o in expected {
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
            let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
            // The singular resource name, which kubectl maps like the plural.
            let kind = kind.to_lowercase();
            let resource = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{version}.{group}")
            };
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
            out.push(
                self.kube()
                    .get(&resource, ns, name)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(out)
    }

    /// Assertion 5: our SOPS Secret, decrypted by kustomize-controller.
    fn check_secret(&self) -> Result<String, LocalError> {
        let what = "the SOPS Secret we encrypted is in the API server, decrypted by Flux";
        let secret = self
            .kube()
            .get("secret", Some("flux-system"), SECRET_NAME)?
            .ok_or_else(|| {
                fail(
                    5,
                    what,
                    format!("Secret flux-system/{SECRET_NAME} does not exist"),
                )
            })?;
        for (k, v) in &self.secret_values {
            let got = secret_value(&secret, k);
            if got.as_deref() != Some(v.as_str()) {
                return Err(fail(
                    5,
                    what,
                    format!("flux-system/{SECRET_NAME} {k} is {got:?}, expected {v:?}"),
                ));
            }
        }
        let mut extra = String::new();
        if let Some(nc) = self.kube().get("secret", Some("nextcloud"), "nextcloud")? {
            let got = secret_value(&nc, "nextcloud-password");
            let want = &self.secret_values["nextcloud_password"];
            if got.as_deref() != Some(want.as_str()) {
                return Err(fail(
                    5,
                    what,
                    format!(
                        "nextcloud/nextcloud nextcloud-password is {got:?}, expected the decrypted {want:?}"
                    ),
                ));
            }
            extra = "; nextcloud/nextcloud got nextcloud-password substituted from it".into();
        }
        Ok(format!(
            "5. Secret flux-system/{SECRET_NAME}, SOPS-encrypted by us for a key made for this run, holds the expected plaintext ({} keys) after kustomize-controller decrypted it{extra}",
            self.secret_values.len()
        ))
    }

    /// Assertion 7: a Secret for the wrong key fails the Kustomization with
    /// Flux's decryption error; the previous objects stay.
    fn check_wrong_key(&mut self, previous_probe: &str) -> Result<String, LocalError> {
        let what =
            "a Secret encrypted for the wrong key fails the Kustomization, previous objects kept";
        let previous_revision = self.revision();
        let (_, wrong_recipient) = sops::generate_identity();
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": WRONG_KEY_SECRET, "namespace": "flux-system"},
            "type": "Opaque",
            "stringData": {"value": "nobody here can read this"},
        });
        let text = encrypt_secret(&secret, &wrong_recipient)?;
        let dir = self.secret_dir.clone();
        let file = format!("{WRONG_KEY_SECRET}.enc.yaml");
        self.add_resource(&dir, &file, &text)?;
        // Also change the probe: it must not be applied either.
        let probe_path = self
            .tree
            .path()
            .join(&self.probe_dir)
            .join(format!("{PROBE}.yaml"));
        std::fs::write(&probe_path, probe_yaml("must-not-apply"))
            .map_err(io_err(probe_path.display()))?;
        self.publish()?;
        self.wait_source(true)?;
        let first = self.order.first().cloned().unwrap_or_default();
        let new_revision = self.revision();
        let o = self
            .kube()
            .wait_failed("Kustomization", "flux-system", &first, READY_TIMEOUT, |o| {
                o.pointer("/status/lastAttemptedRevision")
                    .and_then(Value::as_str)
                    == Some(new_revision.as_str())
            })
            .map_err(|e| fail(7, what, e.to_string()))?;
        let (_, reason, message) = flux::ready_condition(&o);
        if !message.to_lowercase().contains("decrypt") {
            return Err(fail(
                7,
                what,
                format!(
                    "Kustomization {first} failed, but not with a decryption error: {reason}: {message}"
                ),
            ));
        }
        let applied = o
            .pointer("/status/lastAppliedRevision")
            .and_then(Value::as_str)
            .unwrap_or("");
        if applied != previous_revision {
            return Err(fail(
                7,
                what,
                format!(
                    "lastAppliedRevision is {applied}, expected the previous {previous_revision}"
                ),
            ));
        }
        // Give the dependents a moment: they must not apply the new revision.
        std::thread::sleep(Duration::from_secs(3));
        if self.probe_value()?.as_deref() != Some(previous_probe) {
            return Err(fail(
                7,
                what,
                format!(
                    "{PROBE} changed to {:?}, expected the previous {previous_probe:?}",
                    self.probe_value()?
                ),
            ));
        }
        if self
            .kube()
            .get("secret", Some("flux-system"), SECRET_NAME)?
            .is_none()
        {
            return Err(fail(7, what, format!("Secret {SECRET_NAME} was removed")));
        }
        if self
            .kube()
            .get("secret", Some("flux-system"), WRONG_KEY_SECRET)?
            .is_some()
        {
            return Err(fail(
                7,
                what,
                format!("Secret {WRONG_KEY_SECRET} was applied"),
            ));
        }
        Ok(format!(
            "7. a Secret encrypted for another key fails Kustomization {first} ({reason}: {}); it stays at {previous_revision}, {PROBE} keeps {previous_probe:?}",
            one_line(&message, 220)
        ))
    }
}

/// Runs the whole scenario; `say` receives progress and one line per passed assertion.
pub fn run_e2e(opts: &E2eOptions, mut say: impl FnMut(&str)) -> Result<E2eReport, LocalError> {
    let started = Instant::now();
    let mut report = E2eReport::default();
    let mut s = Scenario::setup(opts, &mut say)?;
    report.timings.extend(s.cp.timings.iter().cloned());
    report
        .timings
        .push(("control plane ready".into(), started.elapsed()));
    report.permissive_kinds = crds::missing_kinds(
        s.rendered
            .kustomizations
            .iter()
            .flat_map(|k| k.objects.iter()),
    )
    .iter()
    .map(|k| format!("{}/{}", k.group, k.kind))
    .collect();

    let result = (|| -> Result<(), LocalError> {
        s.first_reconcile(&mut say, &mut report)?;
        let line = s.check_objects()?;
        say(&line);
        report.passed.push(line);
        let line = s.check_secret()?;
        say(&line);
        report.passed.push(line);

        // 6. Edit → applied.
        let (applied, ready) = s.edit_cycle("edited-1")?;
        report.edit_to_applied = applied;
        report.edit_to_ready = ready;
        let line = format!(
            "6. edited {PROBE} in the temp tree: new value in the API server {:.2} s after the edit (package, publish, reconcile request included); every Kustomization Ready at the new revision after {:.2} s",
            applied.as_secs_f64(),
            ready.as_secs_f64()
        );
        say(&line);
        report.passed.push(line);

        let line = s.check_wrong_key("edited-1")?;
        say(&line);
        report.passed.push(line);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = s.cp.check_alive().map_err(|dead| {
            say(&format!("a control-plane process died: {dead}"));
        });
        say(&format!(
            "logs: {} (etcd, kube-apiserver, registry, source-controller, kustomize-controller)",
            s.cp.log_dir.display()
        ));
        return Err(e);
    }
    report.total = started.elapsed();
    Ok(report)
}

/// Sets up the scenario, then runs `cycles` edit→Ready cycles.
pub fn bench_reconcile(
    cycles: usize,
    build: bool,
    mut say: impl FnMut(&str),
) -> Result<BenchReport, LocalError> {
    let started = Instant::now();
    let opts = E2eOptions {
        build,
        ..E2eOptions::default()
    };
    let mut s = Scenario::setup(&opts, &mut say)?;
    let mut scratch = E2eReport::default();
    s.first_reconcile(&mut say, &mut scratch)?;
    let mut report = BenchReport {
        setup: started.elapsed(),
        ..BenchReport::default()
    };
    for i in 0..cycles {
        let (applied, ready) = s.edit_cycle(&format!("bench-{i}"))?;
        say(&format!(
            "cycle {}: applied {:.2} s, all Ready {:.2} s",
            i + 1,
            applied.as_secs_f64(),
            ready.as_secs_f64()
        ));
        report.edit_to_applied.push(applied);
        report.edit_to_ready.push(ready);
    }
    Ok(report)
}

/// min, median, max.
pub fn summary(samples: &[Duration]) -> Option<(Duration, Duration, Duration)> {
    let mut v = samples.to_vec();
    v.sort();
    Some((*v.first()?, v[v.len() / 2], *v.last()?))
}

fn probe_yaml(value: &str) -> String {
    format!(
        "---\n# Written by cargo xtask e2e: what the edit test changes.\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {PROBE}\n  namespace: flux-system\ndata:\n  value: \"{value}\"\n  domain: \"${{domain}}\"\n"
    )
}

fn encrypt_secret(secret: &Value, recipient: &str) -> Result<String, LocalError> {
    let plain = serde_yaml::to_string(secret)
        .map_err(|e| LocalError::Other(format!("serialising a Secret: {e}")))?;
    let rule = CreationRule::new(
        vec![recipient.to_string()],
        Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let bytes = sops::encrypt(plain.as_bytes(), Format::Yaml, &rule)
        .map_err(|e| LocalError::Other(format!("sops encrypt: {e}")))?;
    String::from_utf8(bytes).map_err(|e| LocalError::Other(format!("sops output: {e}")))
}

fn secret_value(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Built-in kinds other than ConfigMap and Secret get server-side defaults
/// and normalised quantities, so only their existence is checked; ConfigMaps,
/// Secrets and custom resources are compared field by field.
pub fn compared_field_by_field(expected: &Value) -> bool {
    let kind = expected.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = expected
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    matches!(kind, "ConfigMap" | "Secret") || !crds::BUILTIN_GROUPS.contains(&group)
}

/// Whether `expected` is contained in `live`, for the fields a manifest sets.
/// Secrets compare `stringData` with the decoded `data`. `None` when equal.
pub fn compare(expected: &Value, live: &Value) -> Option<String> {
    let kind = expected.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "Secret" {
        if let Some(sd) = expected.get("stringData").and_then(Value::as_object) {
            for (k, v) in sd {
                let got = secret_value(live, k);
                if got.as_deref() != v.as_str() {
                    return Some(format!("stringData.{k}: expected {v}, found {got:?}"));
                }
            }
        }
        if let Some(d) = expected.get("data") {
            return subset(d, live.get("data").unwrap_or(&Value::Null), "data");
        }
        return None;
    }
    if !compared_field_by_field(expected) {
        return None;
    }
    for field in ["data", "spec"] {
        if let Some(e) = expected.get(field)
            && let Some(d) = subset(e, live.get(field).unwrap_or(&Value::Null), field)
        {
            return Some(d);
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(e) = expected.pointer(&format!("/metadata/{field}"))
            && let Some(d) = subset(
                e,
                live.pointer(&format!("/metadata/{field}"))
                    .unwrap_or(&Value::Null),
                &format!("metadata.{field}"),
            )
        {
            return Some(d);
        }
    }
    None
}

fn subset(expected: &Value, live: &Value, path: &str) -> Option<String> {
    match (expected, live) {
        (Value::Object(e), Value::Object(l)) => e
            .iter()
            .find_map(|(k, v)| subset(v, l.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))),
        (Value::Array(e), Value::Array(l)) if e.len() == l.len() => e
            .iter()
            .zip(l)
            .enumerate()
            .find_map(|(i, (a, b))| subset(a, b, &format!("{path}[{i}]"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        (Value::Null, _) => None,
        (a, b) => Some(format!("{path}: expected {a}, found {b}")),
    }
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}...", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

/// The manifest digest a registry serves for `repo:tag` (HEAD, Docker-Content-Digest).
pub fn registry_digest(port: u16, repo: &str, tag: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .ok_or_else(|| {
            format!(
                "no Docker-Content-Digest for {repo}:{tag}: {}",
                one_line(&text, 200)
            )
        })
}

/// Copies the manifest folders (and the ignore files) of the repository.
fn copy_manifests(root: &Path, to: &Path) -> Result<(), LocalError> {
    for dir in crate::MANIFEST_DIRS {
        copy_dir(&root.join(dir), &to.join(dir))?;
    }
    for file in [".sourceignore", ".sops.yaml"] {
        let from = root.join(file);
        if from.is_file() {
            std::fs::copy(&from, to.join(file)).map_err(io_err(from.display()))?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(to).map_err(io_err(to.display()))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from.display()))? {
        let entry = entry.map_err(io_err(from.display()))?;
        let ty = entry.file_type().map_err(io_err(entry.path().display()))?;
        let target = to.join(entry.file_name());
        if ty.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &target).map_err(io_err(entry.path().display()))?;
        }
    }
    Ok(())
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir.display()))? {
        let path = entry.map_err(io_err(dir.display()))?.path();
        if path.is_dir() {
            out.extend(yaml_files(&path)?);
        } else if render::is_yaml(&path) && !path.ends_with("kustomization.yaml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn read_docs(path: &Path) -> Result<Vec<Value>, LocalError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path.display()))?;
    render::parse_stream(&text).map_err(|e| LocalError::Other(format!("{}: {e}", path.display())))
}

fn write_docs(path: &Path, docs: &[Value]) -> Result<(), LocalError> {
    std::fs::write(path, render::to_yaml_stream(docs)).map_err(io_err(path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ignores_server_additions() {
        let exp = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1"}});
        let live = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1", "b": "2"}, "metadata": {"uid": "x"}});
        assert_eq!(compare(&exp, &live), None);
        let live = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "2"}});
        assert_eq!(
            compare(&exp, &live).unwrap(),
            "data.a: expected \"1\", found \"2\""
        );
    }

    #[test]
    fn secrets_compare_string_data_with_decoded_data() {
        let exp = json!({"kind": "Secret", "apiVersion": "v1", "stringData": {"p": "pw"}});
        let live = json!({"kind": "Secret", "apiVersion": "v1", "data": {"p": "cHc="}});
        assert_eq!(compare(&exp, &live), None);
        let live = json!({"kind": "Secret", "apiVersion": "v1", "data": {"p": "eA=="}});
        assert!(compare(&exp, &live).is_some());
    }

    #[test]
    fn summary_is_min_median_max() {
        let s = [3, 1, 2].map(Duration::from_secs);
        assert_eq!(
            summary(&s),
            Some((
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3)
            ))
        );
        assert_eq!(summary(&[]), None);
    }
}
