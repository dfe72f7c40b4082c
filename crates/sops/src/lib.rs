//! Native SOPS engine: byte-compatible with sops 3.x (age only) and Flux.
//!
//! Values are AES-256-GCM encrypted with a 32-byte IV into
//! `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]`, the AAD being the key path
//! joined with `:` plus a trailing `:`. A SHA-512 MAC over the plaintext
//! values is stored encrypted with `lastmodified` as AAD. The random data key is
//! wrapped once per age recipient. See `../shared/reference/sops-format.md`.
//!
//! YAML is edited in place over a lossless CST, so comments, key order and
//! layout outside the encrypted values survive; JSON, dotenv, INI and binary
//! files are re-emitted in sops' own layout.

mod cipher;
pub mod config;
mod dotenv;
pub mod files;
mod ini;
pub mod integrity;
mod json;
mod keys;
mod tree;
mod yaml;

use std::path::{Path, PathBuf};

pub use config::{Config, ConfigError, CreationRule};
pub use keys::{Identities, default_keys_file, generate_identity};
pub use tree::Selection;

use tree::{Item, Metadata, Node, Selector, WalkOpts};

/// The sops store used for a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// By extension, as sops does: yaml/yml, json, env, ini, anything else binary.
    pub fn from_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml") | Some("yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Binary,
        }
    }
}

/// Errors of the engine. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(
        "MAC mismatch: the file was modified or corrupted (computed MAC differs from the stored one)"
    )]
    MacMismatch,
    #[error("MAC mismatch. File has no MAC")]
    NoMac,
    #[error("no identity can decrypt the data key (recipients tried: {}): {reason}", if recipients.is_empty() { "none".to_string() } else { recipients.join(", ") })]
    NoMatchingKey {
        recipients: Vec<String>,
        reason: String,
    },
    #[error("the wrapped data key is damaged ({reason})")]
    DataKey { reason: String },
    #[error("no matching creation rules found in .sops.yaml for {}", file.display())]
    NoMatchingCreationRule { file: PathBuf },
    #[error("the creation rule has no age recipients")]
    NoRecipients,
    #[error("malformed SOPS file: {reason}")]
    Malformed { reason: String },
    #[error(
        "cannot decrypt the value at `{path}`: authentication failed (tampered ciphertext, IV or tag, or a wrong data key)"
    )]
    ValueAuth { path: String },
    #[error("the file is not SOPS-encrypted (no sops metadata)")]
    NotEncrypted,
    #[error("the file is already SOPS-encrypted (it has sops metadata)")]
    AlreadyEncrypted,
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    #[error("crypto error: {reason}")]
    Crypto { reason: String },
    #[error("age keys: {reason}")]
    Keys { reason: String },
    #[error("{}: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: config::ConfigError,
    },
    #[error("no creation rule in .sops.yaml has a path_regex for {path}")]
    NoRuleFor { path: String },
    #[error(".sops.yaml is not a mapping with creation_rules: {reason}")]
    NotCreationRules { reason: String },
    #[error("invalid .sops.yaml: {0}")]
    InvalidConfig(#[source] config::ConfigError),
}

/// Options of [`decrypt`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DecryptOptions {
    /// Skip the MAC check (explicit escape hatch; `--ignore-mac`).
    pub ignore_mac: bool,
}

/// Options of [`reencrypt`].
#[derive(Clone, Debug, Default)]
pub struct ReencryptOptions {
    /// New recipient list (updatekeys); `None` keeps the file's recipients.
    pub recipients: Option<Vec<String>>,
    /// A fresh data key and fresh IVs (rotate).
    pub rotate: bool,
}

/// A parsed file in one of the stores.
enum Doc {
    Yaml(yaml::Parsed),
    Tree {
        format: Format,
        branches: Vec<Node>,
        meta: Option<serde_json::Value>,
    },
}

impl Doc {
    /// Parses a plaintext file (for the binary store: raw bytes).
    fn parse_plain(bytes: &[u8], format: Format) -> Result<Doc, SopsError> {
        let doc = match format {
            Format::Binary => Doc::Tree {
                format,
                branches: vec![Node::Map(vec![Item::Entry {
                    key: "data".into(),
                    value: Node::Scalar(tree::Scalar::new(cipher::Value::Str(
                        String::from_utf8_lossy(bytes).into_owned(),
                    ))),
                    alias: None,
                }])],
                meta: None,
            },
            _ => Doc::parse(bytes, format)?,
        };
        if doc.has_meta() {
            return Err(SopsError::AlreadyEncrypted);
        }
        Ok(doc)
    }

    /// Parses a file in its store format (binary: the JSON envelope).
    fn parse(bytes: &[u8], format: Format) -> Result<Doc, SopsError> {
        Ok(match format {
            Format::Yaml => {
                let mut p = yaml::parse(bytes)?;
                // Only document 0's metadata counts; the copies are dropped.
                let meta = p
                    .docs
                    .first()
                    .and_then(|d| d.sops.as_ref())
                    .map(tree::node_to_json);
                for d in &mut p.docs {
                    d.sops = None;
                }
                if let Some(m) = meta {
                    p.docs[0].sops = Some(tree::json_to_node(&m));
                }
                Doc::Yaml(p)
            }
            Format::Json | Format::Binary => {
                let mut n = json::parse(bytes)?;
                let meta = tree::take_top_key(&mut n, "sops").map(|m| tree::node_to_json(&m));
                Doc::Tree {
                    format,
                    branches: vec![n],
                    meta,
                }
            }
            Format::Dotenv | Format::Ini => {
                let (n, meta) = if format == Format::Dotenv {
                    dotenv::parse(bytes)?
                } else {
                    ini::parse(bytes)?
                };
                Doc::Tree {
                    format,
                    branches: vec![n],
                    meta,
                }
            }
        })
    }

    fn has_meta(&self) -> bool {
        match self {
            Doc::Yaml(p) => p.docs.iter().any(|d| d.sops_span.is_some()),
            Doc::Tree { meta, .. } => meta.is_some(),
        }
    }

    fn meta(&self) -> Result<Metadata, SopsError> {
        let j = match self {
            Doc::Yaml(p) => p
                .docs
                .first()
                .and_then(|d| d.sops.as_ref())
                .map(tree::node_to_json),
            Doc::Tree { meta, .. } => meta.clone(),
        };
        match j {
            Some(j) => Metadata::from_json(&j),
            None => Err(SopsError::NotEncrypted),
        }
    }

    fn branches_mut(&mut self) -> &mut Vec<Node> {
        match self {
            Doc::Yaml(p) => &mut p.branches,
            Doc::Tree { branches, .. } => branches,
        }
    }

    fn emit_encrypted(&self, m: &Metadata) -> Vec<u8> {
        match self {
            Doc::Yaml(p) => yaml::emit_encrypted(p, m),
            Doc::Tree {
                format, branches, ..
            } => match format {
                Format::Json | Format::Binary | Format::Yaml => {
                    json::emit(&branches[0], true, Some(&m.to_json()))
                }
                Format::Dotenv => dotenv::emit(&branches[0], true, Some(&m.to_json())),
                Format::Ini => ini::emit(&branches[0], true, Some(&m.to_json())),
            },
        }
    }

    fn emit_decrypted(&self) -> Vec<u8> {
        match self {
            Doc::Yaml(p) => yaml::emit_decrypted(p),
            Doc::Tree {
                format, branches, ..
            } => match format {
                Format::Json | Format::Yaml => json::emit(&branches[0], false, None),
                Format::Binary => binary_data(&branches[0]).into_bytes(),
                Format::Dotenv => dotenv::emit(&branches[0], false, None),
                Format::Ini => ini::emit(&branches[0], false, None),
            },
        }
    }
}

fn binary_data(n: &Node) -> String {
    if let Node::Map(items) = n {
        for i in items {
            if let Item::Entry {
                key,
                value: Node::Scalar(s),
                ..
            } = i
                && key == "data"
                && let cipher::Value::Str(t) = &s.value
            {
                return t.clone();
            }
        }
    }
    String::new()
}

fn wrap_all(
    recipients: &[String],
    key: &[u8; 32],
    keep: &[tree::AgeEntry],
) -> Result<Vec<tree::AgeEntry>, SopsError> {
    if recipients.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    recipients
        .iter()
        .map(|r| {
            let r = r.trim().to_string();
            if let Some(e) = keep.iter().find(|e| e.recipient == r) {
                return Ok(e.clone());
            }
            Ok(tree::AgeEntry {
                enc: keys::wrap(&r, key)?,
                recipient: r,
            })
        })
        .collect()
}

fn encrypt_doc(
    mut doc: Doc,
    key: &[u8; 32],
    age: Vec<tree::AgeEntry>,
    selection: Selection,
    mac_only_encrypted: bool,
    stash: Option<&cipher::IvStash>,
) -> Result<Vec<u8>, SopsError> {
    let selector = Selector::new(&selection)?;
    let o = WalkOpts {
        key,
        selector: &selector,
        mac_only_encrypted,
    };
    let mac = tree::encrypt_branches(doc.branches_mut(), &o, stash)?;
    let lastmodified = tree::now_rfc3339();
    let meta = Metadata {
        age,
        mac: cipher::encrypt_mac(key, &mac, &lastmodified)?,
        lastmodified,
        selection,
        mac_only_encrypted,
        version: tree::VERSION.into(),
        other_keys: Vec::new(),
    };
    Ok(doc.emit_encrypted(&meta))
}

/// Encrypts a plaintext file for the rule's recipients with a fresh data key.
pub fn encrypt(
    plaintext: &[u8],
    format: Format,
    rule: &CreationRule,
) -> Result<Vec<u8>, SopsError> {
    let doc = Doc::parse_plain(plaintext, format)?;
    let key = cipher::random_key();
    let age = wrap_all(&rule.age, &key, &[])?;
    let selection = if format == Format::Binary {
        Selection::None
    } else {
        rule.selection.clone()
    };
    encrypt_doc(doc, &key, age, selection, rule.mac_only_encrypted, None)
}

/// Decrypts a file: the data key, every value, and (unless ignored) the MAC check.
struct Decrypted {
    doc: Doc,
    meta: Metadata,
    key: [u8; 32],
    stash: cipher::IvStash,
}

fn decrypt_inner(
    ciphertext: &[u8],
    format: Format,
    ids: &Identities,
    opts: DecryptOptions,
) -> Result<Decrypted, SopsError> {
    let mut doc = Doc::parse(ciphertext, format)?;
    let meta = doc.meta()?;
    let key = meta.data_key(ids)?;
    let selector = Selector::new(&meta.selection)?;
    let o = WalkOpts {
        key: &key,
        selector: &selector,
        mac_only_encrypted: meta.mac_only_encrypted,
    };
    let mut stash = cipher::IvStash::default();
    let computed = tree::decrypt_branches(doc.branches_mut(), &o, Some(&mut stash))?;
    if !opts.ignore_mac {
        if meta.mac.is_empty() {
            return Err(SopsError::NoMac);
        }
        let stored = match cipher::decrypt(&key, &meta.mac, &meta.mac_aad()?, None) {
            Ok(cipher::Plain::Value(cipher::Value::Str(s))) => s,
            _ => return Err(SopsError::MacMismatch),
        };
        if stored != computed {
            return Err(SopsError::MacMismatch);
        }
    }
    Ok(Decrypted {
        doc,
        meta,
        key,
        stash,
    })
}

/// Decrypts a SOPS file to its plaintext (binary store: the original bytes).
pub fn decrypt(
    ciphertext: &[u8],
    format: Format,
    ids: &Identities,
    opts: DecryptOptions,
) -> Result<Vec<u8>, SopsError> {
    Ok(decrypt_inner(ciphertext, format, ids, opts)?
        .doc
        .emit_decrypted())
}

/// Re-encrypts `new_plaintext` into the place of `old_ciphertext`: same data
/// key and metadata rules, and the IV of every unchanged (path, value) pair is
/// reused so unchanged values stay byte-identical. `rotate` draws a new data
/// key; `recipients` re-wraps the data key to a new recipient list.
pub fn reencrypt(
    old_ciphertext: &[u8],
    new_plaintext: &[u8],
    format: Format,
    ids: &Identities,
    opts: &ReencryptOptions,
) -> Result<Vec<u8>, SopsError> {
    let old = decrypt_inner(old_ciphertext, format, ids, DecryptOptions::default())?;
    let doc = Doc::parse_plain(new_plaintext, format)?;
    let recipients: Vec<String> = match &opts.recipients {
        Some(r) => r.clone(),
        None => old.meta.age.iter().map(|a| a.recipient.clone()).collect(),
    };
    if opts.rotate {
        let key = cipher::random_key();
        let age = wrap_all(&recipients, &key, &[])?;
        encrypt_doc(
            doc,
            &key,
            age,
            old.meta.selection.clone(),
            old.meta.mac_only_encrypted,
            None,
        )
    } else {
        let age = wrap_all(&recipients, &old.key, &old.meta.age)?;
        encrypt_doc(
            doc,
            &old.key,
            age,
            old.meta.selection.clone(),
            old.meta.mac_only_encrypted,
            Some(&old.stash),
        )
    }
}

/// True when the file parses in its store and carries sops metadata with a MAC.
pub fn is_encrypted(bytes: &[u8], format: Format) -> bool {
    match Doc::parse(bytes, format) {
        Ok(doc) => doc
            .meta()
            .map(|m| !m.mac.is_empty() || !m.age.is_empty())
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// True when the file claims to be SOPS-encrypted: it has a `sops` block
/// (complete or not) or holds `ENC[...]` values. Such a file goes to
/// [`integrity::check`]; anything else is plaintext.
pub fn looks_encrypted(bytes: &[u8], format: Format) -> bool {
    // Parsing and the line scan are the slow part: skip both when the bytes
    // can spell neither a `sops` key nor an encrypted value (both checks
    // below need one of these words).
    if !might_be_sops(bytes) {
        return false;
    }
    if might_have_meta(bytes) && Doc::parse(bytes, format).is_ok_and(|doc| doc.has_meta()) {
        return true;
    }
    // Any other file (docs, scripts) may mention `ENC[...]` in prose: only
    // the text stores are judged by their text.
    if format == Format::Binary {
        return false;
    }
    std::str::from_utf8(bytes).is_ok_and(|t| {
        t.contains("ENC[AES256_GCM,")
            || t.lines().any(|l| {
                l.starts_with("sops:")
                    || l.trim_start().starts_with("\"sops\"")
                    || l.starts_with("sops_")
                    || l.trim() == "[sops]"
            })
    })
}

/// False only when no document of `bytes` can have a top-level `sops` key:
/// no line starts (after indentation) with a key spelled `sops`, and there is
/// no flow mapping, complex key, escape, tag, anchor, alias or non-ASCII
/// byte through which a parser could read one. A Flux Kustomization's `provider: sops` is not
/// parsed for it.
fn might_have_meta(bytes: &[u8]) -> bool {
    // A `{` right after `$` (a Flux `${var}`) is inside a scalar: a flow
    // mapping only opens where a node starts.
    let mut previous = b'\n';
    if bytes.iter().any(|&b| {
        let special = match b {
            b'{' => previous != b'$',
            b'?' | b'\\' | b'!' | b'&' | b'*' | 0 => true,
            _ => !b.is_ascii(),
        };
        previous = b;
        special
    }) {
        return true;
    }
    bytes.split(|b| *b == b'\n').any(|line| {
        let line = line.trim_ascii_start();
        let line = line.strip_prefix(b"- ").unwrap_or(line);
        // YAML keys, a dotenv file's `sops_*` lines, an INI `[sops]` section.
        [b"sops".as_slice(), b"\"sops", b"'sops", b"[sops"]
            .iter()
            .any(|p| line.starts_with(p))
    })
}

/// A regex that matches wherever a YAML or JSON parser could read one of
/// `words` (as a whole word when `whole`: `existingSecret` is not `Secret`):
/// the word itself, or an escape (`\\`), tag (`!`) or NUL byte (a UTF-16 or
/// UTF-32 text) through which a parser could produce it. A regex, not a loop
/// of ours: the dependency is optimised even in dev builds.
fn spelling(words: &[&str], whole: bool) -> regex::bytes::Regex {
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            let w = regex::escape(w);
            if whole { format!(r"\b{w}\b") } else { w }
        })
        .collect();
    regex::bytes::Regex::new(&format!(r"(?-u)[\\!\x00]|{}", alternatives.join("|")))
        .expect("escaped words make a valid pattern")
}

/// False only when `bytes` can spell neither a `sops` key nor an encrypted
/// value: then it is no SOPS file.
pub fn might_be_sops(bytes: &[u8]) -> bool {
    static RE: std::sync::LazyLock<regex::bytes::Regex> =
        std::sync::LazyLock::new(|| spelling(&["sops", "ENC[AES256_GCM,"], false));
    RE.is_match(bytes)
}

/// False only when `bytes` can spell neither `Secret` nor `secretGenerator`.
pub fn might_hold_secret(bytes: &[u8]) -> bool {
    static RE: std::sync::LazyLock<regex::bytes::Regex> =
        std::sync::LazyLock::new(|| spelling(&["Secret", "secretGenerator"], true));
    RE.is_match(bytes)
}

/// The age recipients recorded in an encrypted file.
pub fn recipients(bytes: &[u8], format: Format) -> Result<Vec<String>, SopsError> {
    Ok(Doc::parse(bytes, format)?
        .meta()?
        .age
        .into_iter()
        .map(|a| a.recipient)
        .collect())
}

/// Decrypts one Kubernetes object as Flux's kustomize-controller does: the JSON
/// store over the whole object (after kustomize build), without a MAC check.
pub fn decrypt_object(
    obj: &serde_json::Value,
    ids: &Identities,
) -> Result<serde_json::Value, SopsError> {
    let mut n = tree::json_to_node(obj);
    let meta = tree::take_top_key(&mut n, "sops").ok_or(SopsError::NotEncrypted)?;
    let meta = Metadata::from_json(&tree::node_to_json(&meta))?;
    let key = meta.data_key(ids)?;
    let selector = Selector::new(&meta.selection)?;
    let o = WalkOpts {
        key: &key,
        selector: &selector,
        mac_only_encrypted: meta.mac_only_encrypted,
    };
    let mut branches = vec![n];
    tree::decrypt_branches(&mut branches, &o, None)?;
    Ok(tree::node_to_json(&branches[0]))
}

/// Re-creates an encrypted file that nobody here can decrypt: the structure,
/// keys and unencrypted values are kept; every encrypted value gets a new value
/// from `fresh` (given its key path); encrypted comments are replaced by a note.
/// The result is encrypted for `rule`. For development-only secrets.
pub fn regenerate(
    ciphertext: &[u8],
    format: Format,
    rule: &CreationRule,
    fresh: &mut dyn FnMut(&[String]) -> String,
) -> Result<Vec<u8>, SopsError> {
    let mut doc = Doc::parse(ciphertext, format)?;
    let meta = doc.meta()?;
    let selector = Selector::new(&meta.selection)?;
    fn walk(
        n: &mut Node,
        path: &mut Vec<String>,
        sel: &Selector,
        fresh: &mut dyn FnMut(&[String]) -> String,
    ) {
        match n {
            Node::Map(items) | Node::Seq(items) => {
                for it in items.iter_mut() {
                    match it {
                        Item::Entry { key, value, .. } => {
                            path.push(key.clone());
                            walk(value, path, sel, fresh);
                            path.pop();
                        }
                        Item::Value { value, .. } => walk(value, path, sel, fresh),
                        Item::Comment(c) => {
                            if cipher::is_enc(&c.text) {
                                c.text = " (regenerated development value)".into();
                                c.changed = true;
                            }
                        }
                    }
                }
            }
            Node::Scalar(s) => {
                if let cipher::Value::Str(t) = &s.value
                    && cipher::is_enc(t)
                    && sel.should_encrypt(path)
                {
                    s.value = cipher::Value::Str(fresh(path));
                    s.changed = true;
                }
            }
        }
    }
    let mut path = Vec::new();
    for b in doc.branches_mut() {
        walk(b, &mut path, &selector, fresh);
    }
    let plain = doc.emit_decrypted();
    let mut rule = rule.clone();
    rule.selection = meta.selection.clone();
    rule.mac_only_encrypted = meta.mac_only_encrypted;
    encrypt(&plain, format, &rule)
}

#[cfg(test)]
mod tests;
