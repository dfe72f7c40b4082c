//! Pushing to and reading from an OCI registry with oci-client, and reading
//! artifacts back for `package --inspect`.
//!
//! Push order: HEAD every tag (all already at our digest: "up to date",
//! nothing pushed); HEAD each blob and upload only the missing ones (layer and
//! config concurrently, each as POST + one streamed PUT); only then PUT the
//! manifest under each tag (all at once). A push killed at any point leaves
//! no tag pointing at a missing blob, and a re-run completes it.

pub(crate) mod bounded;
mod loopback;

pub(crate) use loopback::Answers;

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use crate::auth::Auth;
use crate::{
    Artifact, ArtifactError, CONFIG_MEDIA_TYPE, CONTENT_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
    sha256_digest, validate_tag,
};

/// `oci://host[:port]/repository[:tag]`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
}

impl RegistryRef {
    /// Parses `oci://HOST/REPO[:TAG]`. Any other scheme, or none, is an error
    /// that says what to write instead.
    pub fn parse(given: &str) -> Result<Self, ArtifactError> {
        let bad = |hint: &str| ArtifactError::Reference {
            given: given.to_string(),
            hint: hint.to_string(),
        };
        let rest = match given.split_once("://") {
            Some(("oci", rest)) => rest,
            Some(("http" | "https", _)) => {
                return Err(bad(
                    "; use the oci:// scheme: plain http is chosen automatically for localhost and 127.0.0.1, or with --insecure",
                ));
            }
            Some((other, _)) => {
                return Err(bad(&format!(
                    "; the scheme {other}:// is not supported, use oci://"
                )));
            }
            None => return Err(bad("; add the oci:// prefix")),
        };
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("; a repository path after the host is required"))?;
        if host.is_empty() || path.is_empty() {
            return Err(bad(""));
        }
        let port = if host.starts_with('[') {
            host.split_once("]:").map(|(_, p)| p)
        } else {
            host.rsplit_once(':').map(|(_, p)| p)
        };
        if let Some(port) = port
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(bad(&format!(
                "; the port {port:?} is not a port number (1-65535)"
            )));
        }
        if path.contains('@') {
            return Err(bad("; a digest cannot be pushed to, give tags with --tag"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        let valid_repo = repository.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
        if !valid_repo {
            return Err(bad(
                "; repository names are lowercase [a-z0-9._-] segments separated by /",
            ));
        }
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        Ok(Self {
            host: host.to_string(),
            repository: repository.to_string(),
            tag,
        })
    }

    /// True for localhost, 127.0.0.1 and [::1] (any port): plain http.
    pub fn is_local(&self) -> bool {
        let name = if self.host.starts_with('[') {
            self.host
                .split(']')
                .next()
                .map(|h| format!("{h}]"))
                .unwrap_or_default()
        } else {
            self.host.split(':').next().unwrap_or("").to_string()
        };
        matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
    }

    /// `oci://host/repo@sha256:...`, the form an OCIRepository can pin.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("oci://{}/{}@{digest}", self.host, self.repository)
    }

    pub(super) fn reference(&self, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), self.repository.clone(), tag.to_string())
    }
}

/// What a publish did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PublishOutcome {
    /// `oci://host/repo@sha256:...`
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    pub tags: Vec<String>,
    /// Digests of the blobs uploaded (empty when all were present).
    pub pushed_blobs: Vec<String>,
    /// Tags whose manifest was written.
    pub pushed_tags: Vec<String>,
    /// True when every tag already pointed at this digest: nothing was sent.
    pub up_to_date: bool,
}

impl PublishOutcome {
    /// What a push of `a` to `r` under `tags` has to do, given the digest
    /// each tag points at now: the outcome so far and the stale tags.
    pub(crate) fn plan(
        r: &RegistryRef,
        a: &Artifact,
        tags: &[String],
        current: Vec<Option<String>>,
    ) -> (Self, Vec<String>) {
        let stale: Vec<String> = tags
            .iter()
            .zip(current)
            .filter(|(_, d)| d.as_deref() != Some(a.manifest_digest.as_str()))
            .map(|(t, _)| t.clone())
            .collect();
        let outcome = PublishOutcome {
            reference: r.with_digest(&a.manifest_digest),
            digest: a.manifest_digest.clone(),
            tags: tags.to_vec(),
            pushed_blobs: Vec::new(),
            pushed_tags: Vec::new(),
            up_to_date: stale.is_empty(),
        };
        (outcome, stale)
    }
}

pub(super) fn ensure_crypto_provider() {
    // Err means a provider is already installed: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The only trust root given to a client that speaks plain HTTP: it never
/// makes a TLS connection, and without a root of its own reqwest reads the
/// whole system store (~300 files) on every run. No private key exists for
/// this certificate, so nothing can ever be trusted through it.
pub(super) const PLAIN_HTTP_PLACEHOLDER_ROOT: &str = concat!(
    "-----BEGIN CERTIFICATE-----\n",
    "MIIB1jCCAXugAwIBAgIUZ4ZaPNwTm416afkT+zqpf8/NztwwCgYIKoZIzj0EAwIw\n",
    "PzE9MDsGA1UEAww0eHRhc2sgcGxhaW4taHR0cCBwbGFjZWhvbGRlciAobm8gcHJp\n",
    "dmF0ZSBrZXkgZXhpc3RzKTAgFw0yNjExMjQxNjM2MDlaGA8yMTI2MTAzMTE2MzYw\n",
    "OVowPzE9MDsGA1UEAww0eHRhc2sgcGxhaW4taHR0cCBwbGFjZWhvbGRlciAobm8g\n",
    "cHJpdmF0ZSBrZXkgZXhpc3RzKTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABOG5\n",
    "MSvJz2Xw73JH1CcRCO43euEQ2E+3uiv0+8yhFNBCSLj9LaC3m8yi1ROzbWKiChGk\n",
    "Dq4uhBauCOb/KZSuvFajUzBRMB0GA1UdDgQWBBQhIkAtqvlzWW/PtqCJBzCRG+we\n",
    "jzAfBgNVHSMEGDAWgBQhIkAtqvlzWW/PtqCJBzCRG+wejzAPBgNVHRMBAf8EBTAD\n",
    "AQH/MAoGCCqGSM49BAMCA0kAMEYCIQDirs19/TRnfgHI5NmX6Cx4vq8aTiC8rwEH\n",
    "fQUTIdcTtwIhAMD57P5w6LACdTGG/sAFaqJwmGfyQCxHTtj7llIwrwGZ\n",
    "-----END CERTIFICATE-----\n",
);

pub(super) fn client(r: &RegistryRef, insecure: bool) -> Client {
    ensure_crypto_provider();
    let plain_http = insecure || r.is_local();
    let protocol = if plain_http {
        ClientProtocol::HttpsExcept(vec![r.host.clone()])
    } else {
        ClientProtocol::Https
    };
    let tls_certs_only = if plain_http {
        vec![oci_client::client::Certificate {
            encoding: oci_client::client::CertificateEncoding::Pem,
            data: PLAIN_HTTP_PLACEHOLDER_ROOT.as_bytes().to_vec(),
        }]
    } else {
        Vec::new()
    };
    Client::new(ClientConfig {
        protocol,
        tls_certs_only,
        // POST then one PUT per blob (no PATCH round trip); the body is
        // still streamed, so progress and interruption behave the same.
        use_monolithic_push: true,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    })
}

/// One oci-client client per (host, plain http), and one plain-HTTP
/// client for loopback registries that ask for no credentials; each built
/// on first use.
#[derive(Default)]
pub(crate) struct Clients {
    oci: Mutex<HashMap<(String, bool), Client>>,
    loopback: OnceLock<reqwest::Client>,
    https: OnceLock<reqwest::Client>,
}

impl Clients {
    /// The client for `r` (a clone shares its connections and tokens).
    pub(crate) fn get(&self, r: &RegistryRef, insecure: bool) -> Client {
        let mut map = self.oci.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((r.host.clone(), insecure))
            .or_insert_with(|| client(r, insecure))
            .clone()
    }

    /// The client of [`loopback`].
    pub(crate) fn loopback(&self) -> Result<reqwest::Client, ArtifactError> {
        if let Some(c) = self.loopback.get() {
            return Ok(c.clone());
        }
        let c = loopback::client()?;
        Ok(self.loopback.get_or_init(|| c).clone())
    }

    /// A plain reqwest client for the reads oci-client cannot bound
    /// ([`bounded`]): the loopback one for plain http, else one that
    /// verifies certificates as oci-client does.
    pub(crate) fn http(&self, plain_http: bool) -> Result<reqwest::Client, ArtifactError> {
        if plain_http {
            return self.loopback();
        }
        if let Some(c) = self.https.get() {
            return Ok(c.clone());
        }
        ensure_crypto_provider();
        let c = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ArtifactError::Registry {
                host: "https".into(),
                detail: chain(&e),
            })?;
        Ok(self.https.get_or_init(|| c).clone())
    }
}

/// A client for `r` with `auth` stored for its host: what every registry
/// operation starts with.
pub(super) async fn connect(
    clients: &Clients,
    r: &RegistryRef,
    auth: &Auth,
    insecure: bool,
) -> (Client, RegistryAuth) {
    let c = clients.get(r, insecure);
    let ra = registry_auth(auth);
    c.store_auth_if_needed(&r.host, &ra).await;
    (c, ra)
}

pub(super) fn registry_auth(auth: &Auth) -> RegistryAuth {
    match auth {
        Auth::Anonymous => RegistryAuth::Anonymous,
        Auth::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
    }
}

pub(super) fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code: 404, .. } => true,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

/// A manifest refused for a blob the registry does not know (or not yet:
/// two writers uploading the same blob at once). oci-client hands a
/// refused manifest PUT back with the registry's error body as text.
pub(super) fn names_missing_blob(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestBlobUnknown | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError {
            code: 400, message, ..
        } => ["\"MANIFEST_BLOB_UNKNOWN\"", "\"BLOB_UNKNOWN\""]
            .iter()
            .any(|code| message.contains(code)),
        _ => false,
    }
}

/// A server error (5xx) a registry may not give again: distribution
/// answers 500 to a read of a blob whose identical upload by another
/// writer is landing at that moment.
pub(super) fn is_server_error(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => e.status().is_some_and(|s| s.is_server_error()),
        OciDistributionError::ServerError { code, .. } => (500..600).contains(code),
        _ => false,
    }
}

/// Turns an oci-client error into one that says what went wrong in words:
/// unreachable, credentials refused, or anything else.
pub(super) fn classify(host: &str, e: OciDistributionError) -> ArtifactError {
    let host = host.to_string();
    let detail = chain(&e);
    match &e {
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
            ArtifactError::RegistryDown { host, detail }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => ArtifactError::AuthRefused { host, detail },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            ArtifactError::AuthRefused { host, detail }
        }
        _ => ArtifactError::Registry { host, detail },
    }
}

pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        src = inner.source();
    }
    s
}

/// The digest a tag points at, `None` when the tag does not exist.
pub(super) async fn tag_digest(
    c: &Client,
    r: &RegistryRef,
    tag: &str,
    auth: &RegistryAuth,
) -> Result<Option<String>, ArtifactError> {
    // One GET, not oci-client's HEAD that falls back to a GET when the tag is
    // missing (a first push): the manifest is small, the round trip is not.
    const ACCEPT: &[&str] = &[
        MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ];
    match c.pull_manifest_raw(&r.reference(tag), auth, ACCEPT).await {
        Ok((_, d)) => Ok(Some(d)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(classify(&r.host, e)),
    }
}

/// Pushes `a` to `reference` (`oci://host/repo`) under every tag in `tags`.
/// `progress` draws indicatif bars for uploads (only when stderr is a
/// terminal). See the module docs for the order of operations.
/// `answered`: what a [`preflight`] learned of this repository.
#[allow(clippy::too_many_arguments)]
pub(super) async fn publish(
    clients: &Clients,
    a: &Artifact,
    reference: &str,
    tags: &[String],
    auth: &Auth,
    insecure: bool,
    progress: bool,
    answered: Option<loopback::Answers>,
) -> Result<PublishOutcome, ArtifactError> {
    push(
        clients, a, reference, tags, auth, insecure, progress, answered,
    )
    .await
    .map_err(|e| e.given(auth))
}

/// `tags` and the tag `r` names, that one first.
fn with_reference_tag(r: &RegistryRef, tags: &[String]) -> Vec<String> {
    let mut all = tags.to_vec();
    if let Some(t) = &r.tag
        && !all.contains(t)
    {
        all.insert(0, t.clone());
    }
    all
}

/// A registry on this machine that is asked without credentials: pushed to
/// by [`loopback`].
fn goes_loopback(r: &RegistryRef, auth: &Auth) -> bool {
    matches!(auth, Auth::Anonymous) && r.is_local()
}

/// What a publish of `tags` to `reference` can learn before its artifact
/// exists: only from an anonymous registry on this machine, and only by
/// reading (see [`loopback`]). `None` when there is nothing to ask.
pub(super) async fn preflight(
    clients: &Clients,
    reference: &str,
    tags: &[String],
    auth: &Auth,
) -> Option<loopback::Answers> {
    let r = RegistryRef::parse(reference).ok()?;
    if !goes_loopback(&r, auth) {
        return None;
    }
    let tags = with_reference_tag(&r, tags);
    if tags.iter().any(|t| validate_tag(t).is_err()) {
        return None;
    }
    loopback::preflight(&clients.loopback().ok()?, &r, &tags).await
}

#[allow(clippy::too_many_arguments)]
async fn push(
    clients: &Clients,
    a: &Artifact,
    reference: &str,
    tags: &[String],
    auth: &Auth,
    insecure: bool,
    progress: bool,
    answered: Option<loopback::Answers>,
) -> Result<PublishOutcome, ArtifactError> {
    let r = RegistryRef::parse(reference)?;
    let tags = with_reference_tag(&r, tags);
    if tags.is_empty() {
        return Err(ArtifactError::Tag(String::new()));
    }
    for t in &tags {
        validate_tag(t)?;
    }
    if goes_loopback(&r, auth) {
        let c = clients.loopback()?;
        if let Some(outcome) = loopback::push(&c, a, &r, &tags, answered).await? {
            return Ok(outcome);
        }
    }
    let (c, ra) = connect(clients, &r, auth, insecure).await;

    // 1. Which tags already point at this digest, and which blobs are in?
    // Both at once: a first push then waits for one round of requests, not two.
    let base = r.reference(&tags[0]);
    let blobs = [
        (&a.layer_digest, &a.layer, "layer"),
        (&a.config_digest, &a.config, "config"),
    ];
    let (current, present) = futures_util::future::join(
        futures_util::future::try_join_all(tags.iter().map(|t| tag_digest(&c, &r, t, &ra))),
        futures_util::future::try_join_all(blobs.iter().map(|(digest, _, _)| {
            let (c, base, host) = (&c, &base, &r.host);
            async move {
                c.blob_exists(base, digest)
                    .await
                    .map_err(|e| classify(host, e))
            }
        })),
    )
    .await;
    // The tag checks' error first: it says what is wrong in words.
    let (current, present) = (current?, present?);
    let (mut outcome, stale) = PublishOutcome::plan(&r, a, &tags, current);
    if stale.is_empty() {
        return Ok(outcome);
    }

    // 2. Blobs, skipping those present.
    let bars = (progress && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    let pushed = futures_util::future::try_join_all(blobs.iter().zip(present).map(
        |((digest, bytes, label), present)| {
            let (c, base, host, bars) = (&c, &base, &r.host, &bars);
            async move {
                if present {
                    return Ok::<_, ArtifactError>(None);
                }
                push_blob(c, base, digest, bytes, label, bars.as_ref())
                    .await
                    .map_err(|e| classify(host, e))?;
                Ok(Some((*digest).clone()))
            }
        },
    ))
    .await?;
    outcome.pushed_blobs = pushed.into_iter().flatten().collect();

    // 3. Tags last: a manifest PUT per tag (all at once), only now that
    // every blob is in.
    let refs: Vec<Reference> = stale.iter().map(|t| r.reference(t)).collect();
    futures_util::future::try_join_all(refs.iter().map(|image| {
        c.push_manifest_raw(
            image,
            a.manifest.clone(),
            MANIFEST_MEDIA_TYPE.parse().expect("a valid header value"),
        )
    }))
    .await
    .map_err(|e| classify(&r.host, e))?;
    outcome.pushed_tags = stale;
    Ok(outcome)
}

const UPLOAD_CHUNK: usize = 1024 * 1024;

async fn push_blob(
    c: &Client,
    image: &Reference,
    digest: &str,
    bytes: &[u8],
    label: &str,
    bars: Option<&indicatif::MultiProgress>,
) -> Result<(), OciDistributionError> {
    let data = bytes::Bytes::copy_from_slice(bytes);
    let pb = if let Some(bars) = bars {
        let pb = bars.add(indicatif::ProgressBar::new(data.len() as u64));
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>7} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        Some(pb)
    } else {
        None
    };
    let chunks: Vec<bytes::Bytes> = (0..data.len())
        .step_by(UPLOAD_CHUNK)
        .map(|i| data.slice(i..(i + UPLOAD_CHUNK).min(data.len())))
        .collect();
    let tick = pb.clone();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        if let Some(pb) = &tick {
            pb.inc(chunk.len() as u64);
        }
        Ok(chunk)
    }));
    let res = c
        .push_blob_stream(image, stream, digest, Some(data.len() as u64))
        .await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    res.map(|_| ())
}

/// What `package --inspect` shows about an artifact.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Inspection {
    pub digest: String,
    pub manifest: Value,
    pub annotations: Vec<(String, String)>,
    pub config_media_type: String,
    pub layer_media_type: String,
    pub layer_digest: String,
    /// Tar entry names in archive order.
    pub files: Vec<String>,
}

fn inspection(
    what: &str,
    manifest_bytes: &[u8],
    digest: String,
    fetch: &mut dyn FnMut(&str) -> Result<Vec<u8>, ArtifactError>,
) -> Result<Inspection, ArtifactError> {
    let not = |detail: String| ArtifactError::NotAnArtifact {
        what: what.to_string(),
        detail,
    };
    let manifest: Value =
        serde_json::from_slice(manifest_bytes).map_err(|e| not(format!("manifest: {e}")))?;
    let str_at = |p: &str| {
        manifest
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let config_media_type = str_at("/config/mediaType");
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // As source-controller: the first Flux content layer, else the first.
    let layer = layers
        .iter()
        .find(|l| l.get("mediaType").and_then(Value::as_str) == Some(CONTENT_MEDIA_TYPE))
        .or(layers.first())
        .ok_or_else(|| not("no layers".into()))?;
    let layer_media_type = layer
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let layer_digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| not("layer without digest".into()))?
        .to_string();
    let blob = fetch(&layer_digest)?;
    if sha256_digest(&blob) != layer_digest {
        return Err(not(format!(
            "layer {layer_digest} does not match its digest"
        )));
    }
    let files = list_tar_gz(&blob).map_err(|e| not(format!("layer is not a tar.gz: {e}")))?;
    let annotations = manifest
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    if config_media_type != CONFIG_MEDIA_TYPE && layer_media_type != CONTENT_MEDIA_TYPE {
        return Err(not(format!(
            "neither the config ({config_media_type}) nor a layer has a Flux media type"
        )));
    }
    Ok(Inspection {
        digest,
        manifest,
        annotations,
        config_media_type,
        layer_media_type,
        layer_digest,
        files,
    })
}

/// Entry names of a tar.gz, in order.
pub fn list_tar_gz(gz: &[u8]) -> std::io::Result<Vec<String>> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut names = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        std::io::copy(&mut entry.by_ref().take(u64::MAX), &mut std::io::sink())?;
    }
    Ok(names)
}

/// Inspects an artifact in an OCI layout folder (`tag` `None`: the only one).
pub fn inspect_layout(dir: &Path, tag: Option<&str>) -> Result<Inspection, ArtifactError> {
    let (manifest, digest) = super::layout::read_oci_layout(dir, tag)?;
    let what = format!(
        "oci:{}{}",
        dir.display(),
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    inspection(&what, &manifest, digest, &mut |d| {
        super::layout::read_blob(dir, d)
    })
}

/// Inspects an artifact in a registry: `oci://host/repo[:tag]` (default tag
/// `latest`).
pub(super) async fn inspect_registry(
    clients: &Clients,
    reference: &str,
    auth: &Auth,
    insecure: bool,
) -> Result<Inspection, ArtifactError> {
    fetch_inspection(clients, reference, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

async fn fetch_inspection(
    clients: &Clients,
    reference: &str,
    auth: &Auth,
    insecure: bool,
) -> Result<Inspection, ArtifactError> {
    let r = RegistryRef::parse(reference)?;
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let c = clients.get(&r, insecure);
    let ra = registry_auth(auth);
    let image = r.reference(&tag);
    let (manifest, digest) = c
        .pull_manifest_raw(&image, &ra, &[MANIFEST_MEDIA_TYPE])
        .await
        .map_err(|e| classify(&r.host, e))?;
    let manifest_json: Value =
        serde_json::from_slice(&manifest).map_err(|e| ArtifactError::NotAnArtifact {
            what: reference.to_string(),
            detail: format!("manifest: {e}"),
        })?;
    let layer_desc = manifest_json
        .get("layers")
        .and_then(Value::as_array)
        .and_then(|ls| {
            ls.iter()
                .find(|l| l.get("mediaType").and_then(Value::as_str) == Some(CONTENT_MEDIA_TYPE))
                .or(ls.first())
        })
        .cloned();
    let mut layer_bytes = Vec::new();
    if let Some(desc) = &layer_desc {
        let d: oci_client::manifest::OciDescriptor =
            serde_json::from_value(desc.clone()).map_err(|e| ArtifactError::NotAnArtifact {
                what: reference.to_string(),
                detail: format!("layer descriptor: {e}"),
            })?;
        c.pull_blob(&image, &d, &mut layer_bytes)
            .await
            .map_err(|e| classify(&r.host, e))?;
    }
    let what = format!("oci://{}/{}:{tag}", r.host, r.repository);
    inspection(&what, &manifest, digest, &mut |_| Ok(layer_bytes.clone()))
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn references_need_the_oci_scheme() {
        let r = RegistryRef::parse("oci://127.0.0.1:5000/a/b").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag, None);
        assert!(r.is_local());
        let r = RegistryRef::parse("oci://ghcr.io/o/r/manifests:v1").unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(!r.is_local());
        assert!(RegistryRef::parse("oci://[::1]:5000/x").unwrap().is_local());
        assert!(RegistryRef::parse("oci://localhost/x").unwrap().is_local());
        for bad in [
            "https://ghcr.io/o/r",
            "ghcr.io/o/r",
            "oci://ghcr.io",
            "oci://ghcr.io/O/R",
            "docker://h/r",
        ] {
            let e = RegistryRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains("oci://"), "{bad}: {e}");
        }
        let e = RegistryRef::parse("https://ghcr.io/o/r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use the oci:// scheme"), "{e}");
    }
}
