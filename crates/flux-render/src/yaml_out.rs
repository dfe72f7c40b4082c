//! The YAML we write for people and tools: block style, and every string
//! that some reader would take for another type is quoted. YAML 1.1 readers
//! (go-yaml v2 behind kubectl and Flux, PyYAML) read a plain `yes`, `on`,
//! `y`, `0755`, `1_000`, `1:20` or `2001-12-14` as a bool, number or date,
//! YAML 1.2 readers read `0o17` or `1e3` as numbers; quoted, they are the
//! same string for all of them. Shared by `build` and the SOPS decrypt output.

use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::yaml11::{Plain, resolve_plain};

/// One object as a YAML document (no `---`).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0, false),
        other => {
            scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

/// Objects as one multi-document stream, each preceded by `---`.
pub fn to_stream(values: &[Value]) -> String {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&to_string(value));
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, level: usize, inline_first: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline_first {
            indent(out, level);
        }
        key(out, k);
        out.push(':');
        after_key(out, v, level);
    }
}

fn after_key(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(out, m, level + 2, false);
        }
        // Sequences sit at their key's indentation, as kubectl writes them.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(out, a, level, false);
        }
        other => {
            out.push(' ');
            scalar(out, other, level + 2);
            out.push('\n');
        }
    }
}

fn seq(out: &mut String, a: &[Value], level: usize, inline_first: bool) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !inline_first {
            indent(out, level);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => map(out, m, level + 2, true),
            Value::Array(inner) if !inner.is_empty() => seq(out, inner, level + 2, true),
            other => {
                scalar(out, other, level + 2);
                out.push('\n');
            }
        }
    }
}

fn key(out: &mut String, k: &str) {
    if needs_quotes(k) {
        double_quoted(out, k);
    } else {
        out.push_str(k);
    }
}

/// Writes a scalar; `level` is the indentation of a block scalar's lines.
fn scalar(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => string(out, s, level),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// Floats keep a `.` and a signed exponent, which YAML 1.1 needs to see a float.
fn number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        let text = n.to_string();
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (m.to_string(), Some(e.to_string())),
            None => (text.clone(), None),
        };
        let mantissa = if mantissa.contains('.') {
            mantissa
        } else {
            format!("{mantissa}.0")
        };
        match exponent {
            Some(e) if e.starts_with(['-', '+']) => format!("{mantissa}e{e}"),
            Some(e) => format!("{mantissa}e+{e}"),
            None => mantissa,
        }
    } else {
        n.to_string()
    }
}

fn string(out: &mut String, s: &str, level: usize) {
    if s.contains('\n') && literal_allowed(s) {
        literal(out, s, level);
    } else if needs_quotes(s) {
        double_quoted(out, s);
    } else {
        out.push_str(s);
    }
}

/// A literal block keeps the text byte for byte when no line starts or ends
/// with white space and every character is printable.
fn literal_allowed(s: &str) -> bool {
    // A first line with text fixes the block's indentation.
    !s.starts_with('\n')
        && s.lines().all(|line| {
            !line.starts_with([' ', '\t'])
                && !line.ends_with([' ', '\t'])
                && line.chars().all(|c| c == '\t' || printable(c))
        })
        && !s.contains('\r')
}

fn literal(out: &mut String, s: &str, level: usize) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(out, level);
            out.push_str(line);
        }
    }
    // The kept trailing newlines beyond the first are empty lines.
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn printable(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

/// True when `s` cannot be written as a plain scalar: YAML syntax would read
/// it differently, or a YAML 1.1 or 1.2 reader would give it another type.
pub fn needs_quotes(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return true;
    };
    // `-` may start a plain scalar when a non-space follows (`--name`).
    let dash_ok = first == '-'
        && !s.starts_with("---")
        && s[1..].chars().next().is_some_and(|c| c != ' ' && c != '\t');
    if ("-?:,[]{}#&*!|>'\"%@`".contains(first) && !dash_ok)
        || s.starts_with([' ', '\t'])
        || s.ends_with([' ', '\t', ':'])
        || s.contains(": ")
        || s.contains(":\t")
        || s.contains(" #")
        || s.contains("\t#")
        || s.starts_with("...")
        || !s.chars().all(printable)
    {
        return true;
    }
    looks_typed(s)
}

/// YAML 1.1 (the spec's regular expressions, and go-yaml v2's looser
/// reading) or 1.2 core schema reads this plain scalar as something else than
/// a string.
pub fn looks_typed(s: &str) -> bool {
    static YAML11: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(?:",
            // bool and null (1.1), bool and null (1.2 core)
            r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"|~|null|Null|NULL",
            // int (1.1): binary, octal, decimal, hex, sexagesimal
            r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            // float (1.1, as PyYAML reads it), sexagesimal float, inf and nan
            r"|[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            // int and float (1.2 core)
            r"|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+",
            r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?",
            // timestamp (1.1), merge and value keys
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)?",
            r"|<<|=",
            r")$"
        ))
        .expect("the YAML type patterns are valid")
    });
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || b"+-.~<=yYnNtTfFoO".contains(&first)) {
        return false;
    }
    YAML11.is_match(s) || resolve_plain(s) != Plain::Str
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_any_reader_would_retype_are_quoted() {
        for s in [
            "yes",
            "on",
            "y",
            "N",
            "off",
            "1_000",
            "007",
            "0755",
            "0o17",
            "1e3",
            "1:20",
            "2001-12-14",
            "~",
            "null",
            ".inf",
            "-.5",
            "0x1F",
            "0b101",
            "<<",
            "=",
            "true",
            "08",
            "",
            "12",
        ] {
            assert!(needs_quotes(s), "{s:?} should be quoted");
        }
        for s in [
            "yesterday",
            "online",
            "1.2.3.4",
            "v1",
            "nginx:1.25",
            "a-b",
            "x=y",
            "10Gi",
            "500m",
            "--name",
            "-x",
        ] {
            assert!(!needs_quotes(s), "{s:?} can stay plain");
        }
    }

    #[test]
    fn syntax_that_would_change_the_meaning_is_quoted() {
        for s in [
            "- a",
            "-",
            "---x",
            "a: b",
            "a #b",
            "#c",
            "*x",
            "&y",
            "!t",
            "|",
            ">",
            "'q'",
            "\"d\"",
            "%p",
            "@a",
            "`b",
            " lead",
            "trail ",
            "key:",
            "{x}",
            "[x]",
            "tab\tend\u{7}",
        ] {
            assert!(needs_quotes(s), "{s:?} should be quoted");
        }
    }

    #[test]
    fn every_value_reads_back_the_same_with_both_readers() {
        let value = json!({
            "apiVersion": "v1",
            "data": {
                "yes": "on", "n": "1_000", "octal": "0755", "multi": "a\nb\n", "kept": "x\n\n",
                "strip": "line1\nline2", "lead": "  a\nb", "trailing": "a \nb", "quote": "say \"hi\"\\",
                "ctl": "bell\u{7}", "unicode": "café ☕", "empty": "", "date": "2001-12-14",
                "newline": "\n", "leading": "\nx", "crlf": "a\r\nb",
            },
            "spec": {"replicas": 3, "ratio": 1.5, "big": 1e300, "on": true, "none": null,
                     "list": [{"a": 1, "b": [1, [2, 3]]}, "s", [], {}], "empty": {}},
        });
        let text = to_string(&value);
        let v12: Value = serde_yaml::from_str(&text).unwrap();
        let v11 = crate::yaml11::parse_stream(&text).unwrap();
        assert_eq!(v12, value, "{text}");
        assert_eq!(v11[0], value, "{text}");
        assert!(text.contains("\"yes\": \"on\""), "{text}");
        assert!(text.contains("multi: |\n    a\n    b\n"), "{text}");
    }

    /// Many strings built from the characters that matter to YAML, as keys
    /// and values: both readers give back exactly what was written.
    #[test]
    fn generated_strings_round_trip_through_both_readers() {
        let alphabet: Vec<char> = " :#-\n'\"\t y0.e_[{,!&*|>%@`~\\é\u{85}\u{2028}1onN+x"
            .chars()
            .collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut map = serde_json::Map::new();
        for i in 0..4000 {
            let len = next() % 7;
            let s: String = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            map.insert(format!("{s}{i}"), json!(s));
        }
        let value = Value::Object(map);
        let text = to_string(&value);
        let v12: Value = serde_yaml::from_str(&text).unwrap();
        let v11 = crate::yaml11::parse_stream(&text).unwrap();
        assert_eq!(v12, value);
        assert_eq!(v11[0], value);
    }
}
