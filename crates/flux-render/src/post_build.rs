//! What Flux does to kustomize's output before it applies it: postBuild
//! variable substitution (on each object's YAML text as kustomize wrote it,
//! then read back with go-yaml v2's YAML 1.1 types), then the ownership
//! labels, then `commonMetadata`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{FluxKustomization, REDACTED_PREFIX, RenderError, RenderOptions, describe, str_at};
use super::{substitute, yaml11};

const SUBSTITUTE_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";
/// The labels kustomize-controller puts on every object it applies.
pub const OWNER_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
pub const OWNER_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";

/// One document of kustomize's output: its text and what Flux reads from it.
pub struct Document {
    pub text: String,
    pub object: Value,
}

/// Splits kustomize's output into documents and reads each as Flux does.
pub fn documents(dir: &Path, output: &str) -> Result<Vec<Document>, RenderError> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, docs: &mut Vec<Document>| -> Result<(), RenderError> {
        let text = std::mem::take(current);
        let mut objects = yaml11::parse_stream(&text).map_err(|source| RenderError::Parse {
            dir: dir.to_path_buf(),
            what: String::new(),
            source,
        })?;
        if let Some(object) = objects.pop() {
            docs.push(Document { text, object });
        }
        Ok(())
    };
    for line in output.split_inclusive('\n') {
        if line.trim_end() == "---" {
            flush(&mut current, &mut docs)?;
        } else {
            current.push_str(line);
        }
    }
    flush(&mut current, &mut docs)?;
    Ok(docs)
}

/// ConfigMaps and Secrets of a cluster, by `kind/namespace/name`, as variables.
pub struct VariableSources {
    by_key: HashMap<String, BTreeMap<String, String>>,
}

impl VariableSources {
    pub fn collect<'a>(
        objects: impl Iterator<Item = &'a Value>,
        opts: &RenderOptions,
        warnings: &mut Vec<String>,
    ) -> Self {
        let mut by_key = HashMap::new();
        for object in objects {
            let kind = str_at(object, &["kind"]).unwrap_or("");
            if kind != "ConfigMap" && kind != "Secret" {
                continue;
            }
            let name = str_at(object, &["metadata", "name"]).unwrap_or("");
            let namespace = str_at(object, &["metadata", "namespace"]).unwrap_or("default");
            let vars = if kind == "Secret" {
                secret_variables(object, name, opts, warnings)
            } else {
                string_map(object.get("data"))
            };
            by_key.insert(format!("{kind}/{namespace}/{name}"), vars);
        }
        Self { by_key }
    }
}

pub fn secret_variables(
    object: &Value,
    name: &str,
    opts: &RenderOptions,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let encrypted = object.get("sops").is_some();
    let decrypted = match (&opts.decryptor, encrypted) {
        (Some(decrypt), true) => match decrypt(object) {
            Ok(plain) => Some(plain),
            Err(err) => {
                warnings.push(format!(
                    "Secret {name}: cannot decrypt ({err}); its variables render as placeholders"
                ));
                None
            }
        },
        (_, true) => {
            warnings.push(format!(
                "Secret {name} is SOPS-encrypted and no age identity is available (SOPS_AGE_KEY_FILE or ~/.config/sops/age/keys.txt); its variables render as placeholders"
            ));
            None
        }
        (_, false) => Some(object.clone()),
    };
    let mut vars = BTreeMap::new();
    let source = decrypted.as_ref().unwrap_or(object);
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(data) = source.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v.as_str().unwrap_or_default();
            let value = engine
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            vars.insert(k.clone(), value);
        }
    }
    vars.extend(string_map(source.get("stringData")));
    let reveal = decrypted.is_some() && (opts.reveal_secrets || !encrypted);
    if !reveal {
        for (k, v) in vars.iter_mut() {
            *v = format!("{REDACTED_PREFIX}{}", k.replace('_', "-"));
        }
    }
    vars
}

pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The variables of one Flux Kustomization, merged as kustomize-controller
/// merges them: `substituteFrom` in order (later wins), then `substitute`;
/// newlines removed from every value.
pub fn variables(
    cluster: &str,
    flux: &FluxKustomization,
    sources: &VariableSources,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut vars = BTreeMap::new();
    let Some(post_build) = flux.object.pointer("/spec/postBuild") else {
        return Ok(vars);
    };
    for (i, reference) in post_build
        .get("substituteFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let kind = str_at(reference, &["kind"]).unwrap_or("");
        if kind != "ConfigMap" && kind != "Secret" {
            return Err(RenderError::Field {
                name: flux.name.clone(),
                file: flux.file.clone(),
                field: format!("spec.postBuild.substituteFrom[{i}].kind"),
                reason: format!("{kind:?} is neither ConfigMap nor Secret"),
            });
        }
        let source = str_at(reference, &["name"]).unwrap_or("");
        let optional = reference
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match sources
            .by_key
            .get(&format!("{kind}/{}/{source}", flux.namespace))
        {
            Some(values) => {
                for (k, v) in values {
                    vars.insert(k.clone(), v.replace('\n', ""));
                }
            }
            None if optional => {}
            None => {
                return Err(RenderError::MissingSource {
                    name: flux.name.clone(),
                    kind: kind.to_string(),
                    from: source.to_string(),
                    cluster: cluster.to_string(),
                });
            }
        }
    }
    for (k, v) in string_map(post_build.get("substitute")) {
        vars.insert(k, v.replace('\n', ""));
    }
    if let Some(bad) = vars.keys().find(|k| !substitute::is_valid_name(k)) {
        return Err(RenderError::BadVariableName {
            name: flux.name.clone(),
            var: bad.clone(),
            origin: "substituteFrom/substitute".into(),
        });
    }
    Ok(vars)
}

/// `spec.postBuild.substituteStrategy: Always` substitutes even without variables.
fn always(flux: &FluxKustomization) -> Result<bool, RenderError> {
    match flux.object.pointer("/spec/postBuild/substituteStrategy") {
        None => Ok(false),
        Some(Value::String(s)) if s == "Always" => Ok(true),
        Some(Value::String(s)) if s == "WithVariables" => Ok(false),
        Some(other) => Err(RenderError::Field {
            name: flux.name.clone(),
            file: flux.file.clone(),
            field: "spec.postBuild.substituteStrategy".into(),
            reason: format!("{other} is neither Always nor WithVariables"),
        }),
    }
}

/// Applies postBuild, the ownership labels and commonMetadata to one
/// Kustomization's documents.
pub fn apply(
    flux: &FluxKustomization,
    docs: Vec<Document>,
    vars: &BTreeMap<String, String>,
    dir: &Path,
    root: &Path,
) -> Result<Vec<Value>, RenderError> {
    // As in kustomize-controller: no postBuild, or no variables without
    // `Always`, means no substitution.
    let always = always(flux)?;
    let substituting =
        flux.object.pointer("/spec/postBuild").is_some() && (!vars.is_empty() || always);
    let common = flux.object.pointer("/spec/commonMetadata");
    docs.into_iter()
        .map(|doc| {
            let mut object = if substituting && !substitution_disabled(&doc.object) {
                substitute_document(flux, &doc, vars, dir, root)?
            } else {
                doc.object
            };
            set_map_entries(
                &mut object,
                "labels",
                [
                    (OWNER_NAME_LABEL, flux.name.as_str()),
                    (OWNER_NAMESPACE_LABEL, flux.namespace.as_str()),
                ],
            );
            if let Some(common) = common {
                for field in ["labels", "annotations"] {
                    let entries = string_map(common.get(field));
                    set_map_entries(
                        &mut object,
                        field,
                        entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    );
                }
            }
            Ok(object)
        })
        .collect()
}

fn substitute_document(
    flux: &FluxKustomization,
    doc: &Document,
    vars: &BTreeMap<String, String>,
    dir: &Path,
    root: &Path,
) -> Result<Value, RenderError> {
    let replaced =
        substitute::substitute(&doc.text, vars).map_err(|source| RenderError::Substitute {
            name: flux.name.clone(),
            object: describe(&doc.object),
            hint: match &source {
                substitute::SubstError::Undefined(var) => super::find_use(root, var),
                _ => None,
            },
            source,
        })?;
    let mut parsed = yaml11::parse_stream(&replaced).map_err(|source| RenderError::Parse {
        dir: dir.to_path_buf(),
        what: format!("{} after substitution: ", describe(&doc.object)),
        source,
    })?;
    parsed.pop().ok_or_else(|| RenderError::Yaml {
        dir: dir.to_path_buf(),
        message: format!("{} is empty after substitution", describe(&doc.object)),
    })
}

/// Sets entries of `metadata.<field>`, creating the maps as needed.
fn set_map_entries<'a>(
    object: &mut Value,
    field: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let mut entries = entries.into_iter().peekable();
    if entries.peek().is_none() {
        return;
    }
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let map = metadata
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !map.is_object() {
        *map = Value::Object(Map::new());
    }
    if let Some(map) = map.as_object_mut() {
        for (k, v) in entries {
            map.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
}

/// True when an object opts out of substitution (label or annotation).
pub fn substitution_disabled(object: &Value) -> bool {
    ["labels", "annotations"].iter().any(|field| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(|m| m.get(SUBSTITUTE_KEY))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn substitution_can_be_disabled_by_label_or_annotation() {
        let by_label = json!({"metadata": {"labels": {SUBSTITUTE_KEY: "disabled"}}});
        let by_annotation = json!({"metadata": {"annotations": {SUBSTITUTE_KEY: "disabled"}}});
        let enabled = json!({"metadata": {"annotations": {SUBSTITUTE_KEY: "enabled"}}});
        assert!(substitution_disabled(&by_label));
        assert!(substitution_disabled(&by_annotation));
        assert!(!substitution_disabled(&enabled));
    }

    #[test]
    fn plain_secret_values_come_from_data_and_string_data() {
        let secret = json!({
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"a": "YWxwaGE="},
            "stringData": {"b": "beta"}
        });
        let mut warnings = Vec::new();
        let vars = secret_variables(&secret, "s", &RenderOptions::default(), &mut warnings);
        assert_eq!(vars["a"], "alpha");
        assert_eq!(vars["b"], "beta");
        assert!(warnings.is_empty());
    }

    #[test]
    fn encrypted_secret_without_key_renders_placeholders_and_warns() {
        let secret = json!({
            "kind": "Secret",
            "metadata": {"name": "variables-cluster"},
            "stringData": {"nextcloud_password": "ENC[AES256_GCM,data:xx,iv:yy,tag:zz,type:str]"},
            "sops": {"mac": "ENC[...]"}
        });
        let mut warnings = Vec::new();
        let vars = secret_variables(
            &secret,
            "variables-cluster",
            &RenderOptions::default(),
            &mut warnings,
        );
        assert_eq!(
            vars["nextcloud_password"],
            "sops-redacted-nextcloud-password"
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("no age identity"), "{}", warnings[0]);
    }

    #[test]
    fn documents_split_on_separators_and_read_yaml_1_1_types() {
        let docs = documents(Path::new("."), "a: yes\nb: '007'\n---\nc: 0755\n---\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].object, json!({"a": true, "b": "007"}));
        assert_eq!(docs[1].object, json!({"c": 493}));
        assert_eq!(docs[1].text, "c: 0755\n");
    }

    #[test]
    fn owner_labels_then_common_metadata() {
        let flux = FluxKustomization {
            name: "apps".into(),
            namespace: "flux-system".into(),
            path: "apps".into(),
            depends_on: Vec::new(),
            source_ref: None,
            file: "clusters/x/apps.yaml".into(),
            object: json!({"spec": {"commonMetadata": {"labels": {"team": "a"}, "annotations": {"n": "1"}}}}),
        };
        let docs = vec![Document {
            text: String::new(),
            object: json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
        }];
        let out = apply(
            &flux,
            docs,
            &BTreeMap::new(),
            Path::new("."),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            out[0]["metadata"],
            json!({"name": "c", "labels": {OWNER_NAME_LABEL: "apps", OWNER_NAMESPACE_LABEL: "flux-system", "team": "a"}, "annotations": {"n": "1"}})
        );
    }
}
