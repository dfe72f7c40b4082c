//! Kyverno's CEL policies of each cluster, judged offline ([`k8s_policy`]):
//! every ValidatingPolicy and PolicyException a cluster applies, against
//! every object that cluster applies (chart output too, under `--helm`).
//! A violation of a Deny policy is an error, of an Audit or Warn one a
//! warning; an expression that cannot be evaluated is an error naming it.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

use super::{Check, Finding, Item};

/// The items of one cluster: a range of validate's items, and the namespace
/// that objects without one land in (a HelmRelease's), if any.
pub struct ClusterItems {
    pub cluster: String,
    pub range: Range<usize>,
    pub default_namespace: Option<String>,
}

/// Judges each cluster's objects by that cluster's policies.
pub fn check(items: &[Item], clusters: &[ClusterItems]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut names: Vec<&str> = clusters.iter().map(|c| c.cluster.as_str()).collect();
    names.dedup();
    // Clusters that apply the same policies, exceptions and namespaces share
    // one loaded (compiled) set.
    let mut loaded: HashMap<String, Result<k8s_policy::PolicySet, Vec<k8s_policy::PolicyError>>> =
        HashMap::new();
    for cluster in names {
        let parts: Vec<&ClusterItems> = clusters.iter().filter(|c| c.cluster == cluster).collect();
        let objects = parts.iter().flat_map(|p| items[p.range.clone()].iter());
        let inputs: Vec<&Value> = objects
            .clone()
            .map(|it| &it.object)
            .filter(|o| k8s_policy::PolicySet::reads(o))
            .collect();
        let fingerprint = serde_json::to_string(&inputs).unwrap_or_default();
        let set = loaded
            .entry(fingerprint)
            .or_insert_with(|| k8s_policy::PolicySet::load(inputs.iter().copied()));
        let set = match &*set {
            Ok(set) => set,
            Err(errors) => {
                for e in errors.iter() {
                    // At the policy's own file and line where a build placed it.
                    let holders = || items.iter().filter(|it| names_policy(&it.object, e));
                    let file = holders()
                        .find(|it| it.line.is_some())
                        .or_else(|| holders().next())
                        .map(|it| (it.file.clone(), it.line))
                        .unwrap_or_else(|| (format!("clusters/{cluster}"), None));
                    findings.push(Finding::error(
                        Check::Policy,
                        &file.0,
                        file.1,
                        format!("cluster {cluster}: {e}"),
                    ));
                }
                continue;
            }
        };
        if set.is_empty() {
            continue;
        }
        for part in parts {
            for it in &items[part.range.clone()] {
                findings.extend(judge(set, it, part.default_namespace.as_deref(), cluster));
            }
        }
    }
    findings
}

fn names_policy(object: &Value, error: &k8s_policy::PolicyError) -> bool {
    let name = object.pointer("/metadata/name").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    match error {
        k8s_policy::PolicyError::Invalid {
            kind: k, name: n, ..
        }
        | k8s_policy::PolicyError::Compile {
            kind: k, name: n, ..
        }
        | k8s_policy::PolicyError::Evaluate {
            kind: k, name: n, ..
        } => kind == Some(k.as_str()) && name == Some(n.as_str()),
    }
}

fn judge(
    set: &k8s_policy::PolicySet,
    it: &Item,
    default_namespace: Option<&str>,
    cluster: &str,
) -> Vec<Finding> {
    let with_ns;
    let object = match default_namespace {
        Some(ns) if it.object.pointer("/metadata/namespace").is_none() => {
            let mut o = it.object.clone();
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("namespace".into(), Value::String(ns.into()));
            }
            with_ns = o;
            &with_ns
        }
        _ => &it.object,
    };
    let verdict = set.evaluate(object);
    let label = super::flux::describe(object);
    let mut out = Vec::new();
    for v in verdict.violations {
        let mut f = Finding::error(
            Check::Policy,
            &it.file,
            it.line,
            format!("{} (policy {}, cluster {cluster})", v.message, v.policy),
        )
        .with_object(label.clone());
        if !v.denies() {
            f.severity = super::Severity::Warning;
        }
        out.push(f);
    }
    for e in verdict.errors {
        out.push(
            Finding::error(
                Check::Policy,
                &it.file,
                it.line,
                format!("cluster {cluster}: {e}"),
            )
            .with_object(label.clone()),
        );
    }
    out
}
