//! What several kinds' rules share: int-or-percent fields, label selectors,
//! enumerations, non-negative integers, quantities, IPs and CIDRs.

use serde_json::Value;

use super::{Out, check_labels, int_at, is_label_value, is_qualified_name, str_at};
use k8s_schema::formats::parse_quantity;

/// Adds "Unsupported value" when `value` is set, non-empty and not `allowed`.
pub(super) fn one_of(value: Option<&str>, allowed: &[&str], path: &str, out: &mut Out) {
    if let Some(v) = value.filter(|v| !v.is_empty())
        && !allowed.contains(&v)
    {
        out.add(path, unsupported(v, allowed));
    }
}

pub(super) fn unsupported(value: &str, allowed: &[&str]) -> String {
    let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "Unsupported value {value:?}: supported values: {}",
        list.join(", ")
    )
}

/// `ValidateNonnegativeField`: `key` of `v`, when set, is at least 0.
pub(super) fn non_negative(v: &Value, key: &str, base: &str, out: &mut Out) {
    if let Some(n) = int_at(v, key)
        && n < 0
    {
        out.add(
            join(base, key),
            format!("Invalid value {n}: must be greater than or equal to 0"),
        );
    }
}

pub(super) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// An `IntOrString` field read as the server does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    pub(super) fn is_zero(self) -> bool {
        matches!(self, Self::Int(0) | Self::Percent(0))
    }
}

/// `ValidatePositiveIntOrPercent` (+ `IsNotMoreThan100Percent` when
/// `at_most_100`) of the apps and policy validation: an integer at least 0,
/// or a string `<digits>%`.
pub(super) fn int_or_percent(
    v: Option<&Value>,
    path: &str,
    at_most_100: bool,
    out: &mut Out,
) -> Option<IntOrPercent> {
    let parsed = match v? {
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n < 0 {
                out.add(
                    path,
                    format!("Invalid value {n}: must be greater than or equal to 0"),
                );
            }
            IntOrPercent::Int(n)
        }
        Value::String(s) => {
            let Some(p) = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|d| d.parse::<i64>().ok())
            else {
                out.add(
                    path,
                    format!(
                        "Invalid value {s:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
                    ),
                );
                return None;
            };
            if at_most_100 && p > 100 {
                out.add(
                    path,
                    format!("Invalid value {s:?}: must not be greater than 100%"),
                );
            }
            IntOrPercent::Percent(p)
        }
        _ => return None,
    };
    Some(parsed)
}

/// `ValidateLabelSelector` (k8s.io/apimachinery/pkg/apis/meta/v1/validation):
/// `matchLabels` are labels; each expression has a qualified key and an
/// operator whose values fit it.
pub(super) fn label_selector(selector: &Value, path: &str, out: &mut Out) {
    if let Some(map) = selector.get("matchLabels").and_then(Value::as_object) {
        check_labels(map, &format!("{path}.matchLabels"), out);
    }
    for (i, e) in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ep = format!("{path}.matchExpressions[{i}]");
        let values: Vec<&Value> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        match str_at(e, "operator") {
            Some("In" | "NotIn") if values.is_empty() => out.add(
                format!("{ep}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Some("Exists" | "DoesNotExist") if !values.is_empty() => out.add(
                format!("{ep}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            Some("In" | "NotIn" | "Exists" | "DoesNotExist") => {}
            Some(op) => out.add(
                format!("{ep}.operator"),
                unsupported(op, &["DoesNotExist", "Exists", "In", "NotIn"]),
            ),
            None => {}
        }
        if let Some(key) = str_at(e, "key")
            && !is_qualified_name(key)
        {
            out.add(
                format!("{ep}.key"),
                format!("Invalid value {key:?}: must be a qualified name"),
            );
        }
        for (j, v) in values.iter().enumerate() {
            if let Some(s) = v.as_str()
                && !is_label_value(s)
            {
                out.add(
                    format!("{ep}.values[{j}]"),
                    format!("Invalid value {s:?}: must be a valid label value"),
                );
            }
        }
    }
}

/// A quantity (string or number) as a number; `None` when it does not
/// parse (the schema check's format error).
pub(super) fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_quantity(s).ok().map(|q| q.0),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Go's `net.ParseIP` as the API server's legacy parsing uses it: IPv4
/// dotted quads may carry leading zeros.
pub(super) fn is_ip(s: &str) -> bool {
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()) && {
                p.parse::<u16>().is_ok_and(|n| n <= 255)
            }
        })
}

/// `IsValidCIDR` (legacy parsing): an IP and a prefix length within its family.
pub(super) fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) || bits.len() > 3 {
        return false;
    }
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    if ip.contains(':') {
        ip.parse::<std::net::Ipv6Addr>().is_ok() && bits <= 128
    } else {
        is_ip(ip) && bits <= 32
    }
}

/// The strings of an array field.
pub(super) fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The objects of an array field.
pub(super) fn items<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|x| x.is_object())
        .collect()
}
