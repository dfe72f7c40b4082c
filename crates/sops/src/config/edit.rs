//! Lossless edits of a `.sops.yaml` text: add an age recipient to one
//! creation rule, or swap one set of recipients for another in every rule.
//!
//! The rules and their `age` values are located on yaml-edit's CST and only
//! those values' bytes are rewritten, so comments, blank lines, key order,
//! quoting and the document marker elsewhere stay byte for byte. Each value
//! keeps its form: a (comma-separated) string stays a string, a flow list
//! `[a, b]` stays flow, a block list gets items with the same indentation.
//! The result is read back with [`Config::parse`] and must hold exactly the
//! intended recipients, or the edit is refused.

use std::ops::Range;
use std::str::FromStr;

use rowan::ast::AstNode;
use yaml_edit::{Lang, SyntaxKind as K};

use super::Config;
use crate::SopsError;

type SN = rowan::SyntaxNode<Lang>;

/// Adds `recipient` to the age recipients of the rule whose `path_regex`
/// names `path` (see [`Config::rule_index_naming`]). Adding a recipient the
/// rule already lists returns the text unchanged.
pub fn add_recipient(text: &str, path: &str, recipient: &str) -> Result<String, SopsError> {
    check_recipient(recipient)?;
    let (config, rules) = open(text)?;
    let idx = config.rule_index_naming(path)?;
    let rule = &rules[idx];
    let mut edits = Vec::new();
    let mut expected = config.rules[idx].age.clone();
    let spots = rule_spots(rule)?;
    if spots.iter().flat_map(|s| s.items()).any(|r| r == recipient) {
        return Ok(text.to_string());
    }
    match spots.first() {
        Some(spot) => {
            // The first place the rule lists recipients: its own `age`, else
            // its (single) key group's.
            if spots.len() > 1 && rule_age(rule).is_none() {
                return Err(SopsError::Unsupported {
                    what: "adding a recipient to a rule with several key_groups (Shamir)".into(),
                });
            }
            spot.add(text, recipient, &mut edits)?;
            // `Config` lists the rule's own `age` before the key groups'.
            let at = spot.items().len();
            expected.insert(at.min(expected.len()), recipient.to_string());
        }
        None => {
            insert_age_entry(text, rule, recipient, &mut edits)?;
            expected.push(recipient.to_string());
        }
    }
    let out = apply(text, edits);
    verify(&out, |i| {
        if i == idx {
            expected.clone()
        } else {
            config.rules[i].age.clone()
        }
    })?;
    Ok(out)
}

/// Replaces the recipients `old` with `new` in every rule (and key group)
/// that lists any of `old`: the first old one's place gets `new` (without
/// duplicates), the other old ones are removed. Rules without any of `old`
/// are left alone, so a second run changes nothing.
pub fn replace_recipients(text: &str, old: &[String], new: &[String]) -> Result<String, SopsError> {
    if new.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    for r in new {
        check_recipient(r)?;
    }
    let (_, rules) = open(text)?;
    let mut edits = Vec::new();
    let mut expected: Vec<Vec<String>> = Vec::new();
    for rule in &rules {
        let mut want = Vec::new();
        for spot in rule_spots(rule)? {
            let items = spot.items();
            let list = replaced(&items, old, new);
            if list != items {
                spot.replace(text, old, new, &mut edits)?;
            }
            want.extend(list);
        }
        expected.push(want);
    }
    let out = apply(text, edits);
    verify(&out, |i| expected[i].clone())?;
    Ok(out)
}

/// The list `items` becomes: `old` ones removed, `new` (the ones not kept
/// anyway) where the first old one was. Unchanged when no old one is there.
fn replaced(items: &[String], old: &[String], new: &[String]) -> Vec<String> {
    let Some(first) = items.iter().position(|x| old.contains(x)) else {
        return items.to_vec();
    };
    let mut out: Vec<String> = Vec::new();
    for (i, x) in items.iter().enumerate() {
        if i == first {
            for n in new {
                let kept_later = items.iter().any(|y| y == n && !old.contains(y));
                if !kept_later && !out.contains(n) {
                    out.push(n.clone());
                }
            }
        }
        if !old.contains(x) && !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// age recipients are bech32 (`age1...`, plugins `age1<name>1...`): letters
/// and digits only, so they can be written plain in any YAML form.
fn check_recipient(r: &str) -> Result<(), SopsError> {
    if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SopsError::Keys {
            reason: format!("not an age recipient: {r:?}"),
        });
    }
    Ok(())
}

fn not_rules(reason: &str) -> SopsError {
    SopsError::NotCreationRules {
        reason: reason.to_string(),
    }
}

/// The parsed config and, in the same order, each rule's mapping node.
fn open(text: &str) -> Result<(Config, Vec<SN>), SopsError> {
    let file = yaml_edit::YamlFile::from_str(text).map_err(|e| not_rules(&e.to_string()))?;
    let root = file.syntax().clone();
    let doc = root
        .children()
        .find(|c| c.kind() == K::DOCUMENT)
        .ok_or_else(|| not_rules("the file is empty"))?;
    let map = doc
        .children()
        .find(|c| c.kind() != K::ERROR)
        .filter(|c| c.kind() == K::MAPPING)
        .ok_or_else(|| not_rules("the document is not a mapping"))?;
    let entry = map_entry(&map, "creation_rules")
        .ok_or_else(|| not_rules("the mapping has no creation_rules"))?;
    let seq = value_node(&entry)
        .filter(|v| v.kind() == K::SEQUENCE)
        .ok_or_else(|| not_rules("creation_rules is not a list"))?;
    let rules = seq
        .children()
        .filter(|c| c.kind() == K::SEQUENCE_ENTRY)
        .map(|e| {
            e.children()
                .find(|c| c.kind() == K::MAPPING)
                .ok_or_else(|| not_rules("a creation rule is not a mapping"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = Config::parse(text).map_err(SopsError::InvalidConfig)?;
    if config.rules.len() != rules.len() {
        return Err(layout_unsupported());
    }
    Ok((config, rules))
}

fn layout_unsupported() -> SopsError {
    SopsError::Unsupported {
        what: "a .sops.yaml layout the editor cannot change reliably (edit it by hand)".into(),
    }
}

/// The edited text must read back with exactly the intended recipients.
fn verify(out: &str, expected: impl Fn(usize) -> Vec<String>) -> Result<(), SopsError> {
    let config = Config::parse(out).map_err(|_| layout_unsupported())?;
    for (i, rule) in config.rules.iter().enumerate() {
        if rule.age != expected(i) {
            return Err(layout_unsupported());
        }
    }
    Ok(())
}

fn key_text(entry: &SN) -> Option<String> {
    let key = entry.children().find(|c| c.kind() == K::KEY)?;
    let s = key.descendants().find(|c| c.kind() == K::SCALAR)?;
    Some(yaml_edit::Scalar::cast(s)?.as_string())
}

fn map_entry(map: &SN, key: &str) -> Option<SN> {
    map.children()
        .filter(|c| c.kind() == K::MAPPING_ENTRY)
        .find(|e| key_text(e).as_deref() == Some(key))
}

/// The value node of a mapping entry (scalar, sequence, mapping, ...).
fn value_node(entry: &SN) -> Option<SN> {
    entry
        .children()
        .find(|c| c.kind() == K::VALUE)?
        .children()
        .next()
}

fn range(n: &SN) -> Range<usize> {
    let r = n.text_range();
    usize::from(r.start())..usize::from(r.end())
}

fn rule_age(rule: &SN) -> Option<SN> {
    map_entry(rule, "age")
}

/// Where a rule lists recipients: its own `age`, then each key group's.
fn rule_spots(rule: &SN) -> Result<Vec<Spot>, SopsError> {
    let mut spots = Vec::new();
    if let Some(e) = rule_age(rule) {
        spots.push(Spot::read(&e)?);
    }
    if let Some(groups) = map_entry(rule, "key_groups").and_then(|e| value_node(&e)) {
        for g in groups.children().filter(|c| c.kind() == K::SEQUENCE_ENTRY) {
            if let Some(e) = g
                .children()
                .find(|c| c.kind() == K::MAPPING)
                .and_then(|m| map_entry(&m, "age"))
            {
                spots.push(Spot::read(&e)?);
            }
        }
    }
    Ok(spots)
}

/// One scalar: its bytes and its string value.
struct Item {
    scalar: Range<usize>,
    text: String,
    value: String,
}

impl Item {
    fn read(n: &SN) -> Result<Item, SopsError> {
        let text = n.text().to_string();
        let value = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
            Ok(serde_yaml::Value::String(s)) => s,
            _ => return Err(layout_unsupported()),
        };
        Ok(Item {
            scalar: range(n),
            text,
            value: value.trim().to_string(),
        })
    }
}

/// An `age` value and its form.
enum Spot {
    /// `age: a` / `age: "a,b"`: a comma-separated string (`None`: `age: null`).
    Scalar {
        node: Range<usize>,
        text: String,
        value: Option<String>,
        /// Inside `{...}` or `[...]`, where a plain comma ends the value.
        flow: bool,
    },
    /// `age: [a, b]`.
    Flow { open: usize, items: Vec<Item> },
    /// `age:` followed by `- a` lines.
    Block { entries: Vec<(Range<usize>, Item)> },
    /// `age:` with nothing after it: the colon's end.
    Empty { colon_end: usize },
}

impl Spot {
    fn read(entry: &SN) -> Result<Spot, SopsError> {
        // `age:` with nothing after it (yaml-edit may hold an empty scalar).
        let v = value_node(entry).filter(|v| !v.text().is_empty());
        let Some(v) = v else {
            let colon = entry
                .children_with_tokens()
                .find(|c| c.kind() == K::COLON)
                .ok_or_else(layout_unsupported)?;
            return Ok(Spot::Empty {
                colon_end: usize::from(colon.text_range().end()),
            });
        };
        match v.kind() {
            K::SCALAR => {
                let text = v.text().to_string();
                if text.starts_with('|') || text.starts_with('>') {
                    return Err(SopsError::Unsupported {
                        what: "a block scalar (`|` or `>`) as the age recipients".into(),
                    });
                }
                let value = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
                    Ok(serde_yaml::Value::String(s)) => Some(s),
                    Ok(serde_yaml::Value::Null) => None,
                    _ => return Err(layout_unsupported()),
                };
                let flow = v.ancestors().any(|a| {
                    a.children_with_tokens()
                        .any(|c| matches!(c.kind(), K::LEFT_BRACE | K::LEFT_BRACKET))
                });
                Ok(Spot::Scalar {
                    node: range(&v),
                    text,
                    value,
                    flow,
                })
            }
            K::SEQUENCE => {
                let flow = v
                    .children_with_tokens()
                    .find(|c| c.kind() == K::LEFT_BRACKET);
                let mut entries = Vec::new();
                for e in v.children().filter(|c| c.kind() == K::SEQUENCE_ENTRY) {
                    let s = e
                        .children()
                        .find(|c| c.kind() == K::SCALAR)
                        .ok_or_else(layout_unsupported)?;
                    entries.push((range(&e), Item::read(&s)?));
                }
                match flow {
                    Some(open) => Ok(Spot::Flow {
                        open: usize::from(open.text_range().end()),
                        items: entries.into_iter().map(|(_, i)| i).collect(),
                    }),
                    None => Ok(Spot::Block { entries }),
                }
            }
            _ => Err(layout_unsupported()),
        }
    }

    /// The recipients as `Config` reads them.
    fn items(&self) -> Vec<String> {
        match self {
            Spot::Scalar { value, .. } => value
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            Spot::Flow { items, .. } => items.iter().map(|i| i.value.clone()).collect(),
            Spot::Block { entries } => entries.iter().map(|(_, i)| i.value.clone()).collect(),
            Spot::Empty { .. } => Vec::new(),
        }
    }

    fn add(&self, text: &str, r: &str, edits: &mut Vec<Edit>) -> Result<(), SopsError> {
        match self {
            Spot::Scalar { .. } | Spot::Flow { .. } => {
                let mut list = self.items();
                list.push(r.to_string());
                self.rewrite(&list, edits)
            }
            Spot::Block { entries } => {
                let (last, item) = entries.last().ok_or_else(layout_unsupported)?;
                let indent = indent_of(text, last.start);
                let line = format!("{indent}- {}", like(&item.text, r));
                edits.push(after_line(text, last.end, &line));
                Ok(())
            }
            Spot::Empty { colon_end } => {
                edits.push((*colon_end..*colon_end, format!(" {r}")));
                Ok(())
            }
        }
    }

    fn replace(
        &self,
        text: &str,
        old: &[String],
        new: &[String],
        edits: &mut Vec<Edit>,
    ) -> Result<(), SopsError> {
        let items = self.items();
        let list = replaced(&items, old, new);
        let Spot::Block { entries } = self else {
            return self.rewrite(&list, edits);
        };
        // Block lists are edited item by item so that comments on and
        // between the other items stay.
        let fresh: Vec<&String> = new.iter().filter(|n| list.contains(n)).collect();
        let fresh: Vec<&String> = fresh
            .into_iter()
            .filter(|n| !items.iter().any(|x| x == *n && !old.contains(x)))
            .collect();
        let mut fresh = fresh;
        fresh.dedup();
        let mut first = true;
        for (entry, item) in entries {
            if !old.contains(&item.value) {
                continue;
            }
            match (first, fresh.split_first()) {
                (true, Some((head, rest))) => {
                    edits.push((item.scalar.clone(), like(&item.text, head)));
                    let indent = indent_of(text, entry.start);
                    for n in rest {
                        let line = format!("{indent}- {}", like(&item.text, n));
                        edits.push(after_line(text, entry.end, &line));
                    }
                }
                _ => edits.push(drop_line(text, entry)),
            }
            first = false;
        }
        Ok(())
    }

    /// Writes a scalar or flow value anew with `list`, in the same form.
    fn rewrite(&self, list: &[String], edits: &mut Vec<Edit>) -> Result<(), SopsError> {
        match self {
            Spot::Scalar {
                node,
                text,
                value,
                flow,
            } => {
                let sep = match value.as_deref() {
                    Some(v) if v.contains(", ") => ", ",
                    _ => ",",
                };
                let joined = list.join(sep);
                let q = text.chars().next().filter(|c| *c == '"' || *c == '\'');
                let rendered = match q {
                    Some(q) => format!("{q}{joined}{q}"),
                    None if *flow && list.len() > 1 => format!("\"{joined}\""),
                    None => joined,
                };
                edits.push((node.clone(), rendered));
                Ok(())
            }
            Spot::Flow { open, items } => {
                let sample = items.first().map(|i| i.text.as_str()).unwrap_or("");
                let rendered: Vec<String> = list
                    .iter()
                    .map(|r| match items.iter().find(|i| &i.value == r) {
                        Some(i) => i.text.clone(),
                        None => like(sample, r),
                    })
                    .collect();
                match (items.first(), items.last()) {
                    (Some(a), Some(b)) => {
                        let sep = match items.get(1) {
                            Some(second) => {
                                String::from(",")
                                    + if second.scalar.start > a.scalar.end + 1 {
                                        " "
                                    } else {
                                        ""
                                    }
                            }
                            None => ", ".into(),
                        };
                        edits.push((a.scalar.start..b.scalar.end, rendered.join(&sep)));
                    }
                    _ => edits.push((*open..*open, rendered.join(", "))),
                }
                Ok(())
            }
            _ => Err(layout_unsupported()),
        }
    }
}

type Edit = (Range<usize>, String);

/// `r` in the quoting of `sample` (recipients need no escaping).
fn like(sample: &str, r: &str) -> String {
    match sample.chars().next() {
        Some(q @ ('"' | '\'')) => format!("{q}{r}{q}"),
        _ => r.to_string(),
    }
}

/// The whitespace before `at` on its line (a list item's indentation).
fn indent_of(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[start..at]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect()
}

/// Inserts `line` as a new line after the one ending at or after `end`.
fn after_line(text: &str, end: usize, line: &str) -> Edit {
    if text[..end].ends_with('\n') {
        (end..end, format!("{line}\n"))
    } else {
        // The entry's newline lies outside it (or the file ends here).
        (end..end, format!("\n{line}"))
    }
}

/// Removes a block list item's whole line.
fn drop_line(text: &str, entry: &Range<usize>) -> Edit {
    let start = text[..entry.start].rfind('\n').map_or(0, |i| i + 1);
    if text[..entry.end].ends_with('\n') {
        (start..entry.end, String::new())
    } else {
        (start.saturating_sub(1)..entry.end, String::new())
    }
}

/// A rule without any recipients gets an `age:` entry after its last one.
fn insert_age_entry(
    text: &str,
    rule: &SN,
    r: &str,
    edits: &mut Vec<Edit>,
) -> Result<(), SopsError> {
    if rule
        .children_with_tokens()
        .any(|c| c.kind() == K::LEFT_BRACE)
    {
        return Err(SopsError::Unsupported {
            what: "adding age to a flow-style creation rule".into(),
        });
    }
    let entries: Vec<SN> = rule
        .children()
        .filter(|c| c.kind() == K::MAPPING_ENTRY)
        .collect();
    let (first, last) = match (entries.first(), entries.last()) {
        (Some(f), Some(l)) => (range(f), range(l)),
        _ => return Err(layout_unsupported()),
    };
    let line_start = text[..first.start].rfind('\n').map_or(0, |i| i + 1);
    let indent = " ".repeat(text[line_start..first.start].chars().count());
    edits.push(after_line(text, last.end, &format!("{indent}age: {r}")));
    Ok(())
}

/// Applies non-overlapping edits (insertions at one point keep their order).
fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (r, s) in edits {
        out.push_str(&text[at..r.start.max(at)]);
        out.push_str(&s);
        at = at.max(r.end);
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests;
