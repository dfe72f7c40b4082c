//! One integrity checker for SOPS files, with and without keys.
//!
//! Without a key it checks the structure: complete metadata (version,
//! lastmodified, a well-formed MAC, at least one age recipient whose `enc` is
//! a well-formed age armor block), every `ENC[AES256_GCM,...]` value
//! well-formed (base64, a 32-byte IV, a 16-byte tag, a known type), no
//! plaintext where the file's rule says "encrypted", and no cut-off text.
//! With an identity that opens the file it also decrypts every value and
//! checks the MAC. `secrets check`, `validate` and the publish gate all use
//! [`check`]; `build` and `diff` use it to tell "no key" from "broken".

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::tree::{self, Item, Node, Selector};
use super::{Doc, Format, Identities, SopsError, cipher};

/// One problem, at a line of the file when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// How far a file could be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// An identity opened it: every value decrypted and the MAC matched.
    Verified,
    /// No identity here is a recipient: only the structure was checked.
    NoKey,
}

/// The verdict on one file.
#[derive(Clone, Debug)]
pub struct Report {
    /// Empty when the file is sound (as far as [`Report::opened`] says).
    pub findings: Vec<Finding>,
    /// `None` when the findings stopped the check before the keys.
    pub opened: Option<Opened>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }
}

const VALUE_TYPES: [&str; 6] = ["str", "int", "float", "bool", "bytes", "comment"];
const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The MAC is the uppercase hex of a SHA-512: 128 bytes of plaintext.
const MAC_LEN: usize = 128;
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";

/// Checks one SOPS file given as bytes in its store `format`. `ids`: the
/// identities to open it with; `None` checks the structure only.
pub fn check(bytes: &[u8], format: Format, ids: Option<&Identities>) -> Report {
    let mut findings = Vec::new();
    let Ok(text) = std::str::from_utf8(bytes) else {
        return fail(vec![Finding {
            line: None,
            message: "not UTF-8 text: not a SOPS file, or damaged".into(),
        }]);
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    findings.extend(scan_values(text));
    let last_line = Some(text.lines().count());
    if !text.is_empty() && !text.ends_with('\n') && findings.iter().all(|f| f.line != last_line) {
        findings.push(Finding {
            line: last_line,
            message: "the file ends in the middle of a line: it is truncated".into(),
        });
    }
    if !findings.is_empty() {
        // A cut-off or damaged value explains whatever else would fail.
        return fail(findings);
    }
    let doc = match Doc::parse(bytes, format) {
        Ok(doc) => doc,
        Err(e) => {
            findings.push(Finding {
                line: error_line(&e),
                message: format!("cannot be read ({e}); is it truncated?"),
            });
            return fail(findings);
        }
    };
    let meta_line = metadata_line(text, format);
    let meta = match doc.meta() {
        Ok(meta) => meta,
        Err(SopsError::NotEncrypted) => {
            findings.push(Finding {
                line: None,
                message: "no sops metadata: the file is not encrypted, or it was truncated before its `sops` block".into(),
            });
            return fail(findings);
        }
        Err(e) => {
            findings.push(Finding {
                line: meta_line,
                message: e.to_string(),
            });
            return fail(findings);
        }
    };
    findings.extend(check_metadata(&meta, text, meta_line));
    if findings.is_empty() {
        // Only sound metadata says which values must be encrypted.
        findings.extend(plaintext_values(&doc, &meta, text));
    }
    if !findings.is_empty() {
        return fail(findings);
    }
    let Some(ids) = ids.filter(|ids| !ids.is_empty()) else {
        return Report {
            findings,
            opened: Some(Opened::NoKey),
        };
    };
    match super::decrypt_inner(bytes, format, ids, super::DecryptOptions::default()) {
        Ok(_) => Report {
            findings,
            opened: Some(Opened::Verified),
        },
        Err(SopsError::NoMatchingKey { .. }) => Report {
            findings,
            opened: Some(Opened::NoKey),
        },
        Err(e) => {
            let line = match e {
                SopsError::MacMismatch | SopsError::NoMac => line_of_key(text, "mac"),
                SopsError::DataKey { .. } => meta_line,
                _ => None,
            };
            findings.push(Finding {
                line,
                message: e.to_string(),
            });
            fail(findings)
        }
    }
}

fn fail(findings: Vec<Finding>) -> Report {
    Report {
        findings,
        opened: None,
    }
}

/// Every `ENC[...]` token of the text, checked for form: cut-off tokens and
/// damaged fields are found here, with their line.
fn scan_values(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("ENC[") {
            let token = &rest[pos..];
            let Some(end) = token.find(']') else {
                out.push(Finding {
                    line: Some(idx + 1),
                    message: "an encrypted value is cut off (no closing `]`): the file is truncated or damaged".into(),
                });
                break;
            };
            if let Err(why) = check_token(&token[..=end]) {
                out.push(Finding {
                    line: Some(idx + 1),
                    message: why.to_string(),
                });
            }
            rest = &token[end + 1..];
        }
    }
    out
}

/// Why an `ENC[...]` token is malformed.
#[derive(Debug, thiserror::Error)]
#[error("malformed encrypted value: {0}")]
struct TokenError(TokenFault);

#[derive(Debug, thiserror::Error)]
enum TokenFault {
    #[error("it does not start with `ENC[AES256_GCM,`")]
    Prefix,
    #[error("expected the fields data, iv, tag, type; found {0} field(s)")]
    FieldCount(usize),
    #[error("expected `{name}:` in `{part}`")]
    Field { name: &'static str, part: String },
    #[error("{name} is not valid base64")]
    Base64 {
        name: &'static str,
        source: base64::DecodeError,
    },
    #[error("data is empty")]
    EmptyData,
    #[error("iv is {0} bytes, expected {IV_LEN}", IV_LEN = IV_LEN)]
    IvLen(usize),
    #[error("tag is {0} bytes, expected {TAG_LEN}", TAG_LEN = TAG_LEN)]
    TagLen(usize),
    #[error("unknown type `{0}` (one of {types})", types = VALUE_TYPES.join(", "))]
    Type(String),
}

/// Why the metadata's `mac` is malformed.
#[derive(Debug, thiserror::Error)]
enum MacError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the mac is not of type str")]
    NotStr,
    #[error("the mac holds {0} bytes, expected {MAC_LEN}", MAC_LEN = MAC_LEN)]
    Length(usize),
}

/// The form of one `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]` token;
/// returns its decoded data.
fn check_token(token: &str) -> Result<Vec<u8>, TokenError> {
    let body = token
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|b| b.strip_suffix(']'))
        .ok_or(TokenError(TokenFault::Prefix))?;
    let mut fields = [("data", None), ("iv", None), ("tag", None), ("type", None)];
    let parts: Vec<&str> = body.split(',').collect();
    if parts.len() != fields.len() {
        return Err(TokenError(TokenFault::FieldCount(parts.len())));
    }
    for (part, (name, slot)) in parts.iter().zip(fields.iter_mut()) {
        let value = part
            .strip_prefix(*name)
            .and_then(|p| p.strip_prefix(':'))
            .ok_or_else(|| {
                TokenError(TokenFault::Field {
                    name,
                    part: part.to_string(),
                })
            })?;
        *slot = Some(value);
    }
    let [data, iv, tag, typ] = fields.map(|(_, v)| v.unwrap_or_default());
    let decode = |name: &'static str, v: &str| {
        B64.decode(v)
            .map_err(|source| TokenError(TokenFault::Base64 { name, source }))
    };
    let data = decode("data", data)?;
    if data.is_empty() {
        return Err(TokenError(TokenFault::EmptyData));
    }
    let iv_len = decode("iv", iv)?.len();
    if iv_len != IV_LEN {
        return Err(TokenError(TokenFault::IvLen(iv_len)));
    }
    let tag_len = decode("tag", tag)?.len();
    if tag_len != TAG_LEN {
        return Err(TokenError(TokenFault::TagLen(tag_len)));
    }
    if !VALUE_TYPES.contains(&typ) {
        return Err(TokenError(TokenFault::Type(typ.to_string())));
    }
    Ok(data)
}

fn check_metadata(meta: &tree::Metadata, text: &str, meta_line: Option<usize>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    if meta.version.trim().is_empty() {
        missing.push("`version`");
    }
    if meta.lastmodified.trim().is_empty() {
        missing.push("`lastmodified`");
    } else if let Err(e) = meta.mac_aad() {
        out.push(Finding {
            line: line_of_key(text, "lastmodified"),
            message: e.to_string(),
        });
    }
    if meta.mac.trim().is_empty() {
        missing.push("`mac`");
    } else {
        let mac = check_token(meta.mac.trim())
            .map_err(MacError::from)
            .and_then(|data| {
                if !meta.mac.trim().ends_with(",type:str]") {
                    Err(MacError::NotStr)
                } else if data.len() != MAC_LEN {
                    Err(MacError::Length(data.len()))
                } else {
                    Ok(data)
                }
            });
        if let Err(why) = mac {
            out.push(Finding {
                line: line_of_key(text, "mac"),
                message: format!("malformed mac: {why}"),
            });
        }
    }
    if meta.age.is_empty() {
        if meta.other_keys.is_empty() {
            missing.push("an age recipient");
        } else {
            out.push(Finding {
                line: meta_line,
                message: format!(
                    "no age recipient (only {}, which this tool does not support)",
                    meta.other_keys.join(", ")
                ),
            });
        }
    }
    if !missing.is_empty() {
        out.insert(
            0,
            Finding {
                line: meta_line,
                message: format!(
                    "the sops metadata is incomplete: no {} (the file is truncated or was edited by hand)",
                    missing.join(", ")
                ),
            },
        );
    }
    for entry in &meta.age {
        let line = if entry.recipient.is_empty() {
            meta_line
        } else {
            line_of(text, &entry.recipient).or(meta_line)
        };
        if entry.recipient.is_empty() {
            out.push(Finding {
                line,
                message: "an age entry has no `recipient`".into(),
            });
        } else if super::keys::parse_recipient(&entry.recipient).is_err() {
            out.push(Finding {
                line,
                message: format!("`{}` is not an age recipient", entry.recipient),
            });
        }
        if let Err(why) = check_armor(&entry.enc) {
            out.push(Finding {
                line,
                message: format!(
                    "the data key for {} is {why}",
                    if entry.recipient.is_empty() {
                        "an age entry"
                    } else {
                        entry.recipient.as_str()
                    }
                ),
            });
        }
    }
    out
}

/// Why a recipient's `enc` is not a well-formed age armor block.
#[derive(Debug, thiserror::Error)]
enum ArmorError {
    #[error("missing (no `enc`)")]
    Missing,
    #[error("not an age armor block (no `{ARMOR_BEGIN}`)", ARMOR_BEGIN = ARMOR_BEGIN)]
    NoBegin,
    #[error("a cut-off age armor block (no `{ARMOR_END}`): truncated", ARMOR_END = ARMOR_END)]
    NoEnd,
    #[error("a damaged age armor block ({0})")]
    Damaged(#[source] age::DecryptError),
}

/// An age armor block holding a well-formed age header.
fn check_armor(enc: &str) -> Result<(), ArmorError> {
    let enc = enc.trim();
    if enc.is_empty() {
        return Err(ArmorError::Missing);
    }
    if !enc.starts_with(ARMOR_BEGIN) {
        return Err(ArmorError::NoBegin);
    }
    if !enc.ends_with(ARMOR_END) {
        return Err(ArmorError::NoEnd);
    }
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    age::Decryptor::new_buffered(reader)
        .map(|_| ())
        .map_err(ArmorError::Damaged)
}

/// Values that the file's selection says are encrypted but hold plaintext.
fn plaintext_values(doc: &Doc, meta: &tree::Metadata, text: &str) -> Vec<Finding> {
    let Ok(selector) = Selector::new(&meta.selection) else {
        return Vec::new(); // reported by the decrypt path as malformed
    };
    let branches = match doc {
        Doc::Yaml(p) => &p.branches,
        Doc::Tree { branches, .. } => branches,
    };
    let mut out = Vec::new();
    let mut path = Vec::new();
    for branch in branches {
        walk_plain(branch, &mut path, &selector, text, &mut out);
    }
    out
}

fn walk_plain(
    node: &Node,
    path: &mut Vec<String>,
    selector: &Selector,
    text: &str,
    out: &mut Vec<Finding>,
) {
    match node {
        Node::Map(items) | Node::Seq(items) => {
            for item in items {
                match item {
                    Item::Entry { key, value, .. } => {
                        path.push(key.clone());
                        walk_plain(value, path, selector, text, out);
                        path.pop();
                    }
                    Item::Value { value, .. } => walk_plain(value, path, selector, text, out),
                    Item::Comment(_) => {}
                }
            }
        }
        Node::Scalar(s) => {
            let plaintext = match &s.value {
                cipher::Value::Null => false,
                cipher::Value::Str(t) => !t.is_empty() && !cipher::is_enc(t),
                _ => true,
            };
            if plaintext && selector.should_encrypt(path) {
                out.push(Finding {
                    line: s.span.as_ref().map(|r| line_at(text, r.start)),
                    message: format!(
                        "the value at `{}` should be encrypted but is plaintext",
                        path.join(".")
                    ),
                });
            }
        }
    }
}

/// The values that the governing `.sops.yaml` rule's `selection` says must
/// be encrypted but are plaintext. A file's own metadata records the
/// selection it was encrypted with (`sops -e --encrypted-regex '^data$'`
/// leaves `stringData` readable and its MAC valid); the rule for its path
/// is what the repository demands.
pub fn governed_plaintext(
    bytes: &[u8],
    format: Format,
    selection: &tree::Selection,
) -> Vec<Finding> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Vec::new(); // reported by [`check`]
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Ok(doc) = Doc::parse(bytes, format) else {
        return Vec::new(); // reported by [`check`]
    };
    let Ok(selector) = Selector::new(selection) else {
        return Vec::new(); // a bad regex fails loading .sops.yaml
    };
    let branches = match &doc {
        Doc::Yaml(p) => &p.branches,
        Doc::Tree { branches, .. } => branches,
    };
    let rule = selection
        .field()
        .map_or("every value".to_string(), |(field, value)| {
            format!("{field} {value}")
        });
    let mut out = Vec::new();
    let mut path = Vec::new();
    for branch in branches {
        walk_plain(branch, &mut path, &selector, text, &mut out);
    }
    for f in &mut out {
        f.message = format!(
            "{}: the .sops.yaml rule for this path ({rule}) says encrypted, whatever the file's own metadata says",
            f.message
        );
    }
    out
}

/// The line where the sops metadata starts, in each store's layout.
fn metadata_line(text: &str, format: Format) -> Option<usize> {
    text.lines()
        .position(|l| match format {
            Format::Yaml => l.starts_with("sops:"),
            Format::Json | Format::Binary => l.trim_start().starts_with("\"sops\""),
            Format::Dotenv => l.starts_with("sops_"),
            Format::Ini => l.trim() == "[sops]",
        })
        .map(|i| i + 1)
}

/// The first line that mentions `needle` (a recipient).
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// The line of a metadata key (`mac`, `lastmodified`) in any store's layout.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let forms = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("sops_{key}="),
        format!("{key}="),
        format!("{key} ="),
    ];
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            forms.iter().any(|f| l.starts_with(f.as_str()))
        })
        .map(|i| i + 1)
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// `line N` out of a parser's message.
fn error_line(e: &SopsError) -> Option<usize> {
    let msg = e.to_string();
    let at = msg.find("line ")?;
    msg[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_armor_faults_are_typed_and_worded_for_the_user() {
        let iv = B64.encode([0u8; IV_LEN]);
        let tag = B64.encode([0u8; TAG_LEN]);
        let ok = format!("ENC[AES256_GCM,data:YQ==,iv:{iv},tag:{tag},type:str]");
        assert_eq!(check_token(&ok).unwrap(), b"a");
        let err = check_token("ENC[AES256_GCM,data:YQ==]").unwrap_err();
        assert!(matches!(err.0, TokenFault::FieldCount(1)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "malformed encrypted value: expected the fields data, iv, tag, type; found 1 field(s)"
        );
        let err = check_token(&ok.replace("iv:", "iv:!")).unwrap_err();
        assert!(
            matches!(err.0, TokenFault::Base64 { name: "iv", .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "malformed encrypted value: iv is not valid base64"
        );
        let err = check_token(&ok.replace("type:str", "type:uint")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed encrypted value: unknown type `uint` (one of str, int, float, bool, bytes, comment)"
        );
        let short = format!("ENC[AES256_GCM,data:YQ==,iv:{tag},tag:{tag},type:str]");
        assert_eq!(
            check_token(&short).unwrap_err().to_string(),
            format!("malformed encrypted value: iv is {TAG_LEN} bytes, expected {IV_LEN}")
        );

        assert!(matches!(check_armor(" "), Err(ArmorError::Missing)));
        assert_eq!(
            check_armor(ARMOR_BEGIN).unwrap_err().to_string(),
            format!("a cut-off age armor block (no `{ARMOR_END}`): truncated")
        );
        let garbage = format!("{ARMOR_BEGIN}\nnot age\n{ARMOR_END}");
        let err = check_armor(&garbage).unwrap_err();
        assert!(matches!(err, ArmorError::Damaged(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("a damaged age armor block ("),
            "{err}"
        );
    }
}
