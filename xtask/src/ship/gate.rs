//! The secrets gate: what may never leave the repository in an artifact.
//!
//! It reads exactly the files that go into the artifact, once, and judges
//! those bytes with the one leak checker ([`crate::leaks`]); the tarball is
//! built from the same bytes, so a file changed in between cannot ship
//! unchecked. It refuses:
//! - a Secret value that is neither an `ENC[...]` value of a SOPS file its
//!   `.sops.yaml` rule covers nor made wholly by substitution from SOPS
//!   sources, in any file kustomize would read, or in any object the render
//!   of any cluster produces; a generator that reads a plaintext file; any
//!   file a `.sops.yaml` rule governs that is not SOPS-encrypted;
//! - a decrypted copy (`*.dec.*`, `*.decrypted*`) and a temp file an
//!   interrupted write left (`.xtask-*.tmp`);
//! - anything that looks like a private key (age identities, PEM private keys);
//! - a SOPS file that fails the integrity checker (truncated, tampered, a
//!   wrong MAC where the user's key opens it).
//!
//! There is no way around it: no flag ships plaintext.

use std::path::Path;

use oci_artifact::ArtifactError;
use oci_artifact::tree::{Kind, TreeEntry};
use sops::Identities;

pub use crate::leaks::Refusal;
use crate::leaks::{self, ShippedFile, files::Context};
use crate::validate::AllowList;

/// The bytes of every shipped file, read once, in entry order (`None` for
/// a folder).
pub struct Contents(Vec<Option<Vec<u8>>>);

impl Contents {
    /// Reads every file of `entries`.
    pub fn read(entries: &[TreeEntry]) -> Result<Contents, ArtifactError> {
        entries
            .iter()
            .map(|e| match e.kind {
                Kind::Dir => Ok(None),
                Kind::File { .. } => {
                    std::fs::read(&e.path)
                        .map(Some)
                        .map_err(|source| ArtifactError::Io {
                            path: e.path.clone(),
                            source,
                        })
                }
            })
            .collect::<Result<_, _>>()
            .map(Contents)
    }

    /// The bytes of the entry at `index`.
    pub fn get(&self, index: usize) -> &[u8] {
        self.0.get(index).and_then(Option::as_deref).unwrap_or(&[])
    }

    /// Each file's name and bytes, in entry order.
    pub fn files<'a>(
        &'a self,
        entries: &'a [TreeEntry],
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        entries
            .iter()
            .zip(&self.0)
            .filter_map(|(e, c)| Some((e.name.as_str(), c.as_deref()?)))
    }
}

/// The gate's verdict, in two parts.
#[derive(Debug, Default)]
pub struct Judged {
    /// What must not ship.
    pub refusals: Vec<Refusal>,
    /// The clusters that do not render, so could not be judged.
    pub unrendered: Vec<Refusal>,
}

impl Judged {
    /// Everything the gate refuses: an unrendered cluster too.
    pub fn all(self) -> Vec<Refusal> {
        let mut all = self.refusals;
        all.extend(self.unrendered);
        all
    }
}

/// Checks the entries that go into the artifact (from
/// [`oci_artifact::tree::collect`] over `root`) with the bytes read from
/// them, and renders every cluster (its verdict kept in `render_cache`).
/// `ids` open the SOPS files they can for a full check; the others get the
/// structural one.
pub fn check(
    root: &Path,
    entries: &[TreeEntry],
    contents: &Contents,
    ids: Option<&Identities>,
    render_cache: Option<&Path>,
) -> Judged {
    judge(root, entries, contents, ids, None, render_cache)
}

/// The gate over the files that would ship from `root`, walked and read
/// here, for `validate` and `secrets check`. `rendered` is the verdict on
/// the rendered clusters when the caller has it (validate renders while it
/// does its other checks); `None` renders every cluster here.
pub fn check_tree(
    root: &Path,
    ids: Option<&Identities>,
    rendered: Option<leaks::rendered::Verdict>,
    render_cache: Option<&Path>,
) -> Result<Judged, ArtifactError> {
    let entries = oci_artifact::tree::collect(root)?;
    let contents = Contents::read(&entries)?;
    let Some(rendered) = rendered else {
        return Ok(check(root, &entries, &contents, ids, render_cache));
    };
    Ok(check_with(
        root,
        &entries,
        &contents,
        ids,
        rendered,
        render_cache,
    ))
}

/// [`check`] with the verdict on the rendered clusters already in hand.
pub fn check_with(
    root: &Path,
    entries: &[TreeEntry],
    contents: &Contents,
    ids: Option<&Identities>,
    rendered: leaks::rendered::Verdict,
    render_cache: Option<&Path>,
) -> Judged {
    judge(root, entries, contents, ids, Some(rendered), render_cache)
}

/// The files judged, and the rendered clusters (rendered here, beside the
/// file checks, when `rendered` is `None`).
fn judge(
    root: &Path,
    entries: &[TreeEntry],
    contents: &Contents,
    ids: Option<&Identities>,
    rendered: Option<leaks::rendered::Verdict>,
    render_cache: Option<&Path>,
) -> Judged {
    let (mut refusals, allow, config) = setup(root);
    let memo = render_cache.map(files_memo);
    let files = || {
        check_files(
            root,
            entries,
            contents,
            ids,
            &allow,
            config.as_ref(),
            memo.as_deref(),
        )
    };
    let (found, rendered) = match rendered {
        Some(rendered) => (files(), rendered),
        // The render runs kustomize: it overlaps the file checks.
        None => std::thread::scope(|s| {
            let rendered = s.spawn(|| {
                leaks::rendered::check_cached(
                    root,
                    &flux_render::list_clusters(root),
                    &allow,
                    contents.files(entries),
                    render_cache,
                    // The kustomize builds that validate and build made are hits.
                    crate::kustomize_builder(crate::kustomize_cache_dir()).ok(),
                )
            });
            let found = files();
            let rendered = rendered
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (found, rendered)
        }),
    };
    refusals.extend(leaks::merge(found, rendered.refusals));
    Judged {
        refusals,
        unrendered: rendered.unrendered,
    }
}

/// The allow-list and `.sops.yaml`, and the refusals when either cannot be
/// read.
fn setup(root: &Path) -> (Vec<Refusal>, AllowList, Option<sops::Config>) {
    let mut refusals = Vec::new();
    let allow = match AllowList::load(root) {
        Ok(allow) => allow,
        Err(e) => {
            refusals.push(Refusal {
                file: crate::validate::ALLOW_FILE.into(),
                line: None,
                reason: format!("cannot be read ({e:#}), so no exemption can be trusted"),
                object: None,
            });
            AllowList::default()
        }
    };
    let config = leaks::load_config(root).unwrap_or_else(|r| {
        refusals.push(r);
        None
    });
    (refusals, allow, config)
}

/// Where the verdicts on single files are kept, beside the render's.
fn files_memo(render_cache: &Path) -> std::path::PathBuf {
    render_cache.join("files")
}

fn check_files(
    root: &Path,
    entries: &[TreeEntry],
    contents: &Contents,
    ids: Option<&Identities>,
    allow: &AllowList,
    config: Option<&sops::Config>,
    memo: Option<&Path>,
) -> Vec<Refusal> {
    let files: Vec<ShippedFile> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, Kind::File { .. }))
        .map(|(i, e)| ShippedFile {
            name: &e.name,
            path: &e.path,
            bytes: contents.get(i),
        })
        .collect();
    let ctx = Context {
        root,
        config,
        allow,
        ids,
        memo,
    };
    leaks::files::check(&ctx, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_about_the_sops_format_is_not_a_sops_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("NOTES.md"),
            "Values look like `ENC[AES256_GCM,data:...,type:str]` under a `sops:` block.\n",
        )
        .unwrap();
        assert!(
            check_tree(dir.path(), None, None, None)
                .unwrap()
                .all()
                .is_empty()
        );
    }

    #[test]
    fn only_files_that_can_spell_a_secret_are_parsed_and_no_spelling_is_missed() {
        // Each spelling passes the filter, and the checker then finds the leak.
        for (t, name) in [
            ("kind: Secret\nstringData:\n  a: b\n", "a.yaml"),
            (
                "{\"kind\":\"Secret\",\"stringData\":{\"a\":\"b\"}}",
                "a.json",
            ),
            ("kind: 'Secret'\nstringData:\n  a: b\n", "a.yaml"),
            ("kind: \"\\x53ecret\"\nstringData:\n  a: b\n", "a.yaml"),
            ("kind: \"\\u0053ecret\"\nstringData:\n  a: b\n", "a.yaml"),
            ("kind: !!str Secret\nstringData:\n  a: b\n", "a.yaml"),
            (
                "secretGenerator:\n- name: s\n  literals: [a=b]\n",
                "kustomization.yaml",
            ),
            (
                "secretGenerator:\n- name: s\n  literals: [a=b]\n",
                "Kustomization",
            ),
        ] {
            assert!(sops::might_hold_secret(t.as_bytes()), "{t}");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), t).unwrap();
            let found = check_tree(dir.path(), None, None, None).unwrap().all();
            assert_eq!(found.len(), 1, "{t}: {found:?}");
        }
        assert!(!sops::might_be_sops(b"kind: ConfigMap\ndata:\n  a: b\n"));
        for t in [
            "existingSecret: x\nsecretRef:\n  name: s\n",
            "kind: ConfigMap\n",
            "kind: SecretStore\n",
        ] {
            assert!(!sops::might_hold_secret(t.as_bytes()), "{t}");
        }
    }
}
