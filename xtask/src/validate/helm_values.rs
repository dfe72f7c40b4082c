//! `--helm`: every HelmRelease values key its chart does not know, as a
//! warning that names the closest known key. Helm ignores such a key, so a
//! misspelling deploys the chart's default without a word.

use rayon::prelude::*;
use serde_json::Value;

use flux_render::RenderedCluster;
use flux_render::helm::{HelmOptions, is_helm_release, keys};

use super::tree::Tree;
use super::{Check, Finding, Severity};

/// The warnings for one rendered cluster. A release whose chart cannot be
/// fetched is left to the rendering step, which reports it.
pub fn check_cluster(
    tree: &Tree,
    cluster: &str,
    rendered: &RenderedCluster,
    helm: &HelmOptions,
) -> Vec<Finding> {
    let all: Vec<&Value> = rendered
        .root_objects
        .iter()
        .chain(rendered.kustomizations.iter().flat_map(|k| &k.objects))
        .collect();
    let releases: Vec<&Value> = all.iter().copied().filter(|o| is_helm_release(o)).collect();
    releases
        .par_iter()
        .flat_map(|release| {
            let Ok(unknown) = keys::release_unknown_keys(release, &all, helm) else {
                return Vec::new();
            };
            let name = |p: &str| {
                release
                    .pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (namespace, rname) = (name("/metadata/namespace"), name("/metadata/name"));
            unknown
                .into_iter()
                .map(|u| {
                    let (file, line) = tree.locate(
                        release,
                        "",
                        Some(&format!("{}:", u.key)),
                        &format!("clusters/{cluster}"),
                    );
                    let mut f = Finding::error(
                        Check::Helm,
                        &file,
                        line,
                        format!("cluster {cluster}: {}", u.message()),
                    )
                    .with_object(format!("HelmRelease {namespace}/{rname}"));
                    f.severity = Severity::Warning;
                    f.path = Some(format!("spec.values.{}", u.path));
                    f
                })
                .collect()
        })
        .collect()
}
