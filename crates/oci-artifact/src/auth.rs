//! Registry credentials, found the way docker finds them.
//!
//! Order: `--creds USER:TOKEN`; `REGISTRY_USERNAME`/`REGISTRY_PASSWORD`;
//! for ghcr.io, `GITHUB_TOKEN` (user `GITHUB_ACTOR`); then the docker config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! `credHelpers[host]`, an `auths` entry (`auth` = base64 `user:pass`, or
//! `username`/`password`), then `credsStore`. Helpers run as
//! `docker-credential-<name> get` with the host on stdin. Else anonymous.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::ArtifactError;
use exec::runner::{Cmd, RunError};

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => write!(f, "Anonymous"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// Credentials plus where they came from (for `-v` and error messages).
#[derive(Clone, Debug)]
pub struct Resolved {
    pub auth: Auth,
    pub origin: String,
}

/// Parses `--creds USER:TOKEN`.
pub fn parse_creds(creds: &str) -> Result<Auth, ArtifactError> {
    match creds.split_once(':') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(Auth::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }),
        _ => Err(ArtifactError::Credentials(
            "--creds must be USER:TOKEN, both non-empty".into(),
        )),
    }
}

/// The docker config folder: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::home_dir().map(|h| h.join(".docker")),
    }
}

/// Resolves the credentials for `host` (`host[:port]`) from the flag, the
/// process environment and the docker config.
pub fn resolve_auth(host: &str, creds: Option<&str>) -> Result<Resolved, ArtifactError> {
    resolve_auth_with(
        host,
        creds,
        &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        docker_config_dir().as_deref(),
    )
}

/// [`resolve_auth`] with the environment and docker config folder given.
pub fn resolve_auth_with(
    host: &str,
    creds: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    docker_config: Option<&Path>,
) -> Result<Resolved, ArtifactError> {
    if let Some(c) = creds {
        return Ok(Resolved {
            auth: parse_creds(c)?,
            origin: "--creds".into(),
        });
    }
    if let (Some(u), Some(p)) = (env("REGISTRY_USERNAME"), env("REGISTRY_PASSWORD")) {
        return Ok(Resolved {
            auth: Auth::Basic {
                username: u,
                password: p,
            },
            origin: "REGISTRY_USERNAME/REGISTRY_PASSWORD".into(),
        });
    }
    if host == "ghcr.io"
        && let Some(token) = env("GITHUB_TOKEN")
    {
        return Ok(Resolved {
            auth: Auth::Basic {
                username: env("GITHUB_ACTOR").unwrap_or_else(|| "github-actions".into()),
                password: token,
            },
            origin: "GITHUB_TOKEN".into(),
        });
    }
    if let Some(dir) = docker_config {
        let file = dir.join("config.json");
        match std::fs::read(&file) {
            Ok(bytes) => {
                let cfg: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ArtifactError::Credentials(format!("{}: {e}", file.display())))?;
                if let Some(r) = from_docker_config(host, &cfg, &file)? {
                    return Ok(r);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArtifactError::io(&file)(e)),
        }
    }
    Ok(Resolved {
        auth: Auth::Anonymous,
        origin: "anonymous".into(),
    })
}

/// The host part of an `auths` key: `https://host/v1/` → `host`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

fn from_docker_config(
    host: &str,
    cfg: &Value,
    file: &Path,
) -> Result<Option<Resolved>, ArtifactError> {
    let want = normalize_key(host);
    if let Some(helper) = cfg
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| normalize_key(k) == want))
        .and_then(|(_, v)| v.as_str())
        && let Some(auth) = run_helper(helper, host)?
    {
        return Ok(Some(Resolved {
            auth,
            origin: format!("docker-credential-{helper} (credHelpers)"),
        }));
    }
    if let Some(entry) = cfg
        .get("auths")
        .and_then(|a| a.as_object())
        .and_then(|a| a.iter().find(|(k, _)| normalize_key(k) == want))
        .map(|(_, v)| v)
    {
        if let Some(b64) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ArtifactError::Credentials(format!(
                        "{}: auths[{host}].auth is not base64 of user:password",
                        file.display()
                    ))
                })?;
            let auth = parse_creds(&decoded).map_err(|_| {
                ArtifactError::Credentials(format!(
                    "{}: auths[{host}].auth is not base64 of user:password",
                    file.display()
                ))
            })?;
            return Ok(Some(Resolved {
                auth,
                origin: file.display().to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Resolved {
                auth: Auth::Basic {
                    username: u.into(),
                    password: p.into(),
                },
                origin: file.display().to_string(),
            }));
        }
    }
    if let Some(store) = cfg.get("credsStore").and_then(Value::as_str)
        && let Some(auth) = run_helper(store, host)?
    {
        return Ok(Some(Resolved {
            auth,
            origin: format!("docker-credential-{store} (credsStore)"),
        }));
    }
    Ok(None)
}

/// Runs `docker-credential-<helper> get` with `host` on stdin. `Ok(None)`
/// when the helper has no credentials for the host.
fn run_helper(helper: &str, host: &str) -> Result<Option<Auth>, ArtifactError> {
    let out = Cmd::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin_bytes(host)
        .read();
    let out = match out {
        Ok(out) => out,
        Err(RunError::Failed { stderr, .. }) if stderr.to_lowercase().contains("not found") => {
            return Ok(None);
        }
        Err(e) => return Err(ArtifactError::Credentials(e.to_string())),
    };
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| ArtifactError::Credentials(format!("docker-credential-{helper} get: {e}")))?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Auth::Basic {
        username: user.to_string(),
        password: secret.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn creds_flag_wins_and_is_validated() {
        let r = resolve_auth_with("ghcr.io", Some("me:tok"), &no_env, None).unwrap();
        assert_eq!(
            r.auth,
            Auth::Basic {
                username: "me".into(),
                password: "tok".into()
            }
        );
        assert!(resolve_auth_with("x", Some("nocolon"), &no_env, None).is_err());
    }

    #[test]
    fn github_token_only_for_ghcr() {
        let env = |k: &str| match k {
            "GITHUB_TOKEN" => Some("t".to_string()),
            "GITHUB_ACTOR" => Some("octo".to_string()),
            _ => None,
        };
        let r = resolve_auth_with("ghcr.io", None, &env, None).unwrap();
        assert_eq!(
            r.auth,
            Auth::Basic {
                username: "octo".into(),
                password: "t".into()
            }
        );
        let r = resolve_auth_with("quay.io", None, &env, None).unwrap();
        assert_eq!(r.auth, Auth::Anonymous);
    }

    #[test]
    fn docker_config_auths_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            dir.path().join("config.json"),
            format!(r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{b64}"}}}}}}"#),
        )
        .unwrap();
        let r = resolve_auth_with("127.0.0.1:5000", None, &no_env, Some(dir.path())).unwrap();
        assert_eq!(
            r.auth,
            Auth::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        let r = resolve_auth_with("other:5000", None, &no_env, Some(dir.path())).unwrap();
        assert_eq!(r.auth, Auth::Anonymous);
    }
}
