//! A HelmRelease's values, composed as helm-controller does: each `valuesFrom`
//! reference in order (merged at the root, or set at `targetPath`), then
//! `spec.values` on top. Maps merge deeply; anything else is replaced.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::HelmError;
use crate::Decryptor;

/// Deep-merges `overlay` into `base` (helm-controller's `MergeMaps`).
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Parses a `--set`-style scalar as Helm's strvals does: quoted means string,
/// otherwise booleans, null and integers are typed.
fn typed_scalar(raw: &str) -> Value {
    for quote in ['\'', '"'] {
        if raw.len() >= 2 && raw.starts_with(quote) && raw.ends_with(quote) {
            return Value::String(raw[1..raw.len() - 1].to_string());
        }
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => match raw.parse::<i64>() {
            Ok(n) if !(raw.len() > 1 && raw.starts_with('0')) => Value::from(n),
            _ => Value::String(raw.to_string()),
        },
    }
}

/// Splits a dot path; `\.` escapes a dot inside a key.
fn path_keys(path: &str) -> Vec<String> {
    let mut keys = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                keys.last_mut().expect("non-empty").push('.');
                chars.next();
            }
            '.' => keys.push(String::new()),
            c => keys.last_mut().expect("non-empty").push(c),
        }
    }
    keys
}

/// Sets `value` (a raw string, typed as `--set` does) at the dot `path`.
pub fn set_path(values: &mut Value, path: &str, raw: &str) {
    let keys = path_keys(path);
    let mut node = values;
    for (i, key) in keys.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let map = node.as_object_mut().expect("just made an object");
        if i + 1 == keys.len() {
            map.insert(key.clone(), typed_scalar(raw));
            return;
        }
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Finds `kind/name` in `namespace` among the cluster's objects.
fn find<'a>(objects: &[&'a Value], kind: &str, namespace: &str, name: &str) -> Option<&'a Value> {
    objects.iter().copied().find(|o| {
        o.get("kind").and_then(Value::as_str) == Some(kind)
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
            && o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                == namespace
    })
}

/// One key of a ConfigMap or Secret, as text.
fn data_key(object: &Value, kind: &str, key: &str) -> Option<String> {
    if kind == "Secret" {
        if let Some(v) = object.pointer("/stringData").and_then(|d| d.get(key)) {
            return v.as_str().map(str::to_string);
        }
        let encoded = object.pointer("/data").and_then(|d| d.get(key))?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    let data = object.get("data").and_then(|d| d.get(key));
    data.and_then(Value::as_str).map(str::to_string)
}

/// A `valuesFrom` source as messages name it: `ConfigMap namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ValuesRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Composes the values of `release` (a HelmRelease object) from the objects of
/// its cluster.
pub fn compose(
    release: &Value,
    objects: &[&Value],
    decryptor: Option<&Decryptor>,
) -> Result<Value, HelmError> {
    let namespace = release
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut result = Value::Object(Map::new());
    for reference in release
        .pointer("/spec/valuesFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
        let key = reference
            .get("valuesKey")
            .and_then(Value::as_str)
            .unwrap_or("values.yaml");
        let optional = reference
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if kind != "ConfigMap" && kind != "Secret" {
            return Err(HelmError::ValuesKind(kind.to_string()));
        }
        let from = || ValuesRef {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let Some(object) = find(objects, kind, namespace, name) else {
            if optional {
                continue;
            }
            return Err(HelmError::ValuesMissing(from()));
        };
        let decrypted;
        let object = if kind == "Secret" && object.get("sops").is_some() {
            let Some(decrypt) = decryptor else {
                return Err(HelmError::NoIdentity(from()));
            };
            decrypted = decrypt(object).map_err(|source| HelmError::Decrypt {
                from: from(),
                source,
            })?;
            &decrypted
        } else {
            object
        };
        let Some(text) = data_key(object, kind, key) else {
            if optional {
                continue;
            }
            return Err(HelmError::NoValuesKey {
                from: from(),
                key: key.to_string(),
            });
        };
        match reference.get("targetPath").and_then(Value::as_str) {
            Some(path) if !path.is_empty() => set_path(&mut result, path, &text),
            _ => {
                let parsed: serde_yaml::Value =
                    serde_yaml::from_str(&text).map_err(|source| HelmError::ValuesYaml {
                        from: from(),
                        key: key.to_string(),
                        source,
                    })?;
                let parsed = serde_json::to_value(parsed)?;
                if parsed.is_object() {
                    merge(&mut result, &parsed);
                } else if !parsed.is_null() {
                    return Err(HelmError::ValuesNotMap {
                        from: from(),
                        key: key.to_string(),
                    });
                }
            }
        }
    }
    if let Some(inline) = release.pointer("/spec/values")
        && inline.is_object()
    {
        merge(&mut result, inline);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_for_maps_and_replaces_the_rest() {
        let mut a = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        merge(&mut a, &json!({"a": {"y": [3], "z": true}, "c": "n"}));
        assert_eq!(
            a,
            json!({"a": {"x": 1, "y": [3], "z": true}, "b": 1, "c": "n"})
        );
    }

    #[test]
    fn target_path_types_like_set_and_escapes_dots() {
        let mut v = json!({});
        set_path(&mut v, "a.b", "42");
        set_path(&mut v, "a.c", "'42'");
        set_path(&mut v, "ann.example\\.com/x", "true");
        set_path(&mut v, "s", "hello");
        assert_eq!(
            v,
            json!({"a": {"b": 42, "c": "42"}, "ann": {"example.com/x": true}, "s": "hello"})
        );
    }

    #[test]
    fn values_from_in_order_then_inline_on_top() {
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "v", "namespace": "n"},
            "data": {"values.yaml": "a: 1\nb: {c: 1, d: 1}\n", "other": "x: 9"}});
        let secret = json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"password": "aHVudGVyMg=="}});
        let release = json!({"kind": "HelmRelease", "metadata": {"name": "r", "namespace": "n"},
        "spec": {
            "valuesFrom": [
                {"kind": "ConfigMap", "name": "v"},
                {"kind": "ConfigMap", "name": "v", "valuesKey": "other"},
                {"kind": "Secret", "name": "s", "valuesKey": "password", "targetPath": "auth.password"},
                {"kind": "Secret", "name": "absent", "optional": true}
            ],
            "values": {"b": {"d": 2}}
        }});
        let values = compose(&release, &[&cm, &secret], None).unwrap();
        assert_eq!(
            values,
            json!({"a": 1, "b": {"c": 1, "d": 2}, "x": 9, "auth": {"password": "hunter2"}})
        );
    }

    #[test]
    fn a_missing_reference_is_an_error() {
        let release = json!({"kind": "HelmRelease", "metadata": {"name": "r", "namespace": "n"},
            "spec": {"valuesFrom": [{"kind": "ConfigMap", "name": "nope"}]}});
        let err = compose(&release, &[], None).unwrap_err();
        assert!(matches!(err, HelmError::ValuesMissing(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "valuesFrom ConfigMap n/nope is not in the cluster"
        );
    }

    #[test]
    fn each_bad_values_source_has_its_own_error_and_message() {
        let compose_one = |reference: Value, object: &Value, decryptor: Option<&Decryptor>| {
            let release = json!({"kind": "HelmRelease",
                "metadata": {"name": "r", "namespace": "n"},
                "spec": {"valuesFrom": [reference]}});
            compose(&release, &[object], decryptor).unwrap_err()
        };
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "v", "namespace": "n"},
            "data": {"list": "- 1\n", "broken": "a: [\n"}});
        let sealed = json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"values.yaml": "ENC[...]"}, "sops": {}});

        let err = compose_one(json!({"kind": "Pod", "name": "v"}), &cm, None);
        assert!(matches!(err, HelmError::ValuesKind(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"valuesFrom kind "Pod" is not ConfigMap or Secret"#
        );

        let err = compose_one(json!({"kind": "ConfigMap", "name": "v"}), &cm, None);
        assert!(matches!(err, HelmError::NoValuesKey { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"valuesFrom ConfigMap n/v has no key "values.yaml""#
        );

        let reference = json!({"kind": "ConfigMap", "name": "v", "valuesKey": "list"});
        let err = compose_one(reference, &cm, None);
        assert!(matches!(err, HelmError::ValuesNotMap { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"valuesFrom ConfigMap n/v key "list" is not a map of values"#
        );

        let reference = json!({"kind": "ConfigMap", "name": "v", "valuesKey": "broken"});
        let err = compose_one(reference, &cm, None);
        assert!(matches!(err, HelmError::ValuesYaml { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
        assert!(
            err.to_string()
                .starts_with(r#"valuesFrom ConfigMap n/v key "broken" is not YAML: "#),
            "{err}"
        );

        let err = compose_one(json!({"kind": "Secret", "name": "s"}), &sealed, None);
        assert!(matches!(err, HelmError::NoIdentity(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "valuesFrom Secret n/s is SOPS-encrypted and no age identity is available"
        );

        let refuse: Decryptor = std::sync::Arc::new(|_| Err("no key opens it".into()));
        let err = compose_one(
            json!({"kind": "Secret", "name": "s"}),
            &sealed,
            Some(&refuse),
        );
        assert!(matches!(err, HelmError::Decrypt { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "valuesFrom Secret n/s: cannot decrypt: no key opens it"
        );
    }
}
