//! YAML store over a lossless CST (yaml-edit): values and comments are replaced
//! in place, so the layout, key order and comments outside them are kept.

use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use rowan::ast::AstNode;
use yaml_edit::{Lang, SyntaxKind as K};

use super::SopsError;
use super::cipher::Value;
use super::tree::{self, Comment, Item, Node, Scalar};

type SN = rowan::SyntaxNode<Lang>;

/// Per-document layout facts needed to write the result back.
pub(crate) struct DocInfo {
    /// Where the metadata block goes (end of the top-level mapping).
    pub map_end: usize,
    /// The byte range of the `sops:` entry, if any.
    pub sops_span: Option<Range<usize>>,
    pub sops: Option<Node>,
}

pub(crate) struct Parsed {
    pub text: String,
    pub branches: Vec<Node>,
    pub docs: Vec<DocInfo>,
}

fn bad(reason: impl Into<String>) -> SopsError {
    SopsError::Malformed {
        reason: reason.into(),
    }
}

fn range(n: &SN) -> Range<usize> {
    let r = n.text_range();
    usize::from(r.start())..usize::from(r.end())
}

struct Walker {
    anchors: HashMap<String, Node>,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| bad("the YAML file is not UTF-8"))?;
    // A BOM or CRLF would shift byte offsets in surprising ways; normalise CRLF.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
    // Cross-check the syntax with a strict parser: yaml-edit is lenient.
    if text.lines().any(|l| l.starts_with("%YAML")) {
        return Err(SopsError::Unsupported {
            what: "a %YAML directive (the sops CLI, go-yaml v3, rejects it)".into(),
        });
    }
    let mut strict = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        use serde::Deserialize;
        let v =
            serde_yaml::Value::deserialize(doc).map_err(|e| bad(format!("invalid YAML: {e}")))?;
        if !v.is_null() {
            strict.push(v);
        }
    }
    let file =
        yaml_edit::YamlFile::from_str(&text).map_err(|e| bad(format!("invalid YAML: {e}")))?;
    let root = file.syntax().clone();
    let mut w = Walker {
        anchors: HashMap::new(),
    };
    let mut branches = Vec::new();
    let mut docs = Vec::new();
    for doc in root.children().filter(|c| c.kind() == K::DOCUMENT) {
        let mut top_comments = Vec::new();
        let mut map = None;
        for el in doc.children_with_tokens() {
            match el {
                rowan::NodeOrToken::Token(t) if t.kind() == K::COMMENT => {
                    top_comments.push(comment_item(&t))
                }
                rowan::NodeOrToken::Node(n) => match n.kind() {
                    K::MAPPING if map.is_none() => map = Some(n),
                    K::MAPPING | K::SEQUENCE | K::SCALAR | K::ALIAS | K::TAGGED_NODE => {
                        return Err(bad("every YAML document must be a single mapping"));
                    }
                    K::ERROR => return Err(bad("invalid YAML")),
                    _ => {}
                },
                _ => {}
            }
        }
        let Some(map) = map else {
            if top_comments.is_empty()
                && doc
                    .text()
                    .to_string()
                    .trim()
                    .trim_start_matches("---")
                    .trim()
                    .is_empty()
            {
                continue; // an empty document (e.g. a trailing `---`)
            }
            return Err(bad("every YAML document must be a mapping"));
        };
        if map
            .children_with_tokens()
            .any(|c| c.kind() == K::LEFT_BRACE)
        {
            return Err(SopsError::Unsupported {
                what: "a flow-style top-level mapping".into(),
            });
        }
        let mut items = top_comments;
        let mut sops_span = None;
        for it in w.mapping(&map, false)? {
            items.push(it);
        }
        // Find the span of the top-level `sops` entry.
        for e in map.children().filter(|c| c.kind() == K::MAPPING_ENTRY) {
            if entry_key(&e)?.as_deref() == Some("sops") {
                sops_span = Some(range(&e));
            }
        }
        let mut node = Node::Map(items);
        // Safety net: the CST reading must agree with a strict parser on the
        // structure and every string, or we refuse rather than mis-encrypt.
        if let Some(v) = strict.get(branches.len())
            && !same_shape(&node, v)
        {
            return Err(SopsError::Unsupported {
                what: format!(
                    "a YAML construct in document {} that the layout-preserving editor cannot read reliably",
                    branches.len() + 1
                ),
            });
        }
        let sops = tree::take_top_key(&mut node, "sops");
        branches.push(node);
        docs.push(DocInfo {
            map_end: range(&map).end,
            sops_span,
            sops,
        });
    }
    if branches.is_empty() {
        return Err(bad("the YAML file must contain at least one document"));
    }
    Ok(Parsed {
        text,
        branches,
        docs,
    })
}

/// Structure, keys and string values agree with serde_yaml's reading.
fn same_shape(n: &Node, v: &serde_yaml::Value) -> bool {
    use serde_yaml::Value as V;
    let v = match v {
        V::Tagged(t) => &t.value,
        v => v,
    };
    match (n, v) {
        (Node::Map(items), V::Mapping(m)) => {
            let entries: Vec<(&String, &Node)> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Entry { key, value, .. } => Some((key, value)),
                    _ => None,
                })
                .collect();
            entries.len() == m.len()
                && entries.iter().zip(m.iter()).all(|((k, n), (mk, mv))| {
                    let key_ok = match mk {
                        V::String(s) => s == *k,
                        _ => true,
                    };
                    key_ok && same_shape(n, mv)
                })
        }
        (Node::Seq(items), V::Sequence(s)) => {
            let vals: Vec<&Node> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Value { value, .. } => Some(value),
                    _ => None,
                })
                .collect();
            vals.len() == s.len() && vals.iter().zip(s).all(|(n, v)| same_shape(n, v))
        }
        (Node::Scalar(sc), v) => match (&sc.value, v) {
            (Value::Str(a), V::String(b)) => a == b,
            (Value::Null, V::Null) => true,
            (Value::Null, _) | (_, V::Null) => {
                matches!(v, V::String(s) if s.is_empty()) || matches!(sc.value, Value::Null)
            }
            (_, V::Mapping(_)) | (_, V::Sequence(_)) => false,
            _ => true,
        },
        _ => false,
    }
}

fn comment_item(t: &rowan::SyntaxToken<Lang>) -> Item {
    let r = t.text_range();
    let text = t.text();
    Item::Comment(Comment {
        text: text.strip_prefix('#').unwrap_or(text).to_string(),
        span: Some(usize::from(r.start())..usize::from(r.end())),
        changed: false,
    })
}

fn entry_key(e: &SN) -> Result<Option<String>, SopsError> {
    let Some(key) = e.children().find(|c| c.kind() == K::KEY) else {
        return Ok(None);
    };
    let Some(s) = key.descendants().find(|c| c.kind() == K::SCALAR) else {
        return Err(bad("only scalar mapping keys are supported"));
    };
    let s = yaml_edit::Scalar::cast(s).ok_or_else(|| bad("bad key"))?;
    Ok(Some(s.as_string()))
}

fn is_flow(n: &SN) -> bool {
    n.children_with_tokens()
        .any(|c| matches!(c.kind(), K::LEFT_BRACE | K::LEFT_BRACKET))
}

impl Walker {
    fn mapping(&mut self, map: &SN, in_flow: bool) -> Result<Vec<Item>, SopsError> {
        let flow = in_flow || is_flow(map);
        let mut items = Vec::new();
        for el in map.children_with_tokens() {
            match el {
                rowan::NodeOrToken::Token(t) => {
                    if t.kind() == K::COMMENT {
                        items.push(comment_item(&t));
                    }
                }
                rowan::NodeOrToken::Node(n) => match n.kind() {
                    K::MAPPING_ENTRY => {
                        let key =
                            entry_key(&n)?.ok_or_else(|| bad("mapping entry without a key"))?;
                        let mut after = Vec::new();
                        let mut value = None;
                        for c in n.children_with_tokens() {
                            match c {
                                rowan::NodeOrToken::Token(t) if t.kind() == K::COMMENT => {
                                    after.push(comment_item(&t))
                                }
                                rowan::NodeOrToken::Node(v) if v.kind() == K::VALUE => {
                                    value = Some(self.container(&v, flow)?);
                                }
                                rowan::NodeOrToken::Node(k) if k.kind() == K::KEY => {
                                    for t in k.descendants_with_tokens() {
                                        if let Some(t) = t.as_token()
                                            && t.kind() == K::COMMENT
                                        {
                                            after.push(comment_item(t));
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                        let (value, alias, mut comments) = match value {
                            Some(v) => v,
                            None => (Node::Scalar(Scalar::new(Value::Null)), None, Vec::new()),
                        };
                        comments.extend(after);
                        let value = match value {
                            // Comments before a nested collection belong to it.
                            Node::Map(mut inner) if alias.is_none() => {
                                let mut c = std::mem::take(&mut comments);
                                c.append(&mut inner);
                                Node::Map(c)
                            }
                            Node::Seq(mut inner) if alias.is_none() => {
                                let mut c = std::mem::take(&mut comments);
                                c.append(&mut inner);
                                Node::Seq(c)
                            }
                            v => v,
                        };
                        items.push(Item::Entry { key, value, alias });
                        items.append(&mut comments);
                    }
                    K::ERROR => return Err(bad("invalid YAML")),
                    _ => {}
                },
            }
        }
        Ok(items)
    }

    fn sequence(&mut self, seq: &SN, in_flow: bool) -> Result<Vec<Item>, SopsError> {
        let flow = in_flow || is_flow(seq);
        let mut items = Vec::new();
        for el in seq.children_with_tokens() {
            match el {
                rowan::NodeOrToken::Token(t) => {
                    if t.kind() == K::COMMENT {
                        items.push(comment_item(&t));
                    }
                }
                rowan::NodeOrToken::Node(n) => match n.kind() {
                    K::SEQUENCE_ENTRY => {
                        let (value, alias, comments) = self.container(&n, flow)?;
                        let start = n
                            .children_with_tokens()
                            .find(|c| c.kind() == K::DASH)
                            .map(|d| usize::from(d.text_range().start()));
                        let end = n
                            .children()
                            .find(|c| {
                                matches!(
                                    c.kind(),
                                    K::SCALAR
                                        | K::MAPPING
                                        | K::SEQUENCE
                                        | K::ALIAS
                                        | K::TAGGED_NODE
                                )
                            })
                            .map(|v| range(&v).end);
                        let entry = match (start, end) {
                            (Some(s), Some(e)) if s < e => Some(s..e),
                            _ => None,
                        };
                        items.push(Item::Value {
                            value,
                            alias,
                            entry,
                        });
                        items.extend(comments);
                    }
                    K::SCALAR | K::MAPPING | K::SEQUENCE | K::ALIAS | K::TAGGED_NODE => {
                        let (value, alias) = self.value(&n, flow, None)?;
                        items.push(Item::Value {
                            value,
                            alias,
                            entry: None,
                        });
                    }
                    K::ERROR => return Err(bad("invalid YAML")),
                    _ => {}
                },
            }
        }
        Ok(items)
    }

    /// A VALUE or SEQUENCE_ENTRY: the value node, an alias span, and loose comments.
    #[allow(clippy::type_complexity)]
    fn container(
        &mut self,
        c: &SN,
        flow: bool,
    ) -> Result<(Node, Option<Range<usize>>, Vec<Item>), SopsError> {
        let mut comments = Vec::new();
        let mut anchor = None;
        let mut value = None;
        for el in c.children_with_tokens() {
            match el {
                rowan::NodeOrToken::Token(t) => match t.kind() {
                    K::COMMENT => comments.push(comment_item(&t)),
                    K::ANCHOR => anchor = Some(t.text().trim_start_matches('&').to_string()),
                    _ => {}
                },
                rowan::NodeOrToken::Node(n) => match n.kind() {
                    K::SCALAR | K::MAPPING | K::SEQUENCE | K::ALIAS | K::TAGGED_NODE
                        if value.is_none() =>
                    {
                        value = Some(self.value(&n, flow, anchor.take())?);
                    }
                    K::ERROR => return Err(bad("invalid YAML")),
                    _ => {}
                },
            }
        }
        let (v, alias) = value.unwrap_or((Node::Scalar(Scalar::new(Value::Null)), None));
        Ok((v, alias, comments))
    }

    fn value(
        &mut self,
        n: &SN,
        flow: bool,
        anchor: Option<String>,
    ) -> Result<(Node, Option<Range<usize>>), SopsError> {
        let mut anchor = anchor;
        let (node, alias) = match n.kind() {
            K::SCALAR => (Node::Scalar(scalar(n, flow, None)?), None),
            K::MAPPING => (Node::Map(self.mapping(n, flow)?), None),
            K::SEQUENCE => (Node::Seq(self.sequence(n, flow)?), None),
            K::ALIAS => {
                let name = n
                    .text()
                    .to_string()
                    .trim()
                    .trim_start_matches('*')
                    .to_string();
                let target = self
                    .anchors
                    .get(&name)
                    .ok_or_else(|| bad(format!("unknown alias *{name}")))?;
                let mut t = target.clone();
                strip_spans(&mut t);
                (t, Some(range(n)))
            }
            K::TAGGED_NODE => {
                let mut tag = String::new();
                let mut inner = None;
                for el in n.children_with_tokens() {
                    match el {
                        rowan::NodeOrToken::Token(t) if t.kind() == K::TAG => {
                            tag = t.text().to_string()
                        }
                        rowan::NodeOrToken::Token(t) if t.kind() == K::ANCHOR => {
                            anchor = Some(t.text().trim_start_matches('&').to_string())
                        }
                        rowan::NodeOrToken::Node(c) if inner.is_none() => inner = Some(c),
                        _ => {}
                    }
                }
                let inner = inner.ok_or_else(|| bad("tag without a value"))?;
                if inner.kind() == K::SCALAR {
                    let mut sc = scalar(&inner, flow, Some(&tag))?;
                    // The edit replaces the tag too: `!!bool ENC[...]` would not read back.
                    let start = range(n).start;
                    sc.span = sc.span.map(|r| start..r.end);
                    (Node::Scalar(sc), None)
                } else {
                    self.value(&inner, flow, None)?
                }
            }
            _ => return Err(bad("unexpected YAML node")),
        };
        if let Some(a) = anchor {
            self.anchors.insert(a, node.clone());
        }
        Ok((node, alias))
    }
}

fn strip_spans(n: &mut Node) {
    match n {
        Node::Map(items) | Node::Seq(items) => {
            for i in items {
                match i {
                    Item::Entry { value, alias, .. } | Item::Value { value, alias, .. } => {
                        *alias = None;
                        strip_spans(value);
                    }
                    Item::Comment(c) => c.span = None,
                }
            }
        }
        Node::Scalar(s) => s.span = None,
    }
}

fn scalar(n: &SN, flow: bool, tag: Option<&str>) -> Result<Scalar, SopsError> {
    let s = yaml_edit::Scalar::cast(n.clone()).ok_or_else(|| bad("bad scalar"))?;
    let raw = n.text().to_string();
    let trimmed = raw.trim_start();
    let value = if trimmed.starts_with('"') || trimmed.starts_with('\'') || s.is_block() {
        Value::Str(s.as_string())
    } else {
        match tag {
            Some("!!str") | Some("!!binary") => Value::Str(s.as_string()),
            _ => resolve_plain(&s.as_string())?,
        }
    };
    let value = match (tag, value) {
        (Some("!!str"), Value::Null) => Value::Str(String::new()),
        (_, v) => v,
    };
    Ok(Scalar {
        value,
        enc: None,
        span: Some(range(n)),
        flow,
        changed: false,
    })
}

static FLOAT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").expect("regex")
});
static TIME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:([Tt]|[ \t]+)(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,9}))?[ \t]*(Z|[+-]\d{1,2}(?::\d{2})?)?)?$")
        .expect("regex")
});

/// yaml.v3 resolution of a plain scalar.
pub(crate) fn resolve_plain(s: &str) -> Result<Value, SopsError> {
    Ok(match s {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Value::Float(f64::NAN),
        _ => {
            let c = s.as_bytes()[0];
            if !(c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.') {
                return Ok(Value::Str(s.to_string()));
            }
            if c.is_ascii_digit()
                && let Some(t) = parse_timestamp(s)
            {
                return Ok(Value::Time(t));
            }
            let plain = s.replace('_', "");
            match go_parse_int(&plain) {
                IntParse::Int(i) => return Ok(Value::Int(i)),
                IntParse::Uint => {
                    return Err(SopsError::Unsupported {
                        what: "an integer that does not fit in int64 (sops: unknown type uint64)"
                            .into(),
                    });
                }
                IntParse::No => {}
            }
            if FLOAT_RE.is_match(&plain)
                && let Ok(f) = plain.parse::<f64>()
            {
                return Ok(Value::Float(f));
            }
            Value::Str(s.to_string())
        }
    })
}

enum IntParse {
    Int(i64),
    Uint,
    No,
}

/// Go `strconv.ParseInt(s, 0, 64)` (and whether ParseUint would accept it).
fn go_parse_int(s: &str) -> IntParse {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, d)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, d)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, d)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return IntParse::No;
    }
    match u128::from_str_radix(digits, radix) {
        Ok(v) => {
            if neg {
                if v <= (i64::MAX as u128) + 1 {
                    IntParse::Int((-(v as i128)) as i64)
                } else {
                    IntParse::No
                }
            } else if v <= i64::MAX as u128 {
                IntParse::Int(v as i64)
            } else if v <= u64::MAX as u128 {
                IntParse::Uint
            } else {
                IntParse::No
            }
        }
        Err(_) => IntParse::No,
    }
}

/// yaml.v3 timestamp resolution; returns Go `MarshalText` (RFC 3339 nano).
fn parse_timestamp(s: &str) -> Option<String> {
    let c = TIME_RE.captures(s)?;
    let num = |i: usize| {
        c.get(i)
            .map(|m| m.as_str().parse::<i64>().ok())
            .unwrap_or(Some(0))
    };
    let (y, mo, d) = (num(1)?, num(2)?, num(3)?);
    let has_time = c.get(5).is_some();
    let sep = c.get(4).map(|m| m.as_str()).unwrap_or("");
    let tz = c.get(9).map(|m| m.as_str());
    // Go layouts: T/t needs a zone; a space separator must not have one.
    if has_time && (sep == "T" || sep == "t") && tz.is_none() {
        return None;
    }
    if has_time && !(sep == "T" || sep == "t") && (tz.is_some() || sep != " ") {
        return None;
    }
    let (h, mi, se) = (num(5)?, num(6)?, num(7)?);
    let frac = c.get(8).map(|m| m.as_str()).unwrap_or("");
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let zone = match tz {
        None | Some("Z") => String::from("Z"),
        Some(z) => {
            let sign = &z[..1];
            let (hh, mm) = z[1..].split_once(':').unwrap_or((&z[1..], "00"));
            let (hh, mm): (u32, u32) = (hh.parse().ok()?, mm.parse().ok()?);
            if hh == 0 && mm == 0 {
                "Z".into()
            } else {
                format!("{sign}{hh:02}:{mm:02}")
            }
        }
    };
    let frac = frac.trim_end_matches('0');
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        h,
        mi,
        se
    ))
}

/// True when `s` can be written as a plain scalar and reads back as the same string.
pub(crate) fn plain_ok(s: &str, flow: bool) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| c.is_control())
    {
        return false;
    }
    if flow && s.chars().any(|c| ",[]{}".contains(c)) {
        return false;
    }
    // What a YAML 1.1 reader (Kubernetes' own YAML path among them) takes
    // for another type is quoted too, as yaml.v3 does for sops.
    if yaml11_non_string(s) {
        return false;
    }
    matches!(resolve_plain(s), Ok(Value::Str(ref t)) if t == s)
}

static BASE60_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").expect("regex")
});

/// YAML 1.1 booleans (`yes`, `on`, `y`, ...), sexagesimal numbers (`1:30`)
/// and the merge and value keys: plain strings in YAML 1.2, not in 1.1.
pub(crate) fn yaml11_non_string(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | "<<"
            | "="
    ) || BASE60_RE.is_match(s)
}

/// A float as yaml.v3 writes it for sops: Go `strconv.FormatFloat(f, 'g',
/// -1, 64)` (`1e+10`, `1e-05`, `1000`), with `.inf`, `-.inf` and `.nan`.
pub(crate) fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's -1 precision does.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    if !(-4..6).contains(&exp) {
        let rest = if nd > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{}{rest}e{esign}{:02}", &digits[..1], exp.abs());
    }
    let dp = exp + 1;
    let body = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= nd {
        format!("{digits}{}", "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

/// A YAML double-quoted string.
pub(crate) fn double_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                let v = c as u32;
                if v <= 0xff {
                    out.push_str(&format!("\\x{v:02X}"));
                } else {
                    out.push_str(&format!("\\u{v:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

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
