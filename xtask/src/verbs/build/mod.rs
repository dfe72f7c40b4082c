//! `cargo xtask build`: render every Flux Kustomization of a cluster, as
//! `flux build kustomization` does, into `target/manifests/<cluster>/`, in
//! YAML that YAML 1.1 and 1.2 readers read alike ([`flux_render::yaml_out`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use rayon::prelude::*;

use std::sync::Arc;

mod out_dir;

use flux_render::{RenderOptions, RenderedCluster};
use sops::Identities;
use sops::files::{self, CheckProblem};

#[derive(clap::Args)]
pub struct Args {
    /// The cluster to render (a folder under clusters/); repeatable
    /// [default: every cluster].
    #[arg(long, short, value_name = "NAME", conflicts_with = "all")]
    cluster: Vec<String>,
    /// Render every cluster (the default).
    #[arg(long)]
    all: bool,
    /// The tree to render [default: this repository].
    #[arg(long, value_name = "DIR")]
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
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let root = checkout.tree(self.root.clone())?;
        let out = checkout.resolve(&self.out);
        let inside_checkout = checkout.root().is_ok_and(|repo| is_inside(&out, repo));
        if self.reveal_secrets && (inside_checkout || is_inside(&out, &root)) {
            bail!(
                "--reveal-secrets writes plaintext secret values; give an --out outside the repository ({})",
                root.display()
            );
        }
        let clusters = if self.all || self.cluster.is_empty() {
            flux_render::list_clusters(&root)
        } else {
            self.cluster.clone()
        };
        if clusters.is_empty() {
            bail!(
                "no clusters found: looked for folders holding manifests under {} (a cluster is clusters/<name>/, with a kustomization.yaml, a flux-system/gotk-sync.yaml, a FluxInstance, or plain manifests)",
                root.join("clusters").display()
            );
        }
        // The default under the checkout's target/ may predate the manifest.
        let adopt = checkout
            .root()
            .is_ok_and(|repo| is_inside(&out, &repo.join("target")));
        let mut out_dir = out_dir::OutDir::open(&out, adopt)?;
        let ids = user_identities();
        let opts = RenderOptions {
            decryptor: flux_decryptor(ids.clone()),
            reveal_secrets: self.reveal_secrets,
            kustomize: Some(crate::kustomize_builder(crate::kustomize_cache_dir())?),
            trace: None,
        };

        let started = Instant::now();
        let results: Vec<(
            String,
            Vec<CheckProblem>,
            Result<RenderedCluster, flux_render::RenderError>,
        )> = clusters
            .par_iter()
            .map(|c| {
                (
                    c.clone(),
                    broken_sops(&root, c, ids.as_deref()),
                    flux_render::render_closure(&root, c, &opts),
                )
            })
            .collect();

        let mut failed = 0;
        for (cluster, broken, result) in results {
            if !broken.is_empty() {
                failed += 1;
                eprintln!(
                    "error: cluster {cluster}: {}",
                    describe_broken(&root, &broken)
                );
                continue;
            }
            match result {
                Ok(rendered) => {
                    print_summary(&rendered, &out);
                    for failure in &rendered.failures {
                        let error = failure.error.to_string();
                        if error.starts_with("Kustomization ") {
                            eprintln!("error: cluster {cluster}: {error}");
                        } else {
                            eprintln!(
                                "error: cluster {cluster}: Kustomization {}: {error}",
                                qualified(&failure.flux, &rendered)
                            );
                        }
                    }
                    if !rendered.failures.is_empty() {
                        failed += 1;
                    }
                    let mut files = cluster_files(&rendered);
                    if self.helm {
                        let helm = crate::helm_options().decrypting(opts.decryptor.clone());
                        files.extend(helm_files(&rendered, &helm));
                    }
                    out_dir
                        .replace(&cluster, &files)
                        .with_context(|| format!("writing {}", out.join(&cluster).display()))?;
                }
                Err(err) => {
                    failed += 1;
                    eprintln!("error: cluster {cluster}: {err}");
                }
            }
        }
        eprintln!(
            "rendered {} of {} cluster(s) without errors in {:.2}s",
            clusters.len() - failed,
            clusters.len(),
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

/// One multi-document YAML per Kustomization, by path under the out folder.
fn cluster_files(rendered: &RenderedCluster) -> Vec<(String, Vec<u8>)> {
    let cluster = &rendered.name;
    let mut files = vec![(
        format!("{cluster}/flux-system.yaml"),
        flux_render::yaml_out::to_stream(&rendered.root_objects).into_bytes(),
    )];
    for k in &rendered.kustomizations {
        files.push((
            format!("{cluster}/{}", output_name(rendered, &k.flux)),
            flux_render::yaml_out::to_stream(&k.objects).into_bytes(),
        ));
    }
    files
}

/// `--helm`: one file per release that renders, under `<cluster>/helm/`;
/// a release that fails is reported, not fatal.
fn helm_files(
    rendered: &RenderedCluster,
    helm: &flux_render::helm::HelmOptions,
) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for r in flux_render::helm::render_cluster(rendered, helm) {
        match &r.result {
            Ok(objects) => {
                println!("{}", flux_render::helm::release_summary(&r, objects.len()));
                files.push((
                    format!(
                        "{}/helm/{}",
                        rendered.name,
                        flux_render::helm::release_file(&r)
                    ),
                    flux_render::to_yaml_stream(objects).into_bytes(),
                ));
            }
            Err(err) => eprintln!(
                "error: cluster {}: HelmRelease {}/{}: {err}",
                rendered.name, r.namespace, r.name
            ),
        }
    }
    files
}

/// `<name>.yaml`, or `<namespace>-<name>.yaml` when another namespace
/// holds a Kustomization of the same name (tenants).
pub(crate) fn output_name(
    rendered: &RenderedCluster,
    flux: &flux_render::FluxKustomization,
) -> String {
    let shared = rendered
        .kustomizations
        .iter()
        .filter(|k| k.flux.name == flux.name)
        .count()
        > 1
        || (flux.name == "flux-system" && flux.namespace != rendered.root.namespace);
    if shared {
        format!("{}-{}.yaml", flux.namespace, flux.name)
    } else {
        format!("{}.yaml", flux.name)
    }
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
    if let Some(sync) = &rendered.sync {
        println!("  {}", sync.describe());
    }
    for k in &rendered.kustomizations {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &k.objects {
            *kinds
                .entry(o.get("kind").and_then(|k| k.as_str()).unwrap_or("?"))
                .or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let from = match &k.flux.source_ref {
            Some((kind, name)) if kind == "ExternalArtifact" => {
                format!("  (from ExternalArtifact {name}, assembled from the tree)")
            }
            _ => String::new(),
        };
        println!(
            "  {:<28} {:>4} objects  {:>6.2}s  {}{from}",
            qualified(&k.flux, rendered),
            k.objects.len(),
            k.elapsed.as_secs_f64(),
            kinds.join(", ")
        );
    }
    for s in &rendered.skipped {
        println!(
            "  {:<28} skipped: {}",
            qualified(&s.flux, rendered),
            s.reason
        );
    }
    for f in &rendered.failures {
        println!("  {:<28} FAILED (see below)", qualified(&f.flux, rendered));
    }
}

/// The name, with its namespace when that is not the root's.
fn qualified(flux: &flux_render::FluxKustomization, rendered: &RenderedCluster) -> String {
    if flux.namespace == rendered.root.namespace {
        flux.name.clone()
    } else {
        format!("{}/{}", flux.namespace, flux.name)
    }
}

/// The user's age identities; a broken keys source is a warning, and
/// rendering goes on with placeholders.
pub(crate) fn user_identities() -> Option<Arc<Identities>> {
    match Identities::from_env() {
        Ok(ids) if !ids.is_empty() => Some(Arc::new(ids)),
        Ok(_) => None,
        Err(err) => {
            eprintln!("warning: cannot load age identities: {err}");
            None
        }
    }
}

/// Decrypts SOPS Secrets with the user's age identities, when there are any.
pub(crate) fn flux_decryptor(ids: Option<Arc<Identities>>) -> Option<flux_render::Decryptor> {
    let ids = ids?;
    Some(Arc::new(move |object| {
        sops::decrypt_object(object, &ids).map_err(Into::into)
    }))
}

/// The SOPS files a cluster renders from (its folder and the shared ones)
/// that are broken. One that no key here opens is not: it renders as
/// placeholders with a warning; one that a key opens but fails its MAC or a
/// value, or that is malformed, is an error.
pub(crate) fn broken_sops(
    root: &Path,
    cluster: &str,
    ids: Option<&Identities>,
) -> Vec<CheckProblem> {
    let mut dirs = vec![root.join("clusters").join(cluster)];
    dirs.extend(
        crate::MANIFEST_DIRS
            .iter()
            .filter(|d| **d != "clusters")
            .map(|d| root.join(d)),
    );
    files::broken_files(&dirs, ids)
}

/// "N broken SOPS file(s)" with each file, line and reason.
pub(crate) fn describe_broken(root: &Path, broken: &[CheckProblem]) -> String {
    let lines: Vec<String> = broken
        .iter()
        .map(|p| {
            let rel = p.file.strip_prefix(root).unwrap_or(&p.file).display();
            match p.line {
                Some(line) => format!("  {rel}:{line}: {}", p.reason),
                None => format!("  {rel}: {}", p.reason),
            }
        })
        .collect();
    format!(
        "broken SOPS file(s), nothing rendered (a key opens them, or their structure is damaged):\n{}",
        lines.join("\n")
    )
}
