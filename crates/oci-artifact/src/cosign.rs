//! Signatures in cosign's format (key-pair mode, no transparency log), so
//! that `cosign verify --key` and Flux's `spec.verify.provider: cosign`
//! accept what we sign, and we accept what `cosign sign --key` wrote.
//!
//! - Keys: cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` PEM (scrypt + NaCl
//!   secretbox around a PKCS#8 P-256 key) and a PKIX `PUBLIC KEY` PEM.
//! - Payload: the simple-signing JSON, compact, in Go's field order, with
//!   `"optional":null` as cosign writes it with no annotations.
//! - Storage: the `sha256-<hex>.sig` tag of the same repository, one
//!   `application/vnd.dev.cosign.simplesigning.v1+json` layer per signature,
//!   the signature in its `dev.cosignproject.cosign/signature` annotation;
//!   a new signature is appended to the layers already there, as cosign does.
//! - Verification: every layer's blob is checked against its digest, its
//!   signature against the keys, and its whole payload: cosign's
//!   `critical.type`, the target's `docker-manifest-digest`, and on request
//!   the repository in `docker-reference` (cosign itself checks only the
//!   digest). One layer passing is enough (cosign's rule). A `.sig` tag
//!   over [`MAX_SIGNATURES`] layers, a payload over [`MAX_PAYLOAD_BYTES`] or
//!   a manifest over [`MAX_SIGNATURE_MANIFEST_BYTES`] is refused, and nothing
//!   past the limit is read.
//! - Appending reads the tag back after writing it and merges again when a
//!   racing writer dropped the new layer, or when a blob's read or upload
//!   met a server error while the other's identical upload landed
//!   ([`SIGN_ATTEMPTS`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::registry::bounded::{self, BoundedError};
use super::registry::{classify, connect, names_missing_blob, tag_digest};
use super::{ArtifactError, Auth, MANIFEST_MEDIA_TYPE, RegistryRef, sha256_digest};

/// The media type of a signature layer (the blob is the payload itself).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of the payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The most signature layers a `.sig` tag may hold (cosign's own cap).
pub const MAX_SIGNATURES: usize = 1000;
/// The largest payload read (a real one is about 250 bytes).
pub const MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;
/// The largest `.sig` manifest read (1000 layers take about 300 KiB).
pub const MAX_SIGNATURE_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// How many times a signature is written when racing writers drop it.
pub const SIGN_ATTEMPTS: usize = 3;
/// The longest wait before a written `.sig` tag is read back.
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// What cosign writes instead with COSIGN_DOCKER_MEDIA_TYPES=1; read, never written.
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Go's zero time, which cosign records without --record-creation-timestamp.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// PEM types cosign writes (new, old) for an encrypted private key.
const PRIVATE_PEM_TYPES: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];
/// The scrypt (N, r, p) sets cosign accepts on decryption: legacy, standard
/// (the one it writes), OWASP.
const SCRYPT_SETS: [(u64, u32, u32); 3] = [(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)];

#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not a cosign private key: {detail}")]
    PrivateKey { what: String, detail: String },
    #[error(
        "{what}: wrong password, the key does not decrypt (COSIGN_PASSWORD must be the password given to `cosign generate-key-pair`)"
    )]
    WrongPassword { what: String },
    #[error("{what} is not a usable public key: {detail}")]
    PublicKey { what: String, detail: String },
    #[error(
        "{reference} is not signed: there is no {tag} tag (sign it with `--sign-key` or `cosign sign --key`)"
    )]
    Unsigned { reference: String, tag: String },
    #[error("no signature of {reference} verifies with {key}:\n  {}", failures.join("\n  "))]
    NoMatch {
        reference: String,
        key: String,
        failures: Vec<String>,
    },
    #[error("there is no artifact {what} to verify (check the tag, or publish it first)")]
    NoArtifact { what: String },
    #[error("the signature manifest {tag} is malformed: {detail}")]
    Malformed { tag: String, detail: String },
    #[error("the signature tag {tag} is refused: {detail} (nothing past the limit was read)")]
    OverLimit { tag: String, detail: String },
    #[error(
        "the signature of {digest} did not stay in {tag}: other writers replaced the tag {attempts} times in a row; sign again"
    )]
    Lost {
        digest: String,
        tag: String,
        attempts: usize,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

impl CosignError {
    /// A registry refusal when no credentials were sent asks for them.
    fn given(self, auth: &Auth) -> Self {
        match self {
            CosignError::Artifact(a) => CosignError::Artifact(a.given(auth)),
            other => other,
        }
    }
}

/// A decrypted cosign private key (ECDSA P-256).
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

// Debug without the secret: only the public half is shown.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.key.verifying_key())
            .finish_non_exhaustive()
    }
}

/// A cosign public key (ECDSA P-256).
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
}

/// A public key that verification accepts, with the name errors give it.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
}

impl TrustedKey {
    /// A `cosign.pub` file, named by its path.
    pub fn load(path: &Path) -> Result<Self, CosignError> {
        Ok(Self {
            name: path.display().to_string(),
            key: PublicKey::load(path)?,
        })
    }
}

/// Why a PEM block could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("no PEM block (-----BEGIN ...-----)")]
    NoBlock,
    #[error("a broken PEM header")]
    BrokenHeader,
    #[error("no -----END {0}----- line")]
    NoEnd(String),
    #[error("the PEM type is {found:?}, expected {expected}")]
    Type { found: String, expected: String },
    #[error("the PEM body is not base64: {0}")]
    Base64(#[source] base64::DecodeError),
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not base64: {0}")]
    Base64(#[source] base64::DecodeError),
    #[error("the signature is neither ASN.1 DER nor r||s")]
    Encoding,
    #[error("the signature does not match the key")]
    Mismatch,
}

/// The one PEM block of `text` of a type in `types`: (type, body bytes).
fn pem_block(text: &str, types: &[&str]) -> Result<(String, Vec<u8>), PemError> {
    let begin = text.find("-----BEGIN ").ok_or(PemError::NoBlock)?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let (kind, rest) = rest.split_once("-----").ok_or(PemError::BrokenHeader)?;
    let end_marker = format!("-----END {kind}-----");
    let (body, _) = rest
        .split_once(&end_marker)
        .ok_or_else(|| PemError::NoEnd(kind.to_string()))?;
    if !types.contains(&kind) {
        return Err(PemError::Type {
            found: kind.to_string(),
            expected: types.join(" or "),
        });
    }
    // Go's PEM headers ("Key: value" lines) are not part of the body.
    let b64: String = body
        .lines()
        .filter(|l| !l.contains(':'))
        .flat_map(|l| l.trim().chars())
        .collect();
    let bytes = B64.decode(b64).map_err(PemError::Base64)?;
    Ok((kind.to_string(), bytes))
}

fn pem_encode(kind: &str, bytes: &[u8]) -> String {
    let b64 = B64.encode(bytes);
    let mut out = format!("-----BEGIN {kind}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {kind}-----\n"));
    out
}

#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn scrypt_key(password: &[u8], salt: &[u8], n: u64, r: u32, p: u32) -> [u8; 32] {
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 32)
        .expect("the accepted scrypt sets are valid");
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).expect("32 bytes is a valid output length");
    key
}

impl SigningKey {
    /// Reads and decrypts a cosign private key file.
    pub fn load(path: &Path, password: &[u8]) -> Result<Self, CosignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CosignError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&text, password, &path.display().to_string())
    }

    /// Decrypts a cosign private key PEM; `what` names it in errors.
    pub fn from_pem(text: &str, password: &[u8], what: &str) -> Result<Self, CosignError> {
        let bad = |detail: String| CosignError::PrivateKey {
            what: what.to_string(),
            detail,
        };
        let (_, body) = pem_block(text, &PRIVATE_PEM_TYPES).map_err(|e| bad(e.to_string()))?;
        let env: Envelope = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the encrypted envelope is not cosign's JSON: {e}")))?;
        if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
            return Err(bad(format!(
                "unsupported kdf {:?} / cipher {:?} (cosign uses scrypt and nacl/secretbox)",
                env.kdf.name, env.cipher.name
            )));
        }
        let ScryptParams { n, r, p } = env.kdf.params;
        if !SCRYPT_SETS.contains(&(n, r, p)) {
            return Err(bad(format!(
                "unsupported scrypt parameters N={n} r={r} p={p}"
            )));
        }
        let field = |name: &str, v: &str| {
            B64.decode(v)
                .map_err(|e| bad(format!("{name} is not base64: {e}")))
        };
        let salt = field("salt", &env.kdf.salt)?;
        let nonce = field("nonce", &env.cipher.nonce)?;
        let sealed = field("ciphertext", &env.ciphertext)?;
        if nonce.len() != 24 {
            return Err(bad(format!("the nonce is {} bytes, not 24", nonce.len())));
        }
        // Go's secretbox.Seal writes the 16-byte Poly1305 tag first.
        if sealed.len() < 16 {
            return Err(bad("the ciphertext is shorter than its tag".into()));
        }
        let (tag, ct) = sealed.split_at(16);
        let key = scrypt_key(password, &salt, n, r, p);
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let mut der = ct.to_vec();
        cipher
            .decrypt_in_place_detached(
                crypto_secretbox::Nonce::from_slice(&nonce),
                &[],
                &mut der,
                crypto_secretbox::Tag::from_slice(tag),
            )
            .map_err(|_| CosignError::WrongPassword {
                what: what.to_string(),
            })?;
        let key = p256::SecretKey::from_pkcs8_der(&der).map_err(|e| {
            bad(format!(
                "the decrypted key is not a PKCS#8 ECDSA P-256 key ({e}); only P-256 keys, as `cosign generate-key-pair` makes, are supported"
            ))
        })?;
        Ok(Self { key: key.into() })
    }

    /// A fresh key pair in cosign's files: (`cosign.key` PEM, `cosign.pub`
    /// PEM), the private one encrypted under `password` with the scrypt
    /// parameters cosign writes.
    pub fn generate(password: &[u8]) -> (String, String) {
        use rand::RngCore;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS#8");
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let (n, r, p) = SCRYPT_SETS[1];
        let key = scrypt_key(password, &salt, n, r, p);
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let mut ct = der.as_bytes().to_vec();
        let tag = cipher
            .encrypt_in_place_detached(crypto_secretbox::Nonce::from_slice(&nonce), &[], &mut ct)
            .expect("secretbox encrypts any length");
        let mut sealed = tag.to_vec();
        sealed.extend_from_slice(&ct);
        // Field order as go-securesystemslib marshals it.
        let envelope = json!({
            "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": B64.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": B64.encode(nonce)},
            "ciphertext": B64.encode(&sealed),
        });
        let private = pem_encode(
            PRIVATE_PEM_TYPES[0],
            &serde_json::to_vec(&envelope).expect("serialising a JSON value"),
        );
        let public = PublicKey {
            key: *p256::ecdsa::SigningKey::from(secret).verifying_key(),
        };
        (private, public.to_pem())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
        }
    }

    /// ECDSA P-256 over SHA-256(payload), ASN.1 DER, standard base64.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: p256::ecdsa::Signature = self.key.sign(payload);
        B64.encode(sig.to_der().as_bytes())
    }
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<Self, CosignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CosignError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// A PKIX `PUBLIC KEY` PEM holding an ECDSA P-256 key.
    pub fn from_pem(text: &str, what: &str) -> Result<Self, CosignError> {
        let bad = |detail: String| CosignError::PublicKey {
            what: what.to_string(),
            detail,
        };
        let (_, der) = pem_block(text, &["PUBLIC KEY"]).map_err(|e| bad(e.to_string()))?;
        let key = p256::PublicKey::from_public_key_der(&der).map_err(|e| {
            bad(format!(
                "not an ECDSA P-256 key ({e}); only P-256 keys, as `cosign generate-key-pair` makes, are supported"
            ))
        })?;
        Ok(Self { key: key.into() })
    }

    pub fn to_pem(&self) -> String {
        let der = p256::PublicKey::from(&self.key)
            .to_public_key_der()
            .expect("a P-256 key encodes as PKIX");
        pem_encode("PUBLIC KEY", der.as_bytes())
    }

    /// Checks a base64 signature over `payload`: ASN.1 DER, or IEEE P1363
    /// `r||s` as cosign also accepts.
    pub fn verify(&self, payload: &[u8], signature_b64: &str) -> Result<(), SignatureError> {
        let raw = B64
            .decode(signature_b64.trim())
            .map_err(SignatureError::Base64)?;
        let sig = p256::ecdsa::Signature::from_der(&raw)
            .or_else(|_| p256::ecdsa::Signature::from_slice(&raw))
            .map_err(|_| SignatureError::Encoding)?;
        self.key
            .verify(payload, &sig)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// The simple-signing payload cosign signs for `digest` in `docker_reference`
/// (`host[:port]/repository`, no tag, no digest): compact JSON in Go's
/// field order, `optional` null as with no `-a` annotations. Neither a
/// reference nor a digest can hold `<`, `>` or `&`, which Go would escape.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&v).expect("serialising a JSON value")
}

/// `sha256-<hex>.sig`: the tag that holds the signatures of `digest`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// What signing did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignOutcome {
    /// The signed manifest digest.
    pub digest: String,
    /// `oci://host/repo:sha256-<hex>.sig`
    pub signature: String,
    /// Signatures under the tag after this one (cosign's and ours).
    pub layers: usize,
    /// True when an equal signature by this key was already there.
    pub already_signed: bool,
    /// Writes it took: more than 1 when a racing writer had to be merged.
    pub attempts: usize,
}

/// What verification found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verified {
    /// The verified manifest digest.
    pub digest: String,
    /// `oci://host/repo@sha256:...`
    pub reference: String,
    /// How many signatures under the tag verified with the key.
    pub verified: usize,
    /// How many signatures the tag holds.
    pub total: usize,
    /// The keys that verified a signature, by name.
    pub signed_by: Vec<String>,
    /// The verified payloads, as JSON.
    pub payloads: Vec<Value>,
}

/// Splits `oci://host/repo[:tag|@sha256:...]` into the repository reference
/// (with its tag) and the digest, when one is given.
pub fn parse_target(given: &str) -> Result<(RegistryRef, Option<String>), ArtifactError> {
    match given.rsplit_once('@') {
        Some((repo, digest)) => {
            let hex = digest.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ArtifactError::Reference {
                    given: given.to_string(),
                    hint: "; a digest is sha256: and 64 hex digits".into(),
                });
            }
            let r = RegistryRef::parse(repo)?;
            Ok((r, Some(digest.to_ascii_lowercase())))
        }
        None => Ok((RegistryRef::parse(given)?, None)),
    }
}

/// A `.sig` manifest as read: its digest (of the bytes) and its JSON.
struct SigManifest {
    digest: String,
    manifest: Value,
}

impl SigManifest {
    fn layers(&self) -> Vec<Value> {
        self.manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// Where a signature tag lives and how to reach it.
struct SigTag<'a> {
    clients: &'a super::registry::Clients,
    c: oci_client::Client,
    ra: oci_client::secrets::RegistryAuth,
    r: &'a RegistryRef,
    auth: &'a Auth,
    insecure: bool,
    tag: String,
}

impl SigTag<'_> {
    fn over_limit(&self, e: BoundedError) -> CosignError {
        match e {
            BoundedError::TooLarge { .. } => CosignError::OverLimit {
                tag: self.tag.clone(),
                detail: e.to_string(),
            },
            BoundedError::Artifact(a) => a.into(),
        }
    }

    fn malformed(&self, detail: impl Into<String>) -> CosignError {
        CosignError::Malformed {
            tag: self.tag.clone(),
            detail: detail.into(),
        }
    }

    /// The `.sig` manifest as it stands (at most 4 MiB), `None` when the
    /// tag does not exist.
    async fn manifest(&self) -> Result<Option<SigManifest>, CosignError> {
        let raw = bounded::manifest(
            self.clients,
            &self.c,
            self.r,
            &self.tag,
            &self.ra,
            self.auth,
            self.insecure,
            &[MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE],
            MAX_SIGNATURE_MANIFEST_BYTES,
        )
        .await
        .map_err(|e| self.over_limit(e))?;
        let Some(raw) = raw else { return Ok(None) };
        let manifest: Value =
            serde_json::from_slice(&raw).map_err(|e| self.malformed(e.to_string()))?;
        Ok(Some(SigManifest {
            digest: sha256_digest(&raw),
            manifest,
        }))
    }

    /// The config blob `m` names, as JSON (bounded like the manifest).
    async fn config(&self, m: &SigManifest) -> Result<Value, CosignError> {
        let digest = m
            .manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| self.malformed("no config digest"))?;
        let bytes = bounded::blob(
            &self.c,
            self.r,
            &self.tag,
            digest,
            MAX_SIGNATURE_MANIFEST_BYTES,
        )
        .await
        .map_err(|e| self.over_limit(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.malformed(format!("config: {e}")))
    }
}

/// Refuses a `.sig` manifest over the limits before any blob is read.
fn check_limits(tag: &SigTag<'_>, layers: &[Value]) -> Result<(), CosignError> {
    if layers.len() > MAX_SIGNATURES {
        return Err(CosignError::OverLimit {
            tag: tag.tag.clone(),
            detail: format!(
                "it holds {} signature layers, more than {MAX_SIGNATURES}",
                layers.len()
            ),
        });
    }
    for layer in layers {
        let size = layer.get("size").and_then(Value::as_u64).unwrap_or(0);
        if size > MAX_PAYLOAD_BYTES {
            let digest = layer.get("digest").and_then(Value::as_str).unwrap_or("?");
            return Err(CosignError::OverLimit {
                tag: tag.tag.clone(),
                detail: format!(
                    "the layer {digest} is {size} bytes, more than {MAX_PAYLOAD_BYTES} for a payload"
                ),
            });
        }
    }
    Ok(())
}

/// The base64 signature a layer carries.
fn layer_signature(layer: &Value) -> Option<&str> {
    layer
        .pointer(&format!(
            "/annotations/{}",
            SIGNATURE_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
}

/// The simple-signing payload, as far as verification reads it; a field
/// missing is a payload of another kind.
#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What a payload must claim: the digest, and with `--reference` the
/// repository (`host/repository`) it was signed for.
#[derive(Clone, Debug)]
pub struct Claims {
    pub digest: String,
    pub reference: Option<String>,
}

/// Checks a verified payload's claims: cosign's type, the digest, and the
/// repository when asked. Cosign's own `verify` checks only the digest.
pub fn check_claims(payload: &[u8], claims: &Claims) -> Result<Value, String> {
    let parsed: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|e| format!("the payload is not a simple-signing payload: {e}"))?;
    let c = parsed.critical;
    if c.kind != PAYLOAD_TYPE {
        return Err(format!(
            "the payload's critical.type is {:?}, not {PAYLOAD_TYPE:?}: it does not sign an image",
            c.kind
        ));
    }
    if c.image.docker_manifest_digest != claims.digest {
        return Err(format!(
            "the payload signs {:?}, not {}",
            c.image.docker_manifest_digest, claims.digest
        ));
    }
    if let Some(expected) = &claims.reference
        && &c.identity.docker_reference != expected
    {
        return Err(format!(
            "the payload was signed for {:?}, not {expected:?}",
            c.identity.docker_reference
        ));
    }
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// One signature layer, fetched (at most 1 MiB) and checked: its digest,
/// its signature under one of `keys`, and its claims. The name of the key
/// that matched, and the payload.
async fn check_layer(
    tag: &SigTag<'_>,
    layer: &Value,
    keys: &[TrustedKey],
    claims: &Claims,
) -> Result<(String, Value), LayerError> {
    let blob_digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| LayerError::new("a layer", "it has no digest"))?;
    let fail = |detail: String| LayerError::new(blob_digest, detail);
    let signature = layer_signature(layer)
        .ok_or_else(|| fail(format!("no {SIGNATURE_ANNOTATION} annotation")))?;
    let blob = bounded::blob(&tag.c, tag.r, &tag.tag, blob_digest, MAX_PAYLOAD_BYTES)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let computed = sha256_digest(&blob);
    if computed != blob_digest {
        return Err(fail(format!("the blob hashes to {computed}")));
    }
    let mut mismatches = Vec::new();
    let mut signer = None;
    for k in keys {
        match k.key.verify(&blob, signature) {
            Ok(()) => {
                signer = Some(k.name.clone());
                break;
            }
            Err(e) => mismatches.push(e.to_string()),
        }
    }
    let Some(signer) = signer else {
        mismatches.dedup();
        return Err(fail(mismatches.join("; ")));
    };
    let payload = check_claims(&blob, claims).map_err(fail)?;
    Ok((signer, payload))
}
/// Why one signature layer does not verify: the layer and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{layer}: {detail}")]
pub struct LayerError {
    layer: String,
    detail: String,
}

impl LayerError {
    fn new(layer: &str, detail: impl Into<String>) -> Self {
        Self {
            layer: layer.to_string(),
            detail: detail.into(),
        }
    }
}

/// Why a signature cannot be appended to an existing `.sig` image.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("it already holds 1000 signatures, cosign's limit")]
    Full,
    #[error("the config has no rootfs.diff_ids array")]
    NoDiffIds,
}

/// A `.sig` image as cosign writes it: the config and manifest blobs.
#[derive(Clone, Debug)]
pub struct SignatureImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// Signature layers in the manifest.
    pub layers: usize,
}

/// The `.sig` image after appending a layer for `payload` signed as
/// `signature` (base64) to `existing` (its manifest and config; `None`
/// starts from go-containerregistry's empty image, as cosign does). The
/// config gains a diff_id and a zero-time history entry, as `mutate.Append`
/// does; the error says what an existing image lacks.
pub fn signature_image(
    existing: Option<(&Value, &Value)>,
    payload: &[u8],
    signature: &str,
) -> Result<SignatureImage, AppendError> {
    let (mut layers, mut config) = match existing {
        Some((manifest, config)) => (
            manifest
                .get("layers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            config.clone(),
        ),
        None => (
            Vec::new(),
            json!({
                "architecture": "",
                "created": ZERO_TIME,
                "history": [],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {},
            }),
        ),
    };
    if layers.len() >= 1000 {
        return Err(AppendError::Full);
    }
    let payload_digest = sha256_digest(payload);
    layers.push(json!({
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "size": payload.len(),
        "digest": payload_digest,
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }));
    match config.pointer_mut("/rootfs/diff_ids") {
        Some(Value::Array(a)) => a.push(json!(payload_digest)),
        _ => return Err(AppendError::NoDiffIds),
    }
    match config.get_mut("history") {
        Some(Value::Array(a)) => a.push(json!({"created": ZERO_TIME})),
        _ => config["history"] = json!([{"created": ZERO_TIME}]),
    }
    let config = serde_json::to_vec(&config).expect("serialising a JSON value");
    let count = layers.len();
    // Field order as go-containerregistry marshals a manifest.
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": OCI_CONFIG_MEDIA_TYPE,
            "size": config.len(),
            "digest": sha256_digest(&config),
        },
        "layers": layers,
    });
    Ok(SignatureImage {
        config,
        manifest: serde_json::to_vec(&manifest).expect("serialising a JSON value"),
        layers: count,
    })
}

/// Signs the manifest `digest` of repository `r` with `key` and stores the
/// signature under its `.sig` tag, after any signatures already there.
pub(super) async fn sign(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: &str,
    key: &SigningKey,
    auth: &Auth,
    insecure: bool,
) -> Result<SignOutcome, CosignError> {
    let body = payload(&format!("{}/{}", r.host, r.repository), digest);
    let signature = key.sign(&body);
    let public = key.public_key();
    // cosign's duplicate rule: a stored signature that verifies under this key.
    let ours = |stored: &str| public.verify(&body, stored).is_ok();
    append(clients, r, digest, &body, &signature, &ours, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

/// Stores a signature made elsewhere (`cosign sign-blob`, a KMS) over
/// `body` as a layer of `digest`'s `.sig` tag, as [`sign`] stores its own.
#[allow(clippy::too_many_arguments)]
pub(super) async fn append_signature(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: &str,
    body: &[u8],
    signature: &str,
    auth: &Auth,
    insecure: bool,
) -> Result<SignOutcome, CosignError> {
    let same = |stored: &str| stored == signature;
    append(clients, r, digest, body, signature, &same, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

/// Appends a layer for `body` signed as `signature` to `digest`'s `.sig`
/// tag, unless a layer with the same payload whose signature `is_ours`
/// accepts is there already. The tag is read, extended and written back
/// (the registry has no compare-and-swap), so a writer racing us can drop
/// our layer: the tag is checked unchanged right before our write, and read
/// back after it; when our layer is missing the current tag is merged
/// again, at most [`SIGN_ATTEMPTS`] times. What remains open is a writer
/// slower than twice our own round trips; one CI concurrency group for
/// every workflow that signs closes that.
#[allow(clippy::too_many_arguments)]
async fn append(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: &str,
    body: &[u8],
    signature: &str,
    is_ours: &dyn Fn(&str) -> bool,
    auth: &Auth,
    insecure: bool,
) -> Result<SignOutcome, CosignError> {
    let (c, ra) = connect(clients, r, auth, insecure).await;
    let tag = SigTag {
        clients,
        c,
        ra,
        r,
        auth,
        insecure,
        tag: signature_tag(digest),
    };
    let body_digest = sha256_digest(body);
    let outcome = |layers, already_signed, attempts| SignOutcome {
        digest: digest.to_string(),
        signature: format!("oci://{}/{}:{}", r.host, r.repository, tag.tag),
        layers,
        already_signed,
        attempts,
    };
    let holds_ours = |m: &SigManifest| {
        m.layers().iter().any(|layer| {
            layer.get("digest").and_then(Value::as_str) == Some(body_digest.as_str())
                && layer.get("mediaType").and_then(Value::as_str) == Some(SIMPLE_SIGNING_MEDIA_TYPE)
                && layer_signature(layer).is_some_and(is_ours)
        })
    };
    let sig_ref = r.reference(&tag.tag);
    // The last refusal of our manifest, if the attempts end on one.
    let mut refused = None;
    for attempt in 1..=SIGN_ATTEMPTS {
        refused = None;
        let base = tag.manifest().await?;
        if let Some(m) = &base
            && holds_ours(m)
        {
            return Ok(outcome(m.layers().len(), true, attempt));
        }
        let existing = match &base {
            Some(m) => Some((m.manifest.clone(), tag.config(m).await?)),
            None => None,
        };
        let image = signature_image(existing.as_ref().map(|(m, c)| (m, c)), body, signature)
            .map_err(|e| tag.malformed(e.to_string()))?;
        let config_digest = sha256_digest(&image.config);
        // Blobs first, then the manifest, so the tag never names a missing
        // blob. Signers of one digest upload the same payload: a read or
        // upload of it that meets the other's landing may get a server
        // error, and the attempt is made again a moment later.
        let mut interrupted = None;
        for (d, bytes) in [
            (&body_digest, body.to_vec()),
            (&config_digest, image.config),
        ] {
            let stored = match tag.c.blob_exists(&sig_ref, d).await {
                Ok(true) => Ok(()),
                Ok(false) => tag.c.push_blob(&sig_ref, bytes, d).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match stored {
                Ok(()) => {}
                Err(e) if super::registry::is_server_error(&e) => {
                    interrupted = Some(classify(&r.host, e));
                    break;
                }
                Err(e) => return Err(classify(&r.host, e).into()),
            }
        }
        if let Some(e) = interrupted {
            refused = Some(e);
            tokio::time::sleep(std::time::Duration::from_millis(50) * attempt as u32).await;
            continue;
        }
        // Another writer since our read: merge its layers first.
        let checked = std::time::Instant::now();
        let now = tag.manifest().await?;
        if now.as_ref().map(|m| &m.digest) != base.as_ref().map(|m| &m.digest) {
            continue;
        }
        match tag
            .c
            .push_manifest_raw(
                &sig_ref,
                image.manifest,
                MANIFEST_MEDIA_TYPE.parse().expect("a valid header value"),
            )
            .await
        {
            Ok(_) => {}
            // Signers of one digest upload the same payload blob; while
            // another's upload of it lands the registry may not know it.
            Err(e) if names_missing_blob(&e) => {
                refused = Some(classify(&r.host, e));
                continue;
            }
            Err(e) => return Err(classify(&r.host, e).into()),
        }
        // Read back once a writer that checked the tag just before our
        // write has landed too (its write follows its check by about the
        // round trips ours took): if it replaced our layer, merge again.
        tokio::time::sleep((checked.elapsed() * 2).min(SETTLE_MAX)).await;
        if let Some(after) = tag.manifest().await?
            && holds_ours(&after)
        {
            return Ok(outcome(after.layers().len(), false, attempt));
        }
    }
    if let Some(e) = refused {
        return Err(e.into());
    }
    Err(CosignError::Lost {
        digest: digest.to_string(),
        tag: tag.tag.clone(),
        attempts: SIGN_ATTEMPTS,
    })
}

/// Verifies that `r` (at `digest`, else at its tag, default `latest`) has a
/// signature under one of `keys` whose payload makes the right claims:
/// cosign's `verify --key --insecure-ignore-tlog`, plus the payload's type
/// and, with `reference`, the repository it was signed for.
#[allow(clippy::too_many_arguments)]
pub(super) async fn verify(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: Option<&str>,
    keys: &[TrustedKey],
    reference: Option<&str>,
    auth: &Auth,
    insecure: bool,
) -> Result<Verified, CosignError> {
    verify_inner(clients, r, digest, keys, reference, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

async fn verify_inner(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: Option<&str>,
    keys: &[TrustedKey],
    reference: Option<&str>,
    auth: &Auth,
    insecure: bool,
) -> Result<Verified, CosignError> {
    let (c, ra) = connect(clients, r, auth, insecure).await;
    let digest = match digest {
        Some(d) => d.to_string(),
        None => {
            let t = r.tag.clone().unwrap_or_else(|| "latest".into());
            tag_digest(&c, r, &t, &ra)
                .await?
                .ok_or_else(|| CosignError::NoArtifact {
                    what: format!("oci://{}/{}:{t}", r.host, r.repository),
                })?
        }
    };
    let target = r.with_digest(&digest);
    let tag = SigTag {
        clients,
        c,
        ra,
        r,
        auth,
        insecure,
        tag: signature_tag(&digest),
    };
    let Some(sig) = tag.manifest().await? else {
        return Err(CosignError::Unsigned {
            reference: target,
            tag: tag.tag.clone(),
        });
    };
    let layers = sig.layers();
    check_limits(&tag, &layers)?;
    let claims = Claims {
        digest: digest.clone(),
        reference: reference.map(str::to_string),
    };
    let checks =
        futures_util::future::join_all(layers.iter().map(|l| check_layer(&tag, l, keys, &claims)))
            .await;
    let total = checks.len();
    let mut signed_by = Vec::new();
    let mut payloads = Vec::new();
    let mut failures = Vec::new();
    for check in checks {
        match check {
            Ok((key, payload)) => {
                if !signed_by.contains(&key) {
                    signed_by.push(key);
                }
                payloads.push(payload);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if payloads.is_empty() {
        if failures.is_empty() {
            failures.push(format!("{} holds no signature layers", tag.tag));
        }
        return Err(CosignError::NoMatch {
            reference: target,
            key: keys
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            failures,
        });
    }
    Ok(Verified {
        digest,
        reference: target,
        verified: payloads.len(),
        total,
        signed_by,
        payloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_cosigns_compact_json() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let p = payload("127.0.0.1:5000/team/app", &d);
        assert_eq!(
            String::from_utf8(p).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/team/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
    }

    #[test]
    fn claims_are_the_type_the_digest_and_on_request_the_repository() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let other = format!("sha256:{}", "cd".repeat(32));
        let repo = "127.0.0.1:5000/team/app";
        let ours = payload(repo, &d);
        let claims = |reference: Option<&str>| Claims {
            digest: d.clone(),
            reference: reference.map(str::to_string),
        };
        assert!(check_claims(&ours, &claims(None)).is_ok());
        assert!(check_claims(&ours, &claims(Some(repo))).is_ok());
        let e = check_claims(&ours, &claims(Some("ghcr.io/o/r"))).unwrap_err();
        assert_eq!(
            e,
            format!("the payload was signed for \"{repo}\", not \"ghcr.io/o/r\"")
        );
        let e = check_claims(&payload(repo, &other), &claims(None)).unwrap_err();
        assert_eq!(e, format!("the payload signs \"{other}\", not {d}"));
        let typed = String::from_utf8(ours.clone())
            .unwrap()
            .replace(PAYLOAD_TYPE, "atomic container signature");
        let e = check_claims(typed.as_bytes(), &claims(None)).unwrap_err();
        assert!(
            e.starts_with("the payload's critical.type is \"atomic container signature\""),
            "{e}"
        );
        // The old check's shape alone (only the digest) is not a payload.
        let bare = format!(r#"{{"critical":{{"image":{{"docker-manifest-digest":"{d}"}}}}}}"#);
        let e = check_claims(bare.as_bytes(), &claims(None)).unwrap_err();
        assert!(
            e.contains("not a simple-signing payload") && e.contains("missing field"),
            "{e}"
        );
    }

    #[test]
    fn a_generated_key_decrypts_signs_and_verifies() {
        let (private, public) = SigningKey::generate(b"pw");
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(private.lines().all(|l| l.len() <= 64));
        let key = SigningKey::from_pem(&private, b"pw", "k").unwrap();
        let public = PublicKey::from_pem(&public, "p").unwrap();
        let sig = key.sign(b"payload");
        public.verify(b"payload", &sig).unwrap();
        assert!(public.verify(b"payload!", &sig).is_err());
        // The envelope is cosign's: scrypt standard set, tag-first secretbox.
        let (_, body) = pem_block(&private, &PRIVATE_PEM_TYPES).unwrap();
        let env: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(env["kdf"]["params"], json!({"N": 65536, "r": 8, "p": 1}));
        assert_eq!(
            B64.decode(env["ciphertext"].as_str().unwrap())
                .unwrap()
                .len(),
            138 + 16,
            "PKCS#8 P-256 DER (138 bytes) after the 16-byte tag"
        );
        let e = SigningKey::from_pem(&private, b"wrong", "cosign.key").unwrap_err();
        assert!(matches!(e, CosignError::WrongPassword { .. }), "{e}");
        assert!(e.to_string().contains("wrong password"), "{e}");
    }

    #[test]
    fn the_legacy_pem_type_and_p1363_signatures_are_accepted() {
        let (private, public) = SigningKey::generate(b"pw");
        let legacy = private.replace("SIGSTORE", "COSIGN");
        let key = SigningKey::from_pem(&legacy, b"pw", "k").unwrap();
        let public = PublicKey::from_pem(&public, "p").unwrap();
        let der = B64.decode(key.sign(b"m")).unwrap();
        let rs = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        public.verify(b"m", &B64.encode(rs)).unwrap();
    }

    #[test]
    fn other_pem_types_and_parameters_are_refused() {
        let (_, public) = SigningKey::generate(b"");
        let e = SigningKey::from_pem(&public, b"", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("PUBLIC KEY") && e.contains("expected"), "{e}");
        let body = br#"{"kdf":{"name":"scrypt","params":{"N":1024,"r":8,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}"#;
        let pem = pem_encode("ENCRYPTED COSIGN PRIVATE KEY", body);
        let e = SigningKey::from_pem(&pem, b"", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported scrypt parameters N=1024"), "{e}");
    }

    #[test]
    fn targets_take_a_tag_or_a_digest() {
        let (r, d) = parse_target("oci://127.0.0.1:5000/a:v1").unwrap();
        assert_eq!((r.tag.as_deref(), d), (Some("v1"), None));
        let digest = format!("sha256:{}", "0".repeat(64));
        let (r, d) = parse_target(&format!("oci://127.0.0.1:5000/a@{digest}")).unwrap();
        assert_eq!((r.repository.as_str(), d), ("a", Some(digest)));
        assert!(parse_target("oci://h/a@sha256:12").is_err());
    }
}
