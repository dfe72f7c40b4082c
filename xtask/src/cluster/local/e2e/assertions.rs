//! The assertions that read the cluster back: every rendered object, the
//! decrypted Secret, and a Secret encrypted for another key refused.

use super::*;

impl Scenario {
    /// Assertion 4: every rendered object exists, with substitution applied.
    pub(super) fn check_objects(&self) -> Result<String, LocalError> {
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
                            flux_render::describe(exp),
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
                            flux_render::describe(exp),
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
    pub(super) fn live_objects(&self, expected: &[Value]) -> Result<Vec<Option<Value>>, FluxError> {
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
            out.push(self.kube().get(&resource, ns, name)?);
        }
        Ok(out)
    }

    /// Assertion 5: our SOPS Secret, decrypted by kustomize-controller.
    pub(crate) fn check_secret(&self) -> Result<String, LocalError> {
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
    pub(super) fn check_wrong_key(&mut self, previous_probe: &str) -> Result<String, LocalError> {
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
