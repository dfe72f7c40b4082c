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
//!   signature against the key, and its `docker-manifest-digest` against the
//!   target; one layer passing is enough (cosign's rule).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::registry::{classify, connect, is_not_found, tag_digest};
use super::{ArtifactError, Auth, MANIFEST_MEDIA_TYPE, RegistryRef, sha256_digest};

/// The media type of a signature layer (the blob is the payload itself).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of the payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
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

/// The manifest of the `.sig` tag as it stands: (manifest, config), `None`
/// when the tag does not exist.
async fn existing(
    c: &oci_client::Client,
    r: &RegistryRef,
    tag: &str,
    ra: &oci_client::secrets::RegistryAuth,
) -> Result<Option<(Value, Vec<u8>)>, CosignError> {
    let sig_ref = r.reference(tag);
    let manifest = match c
        .pull_manifest_raw(
            &sig_ref,
            ra,
            &[MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE],
        )
        .await
    {
        Ok((m, _)) => m,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(classify(&r.host, e).into()),
    };
    let malformed = |detail: String| CosignError::Malformed {
        tag: tag.to_string(),
        detail,
    };
    let manifest: Value =
        serde_json::from_slice(&manifest).map_err(|e| malformed(e.to_string()))?;
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no config digest".into()))?;
    let mut config = Vec::new();
    c.pull_blob(&sig_ref, config_digest, &mut config)
        .await
        .map_err(|e| classify(&r.host, e))?;
    Ok(Some((manifest, config)))
}

/// One signature layer, fetched and checked against `key` and `digest`.
async fn check_layer(
    c: &oci_client::Client,
    r: &RegistryRef,
    tag: &str,
    layer: &Value,
    key: &PublicKey,
    digest: &str,
) -> Result<Value, LayerError> {
    let blob_digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| LayerError::new("a layer", "it has no digest"))?;
    let fail = |detail: String| LayerError::new(blob_digest, detail);
    let signature = layer
        .pointer(&format!(
            "/annotations/{}",
            SIGNATURE_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .ok_or_else(|| fail(format!("no {SIGNATURE_ANNOTATION} annotation")))?;
    let mut blob = Vec::new();
    c.pull_blob(&r.reference(tag), blob_digest, &mut blob)
        .await
        .map_err(|e| fail(classify(&r.host, e).to_string()))?;
    let computed = sha256_digest(&blob);
    if computed != blob_digest {
        return Err(fail(format!("the blob hashes to {computed}")));
    }
    key.verify(&blob, signature)
        .map_err(|e| fail(e.to_string()))?;
    let payload: Value =
        serde_json::from_slice(&blob).map_err(|e| fail(format!("the payload is not JSON: {e}")))?;
    let claimed = payload
        .pointer("/critical/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .unwrap_or("");
    if claimed != digest {
        return Err(fail(format!("the payload signs {claimed:?}, not {digest}")));
    }
    Ok(payload)
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
    sign_inner(clients, r, digest, key, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

async fn sign_inner(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: &str,
    key: &SigningKey,
    auth: &Auth,
    insecure: bool,
) -> Result<SignOutcome, CosignError> {
    let (c, ra) = connect(clients, r, auth, insecure).await;
    let tag = signature_tag(digest);
    let body = payload(&format!("{}/{}", r.host, r.repository), digest);
    let body_digest = sha256_digest(&body);
    let signature = key.sign(&body);
    let public = key.public_key();
    let outcome = |layers, already_signed| SignOutcome {
        digest: digest.to_string(),
        signature: format!("oci://{}/{}:{tag}", r.host, r.repository),
        layers,
        already_signed,
    };

    let existing = match existing(&c, r, &tag, &ra).await? {
        Some((manifest, config)) => {
            let config: Value =
                serde_json::from_slice(&config).map_err(|e| CosignError::Malformed {
                    tag: tag.clone(),
                    detail: format!("config: {e}"),
                })?;
            Some((manifest, config))
        }
        None => None,
    };
    // cosign's duplicate rule: same payload, same media type, and a stored
    // signature that verifies under this key.
    let layers = existing
        .as_ref()
        .and_then(|(m, _)| m.get("layers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for layer in &layers {
        let same = layer.get("digest").and_then(Value::as_str) == Some(body_digest.as_str())
            && layer.get("mediaType").and_then(Value::as_str) == Some(SIMPLE_SIGNING_MEDIA_TYPE);
        let stored = layer
            .pointer(&format!(
                "/annotations/{}",
                SIGNATURE_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str);
        if same && stored.is_some_and(|s| public.verify(&body, s).is_ok()) {
            return Ok(outcome(layers.len(), true));
        }
    }
    let image = signature_image(existing.as_ref().map(|(m, c)| (m, c)), &body, &signature)
        .map_err(|e| CosignError::Malformed {
            tag: tag.clone(),
            detail: e.to_string(),
        })?;
    let config_digest = sha256_digest(&image.config);
    let (config, manifest, count) = (image.config, image.manifest, image.layers);

    // Blobs first, then the manifest, so the tag never names a missing blob.
    let sig_ref = r.reference(&tag);
    for (d, bytes) in [(&body_digest, body), (&config_digest, config)] {
        let present = c
            .blob_exists(&sig_ref, d)
            .await
            .map_err(|e| classify(&r.host, e))?;
        if !present {
            c.push_blob(&sig_ref, bytes, d)
                .await
                .map_err(|e| classify(&r.host, e))?;
        }
    }
    c.push_manifest_raw(
        &sig_ref,
        manifest,
        MANIFEST_MEDIA_TYPE.parse().expect("a valid header value"),
    )
    .await
    .map_err(|e| classify(&r.host, e))?;
    Ok(outcome(count, false))
}

/// Verifies that `r` (at `digest`, else at its tag, default `latest`) has a
/// signature under `key`: cosign's `verify --key --insecure-ignore-tlog`.
pub(super) async fn verify(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: Option<&str>,
    key: &PublicKey,
    key_name: &str,
    auth: &Auth,
    insecure: bool,
) -> Result<Verified, CosignError> {
    verify_inner(clients, r, digest, key, key_name, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

async fn verify_inner(
    clients: &super::registry::Clients,
    r: &RegistryRef,
    digest: Option<&str>,
    key: &PublicKey,
    key_name: &str,
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
    let reference = r.with_digest(&digest);
    let tag = signature_tag(&digest);
    let Some((manifest, _)) = existing(&c, r, &tag, &ra).await? else {
        return Err(CosignError::Unsigned { reference, tag });
    };
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let checks = futures_util::future::join_all(
        layers
            .iter()
            .map(|l| check_layer(&c, r, &tag, l, key, &digest)),
    )
    .await;
    let total = checks.len();
    let (ok, failed): (Vec<_>, Vec<_>) = checks.into_iter().partition(Result::is_ok);
    if ok.is_empty() {
        let mut failures: Vec<String> = failed
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect();
        if failures.is_empty() {
            failures.push(format!("{tag} holds no signature layers"));
        }
        return Err(CosignError::NoMatch {
            reference,
            key: key_name.to_string(),
            failures,
        });
    }
    Ok(Verified {
        digest,
        reference,
        verified: ok.len(),
        total,
        payloads: ok.into_iter().filter_map(Result::ok).collect(),
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
