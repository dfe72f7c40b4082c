//! Default artifact metadata from git: source URL, `<branch>@sha1:<commit>`,
//! the commit time, and the short sha used as the default tag.

use std::path::Path;

use crate::runner::Cmd;

/// Metadata for [`super::PackageOptions`], from git or from fixed fallbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitDefaults {
    /// The `origin` remote URL without credentials; `GITHUB_SERVER_URL/
    /// GITHUB_REPOSITORY` in Actions without a remote; else `"local"`.
    pub source: String,
    /// `<branch>@sha1:<commit>`, `sha1:<commit>` on a detached HEAD, or
    /// `"local"` outside git.
    pub revision: String,
    /// The commit time in RFC 3339 UTC; `1970-01-01T00:00:00Z` outside git,
    /// so that packaging stays reproducible there too.
    pub created: String,
    /// The first 7 hex digits of the commit, the default tag.
    pub short_sha: Option<String>,
    /// What fell back, for a warning.
    pub fallbacks: Vec<String>,
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    Cmd::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .read()
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Removes `user[:password]@` from a URL, so a token in a remote never ends
/// up in an annotation.
pub fn strip_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_string()
}

/// Reads the defaults from the git checkout at `root`, falling back field by
/// field (recorded in [`GitDefaults::fallbacks`]).
pub fn git_defaults(root: &Path) -> GitDefaults {
    let mut fallbacks = Vec::new();
    // Three independent queries, run at once: publish runs this on every call.
    let (head, remote, branch) = std::thread::scope(|s| {
        let head = s.spawn(|| git(root, &["log", "-1", "--format=%H %ct", "HEAD"]));
        let remote = s.spawn(|| git(root, &["config", "--get", "remote.origin.url"]));
        let branch = git(root, &["symbolic-ref", "--short", "-q", "HEAD"]);
        (
            head.join().ok().flatten(),
            remote.join().ok().flatten(),
            branch,
        )
    });
    let (commit, commit_time) = match head.as_deref().and_then(|h| h.split_once(' ')) {
        Some((commit, time)) => (Some(commit.to_string()), Some(time.to_string())),
        None => (None, None),
    };
    let source = match remote {
        Some(url) => strip_userinfo(&url),
        None => match (
            std::env::var("GITHUB_SERVER_URL"),
            std::env::var("GITHUB_REPOSITORY"),
        ) {
            (Ok(server), Ok(repo)) if !server.is_empty() && !repo.is_empty() => {
                format!("{server}/{repo}")
            }
            _ => {
                fallbacks.push("source: no git remote `origin`, using \"local\"".to_string());
                "local".to_string()
            }
        },
    };
    let Some(commit) = commit else {
        fallbacks.push("revision: no git commit, using \"local\"".into());
        fallbacks.push("created: no git commit, using the epoch".into());
        return GitDefaults {
            source,
            revision: "local".into(),
            created: "1970-01-01T00:00:00Z".into(),
            short_sha: None,
            fallbacks,
        };
    };
    let branch = branch.or_else(|| {
        std::env::var("GITHUB_REF_NAME")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let revision = match branch {
        Some(b) => format!("{b}@sha1:{commit}"),
        None => format!("sha1:{commit}"),
    };
    let created = commit_time
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| {
            fallbacks.push("created: could not read the commit time, using the epoch".into());
            "1970-01-01T00:00:00Z".into()
        });
    GitDefaults {
        source,
        revision,
        created,
        short_sha: Some(commit.chars().take(7).collect()),
        fallbacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_from_remotes() {
        assert_eq!(
            strip_userinfo("https://x-access-token:abc@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            strip_userinfo("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
        assert_eq!(
            strip_userinfo("https://github.com/o/r"),
            "https://github.com/o/r"
        );
    }

    #[test]
    fn outside_git_the_defaults_are_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let d = git_defaults(dir.path());
        assert_eq!(d.revision, "local");
        assert_eq!(d.created, "1970-01-01T00:00:00Z");
        assert_eq!(d.short_sha, None);
        assert!(!d.fallbacks.is_empty());
    }
}
