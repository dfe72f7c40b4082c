//! `cargo xtask publish`: package the manifest tree and push it to an OCI
//! registry with oci-client. A no-op ("up to date") when every tag already
//! points at the same manifest digest; blobs already present are skipped;
//! tags are written last. Prints `oci://host/repo@sha256:...` on stdout.

use crate::ship::DirtyTree;
use std::process::ExitCode;
use std::time::Instant;

use super::package::{Output, PackageArgs, RegistryAccess};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pkg: PackageArgs,
    /// Where to push: oci://HOST/REPOSITORY. Plain http only for localhost,
    /// 127.0.0.1, [::1], or with --insecure.
    #[arg(
        long,
        env = "XTASK_REGISTRY",
        default_value = "oci://localhost:5050/manifests"
    )]
    registry: String,
    /// Tag to write; repeatable [default: the short commit sha and latest].
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    #[command(flatten)]
    access: RegistryAccess,
    /// Publish even though shipped files differ from the commit; the
    /// artifact is then tagged `<sha>-dirty-<content>`, never the commit's tag.
    #[arg(long)]
    allow_dirty: bool,
    #[command(flatten)]
    sign_key: super::verify::SignKey,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let started = Instant::now();
        let target = oci_artifact::RegistryRef::parse(&self.registry)?;
        let auth = self.access.auth(&target.host)?;
        if exec::runner::verbose() {
            eprintln!("credentials for {}: {}", target.host, auth.origin);
        }
        let signer = self.sign_key.load()?;
        let dirty = if self.allow_dirty {
            DirtyTree::Stamp
        } else {
            DirtyTree::Refuse
        };
        let registry = oci_artifact::Registry::new()?;
        // The registry is asked what it can tell before the artifact
        // exists (reads only) while the tree is walked, gated and packaged.
        let preflight = registry.preflight(&self.registry, &self.tags, &auth.auth);
        let shipment = self.pkg.ship(checkout, dirty)?;
        let tags = if self.tags.is_empty() && target.tag.is_none() {
            shipment.default_tags.clone()
        } else {
            self.tags.clone()
        };
        // The tag in --registry's reference is pushed too: check it as well.
        let mut all_tags = tags.clone();
        all_tags.extend(target.tag.clone());
        shipment.check_tags(&all_tags)?;
        let repackaged = shipment.packaged;
        let a = shipment.artifact;
        let packaged = started.elapsed();
        let progress = self.output == Output::Text;
        let outcome =
            registry.publish_after(preflight, &a, &tags, self.access.insecure, progress)?;
        if let Some(key) = &signer {
            super::verify::sign_digest(
                &registry,
                key,
                &target,
                &outcome.digest,
                &auth.auth,
                self.access.insecure,
            )?;
        }
        let took = started.elapsed();
        match self.output {
            Output::Text => {
                if outcome.up_to_date {
                    eprintln!(
                        "up to date: {} already at {} ({} ms)",
                        outcome.tags.join(", "),
                        outcome.digest,
                        took.as_millis()
                    );
                } else {
                    eprintln!(
                        "pushed {} blob(s), tagged {} ({} ms; packaging {} ms)",
                        outcome.pushed_blobs.len(),
                        outcome.pushed_tags.join(", "),
                        took.as_millis(),
                        packaged.as_millis()
                    );
                }
                println!("{}", outcome.reference);
            }
            Output::Json => {
                let mut v = serde_json::to_value(&outcome)?;
                v["duration_ms"] = serde_json::json!(took.as_millis() as u64);
                v["package_ms"] = serde_json::json!(packaged.as_millis() as u64);
                // false: an unchanged clean commit, taken from the ship cache.
                v["packaged"] = serde_json::json!(repackaged);
                v["layer_digest"] = serde_json::json!(a.layer_digest);
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
