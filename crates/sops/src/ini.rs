//! INI store (go-ini as sops uses it): each section is a mapping, AAD
//! `section:key:`; keys before any section live in `DEFAULT`; metadata is
//! flattened into a `[sops]` section.

use super::SopsError;
use super::cipher::Value;
use super::tree::{Comment, Item, Node, Scalar};

const DEFAULT: &str = "DEFAULT";

fn unquote(v: &str) -> String {
    for (open, close) in [("\"\"\"", "\"\"\""), ("`", "`"), ("\"", "\"")] {
        if v.len() >= open.len() + close.len() && v.starts_with(open) && v.ends_with(close) {
            return v[open.len()..v.len() - close.len()].to_string();
        }
    }
    // An inline comment after whitespace is dropped (go-ini default).
    let cut = [" ;", " #", "\t;", "\t#"]
        .iter()
        .filter_map(|m| v.find(m))
        .min();
    match cut {
        Some(i) => v[..i].trim_end().to_string(),
        None => v.to_string(),
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<(Node, Option<serde_json::Value>), SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SopsError::Malformed {
        reason: "the INI file is not UTF-8".into(),
    })?;
    let mut sections: Vec<(String, Vec<Item>)> = vec![(DEFAULT.to_string(), Vec::new())];
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let cur = &mut sections.last_mut().expect("at least DEFAULT").1;
        if line.starts_with(';') || line.starts_with('#') {
            let t = line
                .strip_prefix("; ")
                .or_else(|| line.strip_prefix("# "))
                .unwrap_or(&line[1..]);
            cur.push(Item::Comment(Comment {
                text: t.to_string(),
                span: None,
                changed: false,
            }));
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| SopsError::Malformed {
                reason: format!("invalid INI section header on line {}", no + 1),
            })?;
            sections.push((name.trim().to_string(), Vec::new()));
            continue;
        }
        let i = line.find(['=', ':']).ok_or_else(|| SopsError::Malformed {
            reason: format!("invalid INI line {}: no `=`", no + 1),
        })?;
        let key = line[..i].trim().trim_matches('`').to_string();
        let value = unquote(line[i + 1..].trim());
        cur.push(Item::Entry {
            key,
            value: Node::Scalar(Scalar::new(Value::Str(value))),
            alias: None,
        });
    }
    let mut meta = None;
    let mut items = Vec::new();
    for (name, sec) in sections {
        if name == "sops" {
            let pairs: Vec<(String, String)> = sec
                .into_iter()
                .filter_map(|i| match i {
                    Item::Entry {
                        key,
                        value: Node::Scalar(s),
                        ..
                    } => match s.value {
                        Value::Str(v) => Some((key, v.replace("\\n", "\n"))),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            meta = Some(super::dotenv::unflatten(&pairs)?);
            continue;
        }
        if name == DEFAULT && sec.is_empty() {
            continue;
        }
        items.push(Item::Entry {
            key: name,
            value: Node::Map(sec),
            alias: None,
        });
    }
    Ok((Node::Map(items), meta))
}

/// go-ini's value quoting.
fn quote(v: &str) -> String {
    if v.contains(['\n', '`']) {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains(['#', ';']) {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn emit_section(out: &mut String, name: &str, items: &[(Option<String>, String)], first: bool) {
    if !first {
        out.push('\n');
    }
    if name != DEFAULT {
        out.push_str(&format!("[{name}]\n"));
    }
    let width = items
        .iter()
        .filter_map(|(k, _)| k.as_ref().map(|k| k.chars().count()))
        .max()
        .unwrap_or(0);
    for (k, v) in items {
        match k {
            None => out.push_str(&format!("; {v}\n")),
            Some(k) => {
                let pad = " ".repeat(width - k.chars().count());
                out.push_str(&format!("{k}{pad} = {v}\n"));
            }
        }
    }
}

pub(crate) fn emit(n: &Node, encrypted: bool, meta: Option<&serde_json::Value>) -> Vec<u8> {
    let mut out = String::new();
    let mut first = true;
    if let Node::Map(sections) = n {
        for s in sections {
            let Item::Entry {
                key: name,
                value: Node::Map(items),
                ..
            } = s
            else {
                continue;
            };
            let lines: Vec<(Option<String>, String)> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Comment(c) => Some((None, c.text.clone())),
                    Item::Entry {
                        key,
                        value: Node::Scalar(s),
                        ..
                    } => {
                        let v = super::tree::output_text(s, encrypted);
                        Some((Some(key.clone()), quote(&v)))
                    }
                    _ => None,
                })
                .collect();
            emit_section(&mut out, name, &lines, first);
            first = false;
        }
    }
    if let Some(m) = meta {
        let mut flat = Vec::new();
        super::dotenv::flatten(m, "", true, &mut flat);
        flat.sort();
        let lines: Vec<_> = flat
            .into_iter()
            .map(|(k, v)| (Some(k), v.replace('\n', "\\n")))
            .collect();
        emit_section(&mut out, "sops", &lines, first);
    }
    out.into_bytes()
}
