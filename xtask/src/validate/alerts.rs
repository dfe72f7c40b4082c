//! Flux notifications must point at what the same cluster has.
//!
//! notification-controller accepts an Alert whose Provider does not exist, or
//! whose event sources name nothing, and then stays silent: the failure it was
//! meant to report reaches no one. Per cluster, among the objects its Flux
//! Kustomizations apply, this check requires
//! - for every Alert (`notification.toolkit.fluxcd.io`), a Provider named by
//!   `spec.providerRef.name` in the Alert's namespace;
//! - for every entry of `spec.eventSources`, at least one object of that kind
//!   in its namespace (the Alert's when unset) whose name matches (`*` matches
//!   any; `matchLabels` narrows nothing here: labels can change at runtime);
//! - for every Provider with `spec.secretRef`, that Secret in its namespace.
//!
//! The sync's own OCIRepository and Kustomization `flux-system` are created by
//! bootstrap, not by a Flux Kustomization, so they count as present.

use std::collections::HashSet;

use serde_json::Value;

use super::{Check, Finding, Item};

const GROUP: &str = "notification.toolkit.fluxcd.io/";

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn is_notification(o: &Value, kind: &str) -> bool {
    str_at(o, "/kind") == Some(kind)
        && str_at(o, "/apiVersion").is_some_and(|a| a.starts_with(GROUP))
}

/// `(kind, namespace, name)` of every object among `items`, plus the root
/// sync that bootstrap creates.
fn present(items: &[Item]) -> HashSet<(String, String, String)> {
    let mut out: HashSet<(String, String, String)> = items
        .iter()
        .filter_map(|it| {
            let o = &it.object;
            Some((
                str_at(o, "/kind")?.to_string(),
                str_at(o, "/metadata/namespace")
                    .unwrap_or("default")
                    .to_string(),
                str_at(o, "/metadata/name")?.to_string(),
            ))
        })
        .collect();
    for kind in ["OCIRepository", "Kustomization"] {
        out.insert((kind.into(), "flux-system".into(), "flux-system".into()));
    }
    out
}

/// One dangling reference: the JSON path and what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    pub path: String,
    pub message: String,
}

/// The dangling references of one Alert or Provider `object`, given what the
/// cluster has. Other objects have none.
pub fn dangling(object: &Value, have: &HashSet<(String, String, String)>) -> Vec<Dangling> {
    let namespace = str_at(object, "/metadata/namespace").unwrap_or("default");
    let has = |kind: &str, ns: &str, name: &str| {
        if name == "*" {
            have.iter().any(|(k, n, _)| k == kind && n == ns)
        } else {
            have.contains(&(kind.to_string(), ns.to_string(), name.to_string()))
        }
    };
    let mut out = Vec::new();
    if is_notification(object, "Alert") {
        match str_at(object, "/spec/providerRef/name") {
            Some(p) if has("Provider", namespace, p) => {}
            Some(p) => out.push(Dangling {
                path: "spec.providerRef.name".into(),
                message: format!(
                    "Provider {namespace}/{p} does not exist in this cluster: the Alert sends nothing"
                ),
            }),
            None => out.push(Dangling {
                path: "spec.providerRef".into(),
                message: "the Alert names no Provider".into(),
            }),
        }
        let sources = object
            .pointer("/spec/eventSources")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, s) in sources.iter().enumerate() {
            let kind = str_at(s, "/kind").unwrap_or("");
            let name = str_at(s, "/name").unwrap_or("");
            let ns = str_at(s, "/namespace").unwrap_or(namespace);
            if ns == "*" {
                out.push(Dangling {
                    path: format!("spec.eventSources[{i}].namespace"),
                    message:
                        "notification-controller matches no namespace wildcard: name each namespace"
                            .into(),
                });
            } else if !has(kind, ns, name) {
                let what = if name == "*" {
                    format!("no {kind} in namespace {ns}")
                } else {
                    format!("no {kind} {ns}/{name}")
                };
                out.push(Dangling {
                    path: format!("spec.eventSources[{i}]"),
                    message: format!("{what} in this cluster: the event source matches nothing"),
                });
            }
        }
    }
    if is_notification(object, "Provider")
        && let Some(secret) = str_at(object, "/spec/secretRef/name")
        && !has("Secret", namespace, secret)
    {
        out.push(Dangling {
            path: "spec.secretRef.name".into(),
            message: format!(
                "Secret {namespace}/{secret} does not exist in this cluster: the Provider cannot send"
            ),
        });
    }
    out
}

/// The findings for one cluster: `items` are the objects its Flux
/// Kustomizations apply.
pub fn check_cluster(cluster: &str, items: &[Item]) -> Vec<Finding> {
    let have = present(items);
    let mut findings = Vec::new();
    for it in items {
        for d in dangling(&it.object, &have) {
            let mut f = Finding::error(
                Check::Flux,
                &it.file,
                it.line,
                format!("cluster {cluster}: {}", d.message),
            )
            .with_object(super::flux::describe(&it.object));
            f.path = Some(d.path);
            findings.push(f);
        }
    }
    findings
}

/// `(alerts, providers)` among `items`, for counts in tests and summaries.
pub fn count(items: &[Item]) -> (usize, usize) {
    let n = |kind| {
        items
            .iter()
            .filter(|it| is_notification(&it.object, kind))
            .count()
    };
    (n("Alert"), n("Provider"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(provider: &str, sources: Value) -> Value {
        json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
            "metadata": {"name": "errors", "namespace": "flux-system"},
            "spec": {"providerRef": {"name": provider}, "eventSources": sources}})
    }

    fn provider(name: &str, secret: Option<&str>) -> Value {
        let mut p = json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider",
            "metadata": {"name": name, "namespace": "flux-system"}, "spec": {"type": "slack"}});
        if let Some(s) = secret {
            p["spec"]["secretRef"] = json!({"name": s});
        }
        p
    }

    fn release(ns: &str) -> Value {
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "app", "namespace": ns}})
    }

    #[test]
    fn a_complete_set_has_nothing_dangling() {
        let items: Vec<Item> = [
            alert(
                "chat",
                json!([{"kind": "Kustomization", "name": "*"},
                   {"kind": "OCIRepository", "name": "flux-system"},
                   {"kind": "HelmRelease", "name": "*", "namespace": "web"},
                   {"kind": "HelmRelease", "name": "app", "namespace": "web"}]),
            ),
            provider("chat", Some("hook")),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook", "namespace": "flux-system"}}),
            release("web"),
        ]
        .into_iter()
        .map(Item::test)
        .collect();
        let have = present(&items);
        let found: Vec<Dangling> = items
            .iter()
            .flat_map(|it| dangling(&it.object, &have))
            .collect();
        assert_eq!(found, Vec::new());
        assert_eq!(count(&items), (1, 1));
    }

    #[test]
    fn each_missing_reference_is_named_at_its_path() {
        let items: Vec<Item> = [
            alert(
                "pager",
                json!([{"kind": "HelmRelease", "name": "*", "namespace": "gone"},
                   {"kind": "HelmRelease", "name": "other", "namespace": "web"},
                   {"kind": "HelmRelease", "name": "*", "namespace": "*"}]),
            ),
            provider("chat", Some("hook")),
            release("web"),
        ]
        .into_iter()
        .map(Item::test)
        .collect();
        let have = present(&items);
        let alert_found = dangling(&items[0].object, &have);
        let paths: Vec<&str> = alert_found.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.providerRef.name",
                "spec.eventSources[0]",
                "spec.eventSources[1]",
                "spec.eventSources[2].namespace"
            ]
        );
        assert_eq!(
            alert_found[0].message,
            "Provider flux-system/pager does not exist in this cluster: the Alert sends nothing"
        );
        assert_eq!(
            alert_found[1].message,
            "no HelmRelease in namespace gone in this cluster: the event source matches nothing"
        );
        assert_eq!(
            alert_found[2].message,
            "no HelmRelease web/other in this cluster: the event source matches nothing"
        );
        let provider_found = dangling(&items[1].object, &have);
        assert_eq!(
            provider_found,
            vec![Dangling {
                path: "spec.secretRef.name".into(),
                message: "Secret flux-system/hook does not exist in this cluster: the Provider cannot send".into()
            }]
        );
    }
}
