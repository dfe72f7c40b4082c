//! Talking to Flux objects in a cluster through kubectl: apply, request a
//! reconcile, wait for Ready, and list the status of every Flux object.
//!
//! Shared by the Kind bootstrap and the Docker-less e2e control plane; it
//! only needs a kubeconfig (and optionally a context).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use exec::runner::{Cmd, RunError};

/// The annotation that `flux reconcile` sets to ask a controller to reconcile now.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// How often [`Kube::wait_ready`] polls.
pub const POLL: Duration = Duration::from_millis(500);

/// The Flux kinds [`Kube::status`] lists, with their kubectl resource names.
pub const FLUX_KINDS: [(&str, &str); 7] = [
    ("OCIRepository", "ocirepositories.source.toolkit.fluxcd.io"),
    ("GitRepository", "gitrepositories.source.toolkit.fluxcd.io"),
    (
        "HelmRepository",
        "helmrepositories.source.toolkit.fluxcd.io",
    ),
    ("Bucket", "buckets.source.toolkit.fluxcd.io"),
    ("HelmChart", "helmcharts.source.toolkit.fluxcd.io"),
    (
        "Kustomization",
        "kustomizations.kustomize.toolkit.fluxcd.io",
    ),
    ("HelmRelease", "helmreleases.helm.toolkit.fluxcd.io"),
];

#[derive(Debug, thiserror::Error)]
pub enum FluxError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("kubectl printed invalid JSON for {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{kind} {namespace}/{name} is not Ready after {waited:?}: {detail}")]
    Timeout {
        kind: String,
        namespace: String,
        name: String,
        waited: Duration,
        detail: String,
    },
    #[error("{kind} {namespace}/{name} failed: {detail}")]
    Failed {
        kind: String,
        namespace: String,
        name: String,
        detail: String,
    },
    #[error(
        "{namespace}/{what} did not roll out within {} ({reason}){detail}",
        super::steps::fmt_duration(*waited)
    )]
    Rollout {
        namespace: String,
        what: String,
        waited: Duration,
        reason: String,
        /// The pods' states and last events, one per line.
        detail: String,
    },
    #[error("cannot serialise objects to apply: {0}")]
    Serialize(String),
    #[error(transparent)]
    Tool(#[from] exec::tools::ToolError),
}

/// Every Flux object in the cluster of `kubeconfig` (its current context).
pub fn status(kubeconfig: &Path) -> Result<Vec<FluxObjectStatus>, FluxError> {
    Kube::new(kubeconfig)?.status()
}

/// One Flux object's readiness, as `flux get all` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FluxObjectStatus {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// `True`, `False` or `Unknown` (no Ready condition yet).
    pub ready: String,
    /// `status.lastAppliedRevision` (Kustomization, HelmRelease) or
    /// `status.artifact.revision` (sources).
    pub revision: String,
    pub message: String,
    pub suspended: bool,
}

/// What a wait observed at a poll: handed to the progress callback.
#[derive(Clone, Debug)]
pub struct Progress {
    pub elapsed: Duration,
    pub ready: String,
    pub reason: String,
    pub message: String,
}

/// How a Ready condition reads for a given generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready=True and `status.observedGeneration` == `metadata.generation`.
    Ready,
    /// Ready=False with a terminal reason (the controller gave up until the next change).
    Failed(String),
    /// Anything else: not observed yet, progressing, or Ready for an older generation.
    Pending(String),
}

/// kubectl bound to one kubeconfig (and context).
#[derive(Clone, Debug)]
pub struct Kube {
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    /// kubectl's discovery cache (`--cache-dir`), so repeated calls stay fast.
    pub cache_dir: Option<PathBuf>,
}

impl Kube {
    /// kubectl from `.tools/bin` or PATH, for `kubeconfig`.
    pub fn new(kubeconfig: &Path) -> Result<Self, exec::tools::ToolError> {
        Ok(Self {
            kubectl: exec::tools::find("kubectl")?,
            kubeconfig: kubeconfig.to_path_buf(),
            context: None,
            cache_dir: None,
        })
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// A kubectl command with the kubeconfig (and context) set.
    pub fn cmd(&self) -> Cmd {
        let mut cmd = Cmd::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        if let Some(ctx) = &self.context {
            cmd = cmd.arg("--context").arg(ctx);
        }
        if let Some(dir) = &self.cache_dir {
            cmd = cmd.arg("--cache-dir").arg(dir);
        }
        cmd
    }

    /// Waits until every CRD the server holds is Established (60 s at most).
    pub fn wait_crds_established(&self) -> Result<String, FluxError> {
        Ok(self
            .cmd()
            .args([
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ])
            .read()?)
    }

    /// Server-side applies a YAML stream (field manager `xtask`, forcing conflicts).
    pub fn apply_yaml(&self, yaml: &str) -> Result<String, FluxError> {
        Ok(self
            .cmd()
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=xtask",
                "-f",
                "-",
            ])
            .stdin_bytes(yaml.as_bytes().to_vec())
            .read()?)
    }

    /// Server-side applies objects.
    pub fn apply(&self, objects: &[Value]) -> Result<String, FluxError> {
        let mut yaml = String::new();
        for o in objects {
            yaml.push_str("---\n");
            yaml.push_str(
                &serde_yaml::to_string(o).map_err(|e| FluxError::Serialize(e.to_string()))?,
            );
        }
        self.apply_yaml(&yaml)
    }

    /// `kubectl get <resource> [-n ns] <name> -o json`; `None` when it does not exist.
    pub fn get(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, FluxError> {
        let mut cmd = self.cmd().args(["get", resource, name, "-o", "json"]);
        if let Some(ns) = namespace {
            cmd = cmd.args(["-n", ns]);
        }
        let out = cmd.output()?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("NotFound") || stderr.contains("not found") {
                return Ok(None);
            }
            return Err(RunError::Failed {
                tool: "kubectl".into(),
                status: out.status.to_string(),
                stderr: stderr.trim().to_string(),
            }
            .into());
        }
        parse_json(&out.stdout, &format!("{resource} {name}")).map(Some)
    }

    /// `kubectl get <resource> -A -o json`: the items.
    pub fn list(&self, resource: &str) -> Result<Vec<Value>, FluxError> {
        let out = self
            .cmd()
            .args(["get", resource, "-A", "-o", "json"])
            .read_bytes()?;
        let list = parse_json(&out, resource)?;
        Ok(list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Sets `reconcile.fluxcd.io/requestedAt` to now, as `flux reconcile` does.
    /// Returns the token written (the controller echoes it in
    /// `status.lastHandledReconcileAt` once it has handled the request).
    pub fn request_reconcile(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<String, FluxError> {
        let token = now_rfc3339_nanos();
        self.cmd()
            .args([
                "annotate",
                "--overwrite",
                "-n",
                namespace,
                &resource_for(kind),
                name,
                &format!("{REQUESTED_AT}={token}"),
            ])
            .read()?;
        Ok(token)
    }

    /// Polls every 500 ms until the object is Ready for its current
    /// generation. On timeout or a terminal failure, the error carries the
    /// object's conditions and its recent events.
    pub fn wait_ready(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        timeout: Duration,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Value, FluxError> {
        let started = Instant::now();
        let resource = resource_for(kind);
        loop {
            let object = self.get(&resource, Some(namespace), name)?;
            let (state, progress) = match &object {
                Some(o) => {
                    let (ready, reason, message) = ready_condition(o);
                    (
                        readiness(o),
                        Progress {
                            elapsed: started.elapsed(),
                            ready,
                            reason,
                            message,
                        },
                    )
                }
                None => (
                    Readiness::Pending("not found".into()),
                    Progress {
                        elapsed: started.elapsed(),
                        ready: "Unknown".into(),
                        reason: "NotFound".into(),
                        message: "the object does not exist yet".into(),
                    },
                ),
            };
            on_progress(&progress);
            match state {
                Readiness::Ready => return Ok(object.expect("ready implies found")),
                Readiness::Failed(_) | Readiness::Pending(_) if started.elapsed() >= timeout => {
                    return Err(FluxError::Timeout {
                        kind: kind.into(),
                        namespace: namespace.into(),
                        name: name.into(),
                        waited: started.elapsed(),
                        detail: self.describe_failure(kind, namespace, name, object.as_ref()),
                    });
                }
                _ => std::thread::sleep(POLL),
            }
        }
    }

    /// Polls until the object's Ready condition is False (a failure), for its
    /// current generation; returns the object. For asserting that a change is
    /// rejected.
    pub fn wait_failed(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        timeout: Duration,
        mut until: impl FnMut(&Value) -> bool,
    ) -> Result<Value, FluxError> {
        let started = Instant::now();
        let resource = resource_for(kind);
        loop {
            if let Some(o) = self.get(&resource, Some(namespace), name)?
                && ready_condition(&o).0 == "False"
                && until(&o)
            {
                return Ok(o);
            }
            if started.elapsed() >= timeout {
                let object = self.get(&resource, Some(namespace), name)?;
                return Err(FluxError::Timeout {
                    kind: kind.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    waited: started.elapsed(),
                    detail: format!(
                        "expected Ready=False; {}",
                        self.describe_failure(kind, namespace, name, object.as_ref())
                    ),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The conditions and the last events of an object, for error messages.
    pub fn describe_failure(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        object: Option<&Value>,
    ) -> String {
        let conditions = object
            .and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        format!(
                            "{}={} ({}): {}",
                            s(c, "type"),
                            s(c, "status"),
                            s(c, "reason"),
                            s(c, "message")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| "no conditions".into());
        let events = self.events(kind, namespace, name).unwrap_or_default();
        if events.is_empty() {
            format!("conditions: {conditions}")
        } else {
            format!(
                "conditions: {conditions}; recent events: {}",
                events.join(" | ")
            )
        }
    }

    /// The last few events about an object, oldest first.
    pub fn events(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, FluxError> {
        let out = self
            .cmd()
            .args([
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                &format!("involvedObject.kind={kind},involvedObject.name={name}"),
                "-o",
                "json",
            ])
            .read_bytes()?;
        let list = parse_json(&out, "events")?;
        let mut items: Vec<&Value> = list
            .get("items")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        items.sort_by_key(|e| {
            e.get("lastTimestamp")
                .or_else(|| e.get("eventTime"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        });
        Ok(items
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|e| format!("{} {}: {}", s(e, "type"), s(e, "reason"), s(e, "message")))
            .collect())
    }

    /// `kubectl rollout status <kind>/<name>` (a DaemonSet or Deployment).
    /// On failure the error lists its pods' states and their last events,
    /// so a crash-looping Cilium agent is named rather than a node timeout.
    pub fn rollout(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Duration, FluxError> {
        let started = Instant::now();
        let out = self
            .cmd()
            .args([
                "-n",
                namespace,
                "rollout",
                "status",
                &format!("{kind}/{name}"),
                &format!("--timeout={}s", timeout.as_secs().max(1)),
            ])
            .output()?;
        if out.status.success() {
            return Ok(started.elapsed());
        }
        let reason = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("rollout status failed")
            .to_string();
        let pods = self.pods_report(namespace, kind, name);
        Err(FluxError::Rollout {
            namespace: namespace.into(),
            what: format!("{kind}/{name}"),
            waited: started.elapsed(),
            reason,
            detail: if pods.is_empty() {
                String::new()
            } else {
                format!("\n{pods}")
            },
        })
    }

    /// One line per pod of a workload (phase, each container's state and
    /// restarts), each followed by its last events.
    pub fn pods_report(&self, namespace: &str, kind: &str, name: &str) -> String {
        let selector = match self.get(kind, Some(namespace), name) {
            Ok(Some(w)) => w
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            Ok(None) => return format!("    {kind}/{name} does not exist"),
            Err(e) => return format!("    cannot read {kind}/{name}: {e}"),
        };
        if selector.is_empty() {
            return String::new();
        }
        let pods = match self
            .cmd()
            .args([
                "-n", namespace, "get", "pods", "-l", &selector, "-o", "json",
            ])
            .read_bytes()
            .map_err(FluxError::from)
            .and_then(|b| parse_json(&b, "pods"))
        {
            Ok(list) => list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Err(e) => return format!("    cannot list its pods: {e}"),
        };
        if pods.is_empty() {
            return format!("    no pods match {selector}");
        }
        let mut lines = Vec::new();
        for pod in &pods {
            let pod_name = str_at(pod, "/metadata/name");
            lines.push(format!("    pod {pod_name}: {}", pod_state(pod)));
            for e in self
                .events("Pod", namespace, &pod_name)
                .unwrap_or_default()
                .iter()
                .rev()
                .take(3)
                .rev()
            {
                lines.push(format!("      {e}"));
            }
        }
        lines.join("\n")
    }

    /// One line per node that is not Ready: its Ready condition's reason and
    /// message (e.g. `NetworkPluginNotReady: cni plugin not initialized`).
    pub fn nodes_report(&self) -> String {
        let nodes = match self
            .cmd()
            .args(["get", "nodes", "-o", "json"])
            .read_bytes()
            .map_err(FluxError::from)
            .and_then(|b| parse_json(&b, "nodes"))
        {
            Ok(list) => list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Err(e) => return format!("    cannot list the nodes: {e}"),
        };
        nodes
            .iter()
            .filter_map(|n| {
                let (ready, reason, message) = ready_condition(n);
                (ready != "True").then(|| {
                    format!(
                        "    node {}: Ready={ready} {reason}: {message}",
                        str_at(n, "/metadata/name")
                    )
                })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every Flux object of the kinds in [`FLUX_KINDS`] whose CRD is installed.
    pub fn status(&self) -> Result<Vec<FluxObjectStatus>, FluxError> {
        let mut out = Vec::new();
        for (kind, resource) in FLUX_KINDS {
            let items = match self.list(resource) {
                Ok(items) => items,
                // The CRD is not installed (e.g. no helm-controller): nothing to list.
                Err(FluxError::Run(RunError::Failed { stderr, .. }))
                    if stderr.contains("doesn't have a resource type")
                        || stderr.contains("the server could not find") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            for o in items {
                out.push(object_status(kind, &o));
            }
        }
        Ok(out)
    }
}

/// The status of one Flux object.
pub fn object_status(kind: &str, o: &Value) -> FluxObjectStatus {
    let (ready, _, message) = ready_condition(o);
    let revision = o
        .pointer("/status/lastAppliedRevision")
        .or_else(|| o.pointer("/status/artifact/revision"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    FluxObjectStatus {
        kind: kind.to_string(),
        name: str_at(o, "/metadata/name"),
        namespace: str_at(o, "/metadata/namespace"),
        ready,
        revision,
        message,
        suspended: o
            .pointer("/spec/suspend")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// A pod's phase and each container's state, as `kubectl describe` reads them.
pub fn pod_state(pod: &Value) -> String {
    let mut parts = vec![str_at(pod, "/status/phase")];
    let statuses = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| {
            pod.pointer(&format!("/status/{k}"))
                .and_then(Value::as_array)
        })
        .flatten();
    for c in statuses {
        let state = c.get("state").and_then(Value::as_object);
        let how = state
            .and_then(|st| st.iter().next())
            .map(|(k, v)| {
                let reason = s(v, "reason");
                let message = s(v, "message");
                let mut h = k.clone();
                if !reason.is_empty() {
                    h.push_str(&format!(" {reason}"));
                }
                if !message.is_empty() {
                    h.push_str(&format!(": {}", message.lines().next().unwrap_or("")));
                }
                h
            })
            .unwrap_or_else(|| "no state".into());
        let restarts = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        parts.push(format!("{} {how}, {restarts} restart(s)", s(c, "name")));
    }
    parts.join("; ")
}

/// `(status, reason, message)` of the Ready condition; `Unknown` when absent.
pub fn ready_condition(o: &Value) -> (String, String, String) {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| s(c, "type") == "Ready"))
        .map(|c| (s(c, "status"), s(c, "reason"), s(c, "message")))
        .unwrap_or_else(|| ("Unknown".into(), String::new(), String::new()))
}

/// Whether the object is Ready for its current generation.
pub fn readiness(o: &Value) -> Readiness {
    let generation = o.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = o
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let (ready, reason, message) = ready_condition(o);
    if generation.is_some() && observed != generation {
        return Readiness::Pending(format!(
            "generation {} not observed yet (observed {})",
            generation.unwrap_or_default(),
            observed
                .map(|g| g.to_string())
                .unwrap_or_else(|| "none".into())
        ));
    }
    let stalled = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "type") == "Stalled" && s(c, "status") == "True")
        });
    match ready.as_str() {
        "True" => Readiness::Ready,
        "False" if stalled => Readiness::Failed(format!("{reason}: {message}")),
        _ => Readiness::Pending(format!("{ready} {reason}: {message}")),
    }
}

/// The kubectl resource name of a Flux kind (`Kustomization` →
/// `kustomizations.kustomize.toolkit.fluxcd.io`); other kinds pass through.
pub fn resource_for(kind: &str) -> String {
    FLUX_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, r)| (*r).to_string())
        .unwrap_or_else(|| kind.to_string())
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, FluxError> {
    serde_json::from_slice(bytes).map_err(|source| FluxError::Json {
        what: what.to_string(),
        source,
    })
}

fn s(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Now as RFC 3339 with nanoseconds, the form `flux reconcile` writes.
pub fn now_rfc3339_nanos() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "now".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(generation: i64, observed: i64, status: &str, stalled: bool) -> Value {
        let mut conditions =
            vec![json!({"type": "Ready", "status": status, "reason": "R", "message": "m"})];
        if stalled {
            conditions.push(json!({"type": "Stalled", "status": "True"}));
        }
        json!({
            "metadata": {"name": "apps", "namespace": "flux-system", "generation": generation},
            "status": {"observedGeneration": observed, "conditions": conditions, "lastAppliedRevision": "latest@sha256:ab"},
        })
    }

    #[test]
    fn ready_needs_the_current_generation() {
        assert_eq!(readiness(&obj(2, 2, "True", false)), Readiness::Ready);
        assert!(matches!(
            readiness(&obj(3, 2, "True", false)),
            Readiness::Pending(_)
        ));
        assert!(matches!(
            readiness(&obj(2, 2, "False", false)),
            Readiness::Pending(_)
        ));
        assert!(matches!(
            readiness(&obj(2, 2, "False", true)),
            Readiness::Failed(_)
        ));
    }

    #[test]
    fn pod_state_names_the_failing_container() {
        let pod = json!({
            "metadata": {"name": "cilium-x"},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "cilium-agent", "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s\nmore"}}}
            ]}
        });
        assert_eq!(
            pod_state(&pod),
            "Running; cilium-agent waiting CrashLoopBackOff: back-off 40s, 4 restart(s)"
        );
    }

    #[test]
    fn status_reads_revision_and_message() {
        let st = object_status("Kustomization", &obj(1, 1, "True", false));
        assert_eq!(st.ready, "True");
        assert_eq!(st.revision, "latest@sha256:ab");
        assert_eq!(st.name, "apps");
        assert_eq!(st.message, "m");
        assert_eq!(
            resource_for("Kustomization"),
            "kustomizations.kustomize.toolkit.fluxcd.io"
        );
        assert_eq!(resource_for("ConfigMap"), "ConfigMap");
    }
}
