//! The string formats the API server checks while decoding or validating:
//! `date-time` (`metav1.Time` for built-in types, kube-openapi's strfmt for
//! CRDs), `byte` (Go's base64 for `[]byte`, strfmt for CRDs) and Kubernetes
//! resource quantities (`resource.ParseQuantity`).

/// A parsed quantity: its value as a float (enough to compare and to tell
/// the sign).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity(pub f64);

/// Why a string is not a quantity (the two errors of `resource.ParseQuantity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// `resource.ParseQuantity` after `Quantity.UnmarshalJSON`'s TrimSpace: the
/// same scanner (sign, digits, `.`, digits, suffix letters, exponent sign and
/// digits) and the same suffixes.
pub fn parse_quantity(input: &str) -> Result<Quantity, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(QuantityError::Format);
    }
    let b = s.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    match b[0] {
        b'-' => {
            negative = true;
            pos += 1;
        }
        b'+' => pos += 1,
        _ => {}
    }
    let num_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < b.len() {
        return Err(QuantityError::Format);
    }
    let suffix = &s[suffix_start..];
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) => {
            let exp: i64 = suffix[1..].parse().map_err(|_| QuantityError::Suffix)?;
            10f64.powf(exp as f64)
        }
        _ => return Err(QuantityError::Suffix),
    };
    let mantissa: f64 = format!(
        "{}.{}",
        if num.is_empty() { "0" } else { num },
        if denom.is_empty() { "0" } else { denom }
    )
    .parse()
    .map_err(|_| QuantityError::Format)?;
    let value = mantissa * multiplier;
    Ok(Quantity(if negative { -value } else { value }))
}

fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD` with a real day of a real month (Go's `time.Parse("2006-01-02")`).
fn is_full_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&s[..4]), digits(&s[5..7]), digits(&s[8..10])) else {
        return false;
    };
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

/// `HH:MM:SS` in range.
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    matches!(
        (digits(&s[..2]), digits(&s[3..5]), digits(&s[6..8])),
        (Some(h), Some(m), Some(sec)) if h < 24 && m < 60 && sec < 60
    )
}

/// `metav1.Time`'s decoder: Go's `time.Parse(time.RFC3339, s)`:
/// `2006-01-02T15:04:05Z07:00`, an optional fraction after the seconds,
/// `Z` or a `±hh:mm` offset.
pub fn is_rfc3339(s: &str) -> bool {
    if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return false;
    }
    if !is_full_date(&s[..10]) || s.as_bytes()[10] != b'T' || !is_time(&s[11..19]) {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    is_offset(rest, false)
}

fn is_offset(rest: &str, lower_z: bool) -> bool {
    if rest == "Z" || (lower_z && rest == "z") {
        return true;
    }
    let b = rest.as_bytes();
    b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && b[3] == b':'
        && matches!((digits(&rest[1..3]), digits(&rest[4..6])), (Some(h), Some(m)) if h < 24 && m < 60)
}

/// kube-openapi's `strfmt.IsDateTime` (format `date-time` of a CRD): a full
/// date, `t` in any case, then `hh:mm:ss`, an optional fraction and `z` or
/// an offset.
pub fn is_strfmt_date_time(s: &str) -> bool {
    let lower = s.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if s.len() < 4 || !is_full_date(date) || time.len() < 8 || !time.is_char_boundary(8) {
        return false;
    }
    if !is_time(&time[..8]) {
        return false;
    }
    let mut rest = &time[8..];
    if rest.len() > 1 && !rest.starts_with(['z', '+', '-']) {
        // `(.[0-9]+)?`: any one character, then digits.
        let n = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || !rest.is_char_boundary(1) {
            return false;
        }
        rest = &rest[1 + n..];
    }
    is_offset(rest, true)
}

fn is_b64_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// `encoding/json`'s decoder for `[]byte` (Secret and ConfigMap data):
/// standard base64 with padding; line breaks are ignored.
pub fn is_go_base64(s: &str) -> bool {
    let b: Vec<u8> = s.bytes().filter(|c| *c != b'\n' && *c != b'\r').collect();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    pad <= 2 && b[..b.len() - pad].iter().all(|c| is_b64_char(*c))
}

/// govalidator's `IsBase64` (format `byte` of a CRD): whole quads of the
/// standard alphabet, padded; the empty string is not base64 there.
pub fn is_strfmt_base64(s: &str) -> bool {
    !s.is_empty() && !s.contains(['\n', '\r']) && is_go_base64(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_resource_parse_quantity_does() {
        for ok in [
            "1", "0", "100m", "1.5Gi", "64Mi", "1e3", "1E-3", "+2", ".5", "5.", "1k", " 2Gi ",
        ] {
            assert!(parse_quantity(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "1GB", "1Gb", "abc", "1 Gi", "1Mi2", "1e", "--1", "1.2.3",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_quantity("1Ki").unwrap(), Quantity(1024.0));
        assert!(parse_quantity("-1").unwrap().0 < 0.0);
        assert!(parse_quantity("500m").unwrap().0 < parse_quantity("1").unwrap().0);
    }

    #[test]
    fn date_times() {
        assert!(is_rfc3339("2024-02-29T10:00:00Z"));
        assert!(is_rfc3339("2024-01-01T10:00:00.123+02:00"));
        assert!(!is_rfc3339("yesterday"));
        assert!(!is_rfc3339("2023-02-29T10:00:00Z"));
        assert!(!is_rfc3339("2024-01-01 10:00:00Z"));
        assert!(!is_rfc3339("2024-01-01T25:00:00Z"));
        assert!(!is_rfc3339("2024-01-01T10:00:00"));
        assert!(is_strfmt_date_time("2024-01-01t10:00:00z"));
        assert!(!is_strfmt_date_time("yesterday"));
    }

    #[test]
    fn base64() {
        assert!(is_go_base64(""));
        assert!(is_go_base64("aGVsbG8="));
        assert!(is_go_base64("aGVs\nbG8="));
        assert!(!is_go_base64("hello!"));
        assert!(!is_go_base64("aGVsbG8"));
        assert!(!is_strfmt_base64(""));
        assert!(is_strfmt_base64("aGVsbG8="));
    }
}
