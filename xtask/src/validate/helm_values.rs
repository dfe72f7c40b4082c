//! `--helm`: every HelmRelease values key its chart does not know, as a
//! warning that names the closest known key. Helm ignores such a key, so a
//! misspelling deploys the chart's default without a word. Also a warning for
//! a CRD policy (`install.crds`/`upgrade.crds`) on a chart without a `crds/`
//! folder, where it does nothing.

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
            let Ok((chart, values)) = keys::release_chart_keys(release, &all, helm) else {
                return Vec::new();
            };
            let name = |p: &str| {
                release
                    .pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let object = format!(
                "HelmRelease {}/{}",
                name("/metadata/namespace"),
                name("/metadata/name")
            );
            let warning = |needle: &str, path: String, message: String| {
                let (file, line) =
                    tree.locate(release, "", Some(needle), &format!("clusters/{cluster}"));
                let mut f = Finding::error(
                    Check::Helm,
                    &file,
                    line,
                    format!("cluster {cluster}: {message}"),
                )
                .with_object(object.clone());
                f.severity = Severity::Warning;
                f.path = Some(path);
                f
            };
            let mut out: Vec<Finding> = chart
                .unknown(&values)
                .into_iter()
                .map(|u| warning(&format!("{}:", u.key), format!("spec.values.{}", u.path), u.message()))
                .collect();
            out.extend(keys::idle_crd_policies(release, &chart).into_iter().map(|path| {
                warning(
                    "crds:",
                    path,
                    "the chart keeps no CRDs in crds/, so this CRD policy does nothing (CRDs that are templates are applied like any object): remove it".into(),
                )
            }));
            out
        })
        .collect()
}
