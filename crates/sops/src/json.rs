//! JSON store (and the binary store's envelope): Go `json.Indent` style with tabs.

use super::SopsError;
use super::cipher::Value;
use super::tree::{Item, Node};

pub(crate) fn parse(bytes: &[u8]) -> Result<Node, SopsError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| SopsError::Malformed {
        reason: format!("invalid JSON: {e}"),
    })?;
    if !v.is_object() {
        return Err(SopsError::Malformed {
            reason: "the JSON document must be an object".into(),
        });
    }
    Ok(super::tree::json_to_node(&v))
}

/// Go `json.Marshal` of a string (HTML-safe escaping).
pub(crate) fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go `encoding/json` float formatting.
fn go_json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{f:e}");
        // Rust: 1e21, 1.5e-7 ; Go: 1e+21, 1.5e-07
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        let digits = if digits.len() < 2 {
            format!("0{digits}")
        } else {
            digits.to_string()
        };
        format!("{m}e{sign}{digits}")
    } else {
        format!("{f}")
    }
}

fn scalar_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Str(s) | Value::Time(s) => go_quote(s, out),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&go_json_float(*f)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}

fn indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push('\t');
    }
}

/// Emits a node; `encrypted` selects ciphertext over plaintext for changed scalars.
pub(crate) fn emit_node(n: &Node, encrypted: bool, depth: usize, out: &mut String) {
    match n {
        Node::Map(items) => {
            let entries: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Entry { key, value, .. } => Some((key, value)),
                    _ => None,
                })
                .collect();
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (idx, (k, v)) in entries.iter().enumerate() {
                indent(out, depth + 1);
                go_quote(k, out);
                out.push_str(": ");
                emit_node(v, encrypted, depth + 1, out);
                if idx + 1 < entries.len() {
                    out.push(',');
                }
            }
            indent(out, depth);
            out.push('}');
        }
        Node::Seq(items) => {
            let vals: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Value { value, .. } => Some(value),
                    _ => None,
                })
                .collect();
            if vals.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (idx, v) in vals.iter().enumerate() {
                indent(out, depth + 1);
                emit_node(v, encrypted, depth + 1, out);
                if idx + 1 < vals.len() {
                    out.push(',');
                }
            }
            indent(out, depth);
            out.push(']');
        }
        Node::Scalar(s) => scalar_json(&super::tree::output_value(s, encrypted), out),
    }
}

/// Emits a whole document, with the metadata appended under `sops` when given.
pub(crate) fn emit(n: &Node, encrypted: bool, meta: Option<&serde_json::Value>) -> Vec<u8> {
    let mut n = n.clone();
    if let (Some(m), Node::Map(items)) = (meta, &mut n) {
        items.push(Item::Entry {
            key: "sops".into(),
            value: super::tree::json_to_node(m),
            alias: None,
        });
    }
    let mut out = String::new();
    emit_node(&n, encrypted, 0, &mut out);
    out.push('\n');
    out.into_bytes()
}
