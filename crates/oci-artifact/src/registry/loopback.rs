//! Pushing to a registry on this machine without credentials (the local
//! cluster's registry, tests, the benchmark) as `oras push` does: the
//! requests the push needs and nothing else. oci-client, given no
//! credentials, sends `GET /v2/` before every request to a registry that
//! asks for none (it caches no "anonymous" answer), which doubles the round
//! trips, and it builds a client that reads the system trust store.
//!
//! The order and the guarantees are [`super::registry`]'s: tags and blobs
//! checked at once, missing blobs uploaded (POST, then one PUT), manifests
//! last. A registry that asks for credentials on the first round (a 401)
//! is handed back to oci-client, which knows the token exchange.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, Url, header};

use super::{PublishOutcome, RegistryRef};
use crate::{Artifact, ArtifactError, MANIFEST_MEDIA_TYPE, sha256_digest};

/// What a manifest GET accepts (as [`super::registry`]'s tag check).
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A plain-HTTP client: loopback needs neither a proxy nor a trust store.
pub(super) fn client() -> Result<Client, ArtifactError> {
    super::ensure_crypto_provider();
    let placeholder = reqwest::Certificate::from_pem(super::PLAIN_HTTP_PLACEHOLDER_ROOT.as_bytes())
        .map_err(|e| ArtifactError::Registry {
            host: "localhost".into(),
            detail: e.to_string(),
        })?;
    Client::builder()
        .no_proxy()
        .tls_certs_only([placeholder])
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| ArtifactError::Registry {
            host: "localhost".into(),
            detail: e.to_string(),
        })
}

/// One registry and repository, and how its answers become errors.
struct Repo<'a> {
    c: &'a Client,
    host: &'a str,
    base: Url,
}

/// Why a request did not give what was asked.
enum Failure {
    /// 401 or 403: this registry wants credentials.
    Unauthorized(String),
    Other(ArtifactError),
}

impl From<ArtifactError> for Failure {
    fn from(e: ArtifactError) -> Self {
        Self::Other(e)
    }
}

impl Repo<'_> {
    fn url(&self, path: &str) -> Result<Url, ArtifactError> {
        self.base.join(path).map_err(|e| self.error(path, e))
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> ArtifactError {
        ArtifactError::Registry {
            host: self.host.to_string(),
            detail: format!("{what}: {e}"),
        }
    }

    /// Sends `req`; `ok` are the statuses that answer the question.
    async fn send(
        &self,
        what: &str,
        req: RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<Response, Failure> {
        let res = req.send().await.map_err(|e| {
            let detail = super::chain(&e);
            if e.is_connect() || e.is_timeout() {
                ArtifactError::RegistryDown {
                    host: self.host.to_string(),
                    detail,
                }
            } else {
                self.error(what, detail)
            }
        })?;
        let status = res.status();
        if ok.contains(&status) {
            return Ok(res);
        }
        let body = res.text().await.unwrap_or_default();
        let detail = format!("{what}: {status}: {}", body.trim());
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            Err(Failure::Unauthorized(detail))
        } else {
            Err(Failure::Other(ArtifactError::Registry {
                host: self.host.to_string(),
                detail,
            }))
        }
    }

    /// The digest `tag` points at; `None` when there is no such tag.
    async fn tag_digest(&self, tag: &str) -> Result<Option<String>, Failure> {
        let what = format!("GET manifest {tag}");
        let req = self
            .c
            .get(self.url(&format!("manifests/{tag}"))?)
            .header(header::ACCEPT, ACCEPT);
        let res = self
            .send(&what, req, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let header_digest = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.bytes().await.map_err(|e| self.error(&what, e))?;
        Ok(Some(header_digest.unwrap_or_else(|| sha256_digest(&body))))
    }

    async fn blob_exists(&self, digest: &str) -> Result<bool, Failure> {
        let req = self
            .c
            .request(Method::HEAD, self.url(&format!("blobs/{digest}"))?);
        let res = self
            .send(
                &format!("HEAD blob {digest}"),
                req,
                &[StatusCode::OK, StatusCode::NOT_FOUND],
            )
            .await?;
        Ok(res.status() == StatusCode::OK)
    }

    /// POST for an upload session, then the whole blob in one PUT.
    async fn push_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), Failure> {
        let what = format!("upload blob {digest}");
        let res = self
            .send(
                &what,
                self.c.post(self.url("blobs/uploads/")?),
                &[StatusCode::ACCEPTED],
            )
            .await?;
        let location = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.error(&what, "no Location in the answer"))?;
        let mut url = self.base.join(location).map_err(|e| self.error(&what, e))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let req = self
            .c
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec());
        self.send(&what, req, &[StatusCode::CREATED]).await?;
        Ok(())
    }

    async fn push_manifest(&self, tag: &str, manifest: &[u8]) -> Result<(), Failure> {
        let req = self
            .c
            .put(self.url(&format!("manifests/{tag}"))?)
            .header(header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
            .body(manifest.to_vec());
        self.send(&format!("PUT manifest {tag}"), req, &[StatusCode::CREATED])
            .await?;
        Ok(())
    }
}

/// Pushes `a` to `r` under `tags` (already validated). `None`: the registry
/// asked for credentials before anything was written; push through
/// oci-client instead.
pub(super) async fn push(
    c: &Client,
    a: &Artifact,
    r: &RegistryRef,
    tags: &[String],
) -> Result<Option<PublishOutcome>, ArtifactError> {
    let base = Url::parse(&format!("http://{}/v2/{}/", r.host, r.repository)).map_err(|e| {
        ArtifactError::Registry {
            host: r.host.clone(),
            detail: e.to_string(),
        }
    })?;
    let repo = Repo {
        c,
        host: &r.host,
        base,
    };
    let blobs = [(&a.layer_digest, &a.layer), (&a.config_digest, &a.config)];
    // 1. Tags and blobs at once.
    let (current, present) = futures_util::future::join(
        futures_util::future::try_join_all(tags.iter().map(|t| repo.tag_digest(t))),
        futures_util::future::try_join_all(blobs.iter().map(|(d, _)| repo.blob_exists(d))),
    )
    .await;
    let (current, present) = match (current, present) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(Failure::Unauthorized(_)), _) | (_, Err(Failure::Unauthorized(_))) => {
            return Ok(None);
        }
        (Err(Failure::Other(e)), _) | (_, Err(Failure::Other(e))) => return Err(e),
    };
    let (mut outcome, stale) = PublishOutcome::plan(r, a, tags, current);
    if stale.is_empty() {
        return Ok(Some(outcome));
    }
    let refused = |f: Failure| match f {
        Failure::Unauthorized(detail) => ArtifactError::AuthRefused {
            host: r.host.clone(),
            detail,
        },
        Failure::Other(e) => e,
    };
    // 2. Missing blobs, both at once.
    let missing: Vec<_> = blobs
        .iter()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|(blob, _)| *blob)
        .collect();
    futures_util::future::try_join_all(missing.iter().map(|(d, bytes)| repo.push_blob(d, bytes)))
        .await
        .map_err(refused)?;
    outcome.pushed_blobs = missing.iter().map(|(d, _)| (*d).clone()).collect();
    // 3. Tags last (all at once), once every blob is in.
    futures_util::future::try_join_all(stale.iter().map(|t| repo.push_manifest(t, &a.manifest)))
        .await
        .map_err(refused)?;
    outcome.pushed_tags = stale;
    Ok(Some(outcome))
}
