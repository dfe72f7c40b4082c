//! Default artifact metadata from git: source URL, `<branch>@sha1:<commit>`,
//! the commit time, and the short sha used as the default tag.

use std::path::Path;

use exec::runner::Cmd;

/// Metadata for [`super::PackageOptions`], from git or from fixed fallbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitDefaults {
    /// The `origin` remote as an https URL without credentials (see
    /// [`normalize_source`]); `GITHUB_SERVER_URL/GITHUB_REPOSITORY` in Actions
    /// without a remote; else `None`: the annotation is left out.
    pub source: Option<String>,
    /// `<branch>@sha1:<commit>`, `sha1:<commit>` on a detached HEAD, or
    /// `"local"` outside git.
    pub revision: String,
    /// The commit time in RFC 3339 UTC; `1970-01-01T00:00:00Z` outside git,
    /// so that packaging stays reproducible there too.
    pub created: String,
    /// The first 7 hex digits of the commit, the default tag.
    pub short_sha: Option<String>,
    /// The whole commit sha (40 hex digits), `None` outside git.
    pub commit: Option<String>,
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

/// A git remote as the https URL of its repository, for
/// `org.opencontainers.image.source`: credentials dropped, ssh and scp-style
/// remotes (`git@github.com:o/r.git`) turned into `https://github.com/o/r`,
/// `.git` and trailing slashes removed. `None` for a local path or
/// `file://` remote, which must never end up in an artifact.
pub fn normalize_source(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(
            scheme,
            "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git"
        ) {
            return None; // file:// and friends
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // An ssh port is not the web server's.
        let host = if scheme == "https" || scheme == "http" {
            host
        } else {
            host.split(':').next().unwrap_or(host)
        };
        (host.to_string(), path.to_string())
    } else {
        // scp-like `[user@]host:path`; a local path has no `:` before its first `/`.
        let (authority, path) = url.split_once(':')?;
        // `C:\src` is a Windows path, not a host called C.
        if authority.len() < 2 || authority.contains('/') || authority.contains('\\') {
            return None;
        }
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (host.to_string(), path.trim_start_matches('/').to_string())
    };
    if host.is_empty() || path.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    Some(format!("https://{host}/{path}"))
}

/// The files under `root` (relative, `/`-separated) that differ from the
/// commit: modified, added, deleted, renamed or untracked (ignored files are
/// not). `None` outside a git work tree.
pub fn uncommitted_files(root: &Path) -> Option<Vec<String>> {
    let out = Cmd::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--",
            ".",
        ])
        .read()
        .ok()?;
    // Porcelain paths are relative to the top level; make them relative to root.
    let prefix = git(root, &["rev-parse", "--show-prefix"]).unwrap_or_default();
    let mut files: Vec<String> = out
        .split('\0')
        .filter(|entry| entry.len() > 3)
        .filter_map(|entry| {
            let path = &entry[3..];
            path.strip_prefix(prefix.as_str()).map(str::to_string)
        })
        .collect();
    files.extend(hidden_files(root)?);
    Some(files)
}

/// Tracked files under `root` whose changes `git status` hides: marked
/// assume-unchanged or skip-worktree. Their content may differ from the
/// commit, so a tree holding one is never clean. Relative to `root`.
pub fn hidden_files(root: &Path) -> Option<Vec<String>> {
    let out = Cmd::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-v", "-z", "--", "."])
        .read()
        .ok()?;
    Some(parse_hidden(&out))
}

/// What `git ls-files` says of the work tree at `root`, in one process.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    /// Every tracked file, relative to `root`.
    pub tracked: Vec<String>,
    /// The tracked files whose changes `git status` hides ([`hidden_files`]).
    pub hidden: Vec<String>,
    /// The untracked files (a folder of them as `dir/`) that only
    /// `.gitignore` files exclude, not `info/exclude` or a global excludes
    /// file (which would hide files a walk ships).
    pub untracked: Vec<String>,
}

/// [`Listing`] of `root`: one `git ls-files` for what would otherwise take
/// three.
pub fn listing(root: &Path) -> Option<Listing> {
    let out = Cmd::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-v",
            "-z",
            "--cached",
            "--others",
            "--directory",
            "--exclude-per-directory=.gitignore",
            "--",
            ".",
        ])
        .read()
        .ok()?;
    let mut listing = Listing {
        hidden: parse_hidden(&out),
        ..Listing::default()
    };
    for entry in out.split('\0') {
        match entry.split_at_checked(2) {
            Some(("? ", path)) => listing.untracked.push(path.to_string()),
            Some((_, path)) if !path.is_empty() => listing.tracked.push(path.to_string()),
            _ => {}
        }
    }
    Some(listing)
}

/// `git ls-files -v` marks assume-unchanged with a lowercase tag and
/// skip-worktree with `S` (`?` is an untracked file's).
fn parse_hidden(out: &str) -> Vec<String> {
    out.split('\0')
        .filter_map(|entry| {
            let (tag, path) = entry.split_at_checked(2)?;
            let tag = tag.chars().next()?;
            (tag.is_ascii_lowercase() || tag == 'S').then(|| path.to_string())
        })
        .collect()
}

/// The `origin` remote's URL of the checkout at `root`: from its config
/// file when that says it plainly (one git process fewer), else from git.
pub fn origin_url(root: &Path) -> Option<String> {
    origin_url_from_config(root, &|name| std::env::var_os(name))
        .unwrap_or_else(|| git(root, &["config", "--get", "remote.origin.url"]))
}

/// `"<commit> <unix time>"` of HEAD (`git log -1 --format='%H %ct'`), the
/// form [`defaults_from`] reads.
pub fn head_line(root: &Path) -> Option<String> {
    git(root, &["log", "-1", "--format=%H %ct", "HEAD"])
}

/// `remote.origin.url` read from the config files, which spares a git
/// process on every ship. `None` (ask git) unless the answer is plain: no
/// environment or worktree config can override it, each file read includes
/// no other, and either the repository's own file sets the URL (a value
/// there is the last git reads, so `git config --get` would say the same)
/// or none of the files git reads sets it (`Some(None)`: no remote).
fn origin_url_from_config(
    root: &Path,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<Option<String>> {
    if [
        "GIT_DIR",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
    ]
    .iter()
    .any(|v| env(v).is_some())
    {
        return None;
    }
    let dot_git = root.join(".git");
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        root.join(text.strip_prefix("gitdir:")?.trim())
    };
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim()),
        Err(_) => git_dir,
    };
    let text = std::fs::read_to_string(common.join("config")).ok()?;
    if let Some(url) = config_origin_url(&text)? {
        return Some(Some(url));
    }
    // Not set here: no remote, unless the user's or the system's file sets it.
    for file in user_and_system_configs(env)? {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                if config_origin_url(&text)?.is_some() {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(None)
}

/// The global and system config files git reads: `$XDG_CONFIG_HOME/git/config`
/// (or `~/.config/git/config`), `~/.gitconfig`, `/etc/gitconfig`, and the
/// `etc/gitconfig` beside the `bin` folder of the git on PATH (a git
/// installed under another prefix reads that one). `None` without a home.
fn user_and_system_configs(
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<Vec<std::path::PathBuf>> {
    let home = std::path::PathBuf::from(env("HOME").filter(|h| !h.is_empty())?);
    let xdg = env("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map_or_else(|| home.join(".config"), std::path::PathBuf::from);
    let mut files = vec![
        xdg.join("git/config"),
        home.join(".gitconfig"),
        "/etc/gitconfig".into(),
    ];
    if let Some(prefix) = exec::tools::find("git")
        .ok()
        .and_then(|git| Some(git.parent()?.parent()?.to_path_buf()))
    {
        files.push(prefix.join("etc/gitconfig"));
    }
    Some(files)
}

/// The last `url` of `[remote "origin"]` in a git config file's text
/// (`Some(None)`: none); `None` for anything this small reader does not
/// follow.
fn config_origin_url(text: &str) -> Option<Option<String>> {
    let mut in_origin = false;
    let mut url = None;
    for line in text.lines() {
        let line = line.trim();
        if line.ends_with('\\') {
            return None; // a continued value
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.split(']').next()?.trim();
            let lower = header.to_ascii_lowercase();
            if lower.starts_with("include") || lower.starts_with("remote.") {
                return None;
            }
            in_origin =
                lower.starts_with("remote ") && header["remote ".len()..].trim() == "\"origin\"";
            continue;
        }
        if line.to_ascii_lowercase().contains("worktreeconfig") {
            return None;
        }
        if !in_origin {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("url") {
            url = Some(config_value(value)?);
        }
    }
    Some(url.filter(|u| !u.is_empty()))
}

/// A config value: quotes joined, escapes read, a comment cut off.
fn config_value(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = raw.trim().chars();
    let mut pending_space = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push(match chars.next()? {
                    'n' => '\n',
                    't' => '\t',
                    'b' => '\u{8}',
                    c @ ('"' | '\\') => c,
                    _ => return None,
                });
            }
            '#' | ';' if !quoted => break,
            c if c.is_whitespace() && !quoted => pending_space.push(c),
            c => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push(c);
            }
        }
    }
    (!quoted).then_some(out)
}

/// Reads the defaults from the git checkout at `root`, falling back field by
/// field (recorded in [`GitDefaults::fallbacks`]).
pub fn git_defaults(root: &Path) -> GitDefaults {
    // Three independent queries, run at once: publish runs this on every call.
    let (head, remote, branch) = std::thread::scope(|s| {
        let head = s.spawn(|| head_line(root));
        let remote = s.spawn(|| origin_url(root));
        let branch = git(root, &["symbolic-ref", "--short", "-q", "HEAD"]);
        (
            head.join().ok().flatten(),
            remote.join().ok().flatten(),
            branch,
        )
    });
    defaults_from(head.as_deref(), remote, branch)
}

/// [`GitDefaults`] from what git said: `head` is `"<commit> <unix time>"`
/// (`git log -1 --format='%H %ct'`), `remote` the `origin` URL, `branch` the
/// short name of HEAD's branch (`None` when detached).
pub fn defaults_from(
    head: Option<&str>,
    remote: Option<String>,
    branch: Option<String>,
) -> GitDefaults {
    let mut fallbacks = Vec::new();
    let (commit, commit_time) = match head.map(str::trim).and_then(|h| h.split_once(' ')) {
        Some((commit, time)) => (Some(commit.to_string()), Some(time.to_string())),
        None => (None, None),
    };
    let remote = remote
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let source = match remote {
        Some(url) => {
            let normalized = normalize_source(&url);
            if normalized.is_none() {
                fallbacks.push(
                    "source: the `origin` remote is a local path; the source annotation is left out"
                        .into(),
                );
            }
            normalized
        }
        None => match (
            std::env::var("GITHUB_SERVER_URL"),
            std::env::var("GITHUB_REPOSITORY"),
        ) {
            (Ok(server), Ok(repo)) if !server.is_empty() && !repo.is_empty() => {
                normalize_source(&format!("{server}/{repo}"))
            }
            _ => {
                fallbacks.push(
                    "source: no git remote `origin`; the source annotation is left out".into(),
                );
                None
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
            commit: None,
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
        commit: Some(commit),
        fallbacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_url_is_read_as_git_reads_it_or_left_to_git() {
        let config = "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://x/up.git\n[remote \"origin\"]\n\turl = git@github.com:o/r.git ; scp-style\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n";
        assert_eq!(
            config_origin_url(config),
            Some(Some("git@github.com:o/r.git".into()))
        );
        assert_eq!(
            config_origin_url("[remote \"origin\"]\nURL = \"https://h/a b.git\"  # c\n"),
            Some(Some("https://h/a b.git".into()))
        );
        // Last one wins, as `git config --get`.
        assert_eq!(
            config_origin_url("[remote \"origin\"]\nurl = a\nurl = b\n"),
            Some(Some("b".into()))
        );
        // No origin here: the other files decide.
        assert_eq!(
            config_origin_url("[core]\n\tbare = false\n[remote \"upstream\"]\nurl = a\n"),
            Some(None)
        );
        // What this reader does not follow goes to git.
        for other in [
            "[include]\npath = other\n[remote \"origin\"]\nurl = a\n",
            "[remote.origin]\nurl = a\n",
            "[extensions]\nworktreeConfig = true\n[remote \"origin\"]\nurl = a\n",
            "[remote \"origin\"]\nurl = \"a\n",
        ] {
            assert_eq!(config_origin_url(other), None, "{other}");
        }
    }

    #[test]
    fn no_origin_is_known_without_git_only_when_no_config_file_sets_one() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, home) = (dir.path().join("repo"), dir.path().join("home"));
        std::fs::create_dir_all(&home).unwrap();
        Cmd::new("git")
            .args(["init", "-q"])
            .arg(&repo)
            .run()
            .unwrap();
        let env = |name: &str| match name {
            "HOME" => Some(home.clone().into_os_string()),
            "XDG_CONFIG_HOME" => Some(home.join(".config").into_os_string()),
            other => std::env::var_os(other),
        };
        // What git itself says with that home.
        let git_says = || {
            Cmd::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["config", "--get", "remote.origin.url"])
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .read()
                .ok()
                .map(|s| s.trim().to_string())
        };
        // No file of ours sets it: no remote, and no git process (unless
        // this machine's system file sets or includes more: then git is asked).
        let system_plain =
            config_origin_url(&std::fs::read_to_string("/etc/gitconfig").unwrap_or_default())
                == Some(None);
        let expected = system_plain.then_some(None);
        assert_eq!(origin_url_from_config(&repo, &env), expected);
        if system_plain {
            assert_eq!(git_says(), None);
        }
        // The user's file sets it: git is asked, and git finds it there.
        std::fs::write(
            home.join(".gitconfig"),
            "[remote \"origin\"]\n\turl = https://h/o/r\n",
        )
        .unwrap();
        assert_eq!(origin_url_from_config(&repo, &env), None);
        assert_eq!(git_says().as_deref(), Some("https://h/o/r"));
        // A file that includes another: git is asked.
        std::fs::write(home.join(".gitconfig"), "[include]\n\tpath = more\n").unwrap();
        assert_eq!(origin_url_from_config(&repo, &env), None);
        // The repository's own file wins over the user's.
        std::fs::write(
            home.join(".gitconfig"),
            "[remote \"origin\"]\n\turl = https://h/o/r\n",
        )
        .unwrap();
        Cmd::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["remote", "add", "origin", "https://h/own"])
            .run()
            .unwrap();
        assert_eq!(
            origin_url_from_config(&repo, &env),
            Some(Some("https://h/own".into()))
        );
        assert_eq!(git_says().as_deref(), Some("https://h/own"));
    }

    #[test]
    fn files_git_hides_changes_of_are_found() {
        let out = "H a.yaml\0h b.yaml\0S c/d.yaml\0s e.yaml\0M f.yaml\0";
        assert_eq!(parse_hidden(out), ["b.yaml", "c/d.yaml", "e.yaml"]);
    }

    #[test]
    fn one_listing_says_what_three_did() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(root)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        git(&["init", "-q"]);
        for (name, text) in [
            (".gitignore", "ignored.yaml\n"),
            ("a.yaml", "a"),
            ("b.yaml", "b"),
            ("c/d.yaml", "d"),
        ] {
            std::fs::create_dir_all(root.join(name).parent().unwrap()).unwrap();
            std::fs::write(root.join(name), text).unwrap();
        }
        git(&["add", "."]);
        git(&["update-index", "--assume-unchanged", "b.yaml"]);
        for name in ["new.yaml", "ignored.yaml", "fresh/x.yaml", "fresh/y.yaml"] {
            std::fs::create_dir_all(root.join(name).parent().unwrap()).unwrap();
            std::fs::write(root.join(name), "n").unwrap();
        }
        let listing = listing(root).unwrap();
        assert_eq!(
            listing.tracked,
            [".gitignore", "a.yaml", "b.yaml", "c/d.yaml"]
        );
        assert_eq!(listing.hidden, ["b.yaml"]);
        assert_eq!(hidden_files(root).unwrap(), listing.hidden);
        let mut untracked = listing.untracked.clone();
        untracked.sort();
        assert_eq!(untracked, ["fresh/", "new.yaml"]);
    }

    #[test]
    fn remotes_become_https_urls() {
        for (remote, want) in [
            ("git@github.com:o/r.git", Some("https://github.com/o/r")),
            (
                "ssh://git@github.com/o/r.git",
                Some("https://github.com/o/r"),
            ),
            (
                "ssh://git@github.com:22/o/r",
                Some("https://github.com/o/r"),
            ),
            (
                "https://x-access-token:abc@github.com/o/r.git",
                Some("https://github.com/o/r"),
            ),
            ("https://github.com/o/r/", Some("https://github.com/o/r")),
            (
                "http://gitea.lan:3000/o/r.git",
                Some("https://gitea.lan:3000/o/r"),
            ),
            ("git://example.org/o/r.git", Some("https://example.org/o/r")),
            ("/home/me/src/platform", None),
            ("../platform.git", None),
            ("file:///srv/git/platform.git", None),
            ("C:\\src\\platform", None),
        ] {
            assert_eq!(normalize_source(remote).as_deref(), want, "{remote}");
        }
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
