//! The end-to-end scenario of `cargo xtask e2e`: our artifact, reconciled by
//! the real Flux controllers against the local control plane, with eight
//! assertions; and the edit→Ready loop of `cargo xtask bench reconcile`.
//!
//! It works on a temporary copy of the manifest tree, never on the
//! repository's own files. The copy is the e2e profile of a cluster folder:
//! - the OCIRepository points at the local registry;
//! - every Flux Kustomization gets `wait: false` and no health checks, since
//!   no kubelet runs here, so no Pod ever starts;
//! - a SOPS Secret `variables-cluster`, encrypted for an age key generated
//!   for this run, with a random value for every key of the tree's Secret,
//!   feeds postBuild substitution;
//! - a ConfigMap `e2e-probe` in the last Kustomization is what the edit test
//!   changes.
//!
//! HelmReleases are applied as objects but not reconciled: there is no
//! helm-controller and no chart repository is reachable.

mod assertions;
mod compare;
pub(crate) mod existing;
mod files;
mod policies;
mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{ControlPlane, HttpError, LocalError, crds, io_err};
use crate::cluster::flux::{self, FluxError, Kube};
use flux_render::{RenderOptions, RenderedCluster};
use oci_artifact::{Auth, PackageOptions};
use sops::{self, CreationRule, Format, Identities, Selection};

use compare::one_line;
pub use compare::{compare, compared_field_by_field};
pub use files::registry_digest;
use files::{copy_manifests, secret_value};
pub(crate) use files::{encrypt_secret, probe_yaml, read_docs, write_docs, yaml_files};
pub use scenario::Scenario;

const SOURCE: &str = "https://github.com/devantler-tech/platform";
const CREATED: &str = "2025-01-01T00:00:00Z";
const REPOSITORY: &str = "platform";
const TAG: &str = "latest";
pub(crate) const PROBE: &str = "e2e-probe";
const WRONG_KEY_SECRET: &str = "e2e-wrong-key";
const SECRET_NAME: &str = "variables-cluster";
/// How long a Flux object may take to become Ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// What to run.
#[derive(Clone, Debug)]
pub struct E2eOptions {
    /// The checkout: its manifests are copied, its pins and `target/` used.
    pub root: PathBuf,
    /// The cluster folder to profile (`clusters/<cluster>`).
    pub cluster: String,
    /// Build missing binaries first (else a missing one is an error).
    pub build: bool,
}

impl E2eOptions {
    /// The local cluster of the checkout at `root`, building what is missing.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
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

/// After a failed assertion: whether a control-plane process died, and
/// where the logs are.
fn explain_failure(s: &mut Scenario, say: &mut impl FnMut(&str)) {
    let _ = s.cp.check_alive().map_err(|dead| {
        say(&format!("a control-plane process died: {dead}"));
    });
    say(&format!(
        "logs: {} (etcd, kube-apiserver, registry, source-controller, kustomize-controller)",
        s.cp.log_dir.display()
    ));
}

/// Runs the whole scenario; `say` receives progress and one line per passed assertion.
pub fn run_e2e(opts: &E2eOptions, mut say: impl FnMut(&str)) -> Result<E2eReport, LocalError> {
    // A cluster without a kind.yaml (dev, prod) is an existing cluster:
    // its own scenario runs the existing-cluster bootstrap.
    if !crate::cluster::existing::is_kind_cluster(&opts.root, &opts.cluster) {
        return existing::run(opts, say);
    }
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

        let line = s.check_policies()?;
        say(&line);
        report.passed.push(line);
        Ok(())
    })();
    if let Err(e) = result {
        explain_failure(&mut s, &mut say);
        return Err(e);
    }
    report.total = started.elapsed();
    Ok(report)
}
