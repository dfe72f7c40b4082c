//! `cargo xtask build`: render every Flux Kustomization of a cluster, as
//! `flux build kustomization` does, into `target/manifests/<cluster>/`, in
//! YAML that YAML 1.1 and 1.2 readers read alike ([`crate::yaml_out`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use rayon::prelude::*;

use crate::render::{self, RenderOptions, RenderedCluster};

#[derive(clap::Args)]
pub struct Args {
    /// The cluster to render (a folder under clusters/); repeatable.
    #[arg(long, short, default_value = "local", conflicts_with = "all")]
    cluster: Vec<String>,
    /// Render every cluster.
    #[arg(long)]
    all: bool,
    /// The tree to render (default: this repository).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where to write `<cluster>/<kustomization>.yaml`.
    #[arg(long, default_value = "target/manifests")]
    out: PathBuf,
    /// Substitute decrypted Secret values instead of `sops-redacted-*`
    /// placeholders. Refused when --out is inside the repository: plaintext
    /// secrets never land in the repo.
    #[arg(long)]
    reveal_secrets: bool,
    /// Render HelmReleases too, into `<cluster>/helm/<namespace>-<release>.yaml`.
    #[arg(long)]
    helm: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let repo = crate::project_root();
        let root = self.root.clone().unwrap_or_else(|| repo.clone());
        let out = if self.out.is_absolute() {
            self.out.clone()
        } else {
            repo.join(&self.out)
        };
        if self.reveal_secrets && (is_inside(&out, &repo) || is_inside(&out, &root)) {
            bail!(
                "--reveal-secrets writes plaintext secret values; give an --out outside the repository ({})",
                root.display()
            );
        }
        let clusters = if self.all {
            render::list_clusters(&root)
        } else {
            self.cluster.clone()
        };
        if clusters.is_empty() {
            bail!(
                "no clusters found under {}",
                root.join("clusters").display()
            );
        }
        let opts = RenderOptions {
            decryptor: flux_decryptor(),
            reveal_secrets: self.reveal_secrets,
        };

        let started = Instant::now();
        let results: Vec<(String, Result<RenderedCluster, render::RenderError>)> = clusters
            .par_iter()
            .map(|c| (c.clone(), render::render_cluster(&root, c, &opts)))
            .collect();

        let mut failed = 0;
        for (cluster, result) in results {
            match result {
                Ok(rendered) => {
                    write_cluster(&out.join(&cluster), &rendered)
                        .with_context(|| format!("writing {}", out.join(&cluster).display()))?;
                    print_summary(&rendered, &out);
                    if self.helm {
                        let helm =
                            crate::helm::HelmOptions::from_env().decrypting(opts.decryptor.clone());
                        crate::helm::render_releases(&rendered, &out.join(&cluster), &helm)?;
                    }
                }
                Err(err) => {
                    failed += 1;
                    eprintln!("error: cluster {cluster}: {err}");
                }
            }
        }
        eprintln!(
            "rendered {} cluster(s) in {:.2}s",
            clusters.len() - failed,
            started.elapsed().as_secs_f64()
        );
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

fn is_inside(path: &Path, root: &Path) -> bool {
    let canonical = |p: &Path| {
        // The out dir may not exist yet: resolve its nearest existing ancestor.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_owned());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or(existing);
        resolved.extend(rest.iter().rev());
        resolved
    };
    canonical(path).starts_with(canonical(root))
}

/// Writes one multi-document YAML per Kustomization, replacing the folder so
/// that a renamed Kustomization leaves no stale file behind.
fn write_cluster(dir: &Path, rendered: &RenderedCluster) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    crate::fsutil::write_atomic(
        &dir.join("flux-system.yaml"),
        crate::yaml_out::to_stream(&rendered.root_objects).as_bytes(),
    )?;
    for k in &rendered.kustomizations {
        crate::fsutil::write_atomic(
            &dir.join(format!("{}.yaml", k.flux.name)),
            crate::yaml_out::to_stream(&k.objects).as_bytes(),
        )?;
    }
    Ok(())
}

fn print_summary(rendered: &RenderedCluster, out: &Path) {
    for warning in &rendered.warnings {
        eprintln!("warning: cluster {}: {warning}", rendered.name);
    }
    println!(
        "{} -> {}",
        rendered.name,
        out.join(&rendered.name).display()
    );
    for k in &rendered.kustomizations {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &k.objects {
            *kinds
                .entry(o.get("kind").and_then(|k| k.as_str()).unwrap_or("?"))
                .or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  {:<28} {:>4} objects  {:>6.2}s  {}",
            k.flux.name,
            k.objects.len(),
            k.elapsed.as_secs_f64(),
            kinds.join(", ")
        );
    }
}

/// Decrypts SOPS Secrets with the user's age identities, when there are any.
/// A broken keys source is a warning: rendering goes on with placeholders.
fn flux_decryptor() -> Option<render::Decryptor> {
    match crate::sops::Identities::from_env() {
        Ok(ids) if !ids.is_empty() => Some(std::sync::Arc::new(move |object| {
            crate::sops::decrypt_object(object, &ids).map_err(|e| e.to_string())
        })),
        Ok(_) => None,
        Err(err) => {
            eprintln!("warning: cannot load age identities: {err}");
            None
        }
    }
}
