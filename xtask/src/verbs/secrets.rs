//! `cargo xtask secrets`: native SOPS (age + AES-256-GCM) for the repository's
//! encrypted files, compatible with the sops CLI and Flux.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};

use exec::fsutil::write_atomic;
use sops::{self, Config, DecryptOptions, Format, Identities, ReencryptOptions, files};

/// Encrypt, decrypt, edit, rotate and check SOPS secrets (native age + AES-GCM).
///
/// Rules come from the nearest `.sops.yaml` above the current directory; the
/// age identities from SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and
/// ~/.config/sops/age/keys.txt (XDG_CONFIG_HOME aware), all combined.
/// Without PATHs, encrypt/decrypt/rotate/updatekeys work on every file the
/// `.sops.yaml` manages (by default `*.enc.yaml`/`*.enc.yml`, skipping target/,
/// .git/, .tools/, node_modules/, tests/fixtures/ and subdirectories with their
/// own `.sops.yaml`).
///
/// A newcomer without anyone's private key gets a working local cluster with
/// `cargo xtask secrets keygen --env local`: it creates a personal key, makes it
/// the local recipient and regenerates the local-only development secrets.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand)]
enum Sub {
    /// Create an age key in your keys file and add its recipient to `.sops.yaml`.
    ///
    /// The key is appended to ~/.config/sops/age/keys.txt (or --keys-file,
    /// or SOPS_AGE_KEY_FILE), created with mode 0600; a path inside the
    /// repository is refused. For `--env local` the new recipient replaces the
    /// local one (everywhere in `.sops.yaml`, comments kept) and every
    /// local-env file is regenerated with fresh development values. For other
    /// environments the recipient is added to the rule's list; run
    /// `secrets updatekeys` afterwards from a machine that can decrypt.
    Keygen {
        /// The environment (cluster) whose `.sops.yaml` rule gets the recipient: local, dev, prod.
        #[arg(long)]
        env: String,
        /// The keys file to append to.
        #[arg(long)]
        keys_file: Option<PathBuf>,
        /// For --env local: do not regenerate the local files.
        #[arg(long)]
        no_regenerate: bool,
    },
    /// Re-create the env's encrypted files that nobody here can decrypt.
    ///
    /// Keeps every file's structure, keys and unencrypted fields, gives every
    /// encrypted value a fresh random development value (24 alphanumerics) and
    /// encrypts it for the recipients `.sops.yaml` demands. Files you can
    /// already decrypt are left alone unless --force. Only for development
    /// secrets: regenerating a non-local env needs --force.
    Regenerate {
        /// The environment whose files are regenerated.
        #[arg(long, default_value = "local")]
        env: String,
        /// Also regenerate files that can be decrypted (and allow non-local envs).
        #[arg(long)]
        force: bool,
    },
    /// Encrypt plaintext files in place for the recipients `.sops.yaml` demands.
    ///
    /// Already encrypted files are skipped. Without PATHs: every managed file.
    Encrypt {
        /// Files to encrypt.
        paths: Vec<PathBuf>,
    },
    /// Decrypt files, to stdout (--stdout) or, with a loud warning, in place.
    ///
    /// Plaintext secrets inside the repository break the security rule, so
    /// decrypting in place is refused unless --in-place is given; prefer
    /// --stdout or `secrets edit`.
    Decrypt {
        /// Files to decrypt. Without PATHs: every managed file.
        paths: Vec<PathBuf>,
        /// Print the plaintext to stdout; files stay untouched.
        #[arg(long, conflicts_with = "in_place")]
        stdout: bool,
        /// Overwrite the files with their plaintext (dangerous in a repository).
        #[arg(long)]
        in_place: bool,
        /// Skip the MAC check (explicit escape for damaged files).
        #[arg(long)]
        ignore_mac: bool,
    },
    /// Open a decrypted copy in $EDITOR, re-encrypt on save.
    ///
    /// The copy lives in a private temp dir (0700) outside the repository and is
    /// removed afterwards. Unchanged values keep their ciphertext byte for byte;
    /// an unchanged file is not written at all.
    Edit {
        /// The file to edit.
        path: PathBuf,
    },
    /// Re-encrypt files with a new data key (and fresh IVs).
    Rotate {
        /// Files to rotate. Without PATHs: every managed file.
        paths: Vec<PathBuf>,
    },
    /// Re-wrap the data key to the recipients `.sops.yaml` now demands.
    Updatekeys {
        /// Files to update. Without PATHs: every managed file.
        paths: Vec<PathBuf>,
    },
    /// Check that every managed file is a sound SOPS file, encrypted for exactly its rule's recipients.
    ///
    /// Without a key: the structure (metadata, every ENC value, the MAC's form).
    /// Where your key opens a file: every value and the MAC too.
    /// Exit status 1 when any file fails, each listed with the line and the reason.
    Check,
}

struct Ctx {
    config_path: PathBuf,
    config_dir: PathBuf,
    config: Config,
}

impl Ctx {
    fn load() -> anyhow::Result<Ctx> {
        let cwd = std::env::current_dir()?;
        let (config_path, config) =
            Config::find(&cwd)?.context("no .sops.yaml found in the current directory or above")?;
        let config_dir = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Ctx {
            config_path,
            config_dir,
            config,
        })
    }

    /// For verbs that need no rules once files are named (decrypt, as
    /// `sops -d FILE` works anywhere): the `.sops.yaml` if there is one.
    fn load_for(paths: &[PathBuf]) -> anyhow::Result<Ctx> {
        if paths.is_empty() {
            return Ctx::load();
        }
        let cwd = std::env::current_dir()?;
        match Config::find(&cwd)? {
            Some(_) => Ctx::load(),
            None => Ok(Ctx {
                config_path: cwd.join(".sops.yaml"),
                config_dir: cwd,
                config: Config::default(),
            }),
        }
    }

    fn targets(&self, paths: Vec<PathBuf>) -> Vec<PathBuf> {
        if paths.is_empty() {
            files::managed_files(&self.config_dir, &self.config)
        } else {
            paths
        }
    }

    fn rel(&self, p: &Path) -> String {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        abs.strip_prefix(&self.config_dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    }
}

fn identities() -> anyhow::Result<Identities> {
    Ok(Identities::from_env()?)
}

/// Runs `f` on every file, printing `ok`/errors; the exit code reflects failures.
fn each(
    ctx: &Ctx,
    paths: &[PathBuf],
    verb: &str,
    mut f: impl FnMut(&Path) -> anyhow::Result<String>,
) -> ExitCode {
    let mut failed = 0;
    for p in paths {
        match f(p) {
            Ok(msg) => {
                if !msg.is_empty() {
                    eprintln!("{verb}: {}: {msg}", ctx.rel(p));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{verb}: {}: error: {e:#}", ctx.rel(p));
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{verb}: {failed} of {} file(s) failed; they were left unchanged",
            paths.len()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        match self.command {
            Sub::Keygen {
                env,
                keys_file,
                no_regenerate,
            } => keygen(&env, keys_file, no_regenerate, checkout.root().ok()),
            Sub::Regenerate { env, force } => regenerate(&Ctx::load()?, &env, force),
            Sub::Encrypt { paths } => {
                let ctx = Ctx::load()?;
                let paths = ctx.targets(paths);
                Ok(each(&ctx, &paths, "encrypt", |p| {
                    let bytes = read(p)?;
                    let format = Format::from_path(p);
                    if sops::is_encrypted(&bytes, format) {
                        return Ok("already encrypted, skipped".into());
                    }
                    let rule = ctx.config.rule_for(&ctx.config_dir, p)?;
                    let out = sops::encrypt(&bytes, format, rule)?;
                    write_atomic(p, &out)?;
                    Ok(format!("encrypted for {}", rule.age.join(", ")))
                }))
            }
            Sub::Decrypt {
                paths,
                stdout,
                in_place,
                ignore_mac,
            } => {
                if !stdout && !in_place {
                    bail!(
                        "refusing to write plaintext secrets into the repository: use --stdout to print them, \
                         `cargo xtask secrets edit` to change them, or --in-place if you really mean it"
                    );
                }
                let ctx = Ctx::load_for(&paths)?;
                let paths = ctx.targets(paths);
                let ids = identities()?;
                let opts = DecryptOptions { ignore_mac };
                if in_place {
                    eprintln!(
                        "WARNING: writing PLAINTEXT secrets in place. Never commit them; re-encrypt with \
                         `cargo xtask secrets encrypt` before `git add`."
                    );
                }
                Ok(each(&ctx, &paths, "decrypt", |p| {
                    let bytes = read(p)?;
                    let out = sops::decrypt(&bytes, Format::from_path(p), &ids, opts)?;
                    if stdout {
                        let mut so = std::io::stdout().lock();
                        so.write_all(&out)?;
                        so.flush()?;
                        Ok(String::new())
                    } else {
                        write_atomic(p, &out)?;
                        Ok("decrypted IN PLACE (plaintext!)".into())
                    }
                }))
            }
            Sub::Edit { path } => edit(&path),
            Sub::Rotate { paths } => {
                let ctx = Ctx::load()?;
                let paths = ctx.targets(paths);
                let ids = identities()?;
                Ok(each(&ctx, &paths, "rotate", |p| {
                    let bytes = read(p)?;
                    let format = Format::from_path(p);
                    let plain = sops::decrypt(&bytes, format, &ids, DecryptOptions::default())?;
                    let opts = ReencryptOptions {
                        recipients: None,
                        rotate: true,
                    };
                    let out = sops::reencrypt(&bytes, &plain, format, &ids, &opts)?;
                    write_atomic(p, &out)?;
                    Ok("new data key".into())
                }))
            }
            Sub::Updatekeys { paths } => {
                let ctx = Ctx::load()?;
                let paths = ctx.targets(paths);
                let ids = identities()?;
                Ok(each(&ctx, &paths, "updatekeys", |p| {
                    let bytes = read(p)?;
                    let format = Format::from_path(p);
                    let rule = ctx.config.rule_for(&ctx.config_dir, p)?;
                    let mut have = sops::recipients(&bytes, format)?;
                    let mut want = rule.age.clone();
                    have.sort();
                    want.sort();
                    if have == want {
                        return Ok("recipients up to date".into());
                    }
                    let plain = sops::decrypt(&bytes, format, &ids, DecryptOptions::default())?;
                    let opts = ReencryptOptions {
                        recipients: Some(rule.age.clone()),
                        rotate: false,
                    };
                    let out = sops::reencrypt(&bytes, &plain, format, &ids, &opts)?;
                    write_atomic(p, &out)?;
                    Ok(format!("now encrypted for {}", rule.age.join(", ")))
                }))
            }
            Sub::Check => {
                let ctx = Ctx::load()?;
                let ids = match identities() {
                    Ok(ids) => Some(ids),
                    Err(e) => {
                        eprintln!("check: warning: {e:#}; checking structure only");
                        None
                    }
                };
                let summary = files::check(&ctx.config_dir, &ctx.config, ids.as_ref());
                for p in &summary.problems {
                    let at = p.line.map(|l| format!(":{l}")).unwrap_or_default();
                    eprintln!("check: {}{at}: {}", ctx.rel(&p.file), p.reason);
                }
                // The gate's checker over what would ship: plaintext Secret
                // values anywhere, not only in the files a rule governs.
                let judged = crate::ship::gate::check_tree(
                    &ctx.config_dir,
                    ids.as_ref(),
                    None,
                    Some(&crate::user_cache("render")),
                )?;
                let said: std::collections::BTreeSet<String> =
                    summary.problems.iter().map(|p| ctx.rel(&p.file)).collect();
                let leaks: Vec<_> = judged
                    .refusals
                    .iter()
                    .filter(|r| !said.contains(&r.file))
                    .collect();
                for r in &leaks {
                    eprintln!("check: {r}");
                }
                for r in &judged.unrendered {
                    eprintln!("check: warning: {r}");
                }
                let n = summary.files;
                if !leaks.is_empty() {
                    eprintln!(
                        "check: {} problem(s) in the files that would ship or in what Flux would apply",
                        leaks.len() + summary.problems.len()
                    );
                    Ok(ExitCode::FAILURE)
                } else if summary.problems.is_empty() {
                    eprintln!(
                        "check: {n} file(s) managed by {} are well-formed and encrypted for their recipients; \
                         {} opened with your key (every value and the MAC verified), {} checked for structure only (no key here)",
                        ctx.rel(&ctx.config_path),
                        summary.verified,
                        n - summary.verified
                    );
                    Ok(ExitCode::SUCCESS)
                } else {
                    let failed: std::collections::BTreeSet<_> =
                        summary.problems.iter().map(|p| &p.file).collect();
                    eprintln!("check: {} of {n} file(s) failed", failed.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn edit(path: &Path) -> anyhow::Result<ExitCode> {
    let ids = identities()?;
    let bytes = read(path)?;
    let format = Format::from_path(path);
    let plain = sops::decrypt(&bytes, format, &ids, DecryptOptions::default())
        .with_context(|| format!("{}: cannot decrypt", path.display()))?;
    // A private dir (0700) in the system temp dir, never inside the repository.
    let dir = tempfile::Builder::new()
        .prefix("xtask-secrets-")
        .tempdir_in(std::env::temp_dir())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    }
    let name = path.file_name().context("no file name")?;
    let tmp = dir.path().join(name);
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(&tmp)?.write_all(&plain)?;
    }
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into());
    let mut parts = editor.split_whitespace();
    let program = parts.next().context("empty $EDITOR")?;
    let args: Vec<&str> = parts.collect();
    // On a terminal a broken edit reopens the editor, as sops does; without
    // one the edited plaintext is kept in the private temp file and named.
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    loop {
        let ran = exec::runner::Cmd::new(program).args(&args).arg(&tmp).run();
        let edited = std::fs::read(&tmp)?;
        if let Err(e) = ran {
            if edited != plain {
                let why = format!("the editor `{editor}` failed ({})", short_failure(&e));
                return keep_edit(dir, &tmp, path, &why);
            }
            bail!(
                "the editor `{editor}` failed ({}); {} is unchanged",
                short_failure(&e),
                path.display()
            );
        }
        if edited == plain {
            eprintln!("edit: {}: no changes, file left untouched", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        match sops::reencrypt(&bytes, &edited, format, &ids, &ReencryptOptions::default()) {
            Ok(out) => {
                write_atomic(path, &out)?;
                eprintln!(
                    "edit: {}: saved (unchanged values keep their ciphertext)",
                    path.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if interactive => {
                eprintln!(
                    "edit: {}: the edited file is not valid: {e}\nPress Enter to return to the editor and fix it, or Ctrl-C to give up ({} is unchanged).",
                    path.display(),
                    path.display()
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
            }
            Err(e) => {
                return keep_edit(
                    dir,
                    &tmp,
                    path,
                    &format!("the edited file is not valid: {e}"),
                );
            }
        }
    }
}

/// The runner's failure without its "see its output above": an editor that
/// printed nothing has no output to point at.
fn short_failure(e: &exec::runner::RunError) -> String {
    match e {
        exec::runner::RunError::Failed { status, .. } => status.clone(),
        other => other.to_string(),
    }
}

/// Keeps the private temp file holding the user's edit (0600 in a 0700
/// folder outside the repository), names it, and fails: the encrypted file
/// is untouched and no work is lost.
fn keep_edit(
    dir: tempfile::TempDir,
    tmp: &Path,
    path: &Path,
    why: &str,
) -> anyhow::Result<ExitCode> {
    let name = tmp.file_name().map(PathBuf::from).unwrap_or_default();
    let kept = dir.keep().join(name);
    eprintln!(
        "edit: {}: not saved: {why}\n\
         {} is unchanged. Your edit is kept in {} (plaintext, mode 0600, outside the repository):\n\
         fix it there and re-encrypt it with `cargo xtask secrets edit`, then delete it.",
        path.display(),
        path.display(),
        kept.display()
    );
    Ok(ExitCode::FAILURE)
}

/// What an environment's `.sops.yaml` rule names in its `path_regex`.
fn env_rule_path(env: &str) -> String {
    format!("clusters/{env}/")
}

fn random_dev_value() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn regenerate(ctx: &Ctx, env: &str, force: bool) -> anyhow::Result<ExitCode> {
    if env != "local" && !force {
        bail!(
            "regenerate replaces secrets with random development values; for env {env} pass --force if that is really intended"
        );
    }
    let idx = ctx.config.rule_index_naming(&env_rule_path(env))?;
    let rule = ctx.config.rules[idx].clone();
    let ids = identities()?;
    let paths: Vec<PathBuf> = files::managed_files(&ctx.config_dir, &ctx.config)
        .into_iter()
        .filter(|p| {
            ctx.config
                .rule_for(&ctx.config_dir, p)
                .is_ok_and(|r| r.path_regex == rule.path_regex)
        })
        .collect();
    if paths.is_empty() {
        eprintln!("regenerate: no files for env {env}");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(each(ctx, &paths, "regenerate", |p| {
        let bytes = read(p)?;
        let format = Format::from_path(p);
        if !sops::is_encrypted(&bytes, format) {
            bail!("not encrypted; run `cargo xtask secrets encrypt` instead");
        }
        if !force && let Ok(plain) = sops::decrypt(&bytes, format, &ids, DecryptOptions::default())
        {
            // Readable here: keep the values, only make sure the rule's recipients can read it.
            let mut have = sops::recipients(&bytes, format)?;
            let mut want = rule.age.clone();
            have.sort();
            want.sort();
            if have == want {
                return Ok("readable with your key, left as is (use --force to regenerate)".into());
            }
            let opts = ReencryptOptions {
                recipients: Some(rule.age.clone()),
                rotate: false,
            };
            let out = sops::reencrypt(&bytes, &plain, format, &ids, &opts)?;
            write_atomic(p, &out)?;
            return Ok(format!(
                "readable with your key: values kept, re-wrapped for {}",
                rule.age.join(", ")
            ));
        }
        let out = sops::regenerate(&bytes, format, &rule, &mut |_| random_dev_value())?;
        write_atomic(p, &out)?;
        Ok(format!(
            "regenerated with fresh development values for {}",
            rule.age.join(", ")
        ))
    }))
}

fn keygen(
    env: &str,
    keys_file: Option<PathBuf>,
    no_regenerate: bool,
    checkout: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load()?;
    let idx = ctx.config.rule_index_naming(&env_rule_path(env))?;
    let keys_file = keys_file
        .or_else(|| std::env::var_os("SOPS_AGE_KEY_FILE").map(PathBuf::from))
        .or_else(sops::default_keys_file)
        .context("cannot determine the user config directory; pass --keys-file")?;
    let keys_file = std::path::absolute(&keys_file)?;
    // Never a private key inside the repository.
    let parent = keys_file.parent().context("keys file has no parent")?;
    if !parent.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(parent)?;
    }
    let parent_real = parent.canonicalize()?;
    let checkout = checkout.and_then(|root| root.canonicalize().ok());
    for repo in [Some(ctx.config_dir.canonicalize()?), checkout]
        .into_iter()
        .flatten()
    {
        if parent_real.starts_with(&repo) {
            bail!(
                "refusing to write a private key inside the repository ({}); use ~/.config/sops/age/keys.txt",
                keys_file.display()
            );
        }
    }
    if env == "local" && holds_env_key(&ctx, idx)? {
        eprintln!(
            "keygen: your age identities already decrypt every local file; nothing to do (delete your local key first to start over)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (secret, recipient) = sops::generate_identity();
    let mut text = std::fs::read_to_string(&keys_file).unwrap_or_default();
    if !keys_file.exists() {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(&keys_file)?;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    text.push_str(&format!("# created: {now}\n# env: {env} (cargo xtask secrets keygen)\n# public key: {recipient}\n{secret}\n"));
    write_atomic(&keys_file, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o600))?;
    }
    eprintln!(
        "keygen: new age key for {env} appended to {} (mode 0600)",
        keys_file.display()
    );
    eprintln!("keygen: public key (recipient): {recipient}");

    let old = ctx.config.rules[idx].age.clone();
    let sops_text = std::fs::read_to_string(&ctx.config_path)?;
    let replace = env == "local";
    // Edited on the CST: comments, layout and the other rules stay; the
    // result is checked to read back with the intended recipients.
    let new_text = if replace && !old.is_empty() {
        sops::config::edit::replace_recipients(&sops_text, &old, std::slice::from_ref(&recipient))
    } else {
        sops::config::edit::add_recipient(&sops_text, &env_rule_path(env), &recipient)
    }
    .with_context(|| format!("cannot edit {}", ctx.rel(&ctx.config_path)))?;
    write_atomic(&ctx.config_path, new_text.as_bytes())?;
    eprintln!(
        "keygen: {} the {env} recipient in {}",
        if replace { "replaced" } else { "added" },
        ctx.rel(&ctx.config_path)
    );
    if replace && !no_regenerate {
        let ctx = Ctx::load()?;
        // The new key is in the keys file now; files it cannot read get regenerated.
        return regenerate(&ctx, env, false);
    }
    if !replace {
        eprintln!(
            "keygen: run `cargo xtask secrets updatekeys` on a machine that can decrypt the {env} files"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the user's identities open every existing file of rule `idx`, so
/// that a second `keygen --env local` is a no-op rather than a new key.
fn holds_env_key(ctx: &Ctx, idx: usize) -> anyhow::Result<bool> {
    // A keys file that does not exist yet is what a newcomer has.
    let Ok(ids) = sops::Identities::from_env() else {
        return Ok(false);
    };
    if ids.is_empty() {
        return Ok(false);
    }
    let rule = &ctx.config.rules[idx];
    let files: Vec<PathBuf> = sops::files::managed_files(&ctx.config_dir, &ctx.config)
        .into_iter()
        .filter(|f| {
            ctx.config
                .matching_rule(&ctx.config_dir, f)
                .is_some_and(|r| std::ptr::eq(r, rule))
        })
        .collect();
    if files.is_empty() {
        return Ok(false);
    }
    Ok(files.iter().all(|f| {
        std::fs::read(f).is_ok_and(|bytes| {
            let options = sops::DecryptOptions { ignore_mac: true };
            sops::decrypt(&bytes, sops::Format::from_path(f), &ids, options).is_ok()
        })
    }))
}
