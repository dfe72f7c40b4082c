//! YAML store over a lossless CST (yaml-edit): values and comments are replaced
//! in place, so the layout, key order and comments outside them are kept.

use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;

use rowan::ast::AstNode;
use yaml_edit::{Lang, SyntaxKind as K};

mod emit;
mod scalar;

pub(crate) use emit::{emit_decrypted, emit_encrypted};
#[cfg(test)]
pub(crate) use scalar::resolve_plain;

use crate::SopsError;
use crate::cipher::Value;
use crate::tree::{self, Comment, Item, Node, Scalar};
use scalar::scalar;

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
