//! Reads YAML the way Flux does: `flux build` and kustomize-controller turn
//! kustomize's output (and the text after postBuild substitution) into JSON
//! with sigs.k8s.io/yaml, whose reader is go-yaml v2, a YAML 1.1 reader. So a
//! plain `yes` is `true`, `0755` is `493`, `1_000` is `1000` and `1.0` ends up
//! as the integer `1`; quoted and block scalars stay strings. The events come
//! from libyaml (the `unsafe-libyaml` port that serde_yaml already builds on),
//! because the types depend on a scalar's style, which serde does not expose.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use serde_json::{Map, Number, Value};
use unsafe_libyaml as unsafe_sys;

use crate::YamlError;

/// What go-yaml v2 makes of a plain scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// `<<`, the merge key.
    Merge,
    Str,
}

/// go-yaml v2's `resolve` for an untagged plain scalar. Timestamps are
/// `Str`: v2 hands them to an `interface{}` as the original string.
pub fn resolve_plain(s: &str) -> Plain {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        "<<" => return Plain::Merge,
        _ => {}
    }
    match s.as_bytes()[0] {
        b'.' => go_parse_float(s).map_or(Plain::Str, Plain::Float),
        b'0'..=b'9' | b'+' | b'-' => {
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Plain::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Plain::Uint(u);
            }
            if is_yaml_style_float(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return Plain::Float(f);
            }
            if let Some(rest) = plain.strip_prefix("-0b") {
                // v2 parses "-" + digits in base 2 (after its base-0 attempt failed).
                if let Some(u) = parse_digits(rest, 2)
                    && u <= 1 << 63
                {
                    return Plain::Int((u as i128).wrapping_neg() as i64);
                }
            }
            Plain::Str
        }
        _ => Plain::Str,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms that reach it here;
/// out of range is an error there, not an infinity.
fn go_parse_float(s: &str) -> Option<f64> {
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_digits(s: &str, base: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for c in s.chars() {
        let d = c.to_digit(base)?;
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Go's `strconv.ParseUint(s, 0, 64)` (base prefixes 0x, 0o, 0b, and a
/// leading 0 for octal), on a string without underscores.
fn go_parse_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (base, digits) = if s.len() >= 3 && lower.starts_with("0x") {
        (16, &s[2..])
    } else if s.len() >= 3 && lower.starts_with("0o") {
        (8, &s[2..])
    } else if s.len() >= 3 && lower.starts_with("0b") {
        (2, &s[2..])
    } else if let Some(rest) = s.strip_prefix('0') {
        if rest.is_empty() {
            return Some(0);
        }
        (8, rest)
    } else {
        (10, s)
    };
    parse_digits(digits, base)
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint(rest)?;
    if neg {
        (u <= 1 << 63).then(|| (u as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(u).ok()
    }
}

/// A float as it comes out of Flux's JSON round trip: Go's encoder writes an
/// integral value below 1e21 without a fraction, which is read back as an
/// integer.
pub fn float_to_json(f: f64) -> Result<Value, YamlError> {
    if !f.is_finite() {
        return Err(YamlError::Float(f));
    }
    if f.fract() == 0.0 && f.abs() < 1e21 && f.abs() <= i64::MAX as f64 {
        return Ok(Value::from(f as i64));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or(YamlError::Float(f))
}

fn plain_to_json(s: &str) -> Result<Value, YamlError> {
    Ok(match resolve_plain(s) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(i) => Value::from(i),
        // Beyond int64, Kubernetes' JSON reader falls back to a float.
        Plain::Uint(u) => float_to_json(u as f64)?,
        Plain::Float(f) => float_to_json(f)?,
        Plain::Merge | Plain::Str => Value::String(s.to_string()),
    })
}

/// A map key as sigs.k8s.io/yaml turns it into a JSON key.
fn key_string(key: &Value) -> Result<String, YamlError> {
    match key {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(YamlError::MapKey(other.clone())),
    }
}

enum Frame {
    Seq(Vec<Value>, Option<String>),
    Map(Map<String, Value>, Option<Value>, Option<String>),
}

struct Parser {
    sys: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
    // libyaml reads from this buffer until the parser is dropped.
    _input: Vec<u8>,
}

impl Parser {
    fn new(text: &str) -> Self {
        let input = text.as_bytes().to_vec();
        let mut sys = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
        // SAFETY: the parser lives in a box that does not move, and the input
        // buffer outlives it (both are dropped together, the parser first).
        unsafe {
            let parser = sys.as_mut_ptr();
            assert!(
                !unsafe_sys::yaml_parser_initialize(parser).fail,
                "libyaml: out of memory"
            );
            unsafe_sys::yaml_parser_set_encoding(parser, unsafe_sys::YAML_UTF8_ENCODING);
            unsafe_sys::yaml_parser_set_input_string(parser, input.as_ptr(), input.len() as u64);
        }
        Self { sys, _input: input }
    }

    fn error(&mut self) -> YamlError {
        // SAFETY: the parser is initialised; problem is a static C string or null.
        unsafe {
            let parser = &*self.sys.as_ptr();
            let problem = if parser.problem.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(parser.problem.cast())
                    .to_string_lossy()
                    .into_owned()
            };
            YamlError::Syntax {
                line: parser.problem_mark.line + 1,
                problem,
            }
        }
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`.
        unsafe { unsafe_sys::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

unsafe fn c_string(ptr: *const u8) -> Option<String> {
    (!ptr.is_null()).then(|| {
        // SAFETY: libyaml's anchors and tags are NUL-terminated.
        unsafe { std::ffi::CStr::from_ptr(ptr.cast()) }
            .to_string_lossy()
            .into_owned()
    })
}

/// The share of a document's nodes that may come through aliases, as go-yaml
/// v3 allows it (`allowedAliasRatio`): 99% up to 400k decoded nodes, falling
/// linearly to 10% at 4M.
fn allowed_alias_ratio(decoded: u64) -> f64 {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    let d = decoded as f64;
    if d <= LOW {
        0.99
    } else if d >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((d - LOW) / (HIGH - LOW))
    }
}

/// Refuses a stream whose aliases would expand it out of all proportion (a
/// "billion laughs" bomb), without expanding anything: each anchor's size is
/// counted once, and an alias adds that count. The rule is go-yaml v3's
/// excessive-aliasing check, which kustomize's own reader lacks on some
/// paths; the error names the alias that crossed the line. Linear in the
/// text, so it runs before any parser or kustomize process sees the file.
pub fn check_aliases(text: &str) -> Result<(), YamlError> {
    // No alias, no bomb: most files never reach the parser below.
    if !text.contains('*') {
        return Ok(());
    }
    let mut parser = Parser::new(text);
    // Node counts: decoded as go-yaml decodes them (an alias counts its
    // anchor's whole expansion), and the part of that through aliases.
    let (mut decoded, mut aliased) = (0u64, 0u64);
    let mut sizes: HashMap<String, u64> = HashMap::new();
    // Open collections: their anchor and expanded size so far.
    let mut stack: Vec<(Option<String>, u64)> = Vec::new();
    loop {
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        // SAFETY: as in `parse_stream`: the event is filled on success and
        // deleted once its anchor is copied out.
        let (kind, anchor, line) = unsafe {
            if unsafe_sys::yaml_parser_parse(parser.sys.as_mut_ptr(), event.as_mut_ptr()).fail {
                // Syntax errors are the parsers' to report.
                return Ok(());
            }
            let e = &*event.as_ptr();
            let line = e.start_mark.line + 1;
            let out = match e.type_ {
                unsafe_sys::YAML_STREAM_END_EVENT => (0, None, line),
                unsafe_sys::YAML_DOCUMENT_START_EVENT => (8, None, line),
                unsafe_sys::YAML_SCALAR_EVENT => (1, c_string(e.data.scalar.anchor), line),
                unsafe_sys::YAML_ALIAS_EVENT => (2, c_string(e.data.alias.anchor), line),
                unsafe_sys::YAML_SEQUENCE_START_EVENT => {
                    (3, c_string(e.data.sequence_start.anchor), line)
                }
                unsafe_sys::YAML_MAPPING_START_EVENT => {
                    (3, c_string(e.data.mapping_start.anchor), line)
                }
                unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                    (4, None, line)
                }
                _ => (7, None, line),
            };
            unsafe_sys::yaml_event_delete(event.as_mut_ptr());
            out
        };
        let (size, anchor) = match kind {
            0 => return Ok(()),
            8 => {
                (decoded, aliased) = (0, 0);
                sizes.clear();
                continue;
            }
            1 => {
                decoded = decoded.saturating_add(1);
                (1, anchor)
            }
            2 => {
                let name = anchor.unwrap_or_default();
                let size = sizes.get(&name).copied().unwrap_or(1);
                decoded = decoded.saturating_add(size);
                aliased = aliased.saturating_add(size);
                if aliased > 100
                    && decoded > 1000
                    && aliased as f64 / decoded as f64 > allowed_alias_ratio(decoded)
                {
                    return Err(YamlError::ExcessiveAliasing {
                        anchor: name,
                        line,
                        nodes: decoded,
                        aliased,
                    });
                }
                (size, None)
            }
            3 => {
                decoded = decoded.saturating_add(1);
                stack.push((anchor, 1));
                continue;
            }
            4 => match stack.pop() {
                Some((anchor, size)) => (size, anchor),
                None => return Ok(()),
            },
            _ => continue,
        };
        if let Some(a) = anchor {
            sizes.insert(a, size);
        }
        if let Some((_, parent)) = stack.last_mut() {
            *parent = parent.saturating_add(size);
        }
    }
}

/// Parses a multi-document stream with go-yaml v2's types, skipping empty
/// (null) documents, into JSON values as sigs.k8s.io/yaml would.
pub fn parse_stream(text: &str) -> Result<Vec<Value>, YamlError> {
    check_aliases(text)?;
    let mut parser = Parser::new(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<String, Value> = HashMap::new();
    loop {
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        // SAFETY: the event is filled by yaml_parser_parse on success and
        // deleted once its data are copied out.
        let (kind, node, anchor) = unsafe {
            if unsafe_sys::yaml_parser_parse(parser.sys.as_mut_ptr(), event.as_mut_ptr()).fail {
                return Err(parser.error());
            }
            let e = &*event.as_ptr();
            let out = match e.type_ {
                unsafe_sys::YAML_STREAM_END_EVENT => (0, None, None),
                unsafe_sys::YAML_SCALAR_EVENT => {
                    let s = &e.data.scalar;
                    let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    let tag = c_string(s.tag);
                    let value = if s.style == unsafe_sys::YAML_PLAIN_SCALAR_STYLE
                        && tag.as_deref().is_none_or(|t| t != "tag:yaml.org,2002:str")
                    {
                        match plain_to_json(&text) {
                            Ok(v) => v,
                            Err(err) => {
                                unsafe_sys::yaml_event_delete(event.as_mut_ptr());
                                return Err(err);
                            }
                        }
                    } else {
                        Value::String(text)
                    };
                    (1, Some(value), c_string(s.anchor))
                }
                unsafe_sys::YAML_ALIAS_EVENT => (2, None, c_string(e.data.alias.anchor)),
                unsafe_sys::YAML_SEQUENCE_START_EVENT => {
                    (3, None, c_string(e.data.sequence_start.anchor))
                }
                unsafe_sys::YAML_SEQUENCE_END_EVENT => (4, None, None),
                unsafe_sys::YAML_MAPPING_START_EVENT => {
                    (5, None, c_string(e.data.mapping_start.anchor))
                }
                unsafe_sys::YAML_MAPPING_END_EVENT => (6, None, None),
                _ => (7, None, None),
            };
            unsafe_sys::yaml_event_delete(event.as_mut_ptr());
            out
        };
        let complete = match kind {
            0 => break,
            1 => {
                let value = node.unwrap_or(Value::Null);
                if let Some(a) = anchor {
                    anchors.insert(a, value.clone());
                }
                Some(value)
            }
            2 => {
                let name = anchor.unwrap_or_default();
                Some(
                    anchors
                        .get(&name)
                        .cloned()
                        .ok_or(YamlError::UnknownAnchor(name))?,
                )
            }
            3 => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            5 => {
                stack.push(Frame::Map(Map::new(), None, anchor));
                None
            }
            4 | 6 => {
                let (value, anchor) = match stack.pop() {
                    Some(Frame::Seq(items, a)) => (Value::Array(items), a),
                    Some(Frame::Map(map, _, a)) => (Value::Object(map), a),
                    None => return Err(YamlError::Unbalanced),
                };
                if let Some(a) = anchor {
                    anchors.insert(a, value.clone());
                }
                Some(value)
            }
            _ => None,
        };
        let Some(value) = complete else { continue };
        match stack.last_mut() {
            None => {
                if !value.is_null() {
                    docs.push(value);
                }
                anchors.clear();
            }
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(map, pending, _)) => match pending.take() {
                None => *pending = Some(value),
                Some(key) if key == Value::String("<<".into()) => merge(map, value)?,
                Some(key) => {
                    map.insert(key_string(&key)?, value);
                }
            },
        }
    }
    Ok(docs)
}

/// The `<<` merge key: keys already present win.
fn merge(map: &mut Map<String, Value>, value: Value) -> Result<(), YamlError> {
    let sources = match value {
        Value::Object(m) => vec![m],
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Object(m) => Ok(m),
                _ => Err(YamlError::MergeValue),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(YamlError::MergeValue),
    };
    for source in sources {
        for (k, v) in source {
            map.entry(k).or_insert(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_take_yaml_1_1_types_as_in_go_yaml_v2() {
        // Keys too: go-yaml v2 reads the key `n` as false.
        let doc = "a: yes\nb: 'yes'\nc: 007\nd: 0755\ne: 1_000\nf: 1.0\ng: 1.5\nh: 08\ni: 0x1F\n\
                   j: 0b101\nk: ~\nl: on\nm: \"on\"\nn: 2001-12-14\no: 1e3\np: +5\nq: .5\nr: 1:20\n\
                   s: -0b11\nt: |\n  007\nu: 0o17\n";
        let v = &parse_stream(doc).unwrap()[0];
        assert_eq!(
            v,
            &json!({"a": true, "b": "yes", "c": 7, "d": 493, "e": 1000, "f": 1, "g": 1.5, "h": 8,
                    "i": 31, "j": 5, "k": null, "l": true, "m": "on", "false": "2001-12-14", "o": 1000,
                    "p": 5, "q": 0.5, "r": "1:20", "s": -3, "t": "007\n", "u": 15})
        );
    }

    #[test]
    fn keys_become_strings_and_empty_documents_are_skipped() {
        let docs = parse_stream("---\n---\nyes: 1\n1: 2\n---\n# only a comment\n").unwrap();
        assert_eq!(docs, [json!({"true": 1, "1": 2})]);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let docs = parse_stream("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\n").unwrap();
        assert_eq!(docs[0]["b"], json!({"k": 3, "j": 2}));
    }

    /// Nine levels of ten aliases each: 10^9 nodes once expanded.
    fn alias_bomb() -> String {
        let mut text = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for level in 1..=9 {
            let prev = format!("*a{}", level - 1);
            let items = [prev.as_str(); 10].join(",");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_without_expanding_it() {
        let started = std::time::Instant::now();
        let err = parse_stream(&alias_bomb()).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let YamlError::ExcessiveAliasing { anchor, line, .. } = &err else {
            panic!("not refused as a bomb: {err}");
        };
        // a2 expands a1 ten times: the first level past go-yaml's ratio.
        assert_eq!((anchor.as_str(), *line), ("a2", 4));
        assert!(
            err.to_string()
                .starts_with("yaml: document contains excessive aliasing: alias *a2 at line 4"),
            "{err}"
        );
    }

    #[test]
    fn ordinary_anchors_pass_the_alias_check() {
        let text =
            "base: &b {x: 1, y: [1, 2]}\none: *b\ntwo:\n  <<: *b\n  z: 3\n---\nc: &c 1\nd: *c\n";
        check_aliases(text).unwrap();
        assert_eq!(parse_stream(text).unwrap().len(), 2);
    }

    #[test]
    fn infinity_cannot_become_json() {
        let err = parse_stream("a: .inf\n").unwrap_err();
        assert!(matches!(err, YamlError::Float(_)), "{err:?}");
        assert_eq!(err.to_string(), "json: unsupported value: inf");
        let err = parse_stream("a: [\n").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { line: 2, .. }), "{err:?}");
        assert!(err.to_string().starts_with("yaml: line 2: "), "{err}");
        let err = parse_stream("a: *nowhere\n").unwrap_err();
        assert_eq!(err.to_string(), "yaml: unknown anchor 'nowhere' referenced");
        let err = parse_stream("a:\n  <<: 1\n").unwrap_err();
        assert!(matches!(err, YamlError::MergeValue), "{err:?}");
    }
}
