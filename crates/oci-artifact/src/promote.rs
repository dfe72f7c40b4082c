//! Promotion: point more tags at a manifest the registry already has, by
//! digest, without uploading a blob (a release tag moving `prod` to the
//! digest that `main` published, unchanged, never rebuilt).

use oci_client::Reference;

use super::registry::{classify, connect, is_not_found, tag_digest};
use super::{ArtifactError, Auth, MANIFEST_MEDIA_TYPE, RegistryRef, sha256_digest, validate_tag};

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
    /// `oci://host/repo@sha256:...`
    pub reference: String,
    pub tags: Vec<TagMove>,
}

/// Points every tag of `to` at the manifest that `from` (a tag, or a
/// `sha256:` digest) names in `registry` (`oci://host/repo`).
pub(super) async fn promote(
    clients: &super::registry::Clients,
    registry: &str,
    from: &str,
    to: &[String],
    auth: &Auth,
    insecure: bool,
) -> Result<PromoteOutcome, ArtifactError> {
    retag(clients, registry, from, to, auth, insecure)
        .await
        .map_err(|e| e.given(auth))
}

async fn retag(
    clients: &super::registry::Clients,
    registry: &str,
    from: &str,
    to: &[String],
    auth: &Auth,
    insecure: bool,
) -> Result<PromoteOutcome, ArtifactError> {
    let r = RegistryRef::parse(registry)?;
    if to.is_empty() {
        return Err(ArtifactError::Tag(String::new()));
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
            });
        }
        Err(e) => return Err(classify(&r.host, e)),
    };
    // The registry's word for the digest is checked against the bytes.
    let computed = sha256_digest(&manifest);
    if computed != digest || (from.starts_with("sha256:") && computed != from) {
        return Err(ArtifactError::Registry {
            host: r.host.clone(),
            detail: format!(
                "the manifest of {from} hashes to {computed}, but the registry says {digest}"
            ),
        });
    }
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
        tags,
    })
}
