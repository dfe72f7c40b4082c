//! Flux postBuild variable substitution, with kustomize-controller's semantics
//! (fluxcd/pkg envsubst in strict mode):
//! - `${var}` is replaced; an unset variable without a default is an error;
//! - `${var:=default}`, `${var:-default}`, `${var=default}`, `${var-default}`
//!   use the default when the variable is unset or empty; defaults may nest;
//! - `$${var}` is an escape that yields the literal `${var}`;
//! - a bare `$var` is left alone (Flux only expands the braced form).

use std::collections::BTreeMap;

/// Variable name rule from kustomize-controller.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error("variable ${{{0}}} is not defined and has no default")]
    Undefined(String),
    #[error("unterminated ${{...}} starting at byte {0}")]
    Unterminated(usize),
    #[error("bad substitution ${{{0}}}")]
    Bad(String),
}

/// One `${...}` use found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarUse {
    pub name: String,
    pub has_default: bool,
}

/// Expands every `${...}` in `input` with `vars`.
pub fn substitute(input: &str, vars: &BTreeMap<String, String>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(input.len());
    expand(
        input,
        &mut |name, default| match vars.get(name) {
            Some(v) if !(v.is_empty() && default.is_some()) => Ok(v.clone()),
            _ => default.ok_or_else(|| SubstError::Undefined(name.to_string())),
        },
        &mut out,
    )?;
    Ok(out)
}

/// Expands what it can: a variable with neither a value nor a default is kept
/// as written (`${name}`) and its name returned, so that validation can
/// report every missing variable instead of stopping at the first. A
/// malformed expression leaves the text as it was.
pub fn substitute_lenient<'v>(
    input: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> (String, Vec<String>) {
    let mut missing = Vec::new();
    let mut out = String::with_capacity(input.len());
    let result = expand(
        input,
        &mut |name, default| match lookup(name) {
            Some(v) if !(v.is_empty() && default.is_some()) => Ok(v.to_string()),
            _ => Ok(default.unwrap_or_else(|| {
                missing.push(name.to_string());
                format!("${{{name}}}")
            })),
        },
        &mut out,
    );
    match result {
        Ok(()) => (out, missing),
        Err(_) => (input.to_string(), Vec::new()),
    }
}

/// Lists every variable a text uses (for the validate check and error hints).
pub fn variables_used(input: &str) -> Vec<VarUse> {
    let mut uses = Vec::new();
    let mut sink = String::new();
    // Collects instead of resolving; defaults are expanded too so nested uses count.
    let _ = expand(
        input,
        &mut |name, default| {
            uses.push(VarUse {
                name: name.to_string(),
                has_default: default.is_some(),
            });
            Ok(default.unwrap_or_default())
        },
        &mut sink,
    );
    uses
}

type Resolve<'a> = dyn FnMut(&str, Option<String>) -> Result<String, SubstError> + 'a;

fn expand(input: &str, resolve: &mut Resolve<'_>, out: &mut String) -> Result<(), SubstError> {
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut plain_start = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        // `$${` is the escape for a literal `${`; what follows is scanned as usual.
        if bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') {
            out.push_str(&input[plain_start..i]);
            out.push_str("${");
            i += 3;
            plain_start = i;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'{') {
            i += 1;
            continue;
        }
        out.push_str(&input[plain_start..i]);
        let end = matching_brace(input, i + 1).ok_or(SubstError::Unterminated(i))?;
        let body = &input[i + 2..end];
        out.push_str(&evaluate(body, resolve)?);
        i = end + 1;
        plain_start = i;
    }
    out.push_str(&input[plain_start..]);
    Ok(())
}

/// Index of the `}` that closes the `{` at `open`, counting nested `${`.
fn matching_brace(input: &str, open: usize) -> Option<usize> {
    let bytes = input.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn evaluate(body: &str, resolve: &mut Resolve<'_>) -> Result<String, SubstError> {
    let name_len = body
        .char_indices()
        .find(|&(_, c)| !(c == '_' || c.is_alphanumeric()))
        .map(|(i, _)| i)
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(name_len);
    if !is_valid_name(name) {
        return Err(SubstError::Bad(body.to_string()));
    }
    if rest.is_empty() {
        return resolve(name, None);
    }
    let default_text = ["=:", ":-", ":=", "=", "-"]
        .iter()
        .filter(|op| op.len() == 2 || !rest.starts_with(':'))
        .find_map(|op| rest.strip_prefix(op));
    match default_text {
        Some(text) => {
            let mut default = String::new();
            expand(text, resolve, &mut default)?;
            resolve(name, Some(default))
        }
        None => Err(SubstError::Bad(body.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_variable() {
        let v = vars(&[("domain", "platform.lan")]);
        assert_eq!(
            substitute("host: whoami.${domain}", &v).unwrap(),
            "host: whoami.platform.lan"
        );
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let v = vars(&[("set", "x"), ("empty", "")]);
        for op in [":=", ":-", "=", "-"] {
            assert_eq!(
                substitute(&format!("${{unset{op}d}}"), &v).unwrap(),
                "d",
                "{op}"
            );
            assert_eq!(
                substitute(&format!("${{set{op}d}}"), &v).unwrap(),
                "x",
                "{op}"
            );
            assert_eq!(
                substitute(&format!("${{empty{op}d}}"), &v).unwrap(),
                "d",
                "{op}"
            );
        }
    }

    #[test]
    fn empty_value_without_default_is_kept_empty() {
        let v = vars(&[("empty", "")]);
        assert_eq!(substitute("a${empty}b", &v).unwrap(), "ab");
    }

    #[test]
    fn nested_default() {
        let v = vars(&[("fallback", "foo")]);
        assert_eq!(
            substitute("x: ${var:=pre${fallback}-suf}", &v).unwrap(),
            "x: prefoo-suf"
        );
    }

    #[test]
    fn undefined_without_default_is_an_error() {
        let err = substitute("host: ${domian}", &vars(&[("domain", "a")])).unwrap_err();
        assert_eq!(err, SubstError::Undefined("domian".into()));
        assert_eq!(
            err.to_string(),
            "variable ${domian} is not defined and has no default"
        );
    }

    #[test]
    fn escape_yields_literal() {
        let v = vars(&[("var01", "abc")]);
        assert_eq!(substitute("$${var01}", &v).unwrap(), "${var01}");
        let d = vars(&[("default_var", "foo")]);
        assert_eq!(
            substitute("x $${var=${default_var}}", &d).unwrap(),
            "x ${var=foo}"
        );
        assert_eq!(
            substitute("some text ${var01}$${var$${var01}$var01${var01}", &v).unwrap(),
            "some text abc${var${var01}$var01abc"
        );
    }

    #[test]
    fn bare_dollar_forms_are_left_alone() {
        let v = vars(&[("HOME", "/root")]);
        assert_eq!(
            substitute("echo $HOME $ 5$ $$HOME", &v).unwrap(),
            "echo $HOME $ 5$ $$HOME"
        );
    }

    #[test]
    fn unterminated_is_an_error() {
        assert!(matches!(
            substitute("a ${oops", &vars(&[])),
            Err(SubstError::Unterminated(2))
        ));
    }

    #[test]
    fn invalid_name_is_an_error() {
        assert!(matches!(
            substitute("${1abc}", &vars(&[])),
            Err(SubstError::Bad(_))
        ));
    }

    #[test]
    fn lists_uses_with_and_without_default() {
        let uses = variables_used("${a} ${b:=1} $${c} ${d:-${e}}");
        let names: Vec<_> = uses
            .iter()
            .map(|u| (u.name.as_str(), u.has_default))
            .collect();
        assert_eq!(
            names,
            [("a", false), ("b", true), ("e", false), ("d", true)]
        );
    }

    #[test]
    fn lenient_keeps_and_reports_what_it_cannot_expand() {
        let v = vars(&[("domain", "a.lan")]);
        let (text, missing) = substitute_lenient("${domain} ${domian} ${n:=2} ${x}", |k| {
            v.get(k).map(String::as_str)
        });
        assert_eq!(text, "a.lan ${domian} 2 ${x}");
        assert_eq!(missing, ["domian", "x"]);
        let (text, missing) = substitute_lenient("oops ${", |_| None);
        assert_eq!((text.as_str(), missing.len()), ("oops ${", 0));
    }

    #[test]
    fn name_rule() {
        assert!(is_valid_name("_a1"));
        assert!(is_valid_name("domain_regex"));
        assert!(!is_valid_name("1a"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
    }
}
