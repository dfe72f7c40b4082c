//! `cargo xtask package`: the manifest tree as a reproducible Flux OCI
//! artifact in an OCI image layout folder, or `--inspect` of an artifact.
//!
//! What goes in: see `oci_artifact` (built-in excludes, `.gitignore`,
//! `.sourceignore`). `--list` prints the tarball's entries.

use crate::ship::{self, DirtyTree, ShipOptions, Shipment};
use anyhow::Context;
use sops::Identities;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// How to reach a registry; shared by `publish`, `promote` and `package --inspect`.
#[derive(clap::Args, Clone, Debug)]
pub struct RegistryAccess {
    /// Credentials, USER:TOKEN. Else REGISTRY_USERNAME/REGISTRY_PASSWORD,
    /// GITHUB_TOKEN for ghcr.io, then the docker config and its helpers.
    #[arg(long, value_name = "USER:TOKEN")]
    pub creds: Option<String>,
    /// Allow plain http to a registry that is not local (localhost,
    /// 127.0.0.1 and [::1] always use it).
    #[arg(long)]
    pub insecure: bool,
}

impl RegistryAccess {
    /// The credentials for `host`, found as docker finds them.
    pub fn auth(&self, host: &str) -> anyhow::Result<oci_artifact::Resolved> {
        Ok(oci_artifact::resolve_auth(host, self.creds.as_deref())?)
    }
}

/// What to package and how to stamp it; shared with `publish`.
#[derive(clap::Args, Clone, Debug)]
pub struct PackageArgs {
    /// The tree to package [default: the repository root].
    #[arg(long = "root", alias = "path", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// `org.opencontainers.image.created` (RFC 3339) [default: the commit time].
    #[arg(long, value_name = "RFC3339")]
    pub created: Option<String>,
    /// `org.opencontainers.image.source`, an https URL [default: the `origin`
    /// remote as https; left out when there is none].
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// `org.opencontainers.image.revision` [default: `<branch>@sha1:<commit>`,
    /// with `-dirty-<content>` appended when shipped files differ from it].
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
}

impl PackageArgs {
    /// Walks the tree, runs the secrets gate over exactly the files that go
    /// in, and packages them (see `xtask::ship`).
    pub fn ship(&self, checkout: &crate::Checkout, dirty: DirtyTree) -> anyhow::Result<Shipment> {
        let root = checkout.tree(self.root.clone())?;
        let ids = match Identities::from_env() {
            Ok(ids) => Some(ids),
            Err(e) => {
                eprintln!("warning: {e}; SOPS files are checked for structure only");
                None
            }
        };
        // A large tree takes a while to walk, check and compress: show it.
        let spinner = if std::io::stderr().is_terminal() {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_message(format!("packaging {}", root.display()));
            pb.tick(); // drawn at once, not only after the first tick
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            pb
        } else {
            indicatif::ProgressBar::hidden()
        };
        let shipment = ship::prepare(
            &ShipOptions {
                root,
                dirty,
                source: self.source.clone(),
                revision: self.revision.clone(),
                created: self.created.clone(),
                cache: crate::ship::cache::location(checkout.root().ok()),
            },
            ids.as_ref(),
        );
        spinner.finish_and_clear();
        let shipment = shipment?;
        for w in &shipment.warnings {
            eprintln!("warning: {w}");
        }
        Ok(shipment)
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pkg: PackageArgs,
    /// The OCI image layout folder to write (relative to the repository root).
    #[arg(long, default_value = "target/oci", value_name = "DIR")]
    out: PathBuf,
    /// Tag(s) to name the artifact in the layout; repeatable [default: short sha and latest].
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Print the tarball's entries instead of writing the layout.
    #[arg(long)]
    list: bool,
    /// Read an artifact and print its manifest, annotations and files:
    /// oci://HOST/REPO[:TAG] (a registry), oci:DIR[:TAG] or DIR (a layout).
    #[arg(long, value_name = "REF")]
    inspect: Option<String>,
    /// For --inspect of a registry.
    #[command(flatten)]
    access: RegistryAccess,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        if let Some(reference) = &self.inspect {
            return inspect(reference, &self.access, self.output);
        }
        let shipment = self.pkg.ship(checkout, DirtyTree::Stamp)?;
        let tags = if self.tags.is_empty() {
            shipment.default_tags.clone()
        } else {
            self.tags.clone()
        };
        for t in &tags {
            oci_artifact::validate_tag(t)?;
        }
        shipment.check_tags(&tags)?;
        let a = shipment.artifact;
        if self.list {
            match self.output {
                Output::Text => {
                    for e in &a.entries {
                        println!("{e}");
                    }
                }
                Output::Json => println!("{}", serde_json::to_string_pretty(&a.entries)?),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let out = checkout.resolve(&self.out);
        for t in &tags {
            oci_artifact::write_oci_layout(&a, &out, t)
                .with_context(|| format!("writing the OCI layout {}", out.display()))?;
        }
        match self.output {
            Output::Text => {
                println!(
                    "wrote {} ({} entries; tags {})",
                    out.display(),
                    a.entries.len(),
                    tags.join(", ")
                );
                println!("manifest {}", a.manifest_digest);
                println!("layer    {} ({} bytes)", a.layer_digest, a.layer.len());
            }
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "out": out,
                    "tags": tags,
                    "manifest_digest": a.manifest_digest,
                    "layer_digest": a.layer_digest,
                    "layer_size": a.layer.len(),
                    "entries": a.entries.len(),
                }))?
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Splits `oci:DIR[:TAG]` / `DIR[:TAG]` into the folder and the tag.
fn layout_ref(reference: &str) -> (PathBuf, Option<String>) {
    let s = reference.strip_prefix("oci:").unwrap_or(reference);
    if Path::new(s).is_dir() {
        return (PathBuf::from(s), None);
    }
    match s.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') && !tag.is_empty() => {
            (PathBuf::from(dir), Some(tag.to_string()))
        }
        _ => (PathBuf::from(s), None),
    }
}

fn inspect(reference: &str, access: &RegistryAccess, output: Output) -> anyhow::Result<ExitCode> {
    let insp = if reference.contains("://") {
        let r = oci_artifact::RegistryRef::parse(reference)?;
        let auth = access.auth(&r.host)?;
        oci_artifact::Registry::new()?.inspect(reference, &auth.auth, access.insecure)?
    } else {
        let (dir, tag) = layout_ref(reference);
        oci_artifact::inspect_layout(&dir, tag.as_deref())?
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&insp)?),
        Output::Text => {
            println!("digest: {}", insp.digest);
            println!("config: {}", insp.config_media_type);
            println!("layer:  {} {}", insp.layer_media_type, insp.layer_digest);
            println!("annotations:");
            for (k, v) in &insp.annotations {
                println!("  {k}: {v}");
            }
            println!("manifest:");
            println!("{}", serde_json::to_string_pretty(&insp.manifest)?);
            println!("files:");
            for f in &insp.files {
                println!("  {f}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_refs_split_the_tag() {
        assert_eq!(
            layout_ref("oci:/nonexistent/oci:v1"),
            (PathBuf::from("/nonexistent/oci"), Some("v1".into()))
        );
        assert_eq!(
            layout_ref("/nonexistent/oci"),
            (PathBuf::from("/nonexistent/oci"), None)
        );
    }
}
