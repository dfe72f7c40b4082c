//! Comparing what was rendered with what the API server holds.

use super::*;

/// Built-in kinds other than ConfigMap and Secret get server-side defaults
/// and normalised quantities, so only their existence is checked; ConfigMaps,
/// Secrets and custom resources are compared field by field.
pub fn compared_field_by_field(expected: &Value) -> bool {
    let kind = expected.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = expected
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    matches!(kind, "ConfigMap" | "Secret") || !crds::BUILTIN_GROUPS.contains(&group)
}

/// Whether `expected` is contained in `live`, for the fields a manifest sets.
/// Secrets compare `stringData` with the decoded `data`. `None` when equal.
pub fn compare(expected: &Value, live: &Value) -> Option<String> {
    let kind = expected.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "Secret" {
        if let Some(sd) = expected.get("stringData").and_then(Value::as_object) {
            for (k, v) in sd {
                let got = secret_value(live, k);
                if got.as_deref() != v.as_str() {
                    return Some(format!("stringData.{k}: expected {v}, found {got:?}"));
                }
            }
        }
        if let Some(d) = expected.get("data") {
            return subset(d, live.get("data").unwrap_or(&Value::Null), "data");
        }
        return None;
    }
    if !compared_field_by_field(expected) {
        return None;
    }
    for field in ["data", "spec"] {
        if let Some(e) = expected.get(field)
            && let Some(d) = subset(e, live.get(field).unwrap_or(&Value::Null), field)
        {
            return Some(d);
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(e) = expected.pointer(&format!("/metadata/{field}"))
            && let Some(d) = subset(
                e,
                live.pointer(&format!("/metadata/{field}"))
                    .unwrap_or(&Value::Null),
                &format!("metadata.{field}"),
            )
        {
            return Some(d);
        }
    }
    None
}

pub(super) fn subset(expected: &Value, live: &Value, path: &str) -> Option<String> {
    match (expected, live) {
        (Value::Object(e), Value::Object(l)) => e
            .iter()
            .find_map(|(k, v)| subset(v, l.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))),
        (Value::Array(e), Value::Array(l)) if e.len() == l.len() => e
            .iter()
            .zip(l)
            .enumerate()
            .find_map(|(i, (a, b))| subset(a, b, &format!("{path}[{i}]"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        (Value::Null, _) => None,
        (a, b) => Some(format!("{path}: expected {a}, found {b}")),
    }
}

pub(super) fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}...", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ignores_server_additions() {
        let exp = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1"}});
        let live = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1", "b": "2"}, "metadata": {"uid": "x"}});
        assert_eq!(compare(&exp, &live), None);
        let live = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "2"}});
        assert_eq!(
            compare(&exp, &live).unwrap(),
            "data.a: expected \"1\", found \"2\""
        );
    }

    #[test]
    fn secrets_compare_string_data_with_decoded_data() {
        let exp = json!({"kind": "Secret", "apiVersion": "v1", "stringData": {"p": "pw"}});
        let live = json!({"kind": "Secret", "apiVersion": "v1", "data": {"p": "cHc="}});
        assert_eq!(compare(&exp, &live), None);
        let live = json!({"kind": "Secret", "apiVersion": "v1", "data": {"p": "eA=="}});
        assert!(compare(&exp, &live).is_some());
    }
}
