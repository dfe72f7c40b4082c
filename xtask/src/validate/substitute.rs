//! Flux postBuild substitution on parsed objects, for validation: `${var}`,
//! `${var:=default}`, `${var:-default}` (also `=`/`-` forms), `$${var}` as an
//! escape. A string that was substituted is re-read as a YAML scalar, as Flux
//! substitutes the YAML text (so `replicas: ${n:=2}` becomes the integer 2).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// The annotation (or label) that turns substitution off for one object.
pub const DISABLE_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// One `${...}` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub name: String,
    pub default: Option<String>,
    /// The exact text, e.g. `${domain}`.
    pub text: String,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn parse_expr(expr: &str) -> Option<(String, Option<String>)> {
    let end = expr
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map(|(i, _)| i)
        .unwrap_or(expr.len());
    let (name, rest) = expr.split_at(end);
    if !is_name(name) {
        return None;
    }
    let default = if rest.is_empty() {
        None
    } else if let Some(d) = rest.strip_prefix(":=").or_else(|| rest.strip_prefix(":-")) {
        Some(d.to_string())
    } else if let Some(d) = rest.strip_prefix('=').or_else(|| rest.strip_prefix('-')) {
        Some(d.to_string())
    } else {
        return None;
    };
    Some((name.to_string(), default))
}

/// Substitutes one string. `vars: None` applies defaults only and leaves
/// other references as they are. Returns the text, whether anything changed,
/// and the references that had neither a value nor a default.
pub fn substitute_str(
    s: &str,
    vars: Option<&HashMap<String, String>>,
) -> (String, bool, Vec<VarRef>) {
    if !s.contains('$') {
        return (s.to_string(), false, Vec::new());
    }
    let mut out = String::with_capacity(s.len());
    let mut undefined = Vec::new();
    let mut changed = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with("$${") {
            out.push_str("${");
            i += 3;
            changed = true;
            continue;
        }
        if s[i..].starts_with("${")
            && let Some(close) = s[i + 2..].find('}')
        {
            let expr = &s[i + 2..i + 2 + close];
            let text = &s[i..i + 3 + close];
            if let Some((name, default)) = parse_expr(expr) {
                let value = vars
                    .and_then(|v| v.get(&name))
                    .filter(|v| !v.is_empty() || default.is_none());
                match (value, &default, vars) {
                    (Some(v), _, _) => out.push_str(v),
                    (None, Some(d), _) => out.push_str(d),
                    (None, None, Some(_)) => undefined.push(VarRef {
                        name,
                        default: None,
                        text: text.to_string(),
                    }),
                    (None, None, None) => {
                        out.push_str(text);
                        i += text.len();
                        continue;
                    }
                }
                changed = true;
                i += text.len();
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
        let _ = bytes;
    }
    (out, changed, undefined)
}

/// Every `${var}` reference in a string (escaped `$${` ones excluded).
pub fn references(s: &str) -> Vec<VarRef> {
    let mut refs = Vec::new();
    let mut i = 0;
    while let Some(pos) = s[i..].find("${") {
        let at = i + pos;
        if at > 0 && s.as_bytes()[at - 1] == b'$' {
            i = at + 2;
            continue;
        }
        let Some(close) = s[at + 2..].find('}') else {
            break;
        };
        let expr = &s[at + 2..at + 2 + close];
        if let Some((name, default)) = parse_expr(expr) {
            refs.push(VarRef {
                name,
                default,
                text: s[at..at + 3 + close].to_string(),
            });
        }
        i = at + 3 + close;
    }
    refs
}

/// True when the object opts out of substitution.
pub fn disabled(object: &Value) -> bool {
    ["annotations", "labels"].iter().any(|k| {
        object
            .pointer(&format!("/metadata/{k}"))
            .and_then(|m| m.get(DISABLE_KEY))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

fn reparse(s: String) -> Value {
    if s.contains('\n') {
        return Value::String(s);
    }
    match serde_yaml::from_str::<serde_yaml::Value>(&s) {
        Ok(
            v @ (serde_yaml::Value::Number(_)
            | serde_yaml::Value::Bool(_)
            | serde_yaml::Value::Null),
        ) => super::tree::yaml_to_json(v),
        _ => Value::String(s),
    }
}

/// Substitutes every string of an object (keys stay). Returns the new object
/// and the distinct undefined references.
pub fn substitute(object: &Value, vars: Option<&HashMap<String, String>>) -> (Value, Vec<VarRef>) {
    let mut undefined = Vec::new();
    let mut seen = BTreeSet::new();
    let out = walk(object, vars, &mut undefined, &mut seen);
    (out, undefined)
}

fn walk(
    v: &Value,
    vars: Option<&HashMap<String, String>>,
    undefined: &mut Vec<VarRef>,
    seen: &mut BTreeSet<String>,
) -> Value {
    match v {
        Value::String(s) => {
            let (text, changed, undef) = substitute_str(s, vars);
            for u in undef {
                if seen.insert(u.text.clone()) {
                    undefined.push(u);
                }
            }
            if changed {
                reparse(text)
            } else {
                Value::String(text)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| walk(i, vars, undefined, seen))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), walk(v, vars, undefined, seen)))
                .collect(),
        ),
        other => other.clone(),
    }
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
    fn forms() {
        let v = vars(&[("domain", "platform.lan"), ("empty", "")]);
        assert_eq!(substitute_str("a.${domain}", Some(&v)).0, "a.platform.lan");
        assert_eq!(substitute_str("${x:=1Gi}", Some(&v)).0, "1Gi");
        assert_eq!(substitute_str("${x:-d}", Some(&v)).0, "d");
        assert_eq!(substitute_str("${empty:=d}", Some(&v)).0, "d");
        assert_eq!(substitute_str("$${domain}", Some(&v)).0, "${domain}");
        let (_, _, undef) = substitute_str("x.${domian}", Some(&v));
        assert_eq!(undef[0].name, "domian");
        // Defaults-only mode leaves unknown references alone.
        assert_eq!(substitute_str("${domain} ${n:=2}", None).0, "${domain} 2");
        // Not a variable name: left alone.
        assert_eq!(substitute_str("${1} ${a.b}", Some(&v)).0, "${1} ${a.b}");
    }

    #[test]
    fn substituted_scalars_are_retyped() {
        let (o, _) = substitute(&json!({"replicas": "${n:=2}", "s": "v${n:=2}"}), None);
        assert_eq!(o, json!({"replicas": 2, "s": "v2"}));
    }

    #[test]
    fn references_skip_escapes() {
        let r = references("$${a} ${b} ${c:=1}");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "b");
        assert_eq!(r[1].default.as_deref(), Some("1"));
    }
}
