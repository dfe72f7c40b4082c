//! `cargo xtask bootstrap`: a local Kind cluster that Flux reconciles from
//! our own artifact, in nine idempotent steps (see [`crate::cluster::bootstrap`]);
//! or, for a cluster folder without a kind.yaml (dev, prod), an existing
//! cluster from the kubeconfig (see [`crate::cluster::existing`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::cluster::{bootstrap, existing, registry, steps::fmt_duration};

/// Why a `--timeout` value is not a duration.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?} (e.g. 90s, 10m)")]
    Number(String, #[source] std::num::ParseIntError),
    #[error("invalid duration unit in {0:?} (use s, m or h)")]
    Unit(String),
}

/// Parses `90s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|e| DurationError::Number(s.to_string(), e))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(DurationError::Unit(s.to_string())),
    };
    Ok(Duration::from_secs(secs))
}

#[derive(clap::Args)]
pub struct Args {
    /// The cluster folder under clusters/ (and the kind cluster's name).
    #[arg(long, default_value = "local")]
    cluster: String,
    /// Delete the cluster and the local registry first (mirrors are kept).
    #[arg(long)]
    recreate: bool,
    /// How long to wait for Cilium, CoreDNS, the nodes, the Flux controllers
    /// and every Flux object, in all; the clock starts once the cluster exists.
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    timeout: Duration,
    /// Host port of the local registry (127.0.0.1 only).
    #[arg(long, env = "XTASK_REGISTRY_PORT", default_value_t = registry::DEFAULT_PORT)]
    registry_port: u16,
    /// Pull-through caches for docker.io, ghcr.io, quay.io and registry.k8s.io.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    mirrors: bool,
    /// The kind config [default: clusters/<cluster>/kind.yaml].
    #[arg(long)]
    kind_config: Option<PathBuf>,
    /// The tree to render and publish [default: this repository].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Existing clusters (no kind.yaml): the kubeconfig [default: KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Existing clusters: the kubeconfig context [default: its current-context].
    #[arg(long, value_name = "CTX")]
    context: Option<String>,
    /// Existing clusters: the docker config folder holding credentials for
    /// the pull secret [default: $DOCKER_CONFIG, else ~/.docker]; GITHUB_TOKEN
    /// and REGISTRY_USERNAME/REGISTRY_PASSWORD come first.
    #[arg(long, value_name = "DIR")]
    docker_config: Option<PathBuf>,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let root = checkout.tree(self.root.clone())?;
        // The secrets gate first: nothing is created for a tree that cannot ship.
        let ids = sops::Identities::from_env().ok();
        crate::ship::gate_tree(&root, ids.as_ref())?;
        if !existing::is_kind_cluster(&root, &self.cluster) {
            return self.run_existing(checkout, root);
        }
        if self.kubeconfig.is_some() || self.context.is_some() {
            anyhow::bail!(
                "--kubeconfig and --context are for existing clusters; clusters/{} has a kind.yaml, so bootstrap creates it",
                self.cluster
            );
        }
        let mut o = bootstrap::Options::new(root, &self.cluster);
        if let Ok(repo) = checkout.root() {
            o.checkout = repo.to_path_buf();
        }
        if let Some(k) = self.kind_config {
            o.kind_config = k;
        }
        o.recreate = self.recreate;
        o.timeout = self.timeout;
        o.registry_wait = self.timeout.min(o.registry_wait);
        o.registry_port = self.registry_port;
        o.mirrors = self.mirrors;
        let registry = oci_artifact::Registry::new()?;
        match bootstrap::run(&o, &registry) {
            Ok(s) => {
                eprintln!();
                eprintln!(
                    "cluster {} is Ready in {} (artifact {})",
                    o.cluster,
                    fmt_duration(s.total),
                    s.digest
                );
                eprintln!("waits: {}", s.budget);
                eprintln!(
                    "kubectl: kubectl --context kind-{} ... (or KUBECONFIG={})",
                    o.cluster,
                    s.kubeconfig.display()
                );
                match &s.ca {
                    bootstrap::CaFile::Saved(ca) => {
                        let ca = ca.display();
                        eprintln!(
                            "trust the cluster's CA so browsers accept the URLs: {ca}\n  \
                             macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}\n  \
                             Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/ && sudo update-ca-certificates\n  \
                             Fedora:        sudo cp {ca} /etc/pki/ca-trust/source/anchors/ && sudo update-ca-trust\n  \
                             Firefox keeps its own store: Settings > Privacy & Security > Certificates > Import"
                        );
                    }
                    bootstrap::CaFile::FetchWith(how) => eprintln!(
                        "trust the cluster's CA so browsers accept the URLs; fetch it with:\n  {how}"
                    ),
                }
                if !s.urls.is_empty() {
                    let hosts: Vec<&str> = s
                        .urls
                        .iter()
                        .map(|u| u.trim_start_matches("https://"))
                        .collect();
                    eprintln!("add to /etc/hosts: 127.0.0.1 {}", hosts.join(" "));
                }
                for u in &s.urls {
                    println!("{u}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!(
                    "fix it and re-run `cargo xtask bootstrap`: every step converges, so finished work is reused"
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

impl Args {
    /// An existing cluster from the kubeconfig: no kind, no local registry.
    fn run_existing(self, checkout: &crate::Checkout, root: PathBuf) -> anyhow::Result<ExitCode> {
        if !root.join("clusters").join(&self.cluster).is_dir() {
            anyhow::bail!("there is no clusters/{} folder", self.cluster);
        }
        let o = existing::Options {
            kube: existing::kube_for(self.kubeconfig, self.context)?,
            root,
            cluster: self.cluster.clone(),
            timeout: self.timeout,
            age_sources: crate::cluster::age_key::env_sources()?,
            credentials: existing::Credentials::Environment {
                docker_config: self.docker_config,
            },
            flux: existing::FluxMode::Install(crate::cluster::flux_install::FluxPin::of_repo(
                checkout.root()?,
            )?),
            wait_helm_releases: true,
        };
        match existing::run(&o) {
            Ok(s) => {
                eprintln!();
                eprintln!(
                    "cluster {} (context {}, {}) is Ready in {}",
                    o.cluster,
                    s.context,
                    s.server_version,
                    fmt_duration(s.total)
                );
                eprintln!("waits: {}", s.budget);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!(
                    "fix it and re-run `cargo xtask bootstrap --cluster {}`: every step converges",
                    o.cluster
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        let err = parse_duration("5d").unwrap_err();
        assert!(matches!(err, DurationError::Unit(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"invalid duration unit in "5d" (use s, m or h)"#
        );
        let err = parse_duration("m").unwrap_err();
        assert!(matches!(err, DurationError::Number(..)), "{err:?}");
        assert_eq!(err.to_string(), r#"invalid duration "m" (e.g. 90s, 10m)"#);
    }
}
