//! Assertion 8: the tree's Kyverno policies reach the cluster, and are
//! enforced. Kyverno itself cannot run here (no chart is fetchable, no
//! kubelet runs its Pods), so the policies read back from the API server are
//! handed to it as ValidatingAdmissionPolicies ([`k8s_policy::admission_policies`],
//! the same CEL text, bound with each policy's own actions), and a violating
//! Deployment in an apps namespace must be refused by name.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{LocalError, Scenario, fail};

const NUMBER: u8 = 8;
/// The label of the namespaces where the policies deny.
const APPS_LABEL: (&str, &str) = ("platform.devantler.tech/tier", "apps");

impl Scenario {
    pub(super) fn check_policies(&self) -> Result<String, LocalError> {
        let what = "the policies reach the cluster, and their text as ValidatingAdmissionPolicies refuses a violating object";
        let carrier = self
            .rendered
            .kustomizations
            .iter()
            .find(|k| k.objects.iter().any(|o| o["kind"] == "ValidatingPolicy"));
        let Some(carrier) = carrier else {
            return Ok(format!(
                "{NUMBER}. clusters/{} applies no ValidatingPolicy: nothing to enforce",
                self.cluster
            ));
        };
        let mut live = self.kube().list("validatingpolicies.policies.kyverno.io")?;
        let policies = live.len();
        live.extend(self.kube().list("policyexceptions.policies.kyverno.io")?);
        let expected = carrier
            .objects
            .iter()
            .filter(|o| o["kind"] == "ValidatingPolicy")
            .count();
        if policies != expected {
            return Err(fail(
                NUMBER,
                what,
                format!(
                    "Kustomization {} renders {expected} ValidatingPolicies, the API server has {policies}",
                    carrier.flux.name
                ),
            ));
        }
        let namespace = carrier_namespace(self).ok_or_else(|| {
            fail(
                NUMBER,
                what,
                format!(
                    "no Namespace labelled {}={} is applied",
                    APPS_LABEL.0, APPS_LABEL.1
                ),
            )
        })?;
        let admission = k8s_policy::admission_policies(&live, k8s_policy::Binding::AsWritten);
        self.kube().apply(&admission)?;
        let result = self.refused(&namespace, what);
        // Leave the control plane as the other assertions expect it.
        for o in admission.iter().rev() {
            let resource = match o["kind"].as_str() {
                Some("ValidatingAdmissionPolicy") => "validatingadmissionpolicies",
                _ => "validatingadmissionpolicybindings",
            };
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let _ = self
                .kube()
                .cmd()
                .args(["delete", resource, name, "--ignore-not-found"])
                .run();
        }
        let (took, message) = result?;
        Ok(format!(
            "{NUMBER}. Kustomization {} applied {policies} ValidatingPolicies; Kyverno cannot run here (its chart is not fetchable, no kubelet), so their text as ValidatingAdmissionPolicies was enforced by the API server: a privileged Deployment in {namespace} refused after {:.1} s ({message})",
            carrier.flux.name,
            took.as_secs_f64()
        ))
    }

    /// Waits until a violating Deployment in `namespace` is refused by
    /// `pss-baseline`; the time it took and the refusal.
    fn refused(&self, namespace: &str, what: &str) -> Result<(Duration, String), LocalError> {
        let probe = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "e2e-policy-probe", "namespace": namespace,
                "labels": {"app.kubernetes.io/name": "e2e-policy-probe"}},
            "spec": {"selector": {"matchLabels": {"app": "probe"}},
                "template": {"metadata": {"labels": {"app": "probe"}},
                    "spec": {"containers": [{"name": "probe", "image": "busybox:1.36",
                        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
                        "securityContext": {"privileged": true}}]}}}});
        let yaml = serde_yaml::to_string(&probe).map_err(|e| fail(NUMBER, what, e.to_string()))?;
        let started = Instant::now();
        loop {
            let out = self
                .kube()
                .cmd()
                .args(["create", "--dry-run=server", "-f", "-"])
                .stdin_bytes(yaml.clone())
                .output()
                .map_err(|e| fail(NUMBER, what, e.to_string()))?;
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if stderr.contains("ValidatingAdmissionPolicy 'pss-baseline'") {
                return Ok((
                    started.elapsed(),
                    stderr.lines().next().unwrap_or("").to_string(),
                ));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(fail(
                    NUMBER,
                    what,
                    format!(
                        "a privileged Deployment in {namespace} was not refused by pss-baseline within 60 s: {}",
                        if out.status.success() {
                            "accepted"
                        } else {
                            &stderr
                        }
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The first applied Namespace where the policies deny.
fn carrier_namespace(s: &Scenario) -> Option<String> {
    s.rendered
        .kustomizations
        .iter()
        .flat_map(|k| k.objects.iter())
        .filter(|o| o["kind"] == "Namespace")
        .find(|o| {
            o.pointer("/metadata/labels")
                .and_then(|l| l.get(APPS_LABEL.0))
                .and_then(Value::as_str)
                == Some(APPS_LABEL.1)
        })
        .and_then(|o| o["metadata"]["name"].as_str().map(str::to_string))
}
