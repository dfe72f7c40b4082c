//! `matchConstraints` as the API server reads them for a CREATE request:
//! resource rules and exclusions, namespace and object label selectors.

use serde_json::{Value, json};

/// The plural resource of a kind, as the API server's discovery names it;
/// irregular plurals of the built-in kinds first, then English rules.
pub fn resource_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.as_str() {
        "endpoints" => lower,
        "podsecuritypolicy" => "podsecuritypolicies".into(),
        _ if lower.ends_with('y')
            && !matches!(
                lower.as_bytes().get(lower.len().wrapping_sub(2)),
                Some(b'a' | b'e' | b'o' | b'u')
            ) =>
        {
            format!("{}ies", &lower[..lower.len() - 1])
        }
        _ if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") => {
            format!("{lower}es")
        }
        _ => format!("{lower}s"),
    }
}

fn group_version(object: &Value) -> (&str, &str) {
    let api = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    api.split_once('/').unwrap_or(("", api))
}

fn kind(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// The `request` variable of a CREATE admission of `object`.
pub(crate) fn request(object: &Value) -> Value {
    let (group, version) = group_version(object);
    let meta = |k: &str| {
        object
            .pointer(&format!("/metadata/{k}"))
            .cloned()
            .unwrap_or(json!(""))
    };
    json!({
        "operation": "CREATE",
        "kind": {"group": group, "version": version, "kind": kind(object)},
        "resource": {"group": group, "version": version, "resource": resource_of(kind(object))},
        "subResource": "",
        "name": meta("name"),
        "namespace": meta("namespace"),
        "dryRun": false,
    })
}

fn listed(list: Option<&Value>, value: &str) -> bool {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|s| s == "*" || s == value)
}

fn rule_matches(rule: &Value, object: &Value) -> bool {
    let (group, version) = group_version(object);
    let resource = resource_of(kind(object));
    listed(rule.get("apiGroups"), group)
        && listed(rule.get("apiVersions"), version)
        && listed(rule.get("operations"), "CREATE")
        && rule
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|r| r == "*" || r == resource || r == "*/*")
}

fn labels(object: &Value) -> Value {
    object
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// A `metav1.LabelSelector` (k8s-rules' reading); a missing one selects everything.
pub(crate) fn selects(selector: Option<&Value>, labels: &Value) -> bool {
    let empty = serde_json::Map::new();
    selector.is_none_or(|s| k8s_rules::selects(s, labels.as_object().unwrap_or(&empty)))
}

/// True when `constraints` select `object` (in `namespace`, if namespaced).
pub(crate) fn matches(constraints: &Value, object: &Value, namespace: Option<&Value>) -> bool {
    let any = |key: &str| {
        constraints
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| rule_matches(r, object))
    };
    if !any("resourceRules") || any("excludeResourceRules") {
        return false;
    }
    // A Namespace is selected by its own labels; another cluster-scoped
    // object is never skipped by a namespaceSelector.
    let ns_labels = if kind(object) == "Namespace" {
        Some(labels(object))
    } else {
        namespace.map(labels)
    };
    if let Some(ns) = ns_labels
        && !selects(constraints.get("namespaceSelector"), &ns)
    {
        return false;
    }
    selects(constraints.get("objectSelector"), &labels(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(resource_of("Deployment"), "deployments");
        assert_eq!(resource_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(resource_of("Ingress"), "ingresses");
        assert_eq!(resource_of("Endpoints"), "endpoints");
        assert_eq!(resource_of("Gateway"), "gateways");
    }

    #[test]
    fn selectors() {
        let l = json!({"a": "1", "b": "2"});
        assert!(selects(None, &l));
        assert!(selects(Some(&json!({})), &l));
        assert!(selects(Some(&json!({"matchLabels": {"a": "1"}})), &l));
        assert!(!selects(Some(&json!({"matchLabels": {"a": "2"}})), &l));
        let expr = |op: &str, vals: Value| json!({"matchExpressions": [{"key": "a", "operator": op, "values": vals}]});
        assert!(selects(Some(&expr("In", json!(["1", "3"]))), &l));
        assert!(!selects(Some(&expr("NotIn", json!(["1"]))), &l));
        assert!(selects(Some(&expr("Exists", json!([]))), &l));
        assert!(!selects(Some(&expr("DoesNotExist", json!([]))), &l));
    }
}
