//! Nothing unsafe leaves the tree: the secrets gate of `package`/`publish`,
//! the one SOPS integrity checker behind `validate`, `secrets check`,
//! `publish` and `build`, dirty trees, and the source annotation. The SOPS
//! file is written by the real sops 3.11, pushes go to a real
//! `docker-registry`; keys are generated per test, outside the tree.

use crate::common;

use std::io::Write as _;

use std::path::PathBuf;
use std::process::Output;

use crate::registry::Registry;
use assert_cmd::Command;
use exec::runner::Cmd;

pub(crate) const SECRET_FILE: &str = "clusters/demo/variables/creds.enc.yaml";
const CREDS: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: flux-system\ndata:\n  token: ZGVtby10b2tlbg==\n";

/// A git checkout of the `basic` build fixture whose `creds` Secret the real
/// sops encrypted, with its key in a keys file outside the checkout.
pub(crate) struct Tree {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) keys: PathBuf,
    /// The age recipient of `keys`.
    pub(crate) recipient: String,
}

impl Tree {
    pub(crate) fn new() -> Option<Tree> {
        let sops = common::tool("sops")?;
        exec::tools::kustomize().ok().or_else(|| {
            assert!(!common::tools_required(), "kustomize is required");
            None
        })?;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        common::copy_tree(
            &common::root().join("xtask/tests/fixtures/build/basic"),
            &repo,
        );
        // The fixture's plaintext Secret moves into its own SOPS file.
        let vars = repo.join("clusters/demo/variables/variables.yaml");
        let text = std::fs::read_to_string(&vars).unwrap();
        let cut = text.find("---\napiVersion: v1\nkind: Secret").unwrap();
        std::fs::write(&vars, &text[..cut]).unwrap();
        std::fs::write(
            repo.join("clusters/demo/variables/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: flux-system\nresources:\n  - variables.yaml\n  - creds.enc.yaml\n",
        )
        .unwrap();
        // A quoted default that render retypes to an integer is another
        // issue's matter; keep validate's verdict about secrets alone.
        let deployment = repo.join("apps/web/deployment.yaml");
        let text = std::fs::read_to_string(&deployment).unwrap();
        std::fs::write(
            &deployment,
            text.replace(", \"--port\", \"${port:=8080}\"", ""),
        )
        .unwrap();
        let (secret, recipient) = sops::generate_identity();
        let keys = dir.path().join("home/keys.txt");
        std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
        std::fs::write(&keys, format!("{secret}\n")).unwrap();
        std::fs::write(
            repo.join(".sops.yaml"),
            format!("creation_rules:\n  - path_regex: ^clusters/demo/.+\\.enc\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    age: {recipient}\n"),
        )
        .unwrap();
        std::fs::write(repo.join(SECRET_FILE), CREDS).unwrap();
        Cmd::new(sops)
            .args(["--encrypt", "--in-place", SECRET_FILE])
            .dir(&repo)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY_FILE", &keys)
            .read()
            .expect("sops --encrypt");
        let tree = Tree {
            dir,
            keys,
            recipient,
        };
        tree.git(&["init", "-q", "-b", "main"]);
        tree.git(&["add", "-A"]);
        tree.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-q",
            "-m",
            "initial",
        ]);
        tree.git(&[
            "remote",
            "add",
            "origin",
            "git@github.com:devantler-tech/platform.git",
        ]);
        Some(tree)
    }

    pub(crate) fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub(crate) fn secret(&self) -> PathBuf {
        self.repo().join(SECRET_FILE)
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        Cmd::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(args)
            .read()
            .unwrap_or_else(|e| panic!("git {args:?}: {e}"))
    }

    pub(crate) fn short_sha(&self) -> String {
        self.git(&["rev-parse", "--short=7", "HEAD"])
            .trim()
            .to_string()
    }

    /// Runs a verb in the checkout, with the key (`with_key`) or with none at all.
    pub(crate) fn xtask(&self, args: &[&str], with_key: bool) -> Output {
        let mut c = Command::cargo_bin("xtask").unwrap();
        c.args(args)
            .current_dir(self.repo())
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("HOME", self.dir.path().join("home"))
            .env_remove("GITHUB_SERVER_URL")
            .env_remove("GITHUB_REPOSITORY");
        if with_key {
            c.env("SOPS_AGE_KEY_FILE", &self.keys);
        }
        c.output().unwrap()
    }

    pub(crate) fn publish(&self, registry: &Registry, extra: &[&str]) -> Output {
        self.publish_to(registry, "p", extra)
    }

    /// [`Tree::publish`] to the repository `name`.
    pub(crate) fn publish_to(&self, registry: &Registry, name: &str, extra: &[&str]) -> Output {
        let url = registry.url(name);
        let repo = self.repo();
        let mut args = vec![
            "publish",
            "--root",
            repo.to_str().unwrap(),
            "--registry",
            url.as_str(),
        ];
        args.extend(extra);
        self.xtask(&args, true)
    }

    pub(crate) fn validate(&self) -> Output {
        let repo = self.repo();
        let schemas = common::root().join(".schemas");
        self.xtask(
            &[
                "validate",
                "--root",
                repo.to_str().unwrap(),
                "--schema-location",
                schemas.to_str().unwrap(),
                "--skip-missing-schemas",
            ],
            true,
        )
    }
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The manifest digest and annotations of `oci://...:tag`, through our inspect.
fn inspect(tree: &Tree, reference: &str) -> Option<(String, serde_json::Value)> {
    let out = tree.xtask(
        &["package", "--inspect", reference, "--output", "json"],
        false,
    );
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let annotations: serde_json::Map<String, serde_json::Value> = v["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].clone()))
        .collect();
    Some((
        v["digest"].as_str().unwrap().to_string(),
        serde_json::Value::Object(annotations),
    ))
}

#[test]
fn plaintext_is_refused_before_anything_is_written_or_pushed() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    // As a user would: decrypt in place, then try to ship.
    let out = tree.xtask(&["secrets", "decrypt", "--in-place", SECRET_FILE], true);
    common::assert_success(&out);
    // More that must never ship: a decrypted copy, a private key, a
    // plaintext Secret in a manifest.
    let repo = tree.repo();
    std::fs::write(repo.join("apps/web/creds.dec.yml"), CREDS).unwrap();
    let (identity, _) = sops::generate_identity();
    std::fs::write(
        repo.join("apps/web/notes.txt"),
        format!("backup:\n{identity}\n"),
    )
    .unwrap();
    std::fs::write(
        repo.join("apps/web/leak.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  password: hunter2\n",
    )
    .unwrap();
    let before = registry.stored_files();
    for extra in [
        &["--tag", "plain"][..],
        &["--tag", "plain", "--allow-dirty"][..],
    ] {
        let out = tree.publish(&registry, extra);
        let msg = text(&out);
        assert!(!out.status.success(), "publish shipped plaintext: {msg}");
        for (file, why) in [
            (SECRET_FILE, "not SOPS-encrypted"),
            ("apps/web/creds.dec.yml", "decrypted copy"),
            ("apps/web/notes.txt:2", "age private key"),
            (
                "apps/web/leak.yaml:1",
                "Secret leak holds plaintext values (stringData.password)",
            ),
        ] {
            let line = msg
                .lines()
                .find(|l| l.contains(file))
                .unwrap_or_else(|| panic!("{file} not listed: {msg}"));
            assert!(line.contains(why), "{file}: {line}");
        }
        assert!(
            !msg.contains("hunter2"),
            "the refusal printed a secret value"
        );
        assert_eq!(
            registry.stored_files(),
            before,
            "the registry was written to"
        );
    }
    // package writes nothing either.
    let out_dir = tree.dir.path().join("oci");
    let out = tree.xtask(
        &[
            "package",
            "--root",
            repo.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        true,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!out_dir.exists(), "package wrote a layout");
}

/// Flips one base64 character of `field` in the first ENC value of `token`.
fn flip(text: &str, field: &str, to: Option<u8>) -> String {
    let line = text.find("    token: ENC[").unwrap();
    let at = line + text[line..].find(&format!("{field}:")).unwrap() + field.len() + 1;
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = to.unwrap_or(if bytes[at] == b'A' { b'B' } else { b'A' });
    String::from_utf8(bytes).unwrap()
}

/// Everything up to (not including) the first line that starts with `marker`.
fn cut_before(text: &str, marker: &str) -> String {
    let at = text
        .find(&format!("\n{marker}"))
        .unwrap_or_else(|| panic!("no line starts with {marker:?}"));
    text[..=at].to_string()
}

#[test]
fn every_tamper_is_caught_by_validate_check_and_publish_and_the_file_stays() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let original = std::fs::read_to_string(tree.secret()).unwrap();
    // The clean file passes all three.
    for out in [tree.validate(), tree.xtask(&["secrets", "check"], true)] {
        assert!(out.status.success(), "{}", text(&out));
    }

    let mac_line = original.lines().find(|l| l.contains("mac: ENC[")).unwrap();
    let mac_altered = {
        let at = original.find(mac_line).unwrap() + mac_line.find("data:").unwrap() + 5;
        let mut b = original.clone().into_bytes();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let enc_removed = {
        let at = original.find("enc: |").unwrap();
        let start = original[..at].rfind('\n').unwrap() + 1;
        let end = start
            + original[start..]
                .find("-----END AGE ENCRYPTED FILE-----\n")
                .unwrap()
            + "-----END AGE ENCRYPTED FILE-----\n".len();
        format!("{}{}", &original[..start], &original[end..])
    };
    let token_line = original.find("    token: ENC[").unwrap();
    let armor_line = original.find("-----BEGIN AGE ENCRYPTED FILE-----").unwrap();
    let armor_middle = armor_line + original[armor_line..].find('\n').unwrap() + 1;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "data flipped",
            flip(&original, "data", None),
            "authentication failed",
        ),
        (
            "iv flipped",
            flip(&original, "iv", None),
            "authentication failed",
        ),
        (
            "tag flipped",
            flip(&original, "tag", None),
            "authentication failed",
        ),
        (
            "iv not base64",
            flip(&original, "iv", Some(b'!')),
            "iv is not valid base64",
        ),
        (
            "mac deleted",
            original.replace(&format!("{mac_line}\n"), ""),
            "no `mac`",
        ),
        ("mac altered", mac_altered, "MAC mismatch"),
        ("enc removed", enc_removed, "no `enc`"),
        (
            "truncated inside a value",
            original[..token_line + 40].to_string(),
            "truncated",
        ),
        (
            "truncated before the sops block",
            cut_before(&original, "sops:"),
            "truncated before its `sops` block",
        ),
        (
            "truncated inside the age armor",
            original[..armor_middle + 20].to_string() + "\n",
            "cut-off age armor block",
        ),
        (
            "truncated before lastmodified",
            cut_before(&original, "    lastmodified:"),
            "incomplete: no `version`, `lastmodified`, `mac`",
        ),
        (
            "truncated before version",
            cut_before(&original, "    version:"),
            "no `version`",
        ),
    ];
    let before = registry.stored_files();
    for (name, tampered, want) in &cases {
        std::fs::write(tree.secret(), tampered).unwrap();
        for (verb, out) in [
            ("validate", tree.validate()),
            ("secrets check", tree.xtask(&["secrets", "check"], true)),
            (
                "publish",
                tree.publish(&registry, &["--tag", "t", "--allow-dirty"]),
            ),
        ] {
            let msg = text(&out);
            assert!(!out.status.success(), "{name}: {verb} passed: {msg}");
            assert!(
                msg.contains(want) && msg.contains("creds.enc.yaml"),
                "{name}: {verb} does not say {want:?} for the file: {msg}"
            );
            assert_eq!(
                std::fs::read_to_string(tree.secret()).unwrap(),
                *tampered,
                "{name}: {verb} changed the file"
            );
        }
        assert_eq!(
            registry.stored_files(),
            before,
            "{name}: something was pushed"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{} tampered variants refused by validate, secrets check and publish",
        cases.len()
    );
}

#[test]
fn build_tells_no_key_from_a_broken_file() {
    let Some(tree) = Tree::new() else { return };
    let repo = tree.repo();
    let out_dir = tree.dir.path().join("out");
    let build = |with_key| {
        tree.xtask(
            &[
                "build",
                "--root",
                repo.to_str().unwrap(),
                "--cluster",
                "demo",
                "--out",
                out_dir.to_str().unwrap(),
            ],
            with_key,
        )
    };
    // No key: a placeholder and a warning, exit 0.
    let out = build(false);
    common::assert_success(&out);
    assert!(
        text(&out).contains("Secret creds is SOPS-encrypted and no age identity is available"),
        "{}",
        text(&out)
    );
    // The key: values decrypt, no warning.
    let out = build(true);
    common::assert_success(&out);
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    // The key opens it but the MAC is wrong: an error for that file.
    let original = std::fs::read_to_string(tree.secret()).unwrap();
    let mac_line = original.lines().find(|l| l.contains("mac: ENC[")).unwrap();
    let at = original.find(mac_line).unwrap() + mac_line.find("data:").unwrap() + 5;
    let mut b = original.clone().into_bytes();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(tree.secret(), &b).unwrap();
    let out = build(true);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains(SECRET_FILE) && msg.contains("MAC mismatch"),
        "{msg}"
    );
    // Without the key the same file is only someone else's: a warning.
    common::assert_success(&build(false));
    // Damaged structure is an error with or without a key.
    std::fs::write(tree.secret(), cut_before(&original, "    version:")).unwrap();
    let out = build(false);
    assert!(
        !out.status.success() && text(&out).contains("no `version`"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(tree.secret()).unwrap(),
        cut_before(&original, "    version:")
    );
}

#[test]
fn a_dirty_tree_is_refused_or_published_under_a_dirty_tag() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let sha = tree.short_sha();
    let out = tree.publish(&registry, &[]);
    common::assert_success(&out);
    let url = registry.url("p");
    let (clean, annotations) = inspect(&tree, &format!("{url}:{sha}")).unwrap();
    assert_eq!(inspect(&tree, &format!("{url}:latest")).unwrap().0, clean);
    let head = tree.git(&["rev-parse", "HEAD"]);
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        format!("main@sha1:{}", head.trim())
    );

    // An uncommitted edit of a shipped file.
    let deployment = tree.repo().join("apps/web/deployment.yaml");
    let text_before = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(
        &deployment,
        text_before.replace("whoami:v1.10", "whoami:v1.11"),
    )
    .unwrap();
    let before = registry.stored_files();
    let out = tree.publish(&registry, &[]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("uncommitted changes")
            && msg.contains("apps/web/deployment.yaml")
            && msg.contains("--allow-dirty"),
        "{msg}"
    );
    assert_eq!(registry.stored_files(), before);
    // Into a repository the registry does not know, the uploads are opened
    // once the gate passed, beside the git probe: the refusal that follows
    // cancels them, and nothing is left stored.
    let out = tree.publish_to(&registry, "fresh", &[]);
    assert!(
        !out.status.success() && text(&out).contains("uncommitted changes"),
        "{}",
        text(&out)
    );
    assert_eq!(registry.stored_files(), before);
    // The commit's own tag is refused even with --allow-dirty, and so is
    // every 7 to 40 hex digit prefix of its sha (the full sha is the tag a
    // release promotes), in either case.
    let head = head.trim();
    for tag in [
        sha.clone(),
        head.to_string(),
        head[..12].to_string(),
        head.to_ascii_uppercase(),
    ] {
        let out = tree.publish(&registry, &["--allow-dirty", "--tag", &tag]);
        assert!(
            !out.status.success()
                && text(&out).contains(&format!("the tag {tag} names the commit")),
            "{tag}: {}",
            text(&out)
        );
        assert_eq!(registry.stored_files(), before, "{tag}");
    }

    // --allow-dirty: a tag and revision that say dirty; the clean tags stay.
    let out = tree.publish(&registry, &["--allow-dirty"]);
    common::assert_success(&out);
    let msg = text(&out);
    let pushed = msg
        .lines()
        .find_map(|l| l.split(", tagged ").nth(1))
        .unwrap_or_else(|| panic!("no tags reported: {msg}"));
    let dirty = pushed
        .split([',', ' '])
        .find(|t| t.starts_with(&format!("{sha}-dirty-")))
        .unwrap_or_else(|| panic!("no dirty tag pushed: {msg}"));
    assert!(
        !pushed.contains("latest"),
        "a dirty tree took latest: {pushed}"
    );
    let suffix = dirty.rsplit('-').next().unwrap();
    assert_eq!(suffix.len(), 12);
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    let (dirty_digest, annotations) = inspect(&tree, &format!("{url}:{dirty}")).unwrap();
    assert_ne!(dirty_digest, clean);
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        format!("main@sha1:{}-dirty-{suffix}", head.trim())
    );
    assert_eq!(inspect(&tree, &format!("{url}:{sha}")).unwrap().0, clean);
    assert_eq!(inspect(&tree, &format!("{url}:latest")).unwrap().0, clean);

    // An untracked file that would ship is a change too.
    std::fs::write(&deployment, &text_before).unwrap();
    std::fs::write(
        tree.repo().join("apps/web/new.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n",
    )
    .unwrap();
    let out = tree.publish(&registry, &[]);
    assert!(
        !out.status.success() && text(&out).contains("apps/web/new.yaml"),
        "{}",
        text(&out)
    );
}

/// git hides the changes of a file marked skip-worktree or assume-unchanged
/// from `status`: such a file still makes the tree dirty.
#[test]
fn files_whose_changes_git_hides_make_the_tree_dirty() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let file = "apps/web/deployment.yaml";
    let path = tree.repo().join(file);
    let original = std::fs::read_to_string(&path).unwrap();
    for (mark, unmark) in [
        ("--skip-worktree", "--no-skip-worktree"),
        ("--assume-unchanged", "--no-assume-unchanged"),
    ] {
        tree.git(&["update-index", mark, file]);
        std::fs::write(&path, original.replace("whoami:v1.10", "whoami:v1.11")).unwrap();
        assert_eq!(
            tree.git(&["status", "--porcelain"]),
            "",
            "{mark}: git shows it"
        );
        let before = registry.stored_files();
        let out = tree.publish(&registry, &[]);
        let msg = text(&out);
        assert!(
            !out.status.success() && msg.contains("uncommitted changes") && msg.contains(file),
            "{mark}: {msg}"
        );
        assert_eq!(registry.stored_files(), before, "{mark}");
        tree.git(&["update-index", unmark, file]);
        std::fs::write(&path, &original).unwrap();
    }
    common::assert_success(&tree.publish(&registry, &[]));
}

#[test]
fn the_source_annotation_is_the_https_url_of_origin_or_absent() {
    let Some(tree) = Tree::new() else { return };
    let repo = tree.repo();
    let layout = tree.dir.path().join("oci");
    let source_of = |tree: &Tree| {
        let out = tree.xtask(
            &[
                "package",
                "--root",
                repo.to_str().unwrap(),
                "--out",
                layout.to_str().unwrap(),
                "--tag",
                "t",
            ],
            true,
        );
        common::assert_success(&out);
        let (_, annotations) = inspect(tree, &format!("oci:{}:t", layout.display())).unwrap();
        annotations
            .get("org.opencontainers.image.source")
            .and_then(|s| s.as_str())
            .map(str::to_string)
    };
    let https = Some("https://github.com/devantler-tech/platform".to_string());
    // ssh (scp-style), as set up.
    assert_eq!(source_of(&tree), https);
    tree.git(&[
        "remote",
        "set-url",
        "origin",
        "https://x-access-token:secret@github.com/devantler-tech/platform.git",
    ]);
    assert_eq!(source_of(&tree), https);
    // A local path is never recorded.
    tree.git(&["remote", "set-url", "origin", "/srv/git/platform.git"]);
    assert_eq!(source_of(&tree), None);
    tree.git(&["remote", "remove", "origin"]);
    assert_eq!(source_of(&tree), None);
}

#[test]
fn the_real_tree_passes_the_gate() {
    // What `publish` would ship from this repository: structure-checked
    // without keys, as in CI; a new plaintext value anywhere fails here.
    if let Err(e) = xtask::ship::gate_tree(&common::root(), None) {
        panic!("{e}");
    }
}

/// The JSON of a publish that must have succeeded.
#[track_caller]
fn succeeded((out, v): (Output, serde_json::Value)) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out));
    v
}

/// `publish --output json` in the checkout: its exit and its report.
fn publish_json(
    tree: &Tree,
    registry: &Registry,
    repo: &str,
    extra: &[&str],
    with_key: bool,
) -> (Output, serde_json::Value) {
    let url = registry.url(repo);
    let root = tree.repo();
    let mut args = vec![
        "publish",
        "--root",
        root.to_str().unwrap(),
        "--registry",
        url.as_str(),
        "--output",
        "json",
    ];
    args.extend(extra);
    let out = tree.xtask(&args, with_key);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, v)
}

#[test]
fn an_unchanged_commit_ships_from_the_cache_and_any_change_is_packaged_and_gated() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let first = succeeded(publish_json(&tree, &registry, "p", &["--tag", "a"], true));
    assert_eq!(first["packaged"], true, "{first}");
    let digest = first["digest"].clone();

    // The same commit again: taken from the cache, nothing sent.
    let again = succeeded(publish_json(&tree, &registry, "p", &["--tag", "a"], true));
    assert_eq!(again["packaged"], false, "{again}");
    assert_eq!(again["up_to_date"], true);
    assert_eq!(again["digest"], digest);
    // The cache holds the package, not the push: another tag set or another
    // repository still gets every tag and blob it lacks, with the same bytes.
    let more = succeeded(publish_json(
        &tree,
        &registry,
        "p",
        &["--tag", "a", "--tag", "b"],
        true,
    ));
    assert_eq!(more["packaged"], false, "{more}");
    assert_eq!(more["pushed_tags"], serde_json::json!(["b"]));
    assert_eq!(more["pushed_blobs"], serde_json::json!([]));
    let elsewhere = succeeded(publish_json(&tree, &registry, "q", &["--tag", "a"], true));
    assert_eq!(elsewhere["packaged"], false, "{elsewhere}");
    assert_eq!(elsewhere["digest"], digest);
    assert_eq!(elsewhere["pushed_blobs"].as_array().unwrap().len(), 2);

    // Files the walk always leaves out do not matter.
    std::fs::create_dir_all(tree.repo().join("target")).unwrap();
    std::fs::write(tree.repo().join("target/junk"), "x").unwrap();
    let v = succeeded(publish_json(&tree, &registry, "p", &["--tag", "a"], true));
    assert_eq!(v["packaged"], false, "{v}");

    // An untracked file that would ship: packaged (and dirty) every time.
    let new = tree.repo().join("apps/web/new.yaml");
    std::fs::write(
        &new,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n",
    )
    .unwrap();
    for _ in 0..2 {
        let v = succeeded(publish_json(
            &tree,
            &registry,
            "p",
            &["--tag", "d", "--allow-dirty"],
            true,
        ));
        assert_eq!(v["packaged"], true, "{v}");
        assert_ne!(v["digest"], digest);
    }
    std::fs::remove_file(&new).unwrap();
    // An untracked folder (git names only the folder): its files are named.
    let extra = tree.repo().join("apps/extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: e\n",
    )
    .unwrap();
    let (out, _) = publish_json(&tree, &registry, "p", &["--tag", "d"], true);
    let msg = text(&out);
    assert!(
        !out.status.success()
            && msg.contains("uncommitted changes")
            && msg.contains("apps/extra/cm.yaml"),
        "{msg}"
    );
    std::fs::remove_dir_all(&extra).unwrap();
    // An untracked plaintext Secret is refused: the gate runs.
    let leak = tree.repo().join("apps/web/leak.yaml");
    std::fs::write(
        &leak,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: l\nstringData:\n  password: hunter2\n",
    )
    .unwrap();
    let (out, _) = publish_json(
        &tree,
        &registry,
        "p",
        &["--tag", "d", "--allow-dirty"],
        true,
    );
    assert!(
        !out.status.success() && text(&out).contains("apps/web/leak.yaml"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(&leak).unwrap();
    // An edit of a tracked file: packaged; undone: the cache again.
    let deployment = tree.repo().join("apps/web/deployment.yaml");
    let before = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(&deployment, before.replace("whoami:v1.10", "whoami:v1.11")).unwrap();
    let v = succeeded(publish_json(
        &tree,
        &registry,
        "p",
        &["--tag", "d", "--allow-dirty"],
        true,
    ));
    assert_eq!(v["packaged"], true, "{v}");
    std::fs::write(&deployment, &before).unwrap();
    let v = succeeded(publish_json(&tree, &registry, "p", &["--tag", "a"], true));
    assert_eq!(v["packaged"], false, "{v}");

    // Another key (here: none) is another gate: packaged again.
    let v = succeeded(publish_json(&tree, &registry, "p", &["--tag", "a"], false));
    assert_eq!(v["packaged"], true, "{v}");

    // A committed file with a wrong MAC passes the structural check without
    // the key, and is cached so; with the key it must still be refused.
    let original = std::fs::read_to_string(tree.secret()).unwrap();
    let mac_line = original.lines().find(|l| l.contains("mac: ENC[")).unwrap();
    let at = original.find(mac_line).unwrap() + mac_line.find("data:").unwrap() + 5;
    let mut b = original.clone().into_bytes();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(tree.secret(), b).unwrap();
    tree.git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.org",
        "commit",
        "-qam",
        "tampered",
    ]);
    for packaged in [true, false] {
        let v = succeeded(publish_json(&tree, &registry, "p", &["--tag", "m"], false));
        assert_eq!(v["packaged"], packaged, "{v}");
    }
    let (out, _) = publish_json(&tree, &registry, "p", &["--tag", "m2"], true);
    assert!(
        !out.status.success() && text(&out).contains("MAC mismatch"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_new_commit_of_the_same_shipped_tree_reuses_the_layer_with_its_own_stamp() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let commit = |tree: &Tree, msg: &str| {
        tree.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-q",
            "--allow-empty",
            "-am",
            msg,
        ]);
    };
    let first = succeeded(publish_json(&tree, &registry, "p", &["--tag", "a"], true));
    assert_eq!(first["packaged"], true, "{first}");

    // A new commit that touches nothing that ships (an empty commit, then a
    // file under a path the walk always leaves out): not packaged, but
    // stamped with the new commit, exactly as packaging it would.
    commit(&tree, "empty");
    std::fs::create_dir_all(tree.repo().join(".github")).unwrap();
    std::fs::write(tree.repo().join(".github/ci.yml"), "on: push\n").unwrap();
    tree.git(&["add", ".github/ci.yml"]);
    commit(&tree, "ci");
    let reused = succeeded(publish_json(&tree, &registry, "p", &["--tag", "b"], true));
    assert_eq!(reused["packaged"], false, "{reused}");
    assert_eq!(reused["layer_digest"], first["layer_digest"]);
    assert_ne!(reused["digest"], first["digest"]);
    // The layer is in the registry already; only a new config can be sent.
    assert!(
        !reused["pushed_blobs"]
            .as_array()
            .unwrap()
            .contains(&first["layer_digest"]),
        "{reused}"
    );
    xtask::ship::cache::forget(
        &xtask::ship::cache::location(Some(&common::root())),
        &tree.repo(),
    )
    .unwrap();
    let fresh = succeeded(publish_json(&tree, &registry, "p", &["--tag", "b"], true));
    assert_eq!(fresh["packaged"], true, "{fresh}");
    assert_eq!(fresh["digest"], reused["digest"]);
    let (_, annotations) = inspect(&tree, &registry.url("p:b")).unwrap();
    assert!(
        annotations["org.opencontainers.image.revision"]
            .as_str()
            .unwrap()
            .ends_with(&tree.git(&["rev-parse", "HEAD"]).trim().to_string()),
        "{annotations:?}"
    );

    // A change to a root file that steers the walk or the gate is packaged
    // and gated again, even though the file never ships.
    let sops_yaml = tree.repo().join(".sops.yaml");
    let rules = std::fs::read_to_string(&sops_yaml).unwrap();
    std::fs::write(&sops_yaml, format!("{rules}\n# reviewed\n")).unwrap();
    commit(&tree, "sops rules");
    let v = succeeded(publish_json(&tree, &registry, "p", &["--tag", "c"], true));
    assert_eq!(v["packaged"], true, "{v}");

    // A commit that changes a shipped file: packaged and gated.
    let deployment = tree.repo().join("apps/web/deployment.yaml");
    let before = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(&deployment, before.replace("whoami:v1.10", "whoami:v1.11")).unwrap();
    commit(&tree, "bump");
    let bumped = succeeded(publish_json(&tree, &registry, "p", &["--tag", "d"], true));
    assert_eq!(bumped["packaged"], true, "{bumped}");
    assert_ne!(bumped["layer_digest"], first["layer_digest"]);
}
