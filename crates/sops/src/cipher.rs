//! AES-256-GCM value encryption in the SOPS `ENC[AES256_GCM,...]` format,
//! and the Go-compatible byte conversions of typed values.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use std::collections::HashMap;

use super::SopsError;

type SopsGcm = AesGcm<Aes256, U32>;
const TAG_LEN: usize = 16;

/// A typed plaintext value, as Go sops sees it after parsing.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Go `time.Time.MarshalText` form (RFC 3339 with nanoseconds).
    Time(String),
}

impl Value {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Null | Value::Str(_) => "str",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Time(_) => "time",
        }
    }

    /// The bytes Go sops encrypts and hashes (`ToBytes`).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Value::Null => Vec::new(),
            Value::Str(s) | Value::Time(s) => s.as_bytes().to_vec(),
            Value::Int(i) => i.to_string().into_bytes(),
            Value::Float(f) => go_format_float(*f).into_bytes(),
            Value::Bool(true) => b"True".to_vec(),
            Value::Bool(false) => b"False".to_vec(),
        }
    }
}

/// Go `strconv.FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's Display is the shortest round-trip form without exponent,
        // which is what 'f' with precision -1 produces.
        format!("{f}")
    }
}

/// Go `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// What a decrypted `ENC[...]` holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plain {
    Value(Value),
    Comment(String),
}

pub(crate) struct EncParts {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub typ: String,
}

/// True when `s` looks like a SOPS-encrypted value.
pub(crate) fn is_enc(s: &str) -> bool {
    s.starts_with("ENC[AES256_GCM,data:")
}

/// Parses `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]` like sops's regex
/// `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]` (greedy groups).
pub(crate) fn parse_enc(s: &str) -> Result<EncParts, SopsError> {
    let bad = |why: &str| SopsError::Malformed {
        reason: format!("encrypted value does not match sops' data format ({why})"),
    };
    let rest = s
        .strip_prefix("ENC[AES256_GCM,data:")
        .ok_or_else(|| bad("prefix"))?;
    let end = rest.rfind(']').ok_or_else(|| bad("no closing bracket"))?;
    let body = &rest[..end];
    let t = body.rfind(",type:").ok_or_else(|| bad("no type"))?;
    let typ = &body[t + 6..];
    let body = &body[..t];
    let g = body.rfind(",tag:").ok_or_else(|| bad("no tag"))?;
    let tag = &body[g + 5..];
    let body = &body[..g];
    let i = body.rfind(",iv:").ok_or_else(|| bad("no iv"))?;
    let iv = &body[i + 4..];
    let data = &body[..i];
    if data.is_empty() || iv.is_empty() || tag.is_empty() || typ.is_empty() {
        return Err(bad("empty field"));
    }
    let dec = |x: &str, what: &str| {
        B64.decode(x)
            .map_err(|_| bad(&format!("{what} is not base64")))
    };
    Ok(EncParts {
        data: dec(data, "data")?,
        iv: dec(iv, "iv")?,
        tag: dec(tag, "tag")?,
        typ: typ.to_string(),
    })
}

/// Remembers the IV of each (AAD, type, plaintext) seen while decrypting, so a
/// re-encryption of an unchanged value is byte-identical (sops `edit`).
#[derive(Default, Clone)]
pub(crate) struct IvStash {
    map: HashMap<(String, String, Vec<u8>), Vec<u8>>,
}

impl IvStash {
    pub(crate) fn insert(&mut self, aad: &str, typ: &str, plain: &[u8], iv: Vec<u8>) {
        self.map
            .insert((aad.to_string(), typ.to_string(), plain.to_vec()), iv);
    }
    fn get(&self, aad: &str, typ: &str, plain: &[u8]) -> Option<&Vec<u8>> {
        self.map
            .get(&(aad.to_string(), typ.to_string(), plain.to_vec()))
    }
}

fn gcm(key: &[u8; 32]) -> SopsGcm {
    SopsGcm::new_from_slice(key).expect("32-byte key")
}

fn seal(
    key: &[u8; 32],
    iv: &[u8],
    typ: &str,
    plain: &[u8],
    aad: &str,
) -> Result<String, SopsError> {
    let nonce = Nonce::<U32>::from_slice(iv);
    let out = gcm(key)
        .encrypt(
            nonce,
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SopsError::Crypto {
            reason: "AES-GCM encryption failed".into(),
        })?;
    let (ct, tag) = out.split_at(out.len() - TAG_LEN);
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        B64.encode(ct),
        B64.encode(iv),
        B64.encode(tag),
        typ
    ))
}

/// Encrypts a value or comment. An empty string is returned unencrypted, as sops does.
pub(crate) fn encrypt(
    key: &[u8; 32],
    plain: &Plain,
    aad: &str,
    stash: Option<&IvStash>,
) -> Result<String, SopsError> {
    let (typ, bytes) = match plain {
        Plain::Value(Value::Str(s)) if s.is_empty() => return Ok(String::new()),
        Plain::Value(v) => (v.type_name(), v.to_bytes()),
        Plain::Comment(c) => ("comment", c.as_bytes().to_vec()),
    };
    let iv = match stash.and_then(|s| s.get(aad, typ, &bytes)) {
        Some(iv) => iv.clone(),
        None => {
            let mut iv = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut iv);
            iv
        }
    };
    seal(key, &iv, typ, &bytes, aad)
}

/// Decrypts an `ENC[...]` string. Records the IV in `stash` when given.
pub(crate) fn decrypt(
    key: &[u8; 32],
    enc: &str,
    aad: &str,
    stash: Option<&mut IvStash>,
) -> Result<Plain, SopsError> {
    if enc.is_empty() {
        return Ok(Plain::Value(Value::Str(String::new())));
    }
    let p = parse_enc(enc)?;
    if p.iv.is_empty() || p.tag.len() != TAG_LEN {
        return Err(SopsError::Malformed {
            reason: "encrypted value has an invalid IV or tag length".into(),
        });
    }
    let mut msg = p.data.clone();
    msg.extend_from_slice(&p.tag);
    let plain = if p.iv.len() == 32 {
        gcm(key).decrypt(
            Nonce::<U32>::from_slice(&p.iv),
            Payload {
                msg: &msg,
                aad: aad.as_bytes(),
            },
        )
    } else if p.iv.len() == 12 {
        let c = aes_gcm::Aes256Gcm::new_from_slice(key).expect("32-byte key");
        c.decrypt(
            aes_gcm::Nonce::from_slice(&p.iv),
            Payload {
                msg: &msg,
                aad: aad.as_bytes(),
            },
        )
    } else {
        return Err(SopsError::Malformed {
            reason: format!("unsupported IV length {}", p.iv.len()),
        });
    }
    .map_err(|_| SopsError::ValueAuth {
        path: aad.to_string(),
    })?;
    if let Some(stash) = stash {
        stash.insert(aad, &p.typ, &plain, p.iv.clone());
    }
    let text = || {
        String::from_utf8(plain.clone()).map_err(|_| SopsError::Malformed {
            reason: format!("decrypted value at {aad} is not UTF-8"),
        })
    };
    let bad_type = |t: &str| SopsError::Malformed {
        reason: format!("decrypted value at {aad} is not a valid {t}"),
    };
    Ok(match p.typ.as_str() {
        "str" | "bytes" => Plain::Value(Value::Str(text()?)),
        "int" => Plain::Value(Value::Int(text()?.parse().map_err(|_| bad_type("int"))?)),
        "float" => Plain::Value(Value::Float(
            parse_go_float(&text()?).ok_or_else(|| bad_type("float"))?,
        )),
        "bool" => Plain::Value(Value::Bool(
            go_parse_bool(&text()?).ok_or_else(|| bad_type("bool"))?,
        )),
        "time" => Plain::Value(Value::Time(text()?)),
        "comment" => Plain::Comment(text()?),
        other => {
            return Err(SopsError::Malformed {
                reason: format!("unknown value type {other:?} at {aad}"),
            });
        }
    })
}

/// Go `strconv.ParseFloat` for the forms sops writes.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.replace('_', "").parse().ok(),
    }
}

/// Encrypts the MAC hex string (AAD = lastmodified in RFC 3339).
pub(crate) fn encrypt_mac(
    key: &[u8; 32],
    mac_hex: &str,
    lastmodified: &str,
) -> Result<String, SopsError> {
    encrypt(
        key,
        &Plain::Value(Value::Str(mac_hex.to_string())),
        lastmodified,
        None,
    )
}

pub(crate) fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    k
}
