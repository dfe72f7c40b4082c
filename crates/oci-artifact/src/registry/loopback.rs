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
//!
//! What needs no artifact can be asked while the artifact is still being
//! made ([`preflight`]): the digest each given tag points at, and whether
//! the repository exists at all. A repository the registry does not know
//! has no tag and no blob, so its push uploads both blobs without asking.
//! The preflight only reads: nothing is written before the artifact exists.

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

impl<'a> Repo<'a> {
    fn new(c: &'a Client, r: &'a RegistryRef) -> Result<Self, ArtifactError> {
        let base = Url::parse(&format!("http://{}/v2/{}/", r.host, r.repository)).map_err(|e| {
            ArtifactError::Registry {
                host: r.host.clone(),
                detail: e.to_string(),
            }
        })?;
        Ok(Self {
            c,
            host: &r.host,
            base,
        })
    }

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

    /// False only when the registry says it does not know the repository
    /// (a tag listing answered 404 `NAME_UNKNOWN`, as the distribution spec
    /// has it); any other answer counts as existing.
    async fn is_known(&self) -> Result<bool, Failure> {
        let what = "GET tags/list";
        let req = self.c.get(self.url("tags/list?n=1")?);
        let res = self
            .send(what, req, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        if res.status() == StatusCode::OK {
            return Ok(true);
        }
        let body = res.bytes().await.map_err(|e| self.error(what, e))?;
        let unknown = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["errors"].as_array().map(|errors| {
                    errors
                        .iter()
                        .any(|e| e["code"].as_str() == Some("NAME_UNKNOWN"))
                })
            })
            .unwrap_or(false);
        Ok(!unknown)
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

/// What a push to one repository learned before its artifact existed.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// Tags asked, each with the digest it pointed at (`None`: no such tag).
    tags: Vec<(String, Option<String>)>,
    /// The registry did not know the repository: no tag, no blob in it.
    new_repository: bool,
}

impl Answers {
    fn digest_of(&self, tag: &str) -> Option<Option<String>> {
        self.tags
            .iter()
            .find(|(asked, _)| asked == tag)
            .map(|(_, digest)| digest.clone())
    }
}

/// Asks, reading only, what a push of `tags` to `r` can know before its
/// artifact exists. `None` when any answer is missing (a registry that
/// wants credentials, an error): the push then asks everything itself.
pub(super) async fn preflight(c: &Client, r: &RegistryRef, tags: &[String]) -> Option<Answers> {
    let repo = Repo::new(c, r).ok()?;
    let (digests, known) = futures_util::future::join(
        futures_util::future::try_join_all(tags.iter().map(|t| repo.tag_digest(t))),
        repo.is_known(),
    )
    .await;
    let (digests, known) = (digests.ok()?, known.ok()?);
    Some(Answers {
        tags: tags.iter().cloned().zip(digests).collect(),
        new_repository: !known,
    })
}

/// Pushes `a` to `r` under `tags` (already validated), using what the
/// preflight already `answered`. `None`: the registry asked for credentials
/// before anything was written; push through oci-client instead.
pub(super) async fn push(
    c: &Client,
    a: &Artifact,
    r: &RegistryRef,
    tags: &[String],
    answered: Option<Answers>,
) -> Result<Option<PublishOutcome>, ArtifactError> {
    let repo = Repo::new(c, r)?;
    let answered = answered.unwrap_or_default();
    let blobs = [(&a.layer_digest, &a.layer), (&a.config_digest, &a.config)];
    // 1. Tags and blobs at once, each unless the preflight answered it: a
    // new repository has neither, and a push whose tags all point at this
    // manifest already needs no blob.
    let asked: Vec<Option<Option<String>>> = tags
        .iter()
        .map(|t| {
            if answered.new_repository {
                Some(None)
            } else {
                answered.digest_of(t)
            }
        })
        .collect();
    let all_current = asked
        .iter()
        .all(|d| matches!(d, Some(Some(d)) if *d == a.manifest_digest));
    let (current, present) = if answered.new_repository || all_current {
        // Every tag was answered here.
        (
            Ok(asked.into_iter().flatten().collect()),
            Ok(vec![false; blobs.len()]),
        )
    } else {
        futures_util::future::join(
            futures_util::future::try_join_all(tags.iter().zip(&asked).map(|(t, asked)| async {
                match asked {
                    Some(digest) => Ok(digest.clone()),
                    None => repo.tag_digest(t).await,
                }
            })),
            futures_util::future::try_join_all(blobs.iter().map(|(d, _)| repo.blob_exists(d))),
        )
        .await
    };
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
