//! Writing back: the edits that replace values in the original text, the
//! metadata block, and the scalar forms sops writes.

use std::ops::Range;

use super::Parsed;
use super::scalar::{double_quote, plain_ok, yaml_float};
use crate::cipher::Value;
use crate::tree::{self, Item, Node};

/// Renders a plaintext value as a YAML scalar that reads back with the same type.
pub(crate) fn render_value(v: &Value, flow: bool) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Str(s) => {
            if plain_ok(s, flow) {
                s.clone()
            } else {
                double_quote(s)
            }
        }
        Value::Int(i) => i.to_string(),
        Value::Float(f) => yaml_float(*f),
        Value::Bool(b) => b.to_string(),
        Value::Time(t) => t.clone(),
    }
}

fn render_enc(e: &str, flow: bool) -> String {
    if flow { double_quote(e) } else { e.to_string() }
}

/// A node as inline flow YAML (used where an alias was expanded).
fn flow_node(n: &Node, encrypted: bool) -> String {
    match n {
        Node::Map(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Entry { key, value, .. } => Some(format!(
                        "{}: {}",
                        double_quote(key),
                        flow_node(value, encrypted)
                    )),
                    _ => None,
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Node::Seq(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Value { value, .. } => Some(flow_node(value, encrypted)),
                    _ => None,
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
        Node::Scalar(s) => match (&s.enc, encrypted) {
            (Some(e), true) => double_quote(e),
            _ => render_value(&s.value, true),
        },
    }
}

fn collect_edits(n: &Node, encrypted: bool, text: &str, edits: &mut Vec<(Range<usize>, String)>) {
    match n {
        Node::Map(items) | Node::Seq(items) => {
            for i in items {
                match i {
                    Item::Entry {
                        value,
                        alias: Some(span),
                        ..
                    }
                    | Item::Value {
                        value,
                        alias: Some(span),
                        ..
                    } => {
                        edits.push((span.clone(), flow_node(value, encrypted)));
                    }
                    Item::Entry { value, .. } | Item::Value { value, .. } => {
                        collect_edits(value, encrypted, text, edits)
                    }
                    Item::Comment(c) => {
                        if let (true, Some(span)) = (c.changed, &c.span) {
                            edits.push((span.clone(), format!("#{}", c.text)));
                        }
                    }
                }
            }
        }
        Node::Scalar(s) => {
            if let (true, Some(span)) = (s.changed, &s.span) {
                let mut out = match (&s.enc, encrypted) {
                    (Some(e), true) => render_enc(e, s.flow),
                    _ => match &s.value {
                        Value::Str(v) if !s.flow => literal_block(v, text, span)
                            .unwrap_or_else(|| render_value(&s.value, false)),
                        v => render_value(v, s.flow),
                    },
                };
                if text[span.clone()].ends_with('\n') {
                    out.push('\n');
                }
                edits.push((span.clone(), out));
            }
        }
    }
}

/// A multi-line string as a `|` literal block at `span`, when that is exact
/// and possible there; `None` means: use a quoted scalar.
fn literal_block(v: &str, text: &str, span: &Range<usize>) -> Option<String> {
    if !v.contains('\n') || v.trim_end_matches('\n').is_empty() {
        return None;
    }
    if v.starts_with([' ', '\t'])
        || v.chars().any(|c| c != '\n' && c != '\t' && c.is_control())
        || v.contains('\u{feff}')
    {
        return None;
    }
    let body = v.trim_end_matches('\n');
    if body
        .split('\n')
        .any(|l| !l.is_empty() && l.trim().is_empty())
    {
        return None;
    }
    // The scalar must end its line (no inline comment after it).
    let raw = &text[span.clone()];
    let rest = &text[span.end..];
    if !(raw.ends_with('\n') || rest.is_empty() || rest.starts_with('\n')) {
        return None;
    }
    // Indent two columns deeper than the key or dash that owns the scalar.
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &text[line_start..span.start];
    let owner = prefix.len() - prefix.trim_start_matches([' ', '-']).len();
    let indent = " ".repeat(owner + 2);
    let trailing = v.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&indent);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    if rest.is_empty() && !raw.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len() + 4096);
    let mut pos = 0;
    for (r, s) in edits {
        if r.start < pos {
            continue; // nested in an earlier edit
        }
        out.push_str(&text[pos..r.start]);
        out.push_str(&s);
        pos = r.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Writes the metadata block sops 3.11 style (4-space indent).
pub(crate) fn metadata_block(m: &tree::Metadata) -> String {
    let mut o = String::from("sops:\n");
    if !m.age.is_empty() {
        o.push_str("    age:\n");
        for a in &m.age {
            o.push_str(&format!(
                "        - recipient: {}\n",
                render_value(&Value::Str(a.recipient.clone()), false)
            ));
            o.push_str("          enc: |\n");
            for line in a.enc.lines() {
                o.push_str(&format!("            {line}\n"));
            }
        }
    }
    o.push_str(&format!(
        "    lastmodified: {}\n",
        double_quote(&m.lastmodified)
    ));
    o.push_str(&format!("    mac: {}\n", m.mac));
    if let Some((k, v)) = m.selection.field() {
        o.push_str(&format!(
            "    {k}: {}\n",
            render_value(&Value::Str(v.to_string()), false)
        ));
    }
    if m.mac_only_encrypted {
        o.push_str("    mac_only_encrypted: true\n");
    }
    o.push_str(&format!("    version: {}\n", m.version));
    o
}

/// The encrypted file: values replaced, metadata appended to every document.
pub(crate) fn emit_encrypted(p: &Parsed, meta: &tree::Metadata) -> Vec<u8> {
    let mut edits = Vec::new();
    for b in &p.branches {
        collect_edits(b, true, &p.text, &mut edits);
    }
    let block = metadata_block(meta);
    for d in &p.docs {
        match &d.sops_span {
            Some(span) => {
                let mut b = block.clone();
                if !p.text[span.clone()].ends_with('\n') {
                    b.pop();
                }
                edits.push((span.clone(), b));
            }
            None => {
                let needs_nl = d.map_end > 0 && !p.text[..d.map_end].ends_with('\n');
                let b = if needs_nl {
                    format!("\n{block}")
                } else {
                    block.clone()
                };
                edits.push((d.map_end..d.map_end, b));
            }
        }
    }
    apply(&p.text, edits).into_bytes()
}

/// The decrypted file: values replaced, metadata removed.
pub(crate) fn emit_decrypted(p: &Parsed) -> Vec<u8> {
    let mut edits = Vec::new();
    for b in &p.branches {
        collect_edits(b, false, &p.text, &mut edits);
    }
    for d in &p.docs {
        if let Some(span) = &d.sops_span {
            edits.push((span.clone(), String::new()));
        }
    }
    apply(&p.text, edits).into_bytes()
}
