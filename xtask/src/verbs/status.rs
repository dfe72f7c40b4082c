//! `cargo xtask status`: every Flux object (kind, name, Ready, revision,
//! message), the digest `latest` points at in the local registry, and the
//! recent error events of Flux objects: what the `errors` Alert sends to chat
//! on dev and prod (the local cluster's chat Provider is suspended), and the
//! failing rules of Kyverno's PolicyReports, one line per rule and resource.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cluster::{self, Toolbox, bootstrap, kind, registry};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// The kind cluster to read (the name `bootstrap --cluster` gave it).
    #[arg(long, default_value = "local")]
    cluster: String,
    /// `text`: a table like `flux get all`; `json`: one JSON document on
    /// stdout, always (the state, or `{"error": ...}` when it cannot be read).
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// Fixed-width columns, as `flux get all` prints them.
pub fn table(rows: &[cluster::flux::FluxObjectStatus]) -> String {
    let header = ["KIND", "NAME", "READY", "REVISION", "MESSAGE"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.kind.clone(),
                format!("{}/{}", r.namespace, r.name),
                if r.suspended {
                    format!("{} (suspended)", r.ready)
                } else {
                    r.ready.clone()
                },
                r.revision.clone(),
                r.message.lines().next().unwrap_or("").to_string(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate().take(4) {
            width[i] = width[i].max(v.len());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if i < 4 {
                s.push_str(&format!("{v:<w$}  ", w = width[i]));
            } else {
                s.push_str(v);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for c in &cells {
        out.push_str(&line(c));
    }
    out
}

/// The kinds whose error events the `errors` Alert forwards.
const ALERTED_KINDS: [&str; 3] = ["Kustomization", "HelmRelease", "OCIRepository"];

/// How many recent error events `status` shows.
const RECENT_EVENTS: usize = 10;

/// One Warning event of a Flux object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorEvent {
    /// `Kind namespace/name` of the object.
    pub object: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339, as the API server gives it.
    pub time: String,
}

/// The Warning events of Flux objects in an `EventList` (`kubectl get events
/// -o json`), newest last, at most [`RECENT_EVENTS`].
pub fn error_events(list: &Value) -> Vec<ErrorEvent> {
    let s = |e: &Value, p: &str| {
        e.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out: Vec<ErrorEvent> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("Warning"))
        .filter(|e| {
            e.pointer("/involvedObject/kind")
                .and_then(Value::as_str)
                .is_some_and(|k| ALERTED_KINDS.contains(&k))
        })
        .map(|e| {
            let time = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .map(|p| s(e, p))
            .find(|t| !t.is_empty())
            .unwrap_or_default();
            ErrorEvent {
                object: format!(
                    "{} {}/{}",
                    s(e, "/involvedObject/kind"),
                    s(e, "/involvedObject/namespace"),
                    s(e, "/involvedObject/name")
                ),
                reason: s(e, "/reason"),
                message: s(e, "/message").lines().next().unwrap_or("").to_string(),
                time,
            }
        })
        .collect();
    // RFC 3339 in UTC sorts as text.
    out.sort_by(|a, b| a.time.cmp(&b.time));
    let skip = out.len().saturating_sub(RECENT_EVENTS);
    out.split_off(skip)
}

/// One failing rule of a Kyverno PolicyReport, for one resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyFailure {
    /// `fail`, `error` or `warn`.
    pub result: String,
    /// `Kind namespace/name` (`Kind name` when cluster-scoped).
    pub resource: String,
    pub policy: String,
    pub rule: String,
    pub message: String,
}

/// The failing results of `PolicyReport`/`ClusterPolicyReport` lists
/// (wgpolicyk8s.io/v1alpha2): one per rule and resource, sorted. A report
/// names its resource in `scope` (Kyverno 1.11+) or per result in `resources`.
pub fn policy_failures(lists: &[Value]) -> Vec<PolicyFailure> {
    let s = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = |r: &Value| {
        let ns = s(r, "/namespace");
        if ns.is_empty() {
            format!("{} {}", s(r, "/kind"), s(r, "/name"))
        } else {
            format!("{} {ns}/{}", s(r, "/kind"), s(r, "/name"))
        }
    };
    let mut out = Vec::new();
    let reports = lists.iter().flat_map(|l| {
        l.get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    for report in reports {
        let results = report
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for r in results.filter(|r| {
            matches!(
                r.get("result").and_then(Value::as_str),
                Some("fail" | "error" | "warn")
            )
        }) {
            let resources: Vec<String> = match r.get("resources").and_then(Value::as_array) {
                Some(list) if !list.is_empty() => list.iter().map(name).collect(),
                _ => vec![report.get("scope").map(name).unwrap_or_default()],
            };
            for resource in resources {
                out.push(PolicyFailure {
                    result: s(r, "/result"),
                    resource,
                    policy: s(r, "/policy"),
                    rule: s(r, "/rule"),
                    message: s(r, "/message").lines().next().unwrap_or("").to_string(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.resource, &a.policy, &a.rule).cmp(&(&b.resource, &b.policy, &b.rule)));
    out.dedup();
    out
}

/// The cluster's failing policy results; empty when Kyverno's report CRDs
/// are not installed (best effort, as the events are).
pub fn read_policy_failures(kube: &cluster::flux::Kube) -> Vec<PolicyFailure> {
    let lists: Vec<Value> = [
        "policyreports.wgpolicyk8s.io",
        "clusterpolicyreports.wgpolicyk8s.io",
    ]
    .iter()
    .filter_map(|resource| {
        let mut cmd = kube.cmd().args(["get", resource, "-o", "json"]);
        if resource.starts_with("policyreports") {
            cmd = cmd.arg("-A");
        }
        cmd.read()
            .ok()
            .and_then(|out| serde_json::from_str(&out).ok())
    })
    .collect();
    policy_failures(&lists)
}

impl Args {
    pub fn run(self, _checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        match (self.read(), self.output) {
            (Ok(code), _) => Ok(code),
            // JSON readers get a document even when there is no state to show.
            (Err(e), Output::Json) => {
                let v = json!({
                    "cluster": self.cluster,
                    "ready": false,
                    "error": format!("{e:#}"),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(ExitCode::FAILURE)
            }
            (Err(e), Output::Text) => Err(e),
        }
    }

    fn read(&self) -> anyhow::Result<ExitCode> {
        let t = Toolbox::resolve().map_err(|m| anyhow::anyhow!(m.join("; ")))?;
        t.require_engine()?;
        if !kind::exists(&t, &self.cluster)? {
            anyhow::bail!(
                "cluster {} does not exist: run `cargo xtask bootstrap` first",
                self.cluster
            );
        }
        let stopped = kind::stopped_nodes(&t, &self.cluster)?;
        if !stopped.is_empty() {
            anyhow::bail!(kind::stopped_message(&self.cluster, &stopped));
        }
        bootstrap::write_kubeconfig(&t, &self.cluster)?;
        let kube = cluster::kube(&t, &self.cluster);
        let rows = kube.status()?;
        // Events are best effort: the table above is the state.
        let events = kube
            .cmd()
            .args([
                "get",
                "events",
                "-A",
                "--field-selector",
                "type=Warning",
                "-o",
                "json",
            ])
            .read()
            .ok()
            .and_then(|out| serde_json::from_str::<Value>(&out).ok())
            .map(|list| error_events(&list))
            .unwrap_or_default();
        let policy = read_policy_failures(&kube);
        let port = registry::published_port(&t, registry::REGISTRY_NAME);
        let (reference, digest) = match port {
            Ok(Some(port)) => {
                let reference = format!("oci://localhost:{port}/{}:latest", registry::REPOSITORY);
                let digest = oci_artifact::Registry::new()?
                    .inspect(&reference, &oci_artifact::Auth::Anonymous, false)
                    .map(|i| i.digest)
                    .map_err(|e| e.to_string());
                (Some(reference), digest)
            }
            Ok(None)
                if registry::state(&t, registry::REGISTRY_NAME)? == registry::State::Absent =>
            {
                (
                    None,
                    Err(format!(
                        "{} does not exist: run `cargo xtask bootstrap`",
                        registry::REGISTRY_NAME
                    )),
                )
            }
            Ok(None) => (
                None,
                Err(format!(
                    "{} publishes no port: `cargo xtask bootstrap` recreates it",
                    registry::REGISTRY_NAME
                )),
            ),
            Err(e) => (None, Err(format!("{e:#}"))),
        };
        let all_ready = rows.iter().all(|r| r.ready == "True" || r.suspended);
        match self.output {
            Output::Json => {
                let v = json!({
                    "cluster": self.cluster,
                    "objects": rows,
                    "registry": {
                        "reference": reference,
                        "digest": digest.as_ref().ok(),
                        "error": digest.as_ref().err(),
                    },
                    "ready": all_ready,
                    "error_events": events,
                    "policy_failures": policy,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Output::Text => {
                print!("{}", table(&rows));
                match (&reference, &digest) {
                    (Some(r), Ok(d)) => println!("\nregistry: {r} -> {d}"),
                    (_, Err(e)) => println!("\nregistry: {e}"),
                    _ => {}
                }
                if !events.is_empty() {
                    println!(
                        "\nrecent error events (what the errors Alert sends to chat on dev and prod):"
                    );
                    for e in &events {
                        println!("  {}  {}  {}: {}", e.time, e.object, e.reason, e.message);
                    }
                }
                if !policy.is_empty() {
                    println!("\nfailing policy rules (Kyverno PolicyReports):");
                    for f in &policy {
                        println!(
                            "  {:<5}  {}  {}/{}: {}",
                            f.result, f.resource, f.policy, f.rule, f.message
                        );
                    }
                }
            }
        }
        Ok(if all_ready {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::flux::FluxObjectStatus;

    #[test]
    fn policy_failures_one_per_failing_rule_and_resource() {
        // Kyverno 1.11+: one report per resource, named in `scope`.
        let scoped = json!({"items": [{"scope": {"kind": "Deployment", "namespace": "whoami", "name": "whoami"},
            "results": [
                {"policy": "image-tags", "rule": "image-tags", "result": "fail", "message": "images must be pinned\nmore"},
                {"policy": "pss-baseline", "rule": "pss-baseline", "result": "pass", "message": "ok"},
                {"policy": "require-requests", "rule": "require-requests", "result": "error", "message": "no such key"}]}]});
        // Older reports: resources per result, a cluster-scoped one among them.
        let listed = json!({"items": [{"results": [
            {"policy": "p", "rule": "r", "result": "warn", "message": "m",
             "resources": [{"kind": "Namespace", "name": "a"}, {"kind": "Pod", "namespace": "b", "name": "c"}]},
            {"policy": "p", "rule": "r", "result": "skip", "resources": [{"kind": "Pod", "namespace": "b", "name": "d"}]}]}]});
        let got: Vec<String> = policy_failures(&[scoped, listed])
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}/{}: {}",
                    f.result, f.resource, f.policy, f.rule, f.message
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "fail Deployment whoami/whoami image-tags/image-tags: images must be pinned",
                "error Deployment whoami/whoami require-requests/require-requests: no such key",
                "warn Namespace a p/r: m",
                "warn Pod b/c p/r: m",
            ]
        );
    }

    #[test]
    fn error_events_keep_flux_warnings_newest_last() {
        let ev = |kind: &str, ty: &str, t: &str, msg: &str| {
            json!({"type": ty, "reason": "ReconciliationFailed", "message": msg,
                "lastTimestamp": t,
                "involvedObject": {"kind": kind, "namespace": "flux-system", "name": "apps"}})
        };
        let list = json!({"items": [
            ev("Kustomization", "Warning", "2026-01-01T00:00:02Z", "second\ndetail"),
            ev("Pod", "Warning", "2026-01-01T00:00:03Z", "not flux"),
            ev("HelmRelease", "Normal", "2026-01-01T00:00:04Z", "fine"),
            ev("HelmRelease", "Warning", "2026-01-01T00:00:01Z", "first"),
        ]});
        let got = error_events(&list);
        let summary: Vec<(&str, &str)> = got
            .iter()
            .map(|e| (e.object.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("HelmRelease flux-system/apps", "first"),
                ("Kustomization flux-system/apps", "second")
            ]
        );
        let many = json!({"items": (0..15)
            .map(|i| ev("Kustomization", "Warning", &format!("2026-01-01T00:00:{i:02}Z"), &i.to_string()))
            .collect::<Vec<_>>()});
        let kept = error_events(&many);
        assert_eq!(kept.len(), RECENT_EVENTS);
        assert_eq!(kept[0].message, "5");
        assert_eq!(kept[9].message, "14");
    }

    #[test]
    fn table_aligns_columns() {
        let row = |k: &str, n: &str, r: &str| FluxObjectStatus {
            kind: k.into(),
            name: n.into(),
            namespace: "flux-system".into(),
            ready: r.into(),
            revision: "latest@sha256:ab".into(),
            message: "Applied revision\nmore".into(),
            suspended: false,
        };
        let t = table(&[
            row("OCIRepository", "flux-system", "True"),
            row("Kustomization", "apps", "False"),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("KIND           NAME"), "{t}");
        assert!(
            lines[2].starts_with("Kustomization  flux-system/apps         False"),
            "{t}"
        );
        assert!(lines[2].ends_with("Applied revision"), "{t}");
    }
}
