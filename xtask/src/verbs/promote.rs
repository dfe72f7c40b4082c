//! `cargo xtask promote`: point tags at a manifest the registry already has
//! (by tag or digest), without uploading a blob: the release step that moves
//! `prod` to the digest `main` published. With `--verify-key` the source is
//! resolved once, its digest verified, and only that digest is tagged.

use std::process::ExitCode;

use super::package::{Output, RegistryAccess};

#[derive(clap::Args)]
pub struct Args {
    /// The repository: oci://HOST/REPOSITORY.
    #[arg(long, env = "XTASK_REGISTRY", value_name = "oci://HOST/REPO")]
    registry: String,
    /// The manifest to promote: a tag, or a digest (sha256:...).
    #[arg(long, value_name = "TAG|DIGEST")]
    from: String,
    /// A tag to point at it; repeatable.
    #[arg(long = "to", value_name = "TAG", required = true)]
    to: Vec<String>,
    /// Verify the source before any tag moves: it must carry a cosign
    /// signature by one of these public keys; repeatable.
    #[arg(long = "verify-key", value_name = "cosign.pub")]
    verify_keys: Vec<std::path::PathBuf>,
    #[command(flatten)]
    reference: super::verify::ReferenceCheck,
    #[command(flatten)]
    access: RegistryAccess,
    #[command(flatten)]
    sign_key: super::verify::SignKey,
    /// How to print what moved.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Args {
    pub fn run(self, _checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let target = oci_artifact::RegistryRef::parse(&self.registry)?;
        let auth = self.access.auth(&target.host)?;
        let signer = self.sign_key.load()?;
        if self.reference.reference.is_some() && self.verify_keys.is_empty() {
            anyhow::bail!("--reference checks a signature: give the keys with --verify-key");
        }
        let verification = oci_artifact::Verification {
            keys: super::verify::load_keys(&self.verify_keys)?,
            reference: self.reference.expected(&target),
        };
        if verification.keys.is_empty() {
            eprintln!(
                "warning: no --verify-key: promoting {} without checking who signed it",
                self.from
            );
        }
        let registry = oci_artifact::Registry::new()?;
        let outcome = registry.promote(
            &self.registry,
            &self.from,
            &self.to,
            &verification,
            &auth.auth,
            self.access.insecure,
        )?;
        if !outcome.verified_by.is_empty() {
            eprintln!(
                "verified {}: signed by {}",
                outcome.digest,
                outcome.verified_by.join(", ")
            );
        }
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
        match self.output {
            Output::Text => {
                for t in &outcome.tags {
                    let old = t.old.as_deref().unwrap_or("(none)");
                    let note = if t.changed { "" } else { " (unchanged)" };
                    eprintln!("{}: {old} -> {}{note}", t.tag, t.new);
                }
                println!("{}", outcome.reference);
            }
            Output::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        }
        Ok(ExitCode::SUCCESS)
    }
}
