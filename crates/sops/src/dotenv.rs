//! dotenv store: `KEY=value` lines, `#` comments, flattened `sops_*` metadata.

use super::SopsError;
use super::cipher::Value;
use super::tree::{Comment, Item, Node, Scalar};

pub(crate) fn parse(bytes: &[u8]) -> Result<(Node, Option<serde_json::Value>), SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SopsError::Malformed {
        reason: "the dotenv file is not UTF-8".into(),
    })?;
    let mut items = Vec::new();
    let mut meta = Vec::new();
    for (no, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            items.push(Item::Comment(Comment {
                text: c.to_string(),
                span: None,
                changed: false,
            }));
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| SopsError::Malformed {
            reason: format!("invalid dotenv input line {}: no `=`", no + 1),
        })?;
        let v = v.replace("\\n", "\n");
        if let Some(m) = k.strip_prefix("sops_") {
            meta.push((m.to_string(), v));
        } else {
            items.push(Item::Entry {
                key: k.to_string(),
                value: Node::Scalar(Scalar::new(Value::Str(v))),
                alias: None,
            });
        }
    }
    let meta = if meta.is_empty() {
        None
    } else {
        Some(unflatten(&meta)?)
    };
    Ok((Node::Map(items), meta))
}

pub(crate) fn emit(n: &Node, encrypted: bool, meta: Option<&serde_json::Value>) -> Vec<u8> {
    let mut out = String::new();
    if let Node::Map(items) = n {
        for i in items {
            match i {
                Item::Comment(c) => {
                    out.push('#');
                    out.push_str(&c.text);
                    out.push('\n');
                }
                Item::Entry {
                    key,
                    value: Node::Scalar(s),
                    ..
                } => {
                    let v = super::tree::output_text(s, encrypted);
                    out.push_str(&format!("{key}={}\n", v.replace('\n', "\\n")));
                }
                _ => {}
            }
        }
    }
    if let Some(m) = meta {
        let mut flat = Vec::new();
        flatten(m, "", true, &mut flat);
        flat.sort();
        for (k, v) in flat {
            out.push_str(&format!("sops_{k}={}\n", v.replace('\n', "\\n")));
        }
    }
    out.into_bytes()
}

/// sops `flatten`: nested keys joined with `__map_`, list items with `__list_N`.
pub(crate) fn flatten(
    v: &serde_json::Value,
    prefix: &str,
    top: bool,
    out: &mut Vec<(String, String)>,
) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                let key = if top {
                    k.clone()
                } else {
                    format!("{prefix}__map_{k}")
                };
                flatten(v, &key, false, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(v, &format!("{prefix}__list_{i}"), false, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Null => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The inverse of [`flatten`]; leaf values stay strings except `mac_only_encrypted`.
pub(crate) fn unflatten(pairs: &[(String, String)]) -> Result<serde_json::Value, SopsError> {
    let mut root = serde_json::Value::Object(Default::default());
    for (k, v) in pairs {
        let mut parts = k.split("__");
        let first = parts.next().unwrap_or_default();
        let mut cur = root
            .as_object_mut()
            .expect("object")
            .entry(first.to_string())
            .or_insert(serde_json::Value::Null);
        for p in parts {
            if let Some(i) = p
                .strip_prefix("list_")
                .and_then(|i| i.parse::<usize>().ok())
            {
                if !cur.is_array() {
                    *cur = serde_json::Value::Array(Vec::new());
                }
                let a = cur.as_array_mut().expect("array");
                // Keys may come in any order, but a huge index is malformed (or hostile).
                if i >= 4096 {
                    return Err(SopsError::Malformed {
                        reason: format!("flattened metadata key {k:?} has an absurd list index"),
                    });
                }
                while a.len() <= i {
                    a.push(serde_json::Value::Null);
                }
                cur = &mut a[i];
            } else {
                let key = p.strip_prefix("map_").unwrap_or(p);
                if !cur.is_object() {
                    *cur = serde_json::Value::Object(Default::default());
                }
                cur = cur
                    .as_object_mut()
                    .expect("object")
                    .entry(key.to_string())
                    .or_insert(serde_json::Value::Null);
            }
        }
        *cur = if first == "mac_only_encrypted" && v == "true" {
            serde_json::Value::Bool(true)
        } else {
            v.clone().into()
        };
    }
    Ok(root)
}
