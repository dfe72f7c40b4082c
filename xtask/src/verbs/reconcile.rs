//! `cargo xtask reconcile`: the inner loop. Publish the tree to the local
//! registry, ask Flux to reconcile the source and every Kustomization now
//! (`reconcile.fluxcd.io/requestedAt`), and wait until they are Ready.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::bootstrap::parse_duration;
use crate::cluster::{self, Toolbox, bootstrap, kind, registry, steps::Steps};
use flux_render::RenderOptions;

#[derive(clap::Args)]
pub struct Args {
    /// The kind cluster to publish to and reconcile.
    #[arg(long, default_value = "local")]
    cluster: String,
    /// How long to wait for every object to be Ready.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// The tree to render and publish [default: this repository].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let root = checkout.tree(self.root)?;
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
        let registry = oci_artifact::Registry::new()?;
        let deadline = Instant::now() + self.timeout;
        let kube = cluster::kube(&t, &self.cluster);
        let mut steps = Steps::new(3);
        let rendered = steps.run("Publish", |_| {
            let rendered =
                flux_render::render_cluster(&root, &self.cluster, &RenderOptions::default())?;
            let port = registry::published_port(&t, registry::REGISTRY_NAME)?
                .ok_or_else(|| anyhow::anyhow!("{} publishes no port", registry::REGISTRY_NAME))?;
            let outcome = bootstrap::publish(&registry, checkout.root()?, &root, port)?;
            Ok((rendered, outcome))
        });
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let order = bootstrap::wait_order(&rendered);
        if let Err(e) = steps.run("Request reconcile", |_| {
            bootstrap::write_kubeconfig(&t, &self.cluster)?;
            let mut n = 0;
            for (kind, ns, name) in order.iter().filter(|(k, _, _)| k != "HelmRelease") {
                kube.request_reconcile(kind, ns, name)?;
                n += 1;
            }
            Ok(((), format!("{n} object(s)")))
        }) {
            return fail(e);
        }
        if let Err(e) = steps.run("Wait", |p| {
            bootstrap::wait_all(&kube, &order, deadline, p)?;
            Ok(((), format!("{} object(s) Ready", order.len())))
        }) {
            return fail(e);
        }
        eprintln!(
            "reconciled in {}",
            cluster::steps::fmt_duration(steps.elapsed())
        );
        Ok(ExitCode::SUCCESS)
    }
}

fn fail(e: cluster::steps::StepFailed) -> anyhow::Result<ExitCode> {
    eprintln!("error: {e}");
    Ok(ExitCode::FAILURE)
}
