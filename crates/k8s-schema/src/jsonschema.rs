//! Exports a [`Compiled`] kind as a standalone JSON schema (draft 4 style,
//! which kubeconform reads), so kubeconform can be run on the very same
//! schemas our validator uses: the agreement test and the bench rely on it.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::compile::{Compiled, NodeId};
use super::{Gvk, Registry, registry::render_template};

/// One JSON schema: `{"$ref": "#/definitions/n<root>", "definitions": {...}}`.
/// `strict` writes `additionalProperties: false` wherever our strict mode
/// rejects unknown fields.
pub fn export(compiled: &Compiled, strict: bool) -> Value {
    let mut defs = Map::new();
    for (i, node) in compiled.nodes.iter().enumerate() {
        let r = |id: NodeId| json!({"$ref": format!("#/definitions/n{id}")});
        let mut s = Map::new();
        let mut types: Vec<&str> = node.types.iter().map(|t| t.name()).collect();
        if node.int_or_string {
            types = vec!["integer", "string"];
        }
        if !types.is_empty() {
            // JSON schema cannot say "null means unset" (the API server's
            // reading, see check.rs): admit null so kubeconform is not
            // stricter than we are.
            if !types.contains(&"null") {
                types.push("null");
            }
            s.insert("type".into(), json!(types));
        }
        if !node.properties.is_empty() {
            let props: Map<String, Value> = node
                .properties
                .iter()
                .map(|(k, id)| (k.clone(), r(*id)))
                .collect();
            s.insert("properties".into(), Value::Object(props));
        }
        if let Some(a) = node.additional {
            s.insert("additionalProperties".into(), r(a));
        } else if node.additional_false || (strict && node.closed()) {
            s.insert("additionalProperties".into(), json!(false));
        }
        if !node.required.is_empty() {
            s.insert("required".into(), json!(node.required));
        }
        if let Some(items) = node.items {
            s.insert("items".into(), r(items));
        }
        if !node.enum_values.is_empty() {
            let mut values = node.enum_values.clone();
            values.push(Value::Null);
            s.insert("enum".into(), Value::Array(values));
        }
        if let Some(p) = &node.pattern
            && node.pattern_regex().is_some()
        {
            s.insert("pattern".into(), json!(p));
        }
        for (k, v) in [("minimum", node.minimum), ("maximum", node.maximum)] {
            if let Some(v) = v {
                s.insert(k.into(), json!(v));
            }
        }
        if node.exclusive_minimum {
            s.insert("exclusiveMinimum".into(), json!(true));
        }
        if node.exclusive_maximum {
            s.insert("exclusiveMaximum".into(), json!(true));
        }
        for (k, v) in [
            ("minLength", node.min_length),
            ("maxLength", node.max_length),
            ("minItems", node.min_items),
            ("maxItems", node.max_items),
            ("minProperties", node.min_properties),
            ("maxProperties", node.max_properties),
        ] {
            if let Some(v) = v {
                s.insert(k.into(), json!(v));
            }
        }
        let refs = |ids: &[NodeId]| Value::Array(ids.iter().map(|id| r(*id)).collect());
        if !node.all_of.is_empty() {
            s.insert("allOf".into(), refs(&node.all_of));
        }
        if !node.int_or_string {
            if !node.any_of.is_empty() {
                s.insert("anyOf".into(), refs(&node.any_of));
            }
            if !node.one_of.is_empty() {
                s.insert("oneOf".into(), refs(&node.one_of));
            }
        }
        if let Some(n) = node.not {
            s.insert("not".into(), r(n));
        }
        if node.embedded {
            s.insert("required".into(), json!(["apiVersion", "kind"]));
        }
        defs.insert(format!("n{i}"), Value::Object(s));
    }
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "$ref": format!("#/definitions/n{}", compiled.root),
        "definitions": defs,
    })
}

/// kubeconform's template for files written by [`write_kubeconform_dir`].
pub const KUBECONFORM_TEMPLATE: &str = "{{ .ResourceKind }}{{ .KindSuffix }}.json";

/// Writes one JSON schema per kind into `dir`, named as kubeconform's
/// `{{ .ResourceKind }}{{ .KindSuffix }}.json` template expects. Returns the
/// `-schema-location` argument to give kubeconform.
pub fn write_kubeconform_dir(
    registry: &Registry,
    gvks: &[Gvk],
    dir: &Path,
    strict: bool,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    for gvk in gvks {
        if let super::Lookup::Found(c) = registry.get(gvk) {
            let name = render_template(
                KUBECONFORM_TEMPLATE,
                gvk,
                registry.kubernetes_version(),
                strict,
            );
            std::fs::write(dir.join(name), serde_json::to_vec(&export(&c, strict))?)?;
        }
    }
    Ok(format!("{}/{}", dir.display(), KUBECONFORM_TEMPLATE))
}
