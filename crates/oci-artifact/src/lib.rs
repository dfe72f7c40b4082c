//! Flux OCI artifacts: the manifest tree packaged exactly as `flux push
//! artifact` lays it out, but byte-for-byte reproducible.
//!
//! - [`package`] walks the tree ([`tree`]), builds a deterministic tar.gz
//!   ([`tarball`]) and the OCI config and manifest around it.
//! - [`write_oci_layout`] stores it as an OCI image layout folder, readable by
//!   `skopeo inspect oci:DIR:TAG` without any registry.
//! - [`Registry`] pushes it with oci-client ([`registry`]); [`auth`] finds the
//!   credentials the way docker does; [`git_defaults`] gives the source,
//!   revision and created time from git.
//!
//! What goes in: the repository root minus [`tree::BUILTIN_EXCLUDES`] (tooling,
//! VCS, CI and Rust files, plaintext secrets), minus what `.gitignore` files
//! ignore (so a dirty working tree packages like a clean checkout), minus
//! `.sourceignore` patterns (gitignore syntax, as Flux's source-controller
//! reads them).

pub mod auth;
mod client;
pub mod cosign;
mod git;
mod layout;
mod promote;
pub mod registry;
pub mod tarball;
pub mod tree;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use auth::{Auth, Resolved, resolve_auth};
pub use client::{Preflight, Registry};
pub use git::{
    GitDefaults, Listing, defaults_from, git_defaults, head_line, hidden_files, listing,
    normalize_source, origin_url, uncommitted_files,
};
pub use layout::{read_oci_layout, write_oci_layout};
pub use promote::{PromoteError, PromoteOutcome, TagMove, Verification};
pub use registry::{Inspection, PublishOutcome, RegistryRef, inspect_layout};

/// Layer media type of a Flux content artifact (RFC-0003).
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// Config media type of a Flux artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
/// The manifest's own media type, set explicitly as `flux push` does.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    // The source is printed by the error chain (`{:#}`), not here.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("walking {root}: {message}")]
    Walk { root: PathBuf, message: String },
    #[error("invalid --created {value:?}: expected an RFC 3339 time such as 2025-01-31T12:00:00Z")]
    Created { value: String },
    #[error(
        "invalid registry reference {given:?}: expected oci://HOST/REPOSITORY (for example oci://ghcr.io/owner/repo/manifests){hint}"
    )]
    Reference { given: String, hint: String },
    #[error(
        "invalid tag {0:?}: a tag is 1-128 of [A-Za-z0-9_.-] and starts with a letter, digit or _"
    )]
    Tag(String),
    #[error("registry {host} is unreachable: {detail}")]
    RegistryDown { host: String, detail: String },
    #[error(
        "registry {host} refused the credentials ({detail}); pass --creds USER:TOKEN, set REGISTRY_USERNAME/REGISTRY_PASSWORD, or `docker login {host}`"
    )]
    AuthRefused { host: String, detail: String },
    #[error(
        "registry {host} needs credentials and none were found: pass --creds USER:TOKEN, set REGISTRY_USERNAME/REGISTRY_PASSWORD (GITHUB_TOKEN for ghcr.io), or `docker login {host}`"
    )]
    AuthRequired { host: String },
    #[error("registry {host}: {detail}")]
    Registry { host: String, detail: String },
    #[error(
        "there is no manifest {what}: nothing to promote (publish it first, or check the tag or digest)"
    )]
    Missing { what: String },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("{what} is not a Flux artifact: {detail}")]
    NotAnArtifact { what: String, detail: String },
    #[error("OCI layout {dir}: {detail}")]
    Layout { dir: PathBuf, detail: String },
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl ArtifactError {
    /// A refusal when no credentials were sent is a request for them.
    pub(crate) fn given(self, auth: &Auth) -> Self {
        match (self, auth) {
            (Self::AuthRefused { host, .. }, Auth::Anonymous) => Self::AuthRequired { host },
            (other, _) => other,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// What to package and the metadata to stamp on it.
#[derive(Clone, Debug)]
pub struct PackageOptions {
    /// The tree to package (normally the repository root).
    pub root: PathBuf,
    /// `org.opencontainers.image.source`: the git remote as an https URL;
    /// `None` leaves the annotation out (never a local path).
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`: `<branch>@sha1:<commit>`.
    pub revision: String,
    /// `org.opencontainers.image.created`: RFC 3339 (the commit time).
    pub created: String,
}

/// A packaged artifact: every blob in memory plus its digests.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The gzip-compressed tarball (the one layer).
    pub layer: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The manifest, exactly as pushed.
    pub manifest: Vec<u8>,
    /// `sha256:<hex>` of [`Artifact::manifest`].
    pub manifest_digest: String,
    /// `sha256:<hex>` of [`Artifact::layer`].
    pub layer_digest: String,
    /// `sha256:<hex>` of [`Artifact::config`].
    pub config_digest: String,
    /// The tar entry names in archive order (directories included, `.` first).
    pub entries: Vec<String>,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `created` is RFC 3339 and returns it normalised to UTC with a
/// `Z` suffix and whole seconds, the form Go's `time.RFC3339` prints.
pub fn normalize_created(created: &str) -> Result<String, ArtifactError> {
    use time::format_description::well_known::Rfc3339;
    let err = || ArtifactError::Created {
        value: created.to_string(),
    };
    let t = time::OffsetDateTime::parse(created, &Rfc3339).map_err(|_| err())?;
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|_| err())?;
    t.format(&Rfc3339).map_err(|_| err())
}

/// Packages the tree at `opts.root`: walks it, builds the deterministic
/// tarball, the config and the manifest. Same tree and options, same bytes.
pub fn package(opts: &PackageOptions) -> Result<Artifact, ArtifactError> {
    let files = tree::collect(&opts.root)?;
    package_entries(opts, &files)
}

/// [`package`] over entries already walked with [`tree::collect`], so that a
/// caller can check exactly the files that go in before packaging them.
pub fn package_entries(
    opts: &PackageOptions,
    files: &[tree::TreeEntry],
) -> Result<Artifact, ArtifactError> {
    assemble(opts, tarball::build(&opts.root, files)?)
}

/// The config and manifest around a layer built with [`tarball::build`]:
/// a caller can stamp the manifest with what the layer's content says
/// (a dirty tree's tag and revision) without building the layer twice.
pub fn assemble(opts: &PackageOptions, built: tarball::Built) -> Result<Artifact, ArtifactError> {
    let created = normalize_created(&opts.created)?;
    let layer_digest = sha256_digest(&built.gz);

    // The config mirrors what go-containerregistry writes for an empty image
    // with one appended layer, with `created` set as Flux >= 2.9 does.
    let config = serde_json::json!({
        "architecture": "",
        "created": created,
        "history": [{ "created": created }],
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": [built.diff_id] },
        "config": {},
    });
    let config = serde_json::to_vec(&config).expect("serialising a JSON value");
    let config_digest = sha256_digest(&config);

    let mut annotations: BTreeMap<&str, &str> = [
        (ANNOTATION_CREATED, created.as_str()),
        (ANNOTATION_REVISION, opts.revision.as_str()),
    ]
    .into_iter()
    .collect();
    if let Some(source) = &opts.source {
        annotations.insert(ANNOTATION_SOURCE, source);
    }
    // Field order as go-containerregistry marshals a manifest.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": CONTENT_MEDIA_TYPE,
            "size": built.gz.len(),
            "digest": layer_digest,
        }],
        "annotations": annotations,
    });
    let manifest = serde_json::to_vec(&manifest).expect("serialising a JSON value");
    let manifest_digest = sha256_digest(&manifest);

    Ok(Artifact {
        layer: built.gz,
        config,
        manifest,
        manifest_digest,
        layer_digest,
        config_digest,
        entries: built.entries,
    })
}

/// Checks a tag against the OCI distribution spec's tag grammar.
pub fn validate_tag(tag: &str) -> Result<(), ArtifactError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ArtifactError::Tag(tag.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_is_normalised_to_utc_seconds() {
        assert_eq!(
            normalize_created("2025-03-01T13:14:15.123+02:00").unwrap(),
            "2025-03-01T11:14:15Z"
        );
        assert!(normalize_created("yesterday").is_err());
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        assert!(validate_tag("latest").is_ok());
        assert!(validate_tag("0a1b2c3").is_ok());
        assert!(validate_tag("v1.2.3-rc_1").is_ok());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a/b").is_err());
        assert!(validate_tag("").is_err());
    }
}
