//! `cargo xtask promote`: point tags at a manifest the registry already has
//! (by tag or digest), without uploading a blob: the release step that moves
//! `prod` to the digest `main` published.

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
        let registry = oci_artifact::Registry::new()?;
        let outcome = registry.promote(
            &self.registry,
            &self.from,
            &self.to,
            &auth.auth,
            self.access.insecure,
        )?;
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
