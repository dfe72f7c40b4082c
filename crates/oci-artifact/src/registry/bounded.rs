//! Reads with a ceiling, for what a stranger with push access controls (a
//! `.sig` tag): a manifest or blob over the caller's limit is refused after
//! at most that many bytes, so a huge or endless body costs nothing.
//! oci-client reads a whole manifest into memory, so the manifest GET is
//! ours (oci-client still does the token exchange); blobs go through its
//! stream, which also checks the digest.

use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use reqwest::{StatusCode, header};

use super::{Clients, RegistryRef, classify, is_not_found};
use crate::ArtifactError;
use crate::auth::Auth;

/// Why a bounded read gave nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BoundedError {
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// The manifest `reference` (a tag or digest) of `r`, at most `limit` bytes;
/// `None` when the registry has no such manifest.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn manifest(
    clients: &Clients,
    c: &oci_client::Client,
    r: &RegistryRef,
    reference: &str,
    ra: &RegistryAuth,
    auth: &Auth,
    insecure: bool,
    accept: &[&str],
    limit: u64,
) -> Result<Option<Vec<u8>>, BoundedError> {
    let what = format!("the manifest {reference}");
    // oci-client knows the token dance; a registry without one answers None.
    let token = match c
        .auth(&r.reference(reference), ra, RegistryOperation::Pull)
        .await
    {
        Ok(token) => token,
        Err(e) => return Err(classify(&r.host, e).into()),
    };
    let plain_http = insecure || r.is_local();
    let http = clients.http(plain_http)?;
    let scheme = if plain_http { "http" } else { "https" };
    let url = format!(
        "{scheme}://{}/v2/{}/manifests/{reference}",
        r.host, r.repository
    );
    let mut req = http.get(&url).header(header::ACCEPT, accept.join(", "));
    req = match (&token, auth) {
        (Some(t), _) => req.bearer_auth(t),
        (None, Auth::Basic { username, password }) => req.basic_auth(username, Some(password)),
        (None, Auth::Anonymous) => req,
    };
    let down = |e: reqwest::Error| ArtifactError::RegistryDown {
        host: r.host.clone(),
        detail: super::chain(&e),
    };
    let mut resp = req.send().await.map_err(down)?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => return Ok(None),
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            return Err(ArtifactError::AuthRefused {
                host: r.host.clone(),
                detail: format!("GET {url}: {s}"),
            }
            .into());
        }
        s => {
            return Err(ArtifactError::Registry {
                host: r.host.clone(),
                detail: format!("GET {url}: {s}"),
            }
            .into());
        }
    }
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(BoundedError::TooLarge { what, limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(down)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BoundedError::TooLarge { what, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The blob `digest` of `r` (read under `tag`'s repository), at most
/// `limit` bytes; oci-client's stream checks the digest at the end.
pub(crate) async fn blob(
    c: &oci_client::Client,
    r: &RegistryRef,
    tag: &str,
    digest: &str,
    limit: u64,
) -> Result<Vec<u8>, BoundedError> {
    let fail = |e| classify(&r.host, e);
    let mut stream = match c.pull_blob_stream(&r.reference(tag), digest).await {
        Ok(s) => s,
        Err(e) if is_not_found(&e) => {
            return Err(ArtifactError::Registry {
                host: r.host.clone(),
                detail: format!("the blob {digest} is missing"),
            }
            .into());
        }
        Err(e) => return Err(fail(e).into()),
    };
    let what = format!("the blob {digest}");
    if stream.content_length.is_some_and(|n| n > limit) {
        return Err(BoundedError::TooLarge { what, limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ArtifactError::Registry {
            host: r.host.clone(),
            detail: format!("reading {digest}: {e}"),
        })?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BoundedError::TooLarge { what, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
