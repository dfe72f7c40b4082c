//! Flux postBuild variable substitution, as fluxcd/pkg/envsubst does it (the
//! parser kustomize-controller and `flux build` run, in strict mode):
//! - `${var}`; an unset variable is an error unless the operator supplies a
//!   fallback (`-`, `=`, `?`, `+` with or without `:`, all of which mean
//!   "this default when unset or empty");
//! - `${var:=d}`, `${var:-d}`, `${var=d}`: the default is read up to the first
//!   `}` and may hold `${...}`; `${var-d}` is not accepted (only `:` or `=`
//!   may follow a bare name);
//! - functions: `${var^}` `${var^^}` `${var,}` `${var,,}` `${#var}`
//!   `${var:pos}` `${var:pos:len}` `${var#p}` `${var##p}` `${var%p}`
//!   `${var%%p}` `${var/p/r}` `${var//p/r}` `${var/#p/r}` `${var/%p/r}`,
//!   with envsubst's own results (byte offsets and lengths, glob patterns);
//! - `$$` is a literal `$` in text (so `$${var}` is the literal `${var}`);
//!   in a replace pattern `\/` and `\\` are escapes too;
//! - a bare `$var` is left alone.

use std::collections::BTreeMap;

/// Variable name rule of kustomize-controller for the variables it is given
/// (`^[_[:alpha:]][_[:alpha:][:digit:]]*$`, ASCII classes).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// envsubst's parse errors, with its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("bad substitution")]
    BadSubstitution,
    #[error("missing closing brace")]
    MissingClosingBrace,
    #[error("unable to parse variable name")]
    VariableName,
    #[error("unable to parse substitution within function")]
    FuncSubstitution,
    #[error("unable to parse default function")]
    DefaultFunction,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error("variable ${{{0}}} is not defined and has no default")]
    Undefined(String),
    #[error("variable substitution failed: {0}")]
    Parse(#[from] ParseError),
}

/// One `${...}` use found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarUse {
    pub name: String,
    pub has_default: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Func {
        param: String,
        name: String,
        args: Vec<Node>,
    },
    List(Vec<Node>),
}

/// Expands every `${...}` in `input` with `vars` (strict: an unset variable
/// without a fallback operator is an error).
pub fn substitute(input: &str, vars: &BTreeMap<String, String>) -> Result<String, SubstError> {
    let tree = parse(input)?;
    let mut out = String::with_capacity(input.len());
    eval(
        &tree,
        &mut |name, _| vars.get(name).cloned().map_or(Found::Unset, Found::Value),
        &mut out,
    )?;
    Ok(out)
}

/// Expands what it can: a variable with neither a value nor a fallback is
/// kept as written and its name returned, so that validation can report
/// every missing variable instead of stopping at the first. A malformed
/// expression leaves the text as it was.
pub fn substitute_lenient<'v>(
    input: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> (String, Vec<String>) {
    let Ok(tree) = parse(input) else {
        return (input.to_string(), Vec::new());
    };
    let mut missing = Vec::new();
    let mut out = String::with_capacity(input.len());
    let result = eval(
        &tree,
        &mut |name, node| match lookup(name) {
            Some(v) => Found::Value(v.to_string()),
            None if matches!(node, Node::Func { name: op, .. } if is_default_op(op)) => {
                Found::Unset
            }
            None => {
                missing.push(name.to_string());
                Found::Keep(source_of(node))
            }
        },
        &mut out,
    );
    match result {
        Ok(()) => (out, missing),
        Err(_) => (input.to_string(), Vec::new()),
    }
}

/// [`substitute_lenient`] over one object, as kustomize-controller does it:
/// the object's YAML text is substituted and parsed again (so
/// `replicas: ${n:=2}` becomes the integer 2). An object without `${` is
/// returned as it is, unwritten. Returns the object and the names without a
/// value or a fallback, in order (repeats kept).
pub fn substitute_object_lenient<'v>(
    object: &serde_json::Value,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> (serde_json::Value, Vec<String>) {
    if !mentions_variable(object) {
        return (object.clone(), Vec::new());
    }
    let text = serde_yaml::to_string(object).unwrap_or_default();
    if !text.contains("${") {
        return (object.clone(), Vec::new());
    }
    let (out, missing) = substitute_lenient(&text, lookup);
    let value = crate::parse_stream(&out)
        .ok()
        .and_then(|mut docs| docs.pop())
        .unwrap_or_else(|| object.clone());
    (value, missing)
}

/// True when a key or string of `value` holds `${`.
fn mentions_variable(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains("${"),
        Value::Array(items) => items.iter().any(mentions_variable),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains("${") || mentions_variable(v)),
        _ => false,
    }
}

/// Lists every variable a text uses (for the validate check and error hints).
pub fn variables_used(input: &str) -> Vec<VarUse> {
    let Ok(tree) = parse(input) else {
        return Vec::new();
    };
    let mut uses = Vec::new();
    let mut sink = String::new();
    let _ = eval(
        &tree,
        &mut |name, node| {
            if let Node::Func { name: op, .. } = node {
                uses.push(VarUse {
                    name: name.to_string(),
                    has_default: is_default_op(op),
                });
            }
            Found::Value(String::new())
        },
        &mut sink,
    );
    uses
}

/// The text of `input` that no variable's value produces: the text around
/// each `${...}` and every operand of its operators (a default, a pattern).
/// `None` when `input` is not a valid expression.
pub fn literal_text(input: &str) -> Option<String> {
    fn collect(node: &Node, out: &mut String) {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Func { args, .. } => args.iter().for_each(|a| collect(a, out)),
            Node::List(items) => items.iter().for_each(|i| collect(i, out)),
        }
    }
    let tree = parse(input).ok()?;
    let mut out = String::new();
    collect(&tree, &mut out);
    Some(out)
}

/// What a lookup found for a variable.
enum Found {
    Value(String),
    /// Unset: fallback operators use their default, others fail.
    Unset,
    /// Lenient mode: write this text instead.
    Keep(String),
}

type Lookup<'a> = dyn FnMut(&str, &Node) -> Found + 'a;

fn is_default_op(name: &str) -> bool {
    matches!(name, "-" | "+" | "=" | "?" | ":-" | ":+" | ":=" | ":?")
}

/// The text a lenient expansion keeps for an unresolved use.
fn source_of(node: &Node) -> String {
    match node {
        Node::Func { param, name, .. } if name == "#" => format!("${{#{param}}}"),
        Node::Func { param, name, .. } => format!("${{{param}{name}}}"),
        _ => String::new(),
    }
}

fn eval(node: &Node, lookup: &mut Lookup<'_>, out: &mut String) -> Result<(), SubstError> {
    match node {
        Node::Text(t) => out.push_str(t),
        Node::List(nodes) => {
            for n in nodes {
                eval(n, lookup, out)?;
            }
        }
        Node::Func { param, name, args } => {
            // As in envsubst, the arguments are expanded before the variable is read.
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                let mut buf = String::new();
                eval(a, lookup, &mut buf)?;
                values.push(buf);
            }
            match lookup(param, node) {
                Found::Value(v) => out.push_str(&apply(name, &v, &values)),
                Found::Unset if is_default_op(name) => out.push_str(&apply(name, "", &values)),
                Found::Unset => return Err(SubstError::Undefined(param.clone())),
                Found::Keep(text) => out.push_str(&text),
            }
        }
    }
    Ok(())
}

/// envsubst's `lookupFunc`: an unknown name falls back to the default function.
fn apply(name: &str, s: &str, args: &[String]) -> String {
    match name {
        "," => first_char(s, false),
        ",," => map_chars(s, false),
        "^" => first_char(s, true),
        "^^" => map_chars(s, true),
        "#" if args.is_empty() => s.len().to_string(),
        "#" => args.first().map_or(s.to_string(), |p| trim_shortest(s, p)),
        "##" => args.first().map_or(s.to_string(), |p| trim_longest(s, p)),
        "%" => args.first().map_or(s.to_string(), |p| {
            reverse(&trim_shortest(&reverse(s), &reverse(p)))
        }),
        "%%" => args.first().map_or(s.to_string(), |p| {
            reverse(&trim_longest(&reverse(s), &reverse(p)))
        }),
        ":" => substr(s, args),
        "/#" => match args {
            [p, r] if s.starts_with(p.as_str()) => s.replacen(p.as_str(), r, 1),
            _ => s.to_string(),
        },
        "/%" => match args {
            [p, r] if s.ends_with(p.as_str()) => format!("{}{r}", &s[..s.len() - p.len()]),
            _ => s.to_string(),
        },
        "/" => match args {
            [] => s.to_string(),
            [p] => s.replacen(p.as_str(), "", 1),
            [p, r, ..] => s.replacen(p.as_str(), r, 1),
        },
        "//" => match args {
            [] => s.to_string(),
            [p] => s.replace(p.as_str(), ""),
            [p, r, ..] => s.replace(p.as_str(), r),
        },
        _ => {
            if s.is_empty() && !args.is_empty() {
                args.concat()
            } else {
                s.to_string()
            }
        }
    }
}

/// Go's `unicode.ToUpper`/`ToLower` are one-to-one; keep a character whose
/// full mapping is longer.
fn map_char(c: char, upper: bool) -> char {
    let mut mapped: Vec<char> = if upper {
        c.to_uppercase().collect()
    } else {
        c.to_lowercase().collect()
    };
    if mapped.len() == 1 {
        mapped.remove(0)
    } else {
        c
    }
}

fn map_chars(s: &str, upper: bool) -> String {
    s.chars().map(|c| map_char(c, upper)).collect()
}

fn first_char(s: &str, upper: bool) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => std::iter::once(map_char(c, upper)).chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's `strconv.Atoi`.
fn atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `${var:pos}` and `${var:pos:len}` on bytes, as envsubst slices Go strings.
fn substr(s: &str, args: &[String]) -> String {
    let bytes = s.as_bytes();
    let len = bytes.len() as i64;
    let Some(pos_arg) = args.first() else {
        return s.to_string();
    };
    let Some(mut pos) = atoi(pos_arg) else {
        return s.to_string();
    };
    if pos < 0 {
        pos = (len + pos).max(0);
    }
    let cut = |from: i64, to: i64| {
        String::from_utf8_lossy(&bytes[from as usize..to as usize]).into_owned()
    };
    let Some(length_arg) = args.get(1) else {
        return if pos < len {
            cut(pos, len)
        } else {
            String::new()
        };
    };
    let Some(length) = atoi(length_arg) else {
        return s.to_string();
    };
    if length < 0 {
        let end = len + length;
        return if end < pos {
            String::new()
        } else {
            cut(pos, end)
        };
    }
    if pos + length >= len {
        return if pos < len {
            cut(pos, len)
        } else {
            String::new()
        };
    }
    cut(pos, pos + length)
}

fn reverse(s: &str) -> String {
    s.chars().rev().collect()
}

/// Removes the shortest non-empty prefix matching the glob `pattern`.
fn trim_shortest(s: &str, pattern: &str) -> String {
    let mut shortest = None;
    for end in (1..=s.len()).rev() {
        if !s.is_char_boundary(end) {
            continue;
        }
        match glob_match(pattern, &s[..end]) {
            Err(()) => return s.to_string(),
            Ok(true) => shortest = Some(end),
            Ok(false) => {}
        }
    }
    shortest.map_or_else(|| s.to_string(), |end| s[end..].to_string())
}

/// Removes the longest prefix matching the glob `pattern`.
fn trim_longest(s: &str, pattern: &str) -> String {
    for end in (1..=s.len()).rev() {
        if !s.is_char_boundary(end) {
            continue;
        }
        match glob_match(pattern, &s[..end]) {
            Err(()) => return s.to_string(),
            Ok(true) => return s[end..].to_string(),
            Ok(false) => {}
        }
    }
    s.to_string()
}

/// envsubst's fork of Go's `path.Match`: `*` matches any run of characters
/// and `?` any one (`/` included); `[...]` classes with ranges and `^`
/// negation; `\\` escapes. `Err` for a malformed pattern met while matching.
fn glob_match(pattern: &str, name: &str) -> Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    /// Matches the class starting just past `[` against `c`; returns
    /// whether it matched and the index past `]`.
    fn class(p: &[char], mut i: usize, c: char) -> Result<(bool, usize), ()> {
        let negate = p.get(i) == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut ranges = 0;
        loop {
            if p.get(i) == Some(&']') && ranges > 0 {
                return Ok((matched != negate, i + 1));
            }
            let (lo, next) = escaped_char(p, i)?;
            i = next;
            let mut hi = lo;
            if p.get(i) == Some(&'-') {
                let (h, next) = escaped_char(p, i + 1)?;
                hi = h;
                i = next;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
            ranges += 1;
        }
    }
    fn escaped_char(p: &[char], i: usize) -> Result<(char, usize), ()> {
        match p.get(i) {
            None | Some('-' | ']') => Err(()),
            Some('\\') => p.get(i + 1).map(|&c| (c, i + 2)).ok_or(()),
            Some(&c) => Ok((c, i + 1)),
        }
    }
    fn go(p: &[char], pi: usize, n: &[char], ni: usize) -> Result<bool, ()> {
        let Some(&token) = p.get(pi) else {
            return Ok(ni == n.len());
        };
        if token == '*' {
            for k in ni..=n.len() {
                if go(p, pi + 1, n, k)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let Some(&c) = n.get(ni) else {
            return Ok(false);
        };
        match token {
            '?' => go(p, pi + 1, n, ni + 1),
            '[' => {
                let (ok, next) = class(p, pi + 1, c)?;
                if ok {
                    go(p, next, n, ni + 1)
                } else {
                    Ok(false)
                }
            }
            '\\' => match p.get(pi + 1) {
                None => Err(()),
                Some(&lit) if lit == c => go(p, pi + 2, n, ni + 1),
                Some(_) => Ok(false),
            },
            lit if lit == c => go(p, pi + 1, n, ni + 1),
            _ => Ok(false),
        }
    }
    go(&p, 0, &n, 0)
}

// ---- the parser: a port of envsubst's scanner and its mode switches ----

const SCAN_IDENT: u8 = 1;
const SCAN_LBRACK: u8 = 2;
const SCAN_RBRACK: u8 = 4;
const SCAN_ESCAPE: u8 = 8;
const ESC_DOLLAR: u8 = 1;
const ESC_ALL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Illegal,
    Eof,
    Ident,
    Lbrack,
    Rbrack,
}

type Accept = fn(char, usize) -> bool;

struct Scanner {
    // Escapes are removed from the buffer as they are read.
    buf: Vec<char>,
    pos: usize,
    start: usize,
    width: usize,
    mode: u8,
    escape: u8,
    accept: Accept,
}

const EOF: char = '\0';

impl Scanner {
    fn read(&mut self) -> char {
        match self.buf.get(self.pos) {
            None => {
                self.width = 0;
                EOF
            }
            Some(&c) => {
                self.width = 1;
                self.pos += 1;
                c
            }
        }
    }
    fn unread(&mut self) {
        self.pos -= self.width;
    }
    fn peek(&mut self) -> char {
        let c = self.read();
        self.unread();
        c
    }
    fn skip(&mut self) {
        self.buf.remove(self.pos - 1);
    }
    fn text(&self) -> String {
        self.buf[self.start..self.pos].iter().collect()
    }
    fn scan(&mut self) -> Token {
        self.start = self.pos;
        let c = self.read();
        if c == EOF && self.width == 0 {
            Token::Eof
        } else if self.is_lbrack(c) {
            Token::Lbrack
        } else if self.mode & SCAN_RBRACK != 0 && c == '}' {
            Token::Rbrack
        } else if self.scan_ident(c) {
            Token::Ident
        } else {
            Token::Illegal
        }
    }
    fn is_lbrack(&mut self, c: char) -> bool {
        if self.mode & SCAN_LBRACK == 0 || c != '$' {
            return false;
        }
        if self.read() == '{' {
            return true;
        }
        self.unread();
        false
    }
    fn escaped(&mut self, c: char) -> bool {
        if self.mode & SCAN_ESCAPE == 0 {
            return false;
        }
        if c == '$' && self.escape & ESC_DOLLAR != 0 && self.peek() == '$' {
            return true;
        }
        c == '\\' && self.escape & 2 != 0 && matches!(self.peek(), '/' | '\\')
    }
    fn scan_ident(&mut self, c: char) -> bool {
        if self.mode & SCAN_IDENT == 0 {
            return false;
        }
        if self.escaped(c) {
            self.skip();
        } else if !(self.accept)(c, self.pos - self.start) {
            return false;
        }
        loop {
            let c = self.read();
            if c == EOF && self.width == 0 {
                self.unread();
                break;
            }
            if self.is_lbrack(c) {
                // Back over `${`: it starts the next token.
                self.pos -= 2;
                break;
            }
            if self.escaped(c) {
                self.skip();
                continue;
            }
            if !(self.accept)(c, self.pos - self.start) {
                self.unread();
                break;
            }
        }
        true
    }
}

fn accept_rune(_: char, _: usize) -> bool {
    true
}
fn accept_ident(c: char, _: usize) -> bool {
    c.is_alphabetic() || c.is_numeric() || c == '_'
}
fn accept_colon(c: char, _: usize) -> bool {
    c == ':'
}
fn accept_one_hash(c: char, i: usize) -> bool {
    c == '#' && i == 1
}
fn accept_not_closing(c: char, _: usize) -> bool {
    c != '}'
}
fn accept_hash_func(c: char, i: usize) -> bool {
    c == '#' && i < 3
}
fn accept_percent_func(c: char, i: usize) -> bool {
    c == '%' && i < 3
}
fn accept_default_func(c: char, i: usize) -> bool {
    (i == 1 && c == ':') || (i == 2 && matches!(c, '=' | '-' | '?' | '+'))
}
fn accept_replace_func(c: char, i: usize) -> bool {
    (i == 1 && c == '/') || (i == 2 && matches!(c, '/' | '#' | '%'))
}
fn accept_one_equal(c: char, i: usize) -> bool {
    i == 1 && c == '='
}
fn accept_one_colon(c: char, i: usize) -> bool {
    i == 1 && c == ':'
}
fn reject_colon_close(c: char, _: usize) -> bool {
    c != ':' && c != '}'
}
fn accept_slash(c: char, _: usize) -> bool {
    c == '/'
}
fn accept_not_slash(c: char, _: usize) -> bool {
    c != '/'
}
fn accept_casing_func(c: char, i: usize) -> bool {
    (c == ',' || c == '^') && i < 3
}

fn parse(input: &str) -> Result<Node, ParseError> {
    let mut p = Scanner {
        buf: input.chars().collect(),
        pos: 0,
        start: 0,
        width: 0,
        mode: 0,
        escape: 0,
        accept: accept_rune,
    };
    let mut nodes = Vec::new();
    loop {
        p.accept = accept_rune;
        p.mode = SCAN_IDENT | SCAN_LBRACK | SCAN_ESCAPE;
        p.escape = ESC_DOLLAR;
        match p.scan() {
            Token::Ident => nodes.push(Node::Text(p.text())),
            Token::Eof => break,
            Token::Lbrack => nodes.push(parse_func(&mut p)?),
            _ => return Err(ParseError::BadSubstitution),
        }
    }
    Ok(match nodes.len() {
        0 => Node::Text(String::new()),
        1 => nodes.remove(0),
        _ => Node::List(nodes),
    })
}

fn parse_func(p: &mut Scanner) -> Result<Node, ParseError> {
    p.escape = ESC_ALL;
    if p.peek() == '#' {
        return parse_len_func(p);
    }
    p.accept = accept_ident;
    p.mode = SCAN_IDENT;
    let name = match p.scan() {
        Token::Ident => p.text(),
        _ => return Err(ParseError::VariableName),
    };
    match p.peek() {
        ':' => return parse_default_or_substr(p, name),
        '=' => return parse_default_func(p, name),
        ',' | '^' => return parse_casing_func(p, name),
        '/' => return parse_replace_func(p, name),
        '#' => return parse_remove_func(p, name, accept_hash_func),
        '%' => return parse_remove_func(p, name, accept_percent_func),
        _ => {}
    }
    p.accept = accept_ident;
    p.mode = SCAN_RBRACK;
    match p.scan() {
        Token::Rbrack => Ok(Node::Func {
            param: name,
            name: String::new(),
            args: Vec::new(),
        }),
        _ => Err(ParseError::MissingClosingBrace),
    }
}

fn parse_param(p: &mut Scanner, accept: Accept, mode: u8) -> Result<Node, ParseError> {
    p.accept = accept;
    p.mode = mode | SCAN_LBRACK;
    match p.scan() {
        Token::Lbrack => parse_func(p),
        Token::Ident | Token::Rbrack => Ok(Node::Text(p.text())),
        _ => Err(ParseError::FuncSubstitution),
    }
}

fn parse_default_or_substr(p: &mut Scanner, name: String) -> Result<Node, ParseError> {
    p.read();
    let next = p.peek();
    p.unread();
    match next {
        '=' | '-' | '?' | '+' => parse_default_func(p, name),
        _ => parse_substr_func(p, name),
    }
}

fn func_name(p: &mut Scanner, accept: Accept, err: ParseError) -> Result<String, ParseError> {
    p.accept = accept;
    p.mode = SCAN_IDENT;
    match p.scan() {
        Token::Ident => Ok(p.text()),
        _ => Err(err),
    }
}

fn parse_substr_func(p: &mut Scanner, param: String) -> Result<Node, ParseError> {
    let name = func_name(p, accept_one_colon, ParseError::BadSubstitution)?;
    let mut args = vec![parse_param(p, reject_colon_close, SCAN_IDENT)?];
    p.accept = accept_colon;
    p.mode = SCAN_IDENT | SCAN_RBRACK;
    match p.scan() {
        Token::Rbrack => return Ok(Node::Func { param, name, args }),
        Token::Ident => {}
        _ => return Err(ParseError::BadSubstitution),
    }
    args.push(parse_param(p, accept_not_closing, SCAN_IDENT)?);
    consume_rbrack(p)?;
    Ok(Node::Func { param, name, args })
}

fn parse_remove_func(p: &mut Scanner, param: String, accept: Accept) -> Result<Node, ParseError> {
    let name = func_name(p, accept, ParseError::BadSubstitution)?;
    let args = vec![parse_param(p, accept_not_closing, SCAN_IDENT)?];
    consume_rbrack(p)?;
    Ok(Node::Func { param, name, args })
}

fn parse_replace_func(p: &mut Scanner, param: String) -> Result<Node, ParseError> {
    let name = func_name(p, accept_replace_func, ParseError::BadSubstitution)?;
    // envsubst 1.7 has no empty pattern: `${v/#/x}` is a parse error.
    let mut args = vec![parse_param(p, accept_not_slash, SCAN_IDENT | SCAN_ESCAPE)?];
    p.accept = accept_slash;
    p.mode = SCAN_IDENT;
    if p.scan() != Token::Ident {
        return Err(ParseError::BadSubstitution);
    }
    if p.peek() != '}' {
        args.push(parse_param(
            p,
            accept_not_closing,
            SCAN_IDENT | SCAN_ESCAPE,
        )?);
    }
    consume_rbrack(p)?;
    Ok(Node::Func { param, name, args })
}

fn parse_default_func(p: &mut Scanner, param: String) -> Result<Node, ParseError> {
    let accept: Accept = if p.peek() == '=' {
        accept_one_equal
    } else {
        accept_default_func
    };
    let name = func_name(p, accept, ParseError::DefaultFunction)?;
    let mut args = Vec::new();
    loop {
        if p.peek() == '}' {
            consume_rbrack(p)?;
            return Ok(Node::Func { param, name, args });
        }
        args.push(parse_param(p, accept_not_closing, SCAN_IDENT)?);
    }
}

fn parse_casing_func(p: &mut Scanner, param: String) -> Result<Node, ParseError> {
    let name = func_name(p, accept_casing_func, ParseError::BadSubstitution)?;
    consume_rbrack(p)?;
    Ok(Node::Func {
        param,
        name,
        args: Vec::new(),
    })
}

fn parse_len_func(p: &mut Scanner) -> Result<Node, ParseError> {
    let name = func_name(p, accept_one_hash, ParseError::BadSubstitution)?;
    let param = func_name(p, accept_ident, ParseError::BadSubstitution)?;
    consume_rbrack(p)?;
    Ok(Node::Func {
        param,
        name,
        args: Vec::new(),
    })
}

fn consume_rbrack(p: &mut Scanner) -> Result<(), ParseError> {
    p.mode = SCAN_RBRACK;
    if p.scan() == Token::Rbrack {
        Ok(())
    } else {
        Err(ParseError::BadSubstitution)
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

    fn sub(input: &str, pairs: &[(&str, &str)]) -> Result<String, SubstError> {
        substitute(input, &vars(pairs))
    }

    #[test]
    fn plain_variable() {
        assert_eq!(
            sub("host: whoami.${domain}", &[("domain", "platform.lan")]).unwrap(),
            "host: whoami.platform.lan"
        );
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let v = [("set", "x"), ("empty", "")];
        for op in [":=", ":-", "=", ":?", ":+"] {
            assert_eq!(sub(&format!("${{unset{op}d}}"), &v).unwrap(), "d", "{op}");
            assert_eq!(sub(&format!("${{set{op}d}}"), &v).unwrap(), "x", "{op}");
            assert_eq!(sub(&format!("${{empty{op}d}}"), &v).unwrap(), "d", "{op}");
        }
    }

    #[test]
    fn dash_without_colon_is_not_an_operator() {
        // envsubst reads `${a-d}` and `${my-var}` as a name followed by junk.
        assert_eq!(
            sub("${a-d}", &[("a", "1")]),
            Err(SubstError::Parse(ParseError::MissingClosingBrace))
        );
        assert!(sub("${my-var}", &[("my", "1")]).is_err());
    }

    #[test]
    fn default_ends_at_the_first_closing_brace() {
        assert_eq!(sub("${a:=x{y}z}", &[]).unwrap(), "x{yz}");
        assert_eq!(
            sub("x: ${var:=pre${fallback}-suf}", &[("fallback", "foo")]).unwrap(),
            "x: prefoo-suf"
        );
    }

    #[test]
    fn undefined_without_default_is_an_error() {
        let err = sub("host: ${domian}", &[("domain", "a")]).unwrap_err();
        assert_eq!(err, SubstError::Undefined("domian".into()));
        assert_eq!(
            err.to_string(),
            "variable ${domian} is not defined and has no default"
        );
        // Functions read the value, so they need it too.
        assert_eq!(sub("${x^^}", &[]), Err(SubstError::Undefined("x".into())));
    }

    #[test]
    fn dollar_escapes() {
        let v = [("var01", "abc")];
        assert_eq!(sub("$${var01}", &v).unwrap(), "${var01}");
        assert_eq!(sub("a $$ b $$$ c", &v).unwrap(), "a $ b $$ c");
        assert_eq!(
            sub("x $${var=${default_var}}", &[("default_var", "foo")]).unwrap(),
            "x ${var=foo}"
        );
        assert_eq!(
            sub("some text ${var01}$${var$${var01}$var01${var01}", &v).unwrap(),
            "some text abc${var${var01}$var01abc"
        );
        assert_eq!(sub("echo $HOME $ 5$", &v).unwrap(), "echo $HOME $ 5$");
    }

    #[test]
    fn functions() {
        let v = [
            ("s", "Hello-World.tar.gz"),
            ("p", "a/b/c.txt"),
            ("n", "12345678"),
        ];
        let cases = [
            ("${s^^}", "HELLO-WORLD.TAR.GZ"),
            ("${s,,}", "hello-world.tar.gz"),
            ("${s,}", "hello-World.tar.gz"),
            ("${n^}", "12345678"),
            ("${#s}", "18"),
            ("${n:2}", "345678"),
            ("${n:2:3}", "345"),
            ("${n:-3}", "12345678"),
            ("${n:1:-1}", "234567"),
            ("${n:x}", "12345678"),
            ("${n:20}", ""),
            ("${s#*.}", "tar.gz"),
            ("${s##*.}", "gz"),
            ("${s%.*}", "Hello-World.tar"),
            ("${s%%.*}", "Hello-World"),
            ("${s/o/0}", "Hell0-World.tar.gz"),
            ("${s//o/0}", "Hell0-W0rld.tar.gz"),
            ("${s/#Hello/Bye}", "Bye-World.tar.gz"),
            ("${s/%gz/xz}", "Hello-World.tar.xz"),
            ("${s/o/}", "Hell-World.tar.gz"),
            ("${p/\\//_}", "a_b/c.txt"),
            ("${p##*/}", "c.txt"),
            ("${p#*/}", "b/c.txt"),
            ("${p%/*}", "a/b"),
            ("${s#H?l}", "lo-World.tar.gz"),
            ("${s#[A-Z]}", "ello-World.tar.gz"),
            ("${s#[^A-Z]}", "Hello-World.tar.gz"),
        ];
        for (input, want) in cases {
            assert_eq!(sub(input, &v).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn unicode_names_parse_and_ascii_rule_applies_to_given_names() {
        assert_eq!(sub("${café:=x}", &[]).unwrap(), "x");
        assert!(!is_valid_name("café"));
        assert!(is_valid_name("_a1"));
        assert!(!is_valid_name("1a"));
        assert!(!is_valid_name("a-b"));
    }

    #[test]
    fn parse_errors_have_envsubst_messages() {
        assert_eq!(
            sub("a ${oops", &[("oops", "1")]).unwrap_err().to_string(),
            "variable substitution failed: missing closing brace"
        );
        assert_eq!(
            sub("${}", &[]),
            Err(SubstError::Parse(ParseError::VariableName))
        );
        assert_eq!(
            sub("${#}", &[]),
            Err(SubstError::Parse(ParseError::BadSubstitution))
        );
        // No empty replace pattern in envsubst 1.7.
        assert_eq!(
            sub("${x/#/pre}", &[("x", "v")]),
            Err(SubstError::Parse(ParseError::FuncSubstitution))
        );
    }

    #[test]
    fn lists_uses_with_and_without_default() {
        let uses = variables_used("${a} ${b:=1} $${c} ${d:-${e}} ${f^^}");
        let names: Vec<_> = uses
            .iter()
            .map(|u| (u.name.as_str(), u.has_default))
            .collect();
        assert_eq!(
            names,
            [
                ("a", false),
                ("b", true),
                ("e", false),
                ("d", true),
                ("f", false)
            ]
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

    /// The expansion table of fluxcd/pkg/envsubst 1.7.1's own tests.
    #[test]
    fn envsubst_expansion_table() {
        let z = "abcABC123ABCabc";
        let path = "/home/bozo/ideas/thoughts.for.today";
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[], "abcdEFGH28ij", "abcdEFGH28ij"),
            (&[("var01", "abcdEFGH28ij")], "${#var01}", "12"),
            (&[("var01", "abcdEFGH28ij")], "${var01^}", "AbcdEFGH28ij"),
            (&[("var01", "abcdEFGH28ij")], "${var01^^}", "ABCDEFGH28IJ"),
            (&[("var01", "ABCDEFGH28IJ")], "${var01,}", "aBCDEFGH28IJ"),
            (&[("var01", "ABCDEFGH28IJ")], "${var01,,}", "abcdefgh28ij"),
            (
                &[("path_name", path)],
                "${path_name:11}",
                "ideas/thoughts.for.today",
            ),
            (&[("path_name", path)], "${path_name:11:5}", "ideas"),
            (&[("var", "abc")], "${var=xyz}", "abc"),
            (&[], "${var=xyz}", "xyz"),
            (
                &[("default_var", "foo")],
                "something ${var=${default_var}}",
                "something foo",
            ),
            (
                &[("default_var", "foo1")],
                "foo: ${var=${default_var}-suffix}",
                "foo: foo1-suffix",
            ),
            (
                &[("default_var", "foo1")],
                "foo: ${var=prefix${default_var}-suffix}",
                "foo: prefixfoo1-suffix",
            ),
            (&[], "${var:=xyz}", "xyz"),
            (&[("stringZ", z)], "${stringZ/%abc/XYZ}", "abcABC123ABCXYZ"),
            (&[("stringZ", z)], "${stringZ/#abc/XYZ}", "XYZABC123ABCabc"),
            (&[("stringZ", z)], "${stringZ//abc/xyz}", "xyzABC123ABCxyz"),
            (&[("stringZ", z)], "${stringZ/abc/xyz}", "xyzABC123ABCabc"),
            (
                &[("filename", "bash.string.txt")],
                "${filename#*.}",
                "string.txt",
            ),
            (&[("filename", "path/to/file")], "${filename#*/}", "to/file"),
            (
                &[("filename", "/path/to/file")],
                "${filename#*/}",
                "path/to/file",
            ),
            (&[("filename", "bash.string.txt")], "${filename##*.}", "txt"),
            (&[("filename", "path/to/file")], "${filename##*/}", "file"),
            (&[("filename", "/path/to/file")], "${filename##*/}", "file"),
            (
                &[("filename", "bash.string.txt")],
                "${filename%.*}",
                "bash.string",
            ),
            (
                &[("filename", "bash.string.txt")],
                "${filename%%.*}",
                "bash",
            ),
            (
                &[("var01", "abcdEFGH28ij")],
                "${var=${var01^^}}",
                "ABCDEFGH28IJ",
            ),
            (&[("var01", "abcdEFGH28ij")], "$${var01}", "${var01}"),
            (
                &[("var01", "abcdEFGH28ij")],
                "some text ${var01}$${var$${var01}$var01${var01}",
                "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij",
            ),
            (
                &[("default_var", "foo")],
                "something $${var=${default_var}}",
                "something ${var=foo}",
            ),
            (&[("stringZ", "foo/bar")], r"${stringZ/\//-}", "foo-bar"),
            (
                &[("stringZ", "foo/bar/baz")],
                r"${stringZ//\//-}",
                "foo-bar-baz",
            ),
            (
                &[("default_var", "foo")],
                r"\\something ${var=${default_var}}",
                r"\\something foo",
            ),
            (&[("stringZ", "foo.bar")], "${stringZ/./}", "foobar"),
            (&[("foo", "")], "${foo}", ""),
            (&[], "${missing:-fallback}", "fallback"),
            (&[], "${missing=assigned}", "assigned"),
        ];
        for (pairs, input, want) in cases {
            assert_eq!(sub(input, pairs).as_deref(), Ok(*want), "{input}");
        }
        for input in [
            "${missing}",
            "${#missing}",
            "${missing^}",
            "${missing^^}",
            "${missing,}",
            "${missing,,}",
            "${missing:0}",
            "${missing:0:10}",
            "${missing/pattern/replacement}",
            "${missing//pattern/replacement}",
            "${missing/#pattern/replacement}",
            "${missing/%pattern/replacement}",
            "${missing#pattern}",
            "${missing##pattern}",
            "${missing%pattern}",
            "${missing%%pattern}",
        ] {
            assert_eq!(
                sub(input, &[]),
                Err(SubstError::Undefined("missing".into())),
                "{input}"
            );
        }
    }

    /// The function tests of fluxcd/pkg/envsubst 1.7.1.
    #[test]
    fn envsubst_function_table() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let n = "123456789123456789";
        assert_eq!(apply("#", "Hello World", &[]), "11");
        assert_eq!(apply(",,", "Hello World", &[]), "hello world");
        assert_eq!(apply(",", "HELLO WORLD", &[]), "hELLO WORLD");
        assert_eq!(apply(",", "", &[]), "");
        assert_eq!(apply("^^", "Hello World", &[]), "HELLO WORLD");
        assert_eq!(apply("^", "hello world", &[]), "Hello world");
        assert_eq!(apply("^", "", &[]), "");
        assert_eq!(
            apply(":=", "Hello World", &a(&["Hola Mundo"])),
            "Hello World"
        );
        assert_eq!(apply(":=", "", &a(&["Hola Mundo"])), "Hola Mundo");
        assert_eq!(
            apply(
                ":=",
                "",
                &a(&["Hola Mundo", "-Bonjour le monde", "-Halló heimur"])
            ),
            "Hola Mundo-Bonjour le monde-Halló heimur"
        );
        assert_eq!(apply(":", n, &a(&["0", "8"])), "12345678");
        assert_eq!(apply(":", n, &a(&["1", "8"])), "23456789");
        assert_eq!(apply(":", n, &a(&["9"])), "123456789");
        assert_eq!(apply(":", n, &a(&["9", "50"])), "123456789");
        assert_eq!(apply(":", n, &a(&["-3", "2"])), "78");
        assert_eq!(apply(":", n, &a(&["-300", "3"])), "123");
        assert_eq!(apply(":", "12345678", &a(&["9", "1"])), "");
        assert_eq!(apply(":", "hello world", &a(&["2", "-1"])), "llo worl");
    }
}
