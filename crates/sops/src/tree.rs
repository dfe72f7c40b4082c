//! The store-independent tree, the encrypt/decrypt walk, the MAC and the metadata.

use std::ops::Range;

use regex::Regex;
use sha2::{Digest, Sha512};

use super::SopsError;
use super::cipher::{self, IvStash, Plain, Value};

#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub value: Value,
    /// The encrypted text, when this scalar holds (or now holds) ciphertext.
    pub enc: Option<String>,
    /// Byte range in the source text (YAML only).
    pub span: Option<Range<usize>>,
    /// Inside a YAML flow collection.
    pub flow: bool,
    pub changed: bool,
}

impl Scalar {
    pub fn new(value: Value) -> Self {
        Scalar {
            value,
            enc: None,
            span: None,
            flow: false,
            changed: false,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Comment {
    pub text: String,
    pub span: Option<Range<usize>>,
    pub changed: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Map(Vec<Item>),
    Seq(Vec<Item>),
    Scalar(Scalar),
}

#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// A mapping entry; `alias` is the span of a YAML alias that was expanded.
    Entry {
        key: String,
        value: Node,
        alias: Option<Range<usize>>,
    },
    /// A sequence item; `entry` spans from its dash to the end of the value (YAML).
    Value {
        value: Node,
        alias: Option<Range<usize>>,
        entry: Option<Range<usize>>,
    },
    Comment(Comment),
}

/// Which values are encrypted (at most one rule).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    #[default]
    None,
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(String),
    EncryptedRegex(String),
}

impl Selection {
    pub(crate) fn field(&self) -> Option<(&'static str, &str)> {
        match self {
            Selection::None => None,
            Selection::UnencryptedSuffix(s) => Some(("unencrypted_suffix", s)),
            Selection::EncryptedSuffix(s) => Some(("encrypted_suffix", s)),
            Selection::UnencryptedRegex(s) => Some(("unencrypted_regex", s)),
            Selection::EncryptedRegex(s) => Some(("encrypted_regex", s)),
        }
    }
}

pub(crate) struct Selector {
    sel: Selection,
    re: Option<Regex>,
}

impl Selector {
    pub fn new(sel: &Selection) -> Result<Self, SopsError> {
        let re = match sel {
            Selection::UnencryptedRegex(r) | Selection::EncryptedRegex(r) => {
                Some(Regex::new(r).map_err(|e| SopsError::Malformed {
                    reason: format!("invalid regex {r:?}: {e}"),
                })?)
            }
            _ => None,
        };
        Ok(Selector {
            sel: sel.clone(),
            re,
        })
    }

    /// sops `shouldBeEncrypted`.
    pub fn should_encrypt(&self, path: &[String]) -> bool {
        match &self.sel {
            Selection::None => !path.iter().any(|k| k.ends_with("_unencrypted")),
            Selection::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Selection::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Selection::UnencryptedRegex(_) => {
                let re = self.re.as_ref().expect("compiled");
                !path.iter().any(|k| re.is_match(k))
            }
            Selection::EncryptedRegex(_) => {
                let re = self.re.as_ref().expect("compiled");
                path.iter().any(|k| re.is_match(k))
            }
        }
    }
}

pub(crate) fn aad(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

pub(crate) struct WalkOpts<'a> {
    pub key: &'a [u8; 32],
    pub selector: &'a Selector,
    pub mac_only_encrypted: bool,
}

fn new_hasher(mac_only: bool) -> Sha512 {
    let mut h = Sha512::new();
    if mac_only {
        h.update(sha2::Sha256::digest(b"sops"));
    }
    h
}

/// Encrypts every selected leaf in place; returns the MAC (uppercase hex).
pub(crate) fn encrypt_branches(
    branches: &mut [Node],
    o: &WalkOpts,
    stash: Option<&IvStash>,
) -> Result<String, SopsError> {
    let mut h = new_hasher(o.mac_only_encrypted);
    let mut path = Vec::new();
    for b in branches.iter_mut() {
        enc_node(b, &mut path, o, stash, &mut h)?;
    }
    Ok(hex::encode_upper(h.finalize()))
}

fn enc_node(
    n: &mut Node,
    path: &mut Vec<String>,
    o: &WalkOpts,
    stash: Option<&IvStash>,
    h: &mut Sha512,
) -> Result<(), SopsError> {
    match n {
        Node::Map(items) | Node::Seq(items) => {
            for it in items.iter_mut() {
                match it {
                    Item::Entry { key, value, .. } => {
                        path.push(key.clone());
                        let r = enc_node(value, path, o, stash, h);
                        path.pop();
                        r?;
                    }
                    Item::Value { value, .. } => enc_node(value, path, o, stash, h)?,
                    Item::Comment(c) => {
                        if o.selector.should_encrypt(path) && !cipher::is_enc(&c.text) {
                            c.text = cipher::encrypt(
                                o.key,
                                &Plain::Comment(c.text.clone()),
                                &aad(path),
                                stash,
                            )?;
                            c.changed = true;
                        }
                    }
                }
            }
        }
        Node::Scalar(s) => {
            if s.value == Value::Null {
                return Ok(());
            }
            let encrypt = o.selector.should_encrypt(path);
            if !o.mac_only_encrypted || encrypt {
                h.update(s.value.to_bytes());
            }
            if encrypt {
                let e = cipher::encrypt(o.key, &Plain::Value(s.value.clone()), &aad(path), stash)?;
                if !e.is_empty() {
                    s.enc = Some(e);
                    s.changed = true;
                }
            }
        }
    }
    Ok(())
}

/// Decrypts every selected leaf in place; returns the MAC computed over the plaintext.
pub(crate) fn decrypt_branches(
    branches: &mut [Node],
    o: &WalkOpts,
    mut stash: Option<&mut IvStash>,
) -> Result<String, SopsError> {
    let mut h = new_hasher(o.mac_only_encrypted);
    let mut path = Vec::new();
    for b in branches.iter_mut() {
        dec_node(b, &mut path, o, &mut stash, &mut h)?;
    }
    Ok(hex::encode_upper(h.finalize()))
}

fn dec_node(
    n: &mut Node,
    path: &mut Vec<String>,
    o: &WalkOpts,
    stash: &mut Option<&mut IvStash>,
    h: &mut Sha512,
) -> Result<(), SopsError> {
    match n {
        Node::Map(items) | Node::Seq(items) => {
            for it in items.iter_mut() {
                match it {
                    Item::Entry { key, value, .. } => {
                        path.push(key.clone());
                        let r = dec_node(value, path, o, stash, h);
                        path.pop();
                        r?;
                    }
                    Item::Value {
                        value: Node::Scalar(s),
                        entry,
                        ..
                    } if matches!(&s.value, Value::Str(t) if cipher::is_enc(t) && t.ends_with(",type:comment]")) =>
                    {
                        // sops writes comments inside sequences as `- ENC[...,type:comment]` items.
                        let Value::Str(t) = &s.value else {
                            unreachable!()
                        };
                        if let Ok(Plain::Comment(text)) =
                            cipher::decrypt(o.key, t, &aad(path), stash.as_deref_mut())
                        {
                            *it = Item::Comment(Comment {
                                text,
                                span: entry.clone().or(s.span.clone()),
                                changed: true,
                            });
                        }
                    }
                    Item::Value { value, .. } => dec_node(value, path, o, stash, h)?,
                    Item::Comment(c) => {
                        if cipher::is_enc(&c.text) {
                            // A comment that fails to decrypt only warns in sops; keep it.
                            if let Ok(Plain::Comment(t)) =
                                cipher::decrypt(o.key, &c.text, &aad(path), stash.as_deref_mut())
                            {
                                c.text = t;
                                c.changed = true;
                            }
                        }
                    }
                }
            }
        }
        Node::Scalar(s) => {
            if s.value == Value::Null {
                return Ok(());
            }
            let encrypted = o.selector.should_encrypt(path);
            if encrypted {
                match &s.value {
                    Value::Str(t) if t.is_empty() => {}
                    Value::Str(t) if cipher::is_enc(t) => {
                        let enc = t.clone();
                        match cipher::decrypt(o.key, &enc, &aad(path), stash.as_deref_mut())? {
                            Plain::Value(v) => {
                                s.value = v;
                                s.enc = Some(enc);
                                s.changed = true;
                            }
                            Plain::Comment(_) => {
                                return Err(SopsError::Malformed {
                                    reason: format!("value at {} has type comment", aad(path)),
                                });
                            }
                        }
                    }
                    _ => {
                        return Err(SopsError::Malformed {
                            reason: format!(
                                "value at {} should be encrypted but is not",
                                aad(path)
                            ),
                        });
                    }
                }
            }
            if !o.mac_only_encrypted || encrypted {
                h.update(s.value.to_bytes());
            }
        }
    }
    Ok(())
}

/// One age recipient entry of the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgeEntry {
    pub recipient: String,
    pub enc: String,
}

/// The `sops` metadata block.
#[derive(Clone, Debug, Default)]
pub(crate) struct Metadata {
    pub age: Vec<AgeEntry>,
    pub lastmodified: String,
    pub mac: String,
    pub selection: Selection,
    pub mac_only_encrypted: bool,
    pub version: String,
    /// Key types we cannot use (pgp, kms, ...), for error messages.
    pub other_keys: Vec<String>,
}

pub(crate) const VERSION: &str = "3.11.0";

impl Metadata {
    /// Parses the metadata from its JSON-like form.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, SopsError> {
        let bad = |r: String| SopsError::Malformed { reason: r };
        let obj = v
            .as_object()
            .ok_or_else(|| bad("sops metadata is not a mapping".into()))?;
        let s = |k: &str| -> Option<String> {
            obj.get(k).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
        };
        let mut m = Metadata::default();
        let mut age_lists: Vec<&serde_json::Value> = Vec::new();
        if let Some(a) = obj.get("age") {
            age_lists.push(a);
        }
        if let Some(serde_json::Value::Array(groups)) = obj.get("key_groups") {
            if groups.len() > 1 {
                return Err(SopsError::Unsupported {
                    what: "several key groups (Shamir secret sharing)".into(),
                });
            }
            for g in groups {
                if let Some(a) = g.get("age") {
                    age_lists.push(a);
                }
                for other in ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"] {
                    if g.get(other)
                        .is_some_and(|x| x.as_array().is_some_and(|a| !a.is_empty()))
                    {
                        m.other_keys.push(other.to_string());
                    }
                }
            }
        }
        for list in age_lists {
            let Some(list) = list.as_array() else {
                continue;
            };
            for e in list {
                let recipient = e
                    .get("recipient")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default();
                let enc = e.get("enc").and_then(|x| x.as_str()).unwrap_or_default();
                m.age.push(AgeEntry {
                    recipient: recipient.trim().to_string(),
                    enc: enc.to_string(),
                });
            }
        }
        for other in ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"] {
            if obj
                .get(other)
                .is_some_and(|x| x.as_array().is_some_and(|a| !a.is_empty()))
            {
                m.other_keys.push(other.to_string());
            }
        }
        m.lastmodified = s("lastmodified").unwrap_or_default();
        m.mac = s("mac").unwrap_or_default();
        m.version = s("version").unwrap_or_default();
        m.mac_only_encrypted = match obj.get("mac_only_encrypted") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(t)) => t == "true",
            _ => false,
        };
        let mut sels = Vec::new();
        if let Some(x) = s("unencrypted_suffix") {
            sels.push(Selection::UnencryptedSuffix(x))
        }
        if let Some(x) = s("encrypted_suffix") {
            sels.push(Selection::EncryptedSuffix(x))
        }
        if let Some(x) = s("unencrypted_regex") {
            sels.push(Selection::UnencryptedRegex(x))
        }
        if let Some(x) = s("encrypted_regex") {
            sels.push(Selection::EncryptedRegex(x))
        }
        if s("encrypted_comment_regex").is_some() || s("unencrypted_comment_regex").is_some() {
            return Err(SopsError::Unsupported {
                what: "comment regex rules".into(),
            });
        }
        if sels.len() > 1 {
            return Err(bad("more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex is set".into()));
        }
        m.selection = sels.pop().unwrap_or(Selection::None);
        Ok(m)
    }

    /// The metadata as an ordered JSON object, in sops 3.11 field order.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        if !self.age.is_empty() {
            o.insert(
                "age".into(),
                serde_json::Value::Array(
                    self.age
                        .iter()
                        .map(|a| serde_json::json!({"recipient": a.recipient, "enc": a.enc}))
                        .collect(),
                ),
            );
        }
        o.insert("lastmodified".into(), self.lastmodified.clone().into());
        o.insert("mac".into(), self.mac.clone().into());
        if let Some((k, v)) = self.selection.field() {
            o.insert(k.into(), v.into());
        }
        if self.mac_only_encrypted {
            o.insert("mac_only_encrypted".into(), true.into());
        }
        o.insert("version".into(), self.version.clone().into());
        serde_json::Value::Object(o)
    }

    /// Recovers the data key with the given identities.
    pub fn data_key(&self, ids: &super::Identities) -> Result<[u8; 32], SopsError> {
        if self.age.is_empty() {
            return Err(SopsError::NoMatchingKey {
                recipients: self.other_keys.clone(),
                reason: "the file has no age recipients".into(),
            });
        }
        let mut broken = Vec::new();
        for e in &self.age {
            match ids.unwrap(&e.enc) {
                Ok(k) if k.len() == 32 => {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&k);
                    return Ok(key);
                }
                Ok(_) => broken.push(format!(
                    "{}: the wrapped data key is not 32 bytes",
                    e.recipient
                )),
                Err(super::keys::UnwrapError::NoMatch) => {}
                Err(super::keys::UnwrapError::Broken(why)) => {
                    broken.push(format!("{}: {why}", e.recipient))
                }
            }
        }
        // A damaged block is not "someone else's file": say so.
        if !broken.is_empty() && !ids.is_empty() {
            return Err(SopsError::DataKey {
                reason: broken.join("; "),
            });
        }
        Err(SopsError::NoMatchingKey {
            recipients: self.age.iter().map(|a| a.recipient.clone()).collect(),
            reason: if ids.is_empty() {
                "no age identity is loaded".into()
            } else {
                "none of your age identities is a recipient of this file".into()
            },
        })
    }

    /// The AAD of the MAC: `lastmodified` normalised to RFC 3339 (seconds).
    pub fn mac_aad(&self) -> Result<String, SopsError> {
        use time::format_description::well_known::Rfc3339;
        let t = time::OffsetDateTime::parse(self.lastmodified.trim(), &Rfc3339).map_err(|_| {
            SopsError::Malformed {
                reason: format!("lastmodified {:?} is not RFC 3339", self.lastmodified),
            }
        })?;
        Ok(go_rfc3339(t))
    }
}

/// Go `time.Format(time.RFC3339)`: seconds precision, `Z` for UTC.
pub(crate) fn go_rfc3339(t: time::OffsetDateTime) -> String {
    let off = t.offset();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if off.is_utc() {
        format!("{base}Z")
    } else {
        let (h, m, _) = off.as_hms();
        let sign = if off.is_negative() { '-' } else { '+' };
        format!(
            "{base}{sign}{:02}:{:02}",
            h.unsigned_abs(),
            m.unsigned_abs()
        )
    }
}

pub(crate) fn now_rfc3339() -> String {
    go_rfc3339(time::OffsetDateTime::now_utc())
}

/// Removes and returns the top-level `sops` entry of a branch.
pub(crate) fn take_top_key(n: &mut Node, key: &str) -> Option<Node> {
    if let Node::Map(items) = n {
        let idx = items
            .iter()
            .position(|i| matches!(i, Item::Entry{key: k, ..} if k == key))?;
        if let Item::Entry { value, .. } = items.remove(idx) {
            return Some(value);
        }
    }
    None
}

/// Converts a node to JSON (metadata reading, Flux objects).
pub(crate) fn node_to_json(n: &Node) -> serde_json::Value {
    match n {
        Node::Map(items) => {
            let mut o = serde_json::Map::new();
            for i in items {
                if let Item::Entry { key, value, .. } = i {
                    o.insert(key.clone(), node_to_json(value));
                }
            }
            serde_json::Value::Object(o)
        }
        Node::Seq(items) => serde_json::Value::Array(
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Value { value, .. } => Some(node_to_json(value)),
                    _ => None,
                })
                .collect(),
        ),
        Node::Scalar(s) => match &s.value {
            Value::Null => serde_json::Value::Null,
            Value::Str(t) | Value::Time(t) => t.clone().into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Bool(b) => (*b).into(),
        },
    }
}

/// Converts JSON into a node (JSON store, Flux objects).
pub(crate) fn json_to_node(v: &serde_json::Value) -> Node {
    match v {
        serde_json::Value::Object(o) => Node::Map(
            o.iter()
                .map(|(k, v)| Item::Entry {
                    key: k.clone(),
                    value: json_to_node(v),
                    alias: None,
                })
                .collect(),
        ),
        serde_json::Value::Array(a) => Node::Seq(
            a.iter()
                .map(|v| Item::Value {
                    value: json_to_node(v),
                    alias: None,
                    entry: None,
                })
                .collect(),
        ),
        serde_json::Value::Null => Node::Scalar(Scalar::new(Value::Null)),
        serde_json::Value::Bool(b) => Node::Scalar(Scalar::new(Value::Bool(*b))),
        serde_json::Value::Number(n) => Node::Scalar(Scalar::new(match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        })),
        serde_json::Value::String(s) => Node::Scalar(Scalar::new(Value::Str(s.clone()))),
    }
}

/// The scalar as it should appear in output: ciphertext if encrypted.
pub(crate) fn output_value(s: &Scalar, encrypted: bool) -> Value {
    if encrypted && let Some(e) = &s.enc {
        return Value::Str(e.clone());
    }
    s.value.clone()
}

/// [`output_value`] as text, for the stores whose values are all strings
/// (dotenv, INI).
pub(crate) fn output_text(s: &Scalar, encrypted: bool) -> String {
    match output_value(s, encrypted) {
        Value::Str(t) | Value::Time(t) => t,
        other => String::from_utf8_lossy(&other.to_bytes()).into_owned(),
    }
}
