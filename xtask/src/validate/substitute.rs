//! Flux postBuild substitution for validation, on top of
//! [`flux_render::substitute`]: as in kustomize-controller, the object's YAML
//! text is substituted and parsed again (so `replicas: ${n:=2}` becomes the
//! integer 2). Unlike `build`, a missing variable is reported, not fatal.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use flux_render::substitute as subst;

/// One `${...}` that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub name: String,
    /// The text as written in the source, e.g. `${domain}`.
    pub text: String,
}

/// Every `${var}` reference in a string (escaped `$${` ones excluded).
pub fn references(s: &str) -> Vec<subst::VarUse> {
    subst::variables_used(s)
}

/// True when the object opts out of substitution.
pub fn disabled(object: &Value) -> bool {
    flux_render::substitution_disabled(object)
}

/// Substitutes an object. `vars: None` applies defaults only and leaves other
/// references as they are. Returns the new object and the distinct variables
/// that had neither a value nor a default (always empty with `None`).
pub fn substitute(object: &Value, vars: Option<&HashMap<String, String>>) -> (Value, Vec<VarRef>) {
    let (value, missing) = subst::substitute_object_lenient(object, |k| {
        vars.and_then(|v| v.get(k)).map(String::as_str)
    });
    let undefined = match vars {
        None => Vec::new(),
        Some(_) => {
            let mut seen = BTreeSet::new();
            missing
                .into_iter()
                .filter(|name| seen.insert(name.clone()))
                .map(|name| VarRef {
                    text: format!("${{{name}}}"),
                    name,
                })
                .collect()
        }
    };
    (value, undefined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substituted_scalars_are_retyped() {
        let (o, _) = substitute(&json!({"replicas": "${n:=2}", "s": "v${n:=2}"}), None);
        assert_eq!(o, json!({"replicas": 2, "s": "v2"}));
    }

    #[test]
    fn undefined_variables_are_reported_once_and_kept() {
        let v = vars(&[("domain", "platform.lan")]);
        let (o, undefined) = substitute(
            &json!({"a": "x.${domian}", "b": "${domian}", "c": "${domain}"}),
            Some(&v),
        );
        assert_eq!(
            o,
            json!({"a": "x.${domian}", "b": "${domian}", "c": "platform.lan"})
        );
        assert_eq!(
            undefined,
            [VarRef {
                name: "domian".into(),
                text: "${domian}".into()
            }]
        );
    }

    #[test]
    fn defaults_only_mode_reports_nothing() {
        let (o, undefined) = substitute(&json!({"a": "${domain}", "n": "${n:=3}"}), None);
        assert_eq!(o, json!({"a": "${domain}", "n": 3}));
        assert!(undefined.is_empty());
    }
}
