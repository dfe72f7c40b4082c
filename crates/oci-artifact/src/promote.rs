//! Promotion: point more tags at a manifest the registry already has, by
//! digest, without uploading a blob (a release tag moving `prod` to the
//! digest that `main` published, unchanged, never rebuilt).
//!
//! `--from` is resolved once: the manifest bytes read then are hashed,
//! verified (with keys given) and written under the new tags, so a tag
//! repointed meanwhile changes nothing.

use oci_client::Reference;

use super::cosign::{CosignError, TrustedKey};
use super::registry::{classify, connect, is_not_found, tag_digest};
use super::{ArtifactError, Auth, MANIFEST_MEDIA_TYPE, RegistryRef, sha256_digest, validate_tag};

/// What a source must carry before any tag moves to it.
#[derive(Clone, Debug, Default)]
pub struct Verification {
    /// A signature under one of these keys (none: nothing is verified).
    pub keys: Vec<TrustedKey>,
    /// The repository (`host/repository`) the payload must name.
    pub reference: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("refusing to promote {digest} (--from {from}); no tag moved")]
    Unverified {
        from: String,
        digest: String,
        #[source]
        source: CosignError,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// Manifest media types a promotion carries over as they are.
const ACCEPTED: [&str; 4] = [
    MANIFEST_MEDIA_TYPE,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What happened to one tag.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TagMove {
    pub tag: String,
    /// The digest the tag pointed at before, `None` when it did not exist.
    pub old: Option<String>,
    pub new: String,
    pub changed: bool,
}

/// What a promotion did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PromoteOutcome {
    /// `--from` as given.
    pub from: String,
    /// The promoted manifest's digest.
    pub digest: String,
    /// The keys that verified it, by name (empty: promoted unverified).
    pub verified_by: Vec<String>,
    /// `oci://host/repo@sha256:...`
    pub reference: String,
    pub tags: Vec<TagMove>,
}

/// Points every tag of `to` at the manifest that `from` (a tag, or a
/// `sha256:` digest) names in `registry` (`oci://host/repo`), once that
/// digest carries a signature `verify` accepts.
#[allow(clippy::too_many_arguments)]
pub(super) async fn promote(
    clients: &super::registry::Clients,
    registry: &str,
    from: &str,
    to: &[String],
    verify: &Verification,
    auth: &Auth,
    insecure: bool,
) -> Result<PromoteOutcome, PromoteError> {
    retag(clients, registry, from, to, verify, auth, insecure)
        .await
        .map_err(|e| match e {
            PromoteError::Artifact(a) => PromoteError::Artifact(a.given(auth)),
            other => other,
        })
}

async fn retag(
    clients: &super::registry::Clients,
    registry: &str,
    from: &str,
    to: &[String],
    verify: &Verification,
    auth: &Auth,
    insecure: bool,
) -> Result<PromoteOutcome, PromoteError> {
    let r = RegistryRef::parse(registry)?;
    if to.is_empty() {
        return Err(ArtifactError::Tag(String::new()).into());
    }
    for tag in to {
        validate_tag(tag)?;
    }
    let source = if from.starts_with("sha256:") {
        Reference::with_digest(r.host.clone(), r.repository.clone(), from.to_string())
    } else {
        validate_tag(from)?;
        r.reference(from)
    };
    let (c, ra) = connect(clients, &r, auth, insecure).await;
    let (manifest, digest) = match c.pull_manifest_raw(&source, &ra, &ACCEPTED).await {
        Ok(found) => found,
        Err(e) if is_not_found(&e) => {
            return Err(ArtifactError::Missing {
                what: format!("{from} in oci://{}/{}", r.host, r.repository),
            }
            .into());
        }
        Err(e) => return Err(classify(&r.host, e).into()),
    };
    // The registry's word for the digest is checked against the bytes.
    let computed = sha256_digest(&manifest);
    if computed != digest || (from.starts_with("sha256:") && computed != from) {
        return Err(ArtifactError::Registry {
            host: r.host.clone(),
            detail: format!(
                "the manifest of {from} hashes to {computed}, but the registry says {digest}"
            ),
        }
        .into());
    }
    // The digest just hashed, not the tag again: what is verified is what moves.
    let verified_by = if verify.keys.is_empty() {
        Vec::new()
    } else {
        super::cosign::verify(
            clients,
            &r,
            Some(&computed),
            &verify.keys,
            verify.reference.as_deref(),
            auth,
            insecure,
        )
        .await
        .map_err(|source| PromoteError::Unverified {
            from: from.to_string(),
            digest: computed.clone(),
            source,
        })?
        .signed_by
    };
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|m| {
            m.get("mediaType")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_string());
    let mut tags = Vec::new();
    for tag in to {
        let old = tag_digest(&c, &r, tag, &ra).await?;
        let changed = old.as_deref() != Some(computed.as_str());
        if changed {
            let content_type = media_type.parse().map_err(|_| ArtifactError::Registry {
                host: r.host.clone(),
                detail: format!("the manifest's media type {media_type:?} is not a header value"),
            })?;
            c.push_manifest_raw(&r.reference(tag), manifest.clone(), content_type)
                .await
                .map_err(|e| classify(&r.host, e))?;
        }
        tags.push(TagMove {
            tag: tag.clone(),
            old,
            new: computed.clone(),
            changed,
        });
    }
    Ok(PromoteOutcome {
        from: from.to_string(),
        reference: r.with_digest(&computed),
        digest: computed,
        verified_by,
        tags,
    })
}
