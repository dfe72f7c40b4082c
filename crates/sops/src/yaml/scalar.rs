//! Scalars: how a plain or quoted YAML scalar reads (YAML 1.1 types, as
//! sops's Go YAML library resolves them) and when one may stay plain.

use std::sync::LazyLock;

use regex::Regex;
use rowan::ast::AstNode;

use super::{SN, bad, range};
use crate::SopsError;
use crate::cipher::Value;
use crate::tree::Scalar;

pub(super) fn scalar(n: &SN, flow: bool, tag: Option<&str>) -> Result<Scalar, SopsError> {
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
            if may_be_float(&plain)
                && FLOAT_RE.is_match(&plain)
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

/// Only the bytes [`FLOAT_RE`] can match: most plain scalars that start
/// like a number (`10m`, `100Mi`) are told apart without it (its first use
/// compiles it, which costs more than a whole small file's parse).
fn may_be_float(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
}

/// The start [`TIME_RE`] needs (four digits and a `-`), checked first for
/// the same reason as [`may_be_float`].
fn may_be_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// yaml.v3 timestamp resolution; returns Go `MarshalText` (RFC 3339 nano).
fn parse_timestamp(s: &str) -> Option<String> {
    if !may_be_timestamp(s) {
        return None;
    }
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
    ) || (may_be_base60(s) && BASE60_RE.is_match(s))
}

/// Only the bytes [`BASE60_RE`] can match, with its `:`.
fn may_be_base60(s: &str) -> bool {
    s.contains(':')
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'_' | b':' | b'+' | b'-' | b'.'))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string a regex matches passes its prefilter: over every string
    /// of up to five bytes from the regexes' own alphabet and a few others,
    /// and over longer real values.
    #[test]
    fn the_prefilters_never_hide_a_match() {
        let alphabet = b"09+-.eE:_ Tt Zx";
        let mut samples: Vec<String> = vec![String::new()];
        for _ in 0..5 {
            let next: Vec<String> = samples
                .iter()
                .flat_map(|s| alphabet.iter().map(move |&c| format!("{s}{}", c as char)))
                .collect();
            samples.extend(next);
        }
        samples.extend(
            [
                "2001-12-14t21:59:43.10-05:00",
                "2001-12-14 21:59:43.10",
                "2002-12-14",
                "2001-1-1",
                "190:20:30",
                "1_000:30.5",
                "-1:30",
                "1e+10",
                "6.8523015e+5",
                ".5",
                "100Mi",
                "10m",
                "0x1F",
            ]
            .map(String::from),
        );
        for s in &samples {
            assert!(may_be_float(s) || !FLOAT_RE.is_match(s), "{s:?}");
            assert!(may_be_timestamp(s) || !TIME_RE.is_match(s), "{s:?}");
            assert!(may_be_base60(s) || !BASE60_RE.is_match(s), "{s:?}");
        }
        assert!(TIME_RE.is_match("2001-1-1") && may_be_timestamp("2001-1-1"));
        assert!(!may_be_float("100Mi") && !may_be_timestamp("10m"));
    }
}
