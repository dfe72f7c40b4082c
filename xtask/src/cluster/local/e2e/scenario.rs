//! The scenario: the control plane, the e2e profile of a temporary copy of
//! the tree, publishing, and the first reconcile and edit cycles.

use super::*;

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
    pub(crate) registry: oci_artifact::Registry,
}

/// Builds (or finds) the binaries and returns their paths.
pub(super) fn binaries(
    root: &Path,
    build: bool,
    say: &mut impl FnMut(&str),
) -> Result<BTreeMap<String, PathBuf>, LocalError> {
    if !build {
        return crate::cluster::local::built_binaries(root);
    }
    Ok(crate::cluster::local::build_binaries(root, |e| match e {
        crate::cluster::local::BuildEvent::Cached { .. } => {}
        crate::cluster::local::BuildEvent::Started { name, log } => say(&format!(
            "building {name} from its Go module (once per version; log {})",
            log.display()
        )),
        crate::cluster::local::BuildEvent::Built { name, took, .. } => {
            say(&format!("built {name} in {:.0} s", took.as_secs_f64()))
        }
    })?)
}

impl Scenario {
    /// Starts the control plane, writes the e2e profile of the tree, renders
    /// it, installs the CRDs it needs, and creates the sops-age Secret.
    pub fn setup(opts: &E2eOptions, say: &mut impl FnMut(&str)) -> Result<Self, LocalError> {
        let s = Self::setup_profile(opts, say)?;
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

    /// [`Scenario::setup`] without the sops-age Secret (an existing-cluster
    /// bootstrap writes it).
    pub fn setup_profile(
        opts: &E2eOptions,
        say: &mut impl FnMut(&str),
    ) -> Result<Self, LocalError> {
        let root = opts.root.clone();
        let bins = binaries(&root, opts.build, say)?;
        let cp = ControlPlane::start(&root, &bins, &mut *say)?;
        let tree = tempfile::Builder::new()
            .prefix("tree-")
            .tempdir_in(crate::cluster::local::e2e_dir(&root).join("run"))
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
            rendered: RenderedCluster::default(),
            digest: String::new(),
            publishes: 0,
            registry: oci_artifact::Registry::new()
                .map_err(|e| LocalError::Other(e.to_string()))?,
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
        Ok(s)
    }

    pub fn kube(&self) -> &Kube {
        &self.cp.kube
    }

    pub(crate) fn cluster_dir(&self) -> PathBuf {
        self.tree.path().join("clusters").join(&self.cluster)
    }

    /// Patches the temp copy into the e2e profile (see the module docs).
    pub(super) fn write_profile(&mut self) -> Result<(), LocalError> {
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
                } else if flux_render::is_flux_kustomization(d) {
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
        // The tree's own Secret of that name is encrypted for a key we do not
        // have: our Secret takes its place in the copy, with a random value
        // for every key it has (the key names are readable, only values are
        // encrypted), so every substitution the tree relies on is filled.
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
        let tree_keys: Vec<String> = match &existing {
            Some(f) => read_docs(f)?
                .iter()
                .flat_map(|d| {
                    ["stringData", "data"]
                        .into_iter()
                        .filter_map(|field| d.get(field).and_then(Value::as_object))
                        .flat_map(|m| m.keys().cloned())
                        .collect::<Vec<_>>()
                })
                .collect(),
            None => Vec::new(),
        };
        let random = || {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
            hex::encode(bytes)
        };
        self.secret_values = tree_keys.into_iter().map(|k| (k, random())).collect();
        self.secret_values
            .insert("e2e_secret".into(), format!("flux-decrypted-{}", random()));
        self.secret_values
            .entry("nextcloud_password".into())
            .or_insert_with(|| format!("pw-{}", random()));
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": "flux-system"},
            "type": "Opaque",
            "stringData": self.secret_values,
        });
        let encrypted = encrypt_secret(&secret, &self.recipient)?;
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
    pub(super) fn render(&mut self) -> Result<(), LocalError> {
        let ids = Identities::from_keys_text(&self.identity)
            .map_err(|e| LocalError::Other(format!("the test key: {e}")))?;
        let ids = Arc::new(ids);
        let decryptor: flux_render::Decryptor =
            Arc::new(move |o: &Value| sops::decrypt_object(o, &ids).map_err(Into::into));
        self.rendered = flux_render::render_cluster(
            self.tree.path(),
            &self.cluster,
            &RenderOptions {
                decryptor: Some(decryptor),
                reveal_secrets: true,
                ..Default::default()
            },
        )
        .map_err(|e| LocalError::Other(format!("rendering the e2e tree: {e}")))?;
        Ok(())
    }

    pub(super) fn install_permissive_crds(&self) -> Result<Vec<String>, LocalError> {
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
    pub fn publish(&mut self) -> Result<oci_artifact::PublishOutcome, LocalError> {
        self.publishes += 1;
        let a = oci_artifact::package(&PackageOptions {
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
    pub(super) fn bootstrap(&self) -> Result<(), LocalError> {
        let dir = self.cluster_dir().join("flux-system");
        let objects = flux_render::kustomize_build(&dir)
            .map_err(|e| LocalError::Other(format!("kustomize build {}: {e}", dir.display())))?;
        self.kube().apply(&objects)?;
        Ok(())
    }

    /// The OCIRepository of the cluster: (namespace, name).
    pub(crate) fn source(&self) -> (String, String) {
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
    pub(super) fn wait_source(&self, request: bool) -> Result<Value, LocalError> {
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
    pub(super) fn wait_all_ready(&self) -> Result<Vec<(String, Duration)>, LocalError> {
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

    pub(crate) fn probe_value(&self) -> Result<Option<String>, LocalError> {
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
            .map_err(|e| fail(1, "publish pushes the tree", e.to_string()))?;
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
}
