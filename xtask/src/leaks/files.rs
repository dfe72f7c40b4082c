//! What the artifact carries: every shipped file, judged by what kustomize
//! would read from it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use sops::{Config, Format, Identities, integrity};

use super::read::{self, Object};
use super::{Refusal, object_name, wholly_substituted};
use crate::validate::AllowList;
use crate::validate::tree::KUSTOMIZATION_FILES;
use crate::validate::verdicts::{self, Store};

/// One file that ships: its name in the artifact, where it is, and the
/// bytes that are judged (and archived: the gate reads each file once).
#[derive(Clone, Copy, Debug)]
pub struct ShippedFile<'a> {
    /// Relative to the root, `/`-separated.
    pub name: &'a str,
    pub path: &'a Path,
    pub bytes: &'a [u8],
}

/// What the file checks need besides the files.
pub struct Context<'a> {
    pub root: &'a Path,
    pub config: Option<&'a Config>,
    pub allow: &'a AllowList,
    /// Open the SOPS files they can for the full check (values and MAC).
    pub ids: Option<&'a Identities>,
    /// Where each file's verdict is kept between runs (see [`Memo`]).
    pub memo: Option<&'a Path>,
}

/// Verdicts on single files, kept between runs in a folder: a file judged
/// alone (not a kustomization, whose generators read other files) with
/// the same bytes, name, `.sops.yaml`, allow-list, keys' recipients and
/// binary is not judged again. Without known recipients nothing is kept.
struct Memo {
    store: Store<Vec<Refusal>>,
    /// Everything but the file that its verdict depends on.
    context: String,
}

impl Memo {
    fn load(ctx: &Context) -> Option<Self> {
        let dir = ctx.memo?;
        let recipients = match ctx.ids {
            Some(ids) => ids.recipients()?,
            None => Vec::new(),
        };
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| crate::file_identity(&p))?;
        let read = |name: &str| std::fs::read(ctx.root.join(name)).unwrap_or_default();
        let context = verdicts::key(&[
            &binary,
            &hex::encode(read(".sops.yaml")),
            &hex::encode(read(crate::validate::ALLOW_FILE)),
            &recipients.join(","),
        ]);
        Some(Self {
            store: Store::load(Some(dir), verdicts::FILES, &binary),
            context,
        })
    }

    fn key(&self, file: &ShippedFile) -> String {
        use sha2::Digest;
        let bytes = hex::encode(sha2::Sha256::digest(file.bytes));
        verdicts::key(&[&self.context, file.name, &bytes])
    }
}

/// The first part of an age identity line, spelled in two halves so that
/// this source file itself holds no key-shaped text.
pub(crate) const AGE_IDENTITY_PREFIX: &str = concat!("AGE-SECRET", "-KEY-1");
const AGE_PLUGIN_IDENTITY_PREFIX: &str = concat!("AGE-PLUGIN", "-");

/// Checks every shipped file, on a few threads, in their order.
pub fn check(ctx: &Context, files: &[ShippedFile]) -> Vec<Refusal> {
    let by_name: BTreeMap<&str, &ShippedFile> = files.iter().map(|f| (f.name, f)).collect();
    let memo = Memo::load(ctx);
    let keys: Vec<Option<String>> = files
        .iter()
        .map(|f| memo.as_ref().map(|m| m.key(f)))
        .collect();
    let known: Vec<Option<Vec<Refusal>>> = keys
        .iter()
        .map(|k| memo.as_ref()?.store.get(k.as_ref()?))
        .collect();
    let pending: Vec<usize> = (0..files.len()).filter(|&i| known[i].is_none()).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = pending.len().div_ceil(threads).max(1);
    let by_name = &by_name;
    // (index, refusals, judged alone) of each file judged now.
    let mut judged: Vec<(usize, Vec<Refusal>, bool)> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = pending
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|&i| {
                            let (found, alone) = check_file(ctx, &files[i], by_name);
                            (i, found, alone)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(found) => judged.extend(found),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut fresh = Vec::new();
    let mut by_index: Vec<Vec<Refusal>> =
        known.into_iter().map(Option::unwrap_or_default).collect();
    for (i, found, alone) in judged {
        if alone && let Some(key) = &keys[i] {
            fresh.push((key.clone(), found.clone()));
        }
        by_index[i] = found;
    }
    if let Some(memo) = memo {
        let used: Vec<String> = keys.into_iter().flatten().collect();
        memo.store.save(fresh, &used);
    }
    by_index.into_iter().flatten().collect()
}

/// One file's refusals, and whether they depend on it alone (not on the
/// files a kustomization's generators read).
fn check_file(
    ctx: &Context,
    file: &ShippedFile,
    by_name: &BTreeMap<&str, &ShippedFile>,
) -> (Vec<Refusal>, bool) {
    let mut alone = true;
    let found = judge_file(ctx, file, by_name, &mut alone);
    (found, alone)
}

fn judge_file(
    ctx: &Context,
    file: &ShippedFile,
    by_name: &BTreeMap<&str, &ShippedFile>,
    alone: &mut bool,
) -> Vec<Refusal> {
    let refuse = |line, reason: String| Refusal {
        file: file.name.to_string(),
        line,
        reason,
        object: None,
    };
    let base = file.name.rsplit('/').next().unwrap_or(file.name);
    if base.starts_with(".xtask-") && base.ends_with(".tmp") {
        return vec![refuse(
            None,
            "a temp file left by an interrupted write (`secrets rotate`, `decrypt --in-place`, `edit`): it may hold plaintext; delete it (the verb removes its own on its next run)".into(),
        )];
    }
    if let Some(why) = decrypted_copy(file.name) {
        return vec![refuse(None, why)];
    }
    let text = read::decode(file.bytes);
    let lossy;
    let scan = match &text {
        Some(t) => t.as_str(),
        None => {
            lossy = String::from_utf8_lossy(file.bytes);
            &lossy
        }
    };
    if let Some((line, what)) = private_key(scan) {
        return vec![refuse(
            Some(line),
            format!("holds {what}: private keys never leave your machine; delete it"),
        )];
    }
    let Some(text) = text else {
        return Vec::new(); // binary: kustomize reads no object from it
    };
    let format = Format::from_path(file.path);
    if sops::looks_encrypted(file.bytes, format) {
        return sops_file(ctx, file, format, &text);
    }
    let governed = ctx
        .config
        .is_some_and(|c| sops::files::is_managed(ctx.root, c, file.path));
    if governed {
        return vec![refuse(
            None,
            "a .sops.yaml rule governs this file but it is not SOPS-encrypted: run `cargo xtask secrets encrypt` on it".into(),
        )];
    }
    // Only a file that can spell `Secret` or `secretGenerator` (in any
    // encoding or escape) can hold either: the others are not parsed.
    if !sops::might_hold_secret(file.bytes) && !sops::might_hold_secret(text.as_bytes()) {
        return Vec::new();
    }
    let (objects, unreadable) = read::objects(&text);
    let mut out = Vec::new();
    if manifest_name(base) {
        out.extend(unreadable.iter().map(|u| {
            refuse(
                Some(u.line),
                format!(
                    "cannot be read as YAML or JSON ({}), and it may hold a Secret that kustomize reads differently: fix the YAML",
                    u.message
                ),
            )
        }));
    }
    let kustomization = KUSTOMIZATION_FILES.contains(&base);
    for object in &objects {
        if is_secret(&object.value) {
            out.extend(plaintext_secret(ctx, file.name, object).map(|r| Refusal {
                object: Some(super::secret_key(&object.value)),
                ..refuse(Some(object.line), r)
            }));
        }
        if kustomization || is_kustomization_kind(&object.value) {
            *alone = false;
            out.extend(
                generators(ctx, file.name, object, by_name)
                    .into_iter()
                    .map(|r| refuse(Some(object.line), r)),
            );
            out.extend(
                inline_patches(ctx, file.name, object)
                    .into_iter()
                    .map(|r| refuse(Some(object.line), r)),
            );
        }
    }
    out
}

/// A name kustomize reads as a manifest.
fn manifest_name(base: &str) -> bool {
    let lower = base.to_ascii_lowercase();
    KUSTOMIZATION_FILES.contains(&base)
        || [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

fn is_secret(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Secret")
}

fn is_kustomization_kind(v: &Value) -> bool {
    matches!(
        v.get("kind").and_then(Value::as_str),
        Some("Kustomization" | "Component")
    ) && v
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|a| a.starts_with("kustomize.config.k8s.io/"))
}

/// The keys of a Secret whose values are plaintext: neither empty nor made
/// wholly by substitution, and not exempted in the allow-list.
pub(crate) fn plaintext_keys(
    secret: &Value,
    allowed: impl Fn(&str) -> bool,
    judge: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["data", "stringData"] {
        match secret.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (key, value) in m {
                    let ok = match value {
                        Value::Null => true,
                        Value::String(s) => judge(s),
                        _ => false,
                    };
                    if !ok && !allowed(key) {
                        out.push(format!("{field}.{key}"));
                    }
                }
            }
            Some(_) => out.push(field.to_string()),
        }
    }
    out
}

fn plaintext_secret(ctx: &Context, file: &str, object: &Object) -> Option<String> {
    let v = &object.value;
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let keys = plaintext_keys(
        v,
        |k| ctx.allow.allows_secret_key(Some(file), name, k),
        wholly_substituted,
    );
    if keys.is_empty() {
        return None;
    }
    let at = object
        .item
        .as_ref()
        .map(|i| format!(" (at {i})"))
        .unwrap_or_default();
    Some(format!(
        "Secret {}{at} holds plaintext values ({}): SOPS-encrypt it (`cargo xtask secrets encrypt`), or let Flux fill each value wholly from a SOPS-encrypted Secret with a `${{var}}` (no literal default)",
        object_name(v),
        keys.join(", ")
    ))
}

/// A SOPS file: the integrity checker, the governing rule's selection, and
/// every Secret value an `ENC[...]` token.
fn sops_file(ctx: &Context, file: &ShippedFile, format: Format, text: &str) -> Vec<Refusal> {
    let refuse = |line, reason: String| Refusal {
        file: file.name.to_string(),
        line,
        reason,
        object: None,
    };
    let report = integrity::check(file.bytes, format, ctx.ids);
    let mut out: Vec<Refusal> = report
        .findings
        .into_iter()
        .map(|f| {
            let hint = if f.message.contains("MAC mismatch") {
                " (the file was changed without re-encrypting; `cargo xtask secrets edit` it)"
            } else {
                ""
            };
            refuse(f.line, format!("a broken SOPS file: {}{hint}", f.message))
        })
        .collect();
    if !out.is_empty() {
        return out;
    }
    if let Some(rule) = ctx
        .config
        .and_then(|c| c.matching_rule(ctx.root, file.path))
    {
        out.extend(
            integrity::governed_plaintext(file.bytes, format, &rule.selection)
                .into_iter()
                .map(|f| {
                    refuse(
                        f.line,
                        format!(
                            "{}: re-encrypt it (`cargo xtask secrets encrypt`)",
                            f.message
                        ),
                    )
                }),
        );
    }
    if out.is_empty() && matches!(format, Format::Yaml | Format::Json) {
        let (objects, _) = read::objects(text);
        for object in objects.iter().filter(|o| is_secret(&o.value)) {
            let keys = plaintext_keys(
                &object.value,
                |_| false,
                |s| s.is_empty() || (s.starts_with("ENC[") && s.ends_with(']')),
            );
            if !keys.is_empty() {
                out.push(Refusal {
                    object: Some(super::secret_key(&object.value)),
                    ..refuse(
                        Some(object.line),
                        format!(
                            "Secret {} is in a SOPS file but holds plaintext values ({}): re-encrypt it with the repository's rule (`cargo xtask secrets encrypt`)",
                            object_name(&object.value),
                            keys.join(", ")
                        ),
                    )
                });
            }
        }
    }
    out
}

/// The generators of a kustomization: literals judged as Secret values,
/// and every file they read (`files`, `envs`, `env`) found by its
/// normalised path. A file they read ships, so it must be SOPS-encrypted.
fn generators(
    ctx: &Context,
    file: &str,
    object: &Object,
    by_name: &BTreeMap<&str, &ShippedFile>,
) -> Vec<String> {
    let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
    let mut out = Vec::new();
    for generator in object
        .value
        .get("secretGenerator")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let gen_name = generator.get("name").and_then(Value::as_str).unwrap_or("?");
        let leaked: Vec<String> = generator
            .get("literals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let l = l.as_str()?;
                let (key, value) = l.split_once('=').unwrap_or((l, ""));
                let value = value.trim_matches(|c| c == '"' || c == '\'');
                (!wholly_substituted(value)
                    && !ctx.allow.allows_secret_key(Some(file), gen_name, key))
                .then(|| key.to_string())
            })
            .collect();
        if !leaked.is_empty() {
            out.push(format!(
                "secretGenerator {gen_name} has plaintext literal(s) ({}): move them into a SOPS-encrypted file the generator reads, or a SOPS-encrypted Secret",
                leaked.join(", ")
            ));
        }
        for source in ["files", "envs", "env"] {
            let paths: Vec<&str> = match generator.get(source) {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(s)) => vec![s.as_str()],
                _ => Vec::new(),
            };
            for given in paths {
                // `key=path` or `path`, relative to the kustomization.
                let path = given.rsplit_once('=').map_or(given, |(_, p)| p);
                if let Some(why) = generator_source(ctx, dir, path, by_name) {
                    out.push(format!(
                        "secretGenerator {gen_name} {source} {given:?}: {why}"
                    ));
                }
            }
        }
    }
    out
}

/// Why the file a generator reads may not ship, if it may not.
fn generator_source(
    ctx: &Context,
    dir: &str,
    given: &str,
    by_name: &BTreeMap<&str, &ShippedFile>,
) -> Option<String> {
    if given.contains("://") {
        return Some(
            "a remote file is not read by Flux; keep it in the tree, SOPS-encrypted".into(),
        );
    }
    let Some(rel) = normalize(dir, given) else {
        return Some("the path leaves the tree: keep the file inside it, SOPS-encrypted".into());
    };
    // A symlink anywhere on the way: kustomize follows it, the artifact
    // does not carry it, and what it points at is not judged here.
    let mut at = PathBuf::from(ctx.root);
    for part in rel.split('/') {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(format!(
                "{} is a symlink: the generator must read a regular SOPS-encrypted file",
                rel
            ));
        }
    }
    let shipped = by_name.get(rel.as_str())?;
    let format = generator_format(&rel);
    if sops::looks_encrypted(shipped.bytes, format) {
        return None; // judged as a SOPS file on its own
    }
    Some(format!(
        "reads plaintext from {rel}, which ships: encrypt it (`cargo xtask secrets encrypt {rel}`); Flux decrypts generator files"
    ))
}

/// The store kustomize-controller decrypts a generator file with.
fn generator_format(rel: &str) -> Format {
    Format::from_path(Path::new(rel))
}

/// `dir/given` with `.` and `..` resolved, `None` when it leaves the root.
fn normalize(dir: &str, given: &str) -> Option<String> {
    let mut parts: Vec<String> = if given.starts_with('/') {
        return None;
    } else {
        dir.split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    for c in Path::new(given).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Inline patches (`patches[].patch`, `patchesStrategicMerge`) are YAML
/// documents of their own: a Secret in one is judged like any other.
fn inline_patches(ctx: &Context, file: &str, object: &Object) -> Vec<String> {
    let mut texts: Vec<&str> = Vec::new();
    for p in object
        .value
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = p.get("patch").and_then(Value::as_str) {
            texts.push(t);
        }
    }
    for p in object
        .value
        .get("patchesStrategicMerge")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if p.contains('\n') {
            texts.push(p);
        }
    }
    let mut out = Vec::new();
    for text in texts {
        let (objects, _) = read::objects(text);
        for o in objects.iter().filter(|o| is_secret(&o.value)) {
            if let Some(r) = plaintext_secret(ctx, file, o) {
                out.push(format!("an inline patch: {r}"));
            }
        }
    }
    out
}

/// `*.dec.*`, `*.dec`, `*.decrypted`, `*.decrypted.*`: the names decrypted
/// copies get (`sops -d x.enc.yaml > x.dec.yaml`).
pub(crate) fn decrypted_copy(name: &str) -> Option<String> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let parts: Vec<&str> = file.split('.').skip(1).collect();
    parts
        .iter()
        .any(|p| matches!(*p, "dec" | "decrypted"))
        .then(|| "a decrypted copy of a secret: plaintext never ships; delete it".to_string())
}

/// The line and kind of the first private key in the text.
pub(crate) fn private_key(text: &str) -> Option<(usize, &'static str)> {
    for (idx, line) in text.lines().enumerate() {
        if line.contains(AGE_IDENTITY_PREFIX) || line.contains(AGE_PLUGIN_IDENTITY_PREFIX) {
            return Some((idx + 1, "an age private key"));
        }
        let Some(begin) = line.find("-----BEGIN ") else {
            continue;
        };
        let label = line[begin + 11..].split("-----").next().unwrap_or("");
        if label.contains("PRIVATE KEY") {
            return Some((idx + 1, "a PEM private key"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_paths_are_normalised_and_kept_inside() {
        assert_eq!(
            normalize("apps/web", "./pw.txt").as_deref(),
            Some("apps/web/pw.txt")
        );
        assert_eq!(
            normalize("apps/web", "../x/pw.txt").as_deref(),
            Some("apps/x/pw.txt")
        );
        assert_eq!(normalize("", "a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("apps", "../../etc/passwd"), None);
        assert_eq!(normalize("apps", "/etc/passwd"), None);
    }

    #[test]
    fn decrypted_copies_are_named_so() {
        assert!(decrypted_copy("clusters/local/x.dec.yaml").is_some());
        assert!(decrypted_copy("a/x.enc.yaml.dec").is_some());
        assert!(decrypted_copy("a/x.decrypted.json").is_some());
        assert!(decrypted_copy("a/x.enc.yaml").is_none());
        assert!(decrypted_copy("a/decoder.yaml").is_none());
    }

    #[test]
    fn private_keys_are_found_by_their_armour() {
        let age = format!("# created: now\n{}QQQ\n", AGE_IDENTITY_PREFIX);
        assert_eq!(private_key(&age), Some((2, "an age private key")));
        let pem = "a: |\n  -----BEGIN EC PRIVATE KEY-----\n";
        assert_eq!(private_key(pem), Some((2, "a PEM private key")));
        assert!(private_key("-----BEGIN OPENSSH PRIVATE KEY-----").is_some());
        assert!(private_key("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----").is_some());
        assert_eq!(private_key("-----BEGIN PUBLIC KEY-----\n"), None);
        assert_eq!(private_key("-----BEGIN CERTIFICATE-----\n"), None);
    }
}
