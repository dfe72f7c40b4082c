//! `cargo xtask status`: every Flux object (kind, name, Ready, revision,
//! message) and the digest `latest` points at in the local registry.

use std::process::ExitCode;

use serde_json::json;

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
        let rows = cluster::kube(&t, &self.cluster).status()?;
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
