//! In-cluster addresses must point at something the same cluster deploys.
//!
//! A manifest that names an in-cluster address (Traefik's forwardAuth
//! `http://oauth2-proxy.oauth2-proxy.svc.cluster.local/`, a webhook URL, an
//! OIDC endpoint in chart values, ...) breaks at runtime when nothing in that
//! cluster serves it, and neither kustomize nor the schemas notice. This check
//! collects, per cluster:
//! - every `http(s)://NAME.NS.svc[.cluster.local]` in any string of an object
//!   (CustomResourceDefinitions aside: their schemas are prose);
//! - every structured Service reference: `clientConfig.service` (admission
//!   and conversion webhooks) and an APIService's `spec.service`;
//!
//! and requires a Service `NAME` in namespace `NS`, or a HelmRelease there
//! whose release name (or `values.fullnameOverride`) is `NAME`, since a chart
//! names its main Service after the release, among the objects the cluster's
//! Flux Kustomizations apply.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::tree::Tree;
use super::{Check, Finding, Item};

/// `scheme://name.namespace.svc[.cluster.local]` followed by the end of the
/// text or a character that cannot continue a host name.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bhttps?://([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)\.([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)\.svc(?:\.cluster\.local)?(?:$|[^a-z0-9.-])",
    )
    .expect("static regex")
});

/// One in-cluster address named by an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The Service name.
    pub name: String,
    pub namespace: String,
    /// As written: the URL, or `clientConfig.service` for a structured reference.
    pub text: String,
    /// JSON path inside the object.
    pub path: String,
}

/// Every in-cluster address `object` names.
pub fn addresses(object: &Value) -> Vec<Address> {
    let mut out = Vec::new();
    let crd = object.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition");
    walk(object, &mut String::new(), !crd, &mut out);
    if object.get("kind").and_then(Value::as_str) == Some("APIService")
        && let Some(service) = object.pointer("/spec/service")
        && let Some(a) = service_ref(service, "spec.service", ".spec.service")
    {
        out.push(a);
    }
    out
}

fn walk(v: &Value, path: &mut String, strings: bool, out: &mut Vec<Address>) {
    match v {
        Value::String(s) if strings => {
            for c in URL.captures_iter(s) {
                let whole = c.get(0).map_or("", |m| m.as_str());
                let text = whole
                    .trim_end_matches(|ch: char| !ch.is_ascii_alphanumeric())
                    .to_string();
                out.push(Address {
                    name: c[1].to_ascii_lowercase(),
                    namespace: c[2].to_ascii_lowercase(),
                    text,
                    path: path.clone(),
                });
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                if k == "clientConfig"
                    && let Some(service) = child.get("service")
                    && let Some(a) = service_ref(service, "clientConfig.service", path)
                {
                    out.push(a);
                }
                walk(child, path, strings, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(child, path, strings, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn service_ref(service: &Value, what: &str, path: &str) -> Option<Address> {
    let name = service.get("name").and_then(Value::as_str)?;
    let namespace = service.get("namespace").and_then(Value::as_str)?;
    Some(Address {
        name: name.to_string(),
        namespace: namespace.to_string(),
        text: format!("{what} {namespace}/{name}"),
        path: format!("{path}.service"),
    })
}

/// `(namespace, name)` of every Service and HelmRelease (by release name and
/// fullnameOverride) among `items`.
pub fn deployed(items: &[Item]) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for it in items {
        let o = &it.object;
        let kind = o.get("kind").and_then(Value::as_str);
        let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let name = o.pointer("/metadata/name").and_then(Value::as_str);
        let namespace = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        match (kind, name) {
            (Some("Service"), Some(name)) if api == "v1" => {
                out.insert((namespace.to_string(), name.to_string()));
            }
            (Some("HelmRelease"), Some(name)) if api.starts_with("helm.toolkit.fluxcd.io/") => {
                let ns = o
                    .pointer("/spec/targetNamespace")
                    .and_then(Value::as_str)
                    .unwrap_or(namespace);
                for n in [
                    Some(name),
                    o.pointer("/spec/releaseName").and_then(Value::as_str),
                    o.pointer("/spec/values/fullnameOverride")
                        .and_then(Value::as_str),
                ]
                .into_iter()
                .flatten()
                {
                    out.insert((ns.to_string(), n.to_string()));
                }
            }
            _ => {}
        }
    }
    out
}

/// The findings for one cluster: `items` are the objects its Flux
/// Kustomizations apply, after substitution.
pub fn check_cluster(tree: &Tree, cluster: &str, items: &[Item]) -> Vec<Finding> {
    let have = deployed(items);
    let mut findings = Vec::new();
    for it in items {
        for a in addresses(&it.object) {
            if have.contains(&(a.namespace.clone(), a.name.clone())) {
                continue;
            }
            // The line that names the host, in the object's own file.
            let needle = format!("{}.{}", a.name, a.namespace);
            let (file, line) = match tree.locate(&it.object, "", Some(&needle), &it.file) {
                (f, l) if f == it.file => (f, l.or(it.line)),
                _ => (it.file.clone(), it.line),
            };
            let mut f = Finding::error(
                Check::Address,
                &file,
                line,
                format!(
                    "{} names Service {}/{}, but cluster {cluster} deploys no Service or HelmRelease {} in namespace {}",
                    a.text, a.namespace, a.name, a.name, a.namespace
                ),
            )
            .with_object(super::flux::describe(&it.object));
            f.path = (!a.path.is_empty()).then_some(a.path);
            findings.push(f);
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_urls_in_any_string_with_or_without_the_cluster_domain() {
        let o = json!({
            "kind": "Middleware",
            "spec": {
                "forwardAuth": {"address": "http://oauth2-proxy.oauth2-proxy.svc.cluster.local/oauth2/auth"},
                "list": ["see https://Dex.dex.svc:5556/keys and http://a.b.svc"],
                "config": "redeem_url = \"http://dex.dex.svc.cluster.local:5556/token\"",
            }
        });
        let got: Vec<(String, String, String, String)> = addresses(&o)
            .into_iter()
            .map(|a| (a.namespace, a.name, a.text, a.path))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "oauth2-proxy".into(),
                    "oauth2-proxy".into(),
                    "http://oauth2-proxy.oauth2-proxy.svc.cluster.local".into(),
                    ".spec.forwardAuth.address".into()
                ),
                (
                    "dex".into(),
                    "dex".into(),
                    "https://Dex.dex.svc".into(),
                    ".spec.list[0]".into()
                ),
                (
                    "b".into(),
                    "a".into(),
                    "http://a.b.svc".into(),
                    ".spec.list[0]".into()
                ),
                (
                    "dex".into(),
                    "dex".into(),
                    "http://dex.dex.svc.cluster.local".into(),
                    ".spec.config".into()
                ),
            ]
        );
    }

    #[test]
    fn ignores_hosts_that_are_not_service_addresses() {
        let o = json!({"spec": {
            "a": "https://charts.example.svc.io/",
            "b": "http://oauth2-proxy.oauth2-proxy.svcx/",
            "c": "oauth2-proxy.oauth2-proxy.svc.cluster.local",
            "d": "https://dex.platform.localhost/auth",
        }});
        assert_eq!(addresses(&o), vec![]);
    }

    #[test]
    fn finds_webhook_and_api_service_references_and_skips_crd_prose() {
        let webhook = json!({
            "kind": "ValidatingWebhookConfiguration",
            "webhooks": [{"clientConfig": {"service": {"name": "hook", "namespace": "sys"}}}]
        });
        let a = addresses(&webhook);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].namespace.as_str(), a[0].name.as_str()),
            ("sys", "hook")
        );
        assert_eq!(a[0].path, ".webhooks[0].clientConfig.service");
        let api = json!({"kind": "APIService", "spec": {"service": {"name": "metrics-server", "namespace": "kube-system"}}});
        assert_eq!(addresses(&api)[0].name, "metrics-server");
        let crd = json!({"kind": "CustomResourceDefinition", "spec": {
            "versions": [{"schema": {"description": "e.g. http://foo.bar.svc"}}],
            "conversion": {"webhook": {"clientConfig": {"service": {"name": "conv", "namespace": "sys"}}}}
        }});
        let a = addresses(&crd);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].name, "conv");
    }

    #[test]
    fn services_and_helm_releases_count_as_deployed() {
        let items = vec![
            Item::test(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "a"}}),
            ),
            Item::test(
                json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": "dex", "namespace": "flux-system"},
                "spec": {"targetNamespace": "dex", "releaseName": "dex-rel", "values": {"fullnameOverride": "sso"}}}),
            ),
            // Not a core Service: does not count.
            Item::test(
                json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "kn", "namespace": "a"}}),
            ),
        ];
        let d = deployed(&items);
        for (ns, n) in [
            ("a", "svc"),
            ("dex", "dex"),
            ("dex", "dex-rel"),
            ("dex", "sso"),
        ] {
            assert!(
                d.contains(&(ns.to_string(), n.to_string())),
                "{ns}/{n}: {d:?}"
            );
        }
        assert!(!d.contains(&("a".to_string(), "kn".to_string())));
        assert_eq!(d.len(), 4);
    }
}
