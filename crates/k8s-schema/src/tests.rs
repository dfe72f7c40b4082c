//! The validator on small inline documents, no files and no tools: a CRD
//! added in memory, then objects judged as the API server would.

use serde_json::{Value, json};

use crate::{Gvk, Lookup, Registry, RegistryOptions, validate};

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "string", "enum": ["small", "large"]},
                                "port": {"x-kubernetes-int-or-string": true},
                                "values": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": true
                                }
                            }
                        }
                    }
                }}
            }]
        }
    })
}

/// Errors for `spec`, as `path: message` lines.
fn judge(spec: Value, strict: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::load(RegistryOptions {
        locations: Vec::new(),
        base: dir.path().to_path_buf(),
        kubernetes_version: crate::DEFAULT_KUBERNETES_VERSION.into(),
        cache_dir: None,
    })
    .unwrap();
    registry.add_crd(&crd());
    let gvk = Gvk::new("example.com", "v1", "Widget");
    let Lookup::Found(schema) = registry.get(&gvk) else {
        panic!("the CRD added in memory is not found");
    };
    let object = json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    });
    validate(&schema, &object, strict)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_valid_object_has_no_findings() {
    let spec = json!({"size": "small", "port": 8080, "values": {"any": {"thing": [1]}}});
    assert_eq!(judge(spec, true), Vec::<String>::new());
}

#[test]
fn an_unknown_field_is_refused_only_when_strict() {
    let spec = json!({"size": "small", "colour": "red"});
    let errors = judge(spec.clone(), true);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spec.colour"), "{errors:?}");
    assert_eq!(judge(spec, false), Vec::<String>::new());
}

#[test]
fn int_or_string_takes_both_and_nothing_else() {
    assert!(judge(json!({"size": "small", "port": 80}), true).is_empty());
    assert!(judge(json!({"size": "small", "port": "http"}), true).is_empty());
    let errors = judge(json!({"size": "small", "port": true}), true);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spec.port"), "{errors:?}");
}

#[test]
fn preserve_unknown_fields_keeps_anything_below_it() {
    let spec = json!({"size": "large", "values": {"nested": {"deep": null, "n": 1.5}}});
    assert!(judge(spec, true).is_empty());
}

#[test]
fn a_value_outside_the_enum_is_refused() {
    let errors = judge(json!({"size": "medium"}), true);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spec.size"), "{errors:?}");
    assert!(
        errors[0].contains("small"),
        "the allowed values are named: {errors:?}"
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let errors = judge(json!({"port": 1}), true);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("size"), "{errors:?}");
}
