//! Fetching a chart once into the user's cache: from an https HelmRepository
//! (digest checked against the repository index), an OCI HelmRepository, or an
//! OCIRepository (digest checked when the source pins one).

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use exec::runner::Cmd;

use super::{HelmError, io_error};

/// Where a chart comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// A classic chart repository with an index.yaml.
    Https { url: String, chart: String },
    /// An OCI reference without tag: `oci://host/path/chart`.
    Oci {
        reference: String,
        plain_http: bool,
        /// A digest the source pins (OCIRepository `ref.digest`).
        digest: Option<String>,
    },
}

/// A chart to fetch: source and version (a tag for OCI).
#[derive(Debug, Clone)]
pub struct ChartRequest {
    pub source: ChartSource,
    pub version: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_exact(version: &str) -> bool {
    !version.is_empty()
        && !version
            .chars()
            .any(|c| matches!(c, '*' | '^' | '~' | '>' | '<' | '|' | ' ' | ',' | 'x' | 'X'))
}

impl ChartRequest {
    /// From a HelmRepository object, a chart name and a version.
    pub fn from_helm_repository(
        repo: &Value,
        chart: &str,
        version: &str,
    ) -> Result<Self, HelmError> {
        let url = repo
            .pointer("/spec/url")
            .and_then(Value::as_str)
            .ok_or(HelmError::NoUrl("HelmRepository"))?
            .trim_end_matches('/');
        let oci = repo.pointer("/spec/type").and_then(Value::as_str) == Some("oci")
            || url.starts_with("oci://");
        let source = if oci {
            ChartSource::Oci {
                reference: format!("{url}/{chart}"),
                plain_http: repo.pointer("/spec/insecure").and_then(Value::as_bool) == Some(true),
                digest: None,
            }
        } else {
            ChartSource::Https {
                url: url.to_string(),
                chart: chart.to_string(),
            }
        };
        Ok(Self {
            source,
            version: version.to_string(),
        })
    }

    /// From an OCIRepository object (the chart is the artifact itself).
    pub fn from_oci_repository(repo: &Value) -> Result<Self, HelmError> {
        let url = repo
            .pointer("/spec/url")
            .and_then(Value::as_str)
            .ok_or(HelmError::NoUrl("OCIRepository"))?;
        let reference = repo.pointer("/spec/ref");
        let get = |k: &str| reference.and_then(|r| r.get(k)).and_then(Value::as_str);
        let digest = get("digest").map(str::to_string);
        let version = get("tag").or(get("semver")).unwrap_or("").to_string();
        if version.is_empty() && digest.is_none() {
            return Err(HelmError::NoOciRef);
        }
        Ok(Self {
            source: ChartSource::Oci {
                reference: url.trim_end_matches('/').to_string(),
                plain_http: repo.pointer("/spec/insecure").and_then(Value::as_bool) == Some(true),
                digest,
            },
            version,
        })
    }

    fn describe(&self) -> String {
        match &self.source {
            ChartSource::Https { url, chart } => format!("{chart} {} from {url}", self.version),
            ChartSource::Oci { reference, .. } => format!("{reference}:{}", self.version),
        }
    }

    /// The cache file for this chart, when the version is exact.
    fn cache_path(&self, cache_dir: &Path) -> Option<PathBuf> {
        let (key, name) = match &self.source {
            ChartSource::Https { url, chart } => (url.clone(), chart.clone()),
            ChartSource::Oci {
                reference, digest, ..
            } => {
                if let Some(d) = digest {
                    let hexd = d.trim_start_matches("sha256:");
                    return Some(cache_dir.join("oci-digest").join(format!("{hexd}.tgz")));
                }
                let name = reference.rsplit('/').next().unwrap_or("chart").to_string();
                (reference.clone(), name)
            }
        };
        if !is_exact(&self.version) {
            return None;
        }
        let hash = &sha256_hex(key.as_bytes())[..16];
        Some(
            cache_dir
                .join(hash)
                .join(format!("{name}-{}.tgz", self.version)),
        )
    }
}

/// Fetches a chart (or takes it from the cache) and returns the `.tgz` path.
pub fn fetch(helm: &Path, request: &ChartRequest, cache_dir: &Path) -> Result<PathBuf, HelmError> {
    let cached = request.cache_path(cache_dir);
    if let Some(path) = &cached
        && path.is_file()
    {
        verify_cached(path)?;
        return Ok(path.clone());
    }
    std::fs::create_dir_all(cache_dir).map_err(io_error(cache_dir))?;
    let scratch = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(cache_dir)
        .map_err(io_error(cache_dir))?;
    let dest = scratch.path().join("out");
    std::fs::create_dir_all(&dest).map_err(io_error(&dest))?;
    let fetch_error = |source| HelmError::Fetch {
        chart: request.describe(),
        source,
    };
    let helm_home = scratch.path().join("home");
    let mut cmd = Cmd::new(helm)
        .arg("pull")
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_REPOSITORY_CACHE", helm_home.join("repository"))
        .env(
            "HELM_REPOSITORY_CONFIG",
            helm_home.join("repositories.yaml"),
        );
    match &request.source {
        ChartSource::Https { url, chart } => {
            // `repo add` keeps the index (`pull --repo` deletes it), so that
            // the archive can be checked against the digest it lists.
            let name = format!("xtask-{}", &sha256_hex(url.as_bytes())[..12]);
            Cmd::new(helm)
                .args(["repo", "add", name.as_str(), url.as_str()])
                .env("HELM_CACHE_HOME", helm_home.join("cache"))
                .env("HELM_REPOSITORY_CACHE", helm_home.join("repository"))
                .env(
                    "HELM_REPOSITORY_CONFIG",
                    helm_home.join("repositories.yaml"),
                )
                .read()
                .map_err(fetch_error)?;
            cmd = cmd.arg(format!("{name}/{chart}"));
        }
        ChartSource::Oci {
            reference,
            plain_http,
            digest,
        } => {
            match (digest, request.version.is_empty()) {
                (Some(d), true) => cmd = cmd.arg(format!("{reference}@{d}")),
                _ => cmd = cmd.arg(reference),
            }
            if *plain_http {
                cmd = cmd.arg("--plain-http");
            }
        }
    }
    if !request.version.is_empty() {
        cmd = cmd.args(["--version", request.version.as_str()]);
    }
    cmd = cmd.arg("--destination").arg(&dest);
    let output = cmd.output().map_err(fetch_error)?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(HelmError::Pull {
            chart: request.describe(),
            log: log.trim().to_string(),
        });
    }
    let tgz = std::fs::read_dir(&dest)
        .map_err(io_error(&dest))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .ok_or_else(|| HelmError::NoArchive(request.describe()))?;
    let bytes = std::fs::read(&tgz).map_err(io_error(&tgz))?;
    let actual = sha256_hex(&bytes);
    match &request.source {
        ChartSource::Https { chart, .. } => {
            if let Some(expected) =
                index_digest(&helm_home.join("repository"), chart, &request.version)
                && expected != actual
            {
                return Err(HelmError::IndexDigest {
                    chart: request.describe(),
                    expected,
                    actual,
                });
            }
        }
        ChartSource::Oci {
            digest: Some(expected),
            ..
        } => {
            let printed = log
                .lines()
                .find_map(|l| l.trim().strip_prefix("Digest:"))
                .map(|d| d.trim().to_string());
            if printed.as_deref() != Some(expected.as_str()) {
                return Err(HelmError::PinnedDigest {
                    chart: request.describe(),
                    expected: expected.clone(),
                    served: printed.unwrap_or_else(|| "no digest".into()),
                });
            }
        }
        ChartSource::Oci { .. } => {}
    }
    let target = match cached {
        Some(path) => path,
        // Not an exact version: keep it under its resolved file name.
        None => {
            let hash = &sha256_hex(request.describe().as_bytes())[..16];
            cache_dir
                .join("unpinned")
                .join(hash)
                .join(tgz.file_name().unwrap_or_default())
        }
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let recorded = sidecar(&target);
    std::fs::write(&recorded, format!("{actual}\n")).map_err(io_error(&recorded))?;
    // Atomic: concurrent pulls of the same chart both land the same bytes.
    std::fs::rename(&tgz, &target).map_err(|source| HelmError::Cache {
        path: target.clone(),
        source,
    })?;
    Ok(target)
}

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// A cached archive must still match the digest recorded when it was pulled.
fn verify_cached(path: &Path) -> Result<(), HelmError> {
    let Ok(recorded) = std::fs::read_to_string(sidecar(path)) else {
        return Ok(());
    };
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let actual = sha256_hex(&bytes);
    if recorded.trim() != actual {
        return Err(HelmError::CachedDigest(path.to_path_buf()));
    }
    Ok(())
}

/// The digest that a repository index (as helm downloaded it) gives a chart version.
fn index_digest(repository_cache: &Path, chart: &str, version: &str) -> Option<String> {
    for entry in std::fs::read_dir(repository_cache).ok()?.flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with("-index.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        let index: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
        let versions = index.get("entries")?.get(chart)?.as_sequence()?;
        for v in versions {
            if v.get("version").and_then(|x| x.as_str()) == Some(version) {
                return v
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .map(|d| d.trim_start_matches("sha256:").to_string());
            }
        }
    }
    None
}
