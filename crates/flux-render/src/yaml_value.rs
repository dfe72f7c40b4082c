//! One YAML document as JSON through serde_yaml (YAML 1.2, as `validate`
//! reads the tree's files); a key that is not a string becomes its YAML
//! text. Here rather than in its callers so that the generic parsing is
//! compiled with this crate's optimisations.

use serde_json::{Map, Value};

/// The document in `text`, `None` when it is empty (only comments or `~`).
pub fn parse_document(text: &str) -> Result<Option<Value>, serde_yaml::Error> {
    match serde_yaml::from_str::<serde_yaml::Value>(text)? {
        serde_yaml::Value::Null => Ok(None),
        v => Ok(Some(to_json(v))),
    }
}

/// Converts a YAML value to JSON; non-string keys become their YAML text.
pub fn to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".into(),
                    other => serde_yaml::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_that_are_not_strings_become_their_yaml_text() {
        let v = parse_document("1: a\ntrue: b\n~: c\n[x, y]: d\nn: 5\nf: 1.5\n").unwrap();
        assert_eq!(
            v,
            Some(json!({"1": "a", "true": "b", "null": "c", "- x\n- y": "d", "n": 5, "f": 1.5}))
        );
        assert_eq!(parse_document("# only a comment\n").unwrap(), None);
    }
}
