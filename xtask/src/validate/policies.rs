//! Kyverno's CEL policies of each cluster, judged offline ([`k8s_policy`]):
//! every ValidatingPolicy and PolicyException a cluster applies, against
//! every object that cluster applies (chart output too, under `--helm`).
//! A violation of a Deny policy is an error, of an Audit or Warn one a
//! warning; an expression that cannot be evaluated is an error naming it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

use super::{Check, Finding, Item, verdicts};

/// The items of one cluster: a range of validate's items, and the namespace
/// that objects without one land in (a HelmRelease's), if any.
pub struct ClusterItems {
    pub cluster: String,
    pub range: Range<usize>,
    pub default_namespace: Option<String>,
}

/// What a cluster's policies say of one object, kept between runs.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `(policy, message, denies)` of each violation.
    violations: Vec<(String, String, bool)>,
    /// Expressions that could not be evaluated on the object.
    errors: Vec<String>,
}

/// One object of a cluster: as the cluster receives it, the key of its
/// verdict, and the verdict once known.
struct Judged<'a> {
    item: &'a Item,
    object: Cow<'a, Value>,
    key: String,
    outcome: Option<Outcome>,
}

/// The verdicts kept between runs, and the binary that keeps them.
pub struct Memo<'a> {
    pub store: verdicts::Store<Outcome>,
    pub binary: &'a str,
}

/// Judges each cluster's objects by that cluster's policies. An object
/// judged before under the same policies, exceptions and namespaces (and
/// binary) is not judged again, and a cluster whose objects were all judged
/// before compiles no policy. `texts` are the items' JSON texts
/// ([`k8s_schema::object_text`]), in the same order.
pub fn check(
    items: &[Item],
    texts: &[String],
    clusters: &[ClusterItems],
    memo: Memo,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut names: Vec<&str> = clusters.iter().map(|c| c.cluster.as_str()).collect();
    names.dedup();
    let store = memo.store;
    let mut used = Vec::new();
    let mut fresh = Vec::new();
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
        // Namespaces alone load an empty set: nothing to judge.
        if !inputs
            .iter()
            .any(|o| o.get("kind").and_then(Value::as_str) != Some("Namespace"))
        {
            continue;
        }
        let input_texts: Vec<String> = inputs.iter().map(|o| k8s_schema::object_text(o)).collect();
        let fingerprint =
            verdicts::key(&input_texts.iter().map(String::as_str).collect::<Vec<_>>());
        let mut judged: Vec<Judged> = Vec::new();
        for part in &parts {
            for i in part.range.clone() {
                let item = &items[i];
                let object = with_namespace(&item.object, part.default_namespace.as_deref());
                let key = match &object {
                    Cow::Borrowed(_) => verdicts::key(&[memo.binary, &fingerprint, &texts[i]]),
                    Cow::Owned(o) => {
                        verdicts::key(&[memo.binary, &fingerprint, &k8s_schema::object_text(o)])
                    }
                };
                let outcome = store.get(&key);
                judged.push(Judged {
                    item,
                    object,
                    key,
                    outcome,
                });
            }
        }
        if judged.iter().any(|j| j.outcome.is_none()) {
            let set = loaded
                .entry(fingerprint)
                .or_insert_with(|| k8s_policy::PolicySet::load(inputs.iter().copied()));
            let set = match &*set {
                Ok(set) => set,
                Err(errors) => {
                    findings.extend(load_errors(items, errors, cluster));
                    continue;
                }
            };
            for j in judged.iter_mut().filter(|j| j.outcome.is_none()) {
                let outcome = evaluate(set, &j.object);
                fresh.push((j.key.clone(), outcome.clone()));
                j.outcome = Some(outcome);
            }
        }
        for j in judged {
            if let Some(outcome) = &j.outcome {
                findings.extend(place(outcome, j.item, &j.object, cluster));
            }
            used.push(j.key);
        }
    }
    store.save(fresh, &used);
    findings
}

/// The errors of a set that does not load, each at the policy's own file
/// and line where a build placed it.
fn load_errors(items: &[Item], errors: &[k8s_policy::PolicyError], cluster: &str) -> Vec<Finding> {
    errors
        .iter()
        .map(|e| {
            let holders = || items.iter().filter(|it| names_policy(&it.object, e));
            let file = holders()
                .find(|it| it.line.is_some())
                .or_else(|| holders().next())
                .map(|it| (it.file.clone(), it.line))
                .unwrap_or_else(|| (format!("clusters/{cluster}"), None));
            Finding::error(
                Check::Policy,
                &file.0,
                file.1,
                format!("cluster {cluster}: {e}"),
            )
        })
        .collect()
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

/// The object as the cluster receives it: in `default_namespace` when it
/// names none (a HelmRelease's chart output).
fn with_namespace<'a>(object: &'a Value, default_namespace: Option<&str>) -> Cow<'a, Value> {
    match default_namespace {
        Some(ns) if object.pointer("/metadata/namespace").is_none() => {
            let mut o = object.clone();
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("namespace".into(), Value::String(ns.into()));
            }
            Cow::Owned(o)
        }
        _ => Cow::Borrowed(object),
    }
}

fn evaluate(set: &k8s_policy::PolicySet, object: &Value) -> Outcome {
    let verdict = set.evaluate(object);
    Outcome {
        violations: verdict
            .violations
            .into_iter()
            .map(|v| {
                let denies = v.denies();
                (v.policy, v.message, denies)
            })
            .collect(),
        errors: verdict.errors.iter().map(ToString::to_string).collect(),
    }
}

fn place(outcome: &Outcome, it: &Item, object: &Value, cluster: &str) -> Vec<Finding> {
    let label = super::flux::describe(object);
    let mut out = Vec::new();
    for (policy, message, denies) in &outcome.violations {
        let mut f = Finding::error(
            Check::Policy,
            &it.file,
            it.line,
            format!("{message} (policy {policy}, cluster {cluster})"),
        )
        .with_object(label.clone());
        if !denies {
            f.severity = super::Severity::Warning;
        }
        out.push(f);
    }
    for e in &outcome.errors {
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
