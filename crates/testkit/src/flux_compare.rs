//! Objects rendered by us against the flux CLI's, object by object, with
//! flux's one intended display difference (SOPS Secrets masked) applied to
//! ours first.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `Kind namespace/name`.
fn describe(object: &Value) -> String {
    let at = |p: &str| object.pointer(p).and_then(Value::as_str);
    let kind = at("/kind").unwrap_or("?");
    let name = at("/metadata/name").unwrap_or("?");
    match at("/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// flux's display of SOPS Secrets (the one intended difference).
pub fn flux_display_mask(object: &mut Value) {
    if object["kind"] != "Secret" || object.get("sops").is_none() {
        return;
    }
    let docker = object["type"] == "kubernetes.io/dockerconfigjson";
    if let Some(map) = object.as_object_mut() {
        map.remove("sops");
    }
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    for (field, encode) in [("data", true), ("stringData", false)] {
        if let Some(values) = object.get_mut(field).and_then(Value::as_object_mut) {
            for v in values.values_mut() {
                let mask = if docker {
                    r#"{"mask":"**SOPS**"}"#
                } else {
                    "**SOPS**"
                };
                *v = json!(if encode { b64(mask) } else { mask.to_string() });
            }
        }
    }
}

/// `kind namespace/name` keys.
fn by_key(objects: &[Value]) -> BTreeMap<String, Value> {
    objects.iter().map(|o| (describe(o), o.clone())).collect()
}

/// Compares two renders object by object; returns the differences.
pub fn compare(ours: &[Value], theirs: &[Value]) -> Vec<String> {
    let mut ours: Vec<Value> = ours.to_vec();
    for o in &mut ours {
        flux_display_mask(o);
    }
    let (ours, theirs) = (by_key(&ours), by_key(theirs));
    let mut diffs = Vec::new();
    for (key, mine) in &ours {
        match theirs.get(key) {
            None => diffs.push(format!("only ours: {key}")),
            Some(other) if other != mine => {
                diffs.push(format!("{key} differs:\n  ours: {mine}\n  flux: {other}"))
            }
            Some(_) => {}
        }
    }
    for key in theirs.keys().filter(|k| !ours.contains_key(*k)) {
        diffs.push(format!("only flux: {key}"));
    }
    diffs
}
