//! `cargo xtask verify oci://HOST/REPO:TAG --key cosign.pub`: check that an
//! artifact carries a cosign signature by that key (as `cosign verify --key
//! --insecure-ignore-tlog` and Flux's `spec.verify` do) whose payload is an
//! image signature for that digest (and, with `--reference`, that
//! repository); refuse otherwise. Also the signing step `publish
//! --sign-key` and `promote --sign-key` share, and the key loading that
//! `promote --verify-key` shares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::package::{Output, RegistryAccess};
use oci_artifact::{Auth, RegistryRef, cosign};

#[derive(clap::Args)]
pub struct Args {
    /// The artifact: oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:...
    /// (no tag: latest).
    #[arg(value_name = "REFERENCE")]
    target: String,
    /// The cosign public key (PEM), as `cosign generate-key-pair` writes it;
    /// repeatable: a signature by any one of them is enough.
    #[arg(long = "key", value_name = "cosign.pub", required = true)]
    keys: Vec<PathBuf>,
    #[command(flatten)]
    reference: ReferenceCheck,
    #[command(flatten)]
    access: RegistryAccess,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

impl Args {
    pub fn run(self, _checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let (target, digest) = cosign::parse_target(&self.target)?;
        let keys = load_keys(&self.keys)?;
        let reference = self.reference.expected(&target);
        let auth = self.access.auth(&target.host)?;
        let verified = oci_artifact::Registry::new()?.verify(
            &target,
            digest.as_deref(),
            &keys,
            reference.as_deref(),
            &auth.auth,
            self.access.insecure,
        )?;
        match self.output {
            Output::Text => {
                eprintln!(
                    "verified: {} of {} signature(s) of {} match {}",
                    verified.verified,
                    verified.total,
                    verified.digest,
                    verified.signed_by.join(", ")
                );
                println!("{}", verified.reference);
            }
            Output::Json => println!("{}", serde_json::to_string_pretty(&verified)?),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `--reference[=HOST/REPO]`, shared by `verify` and `promote`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReferenceCheck {
    /// Also require the payload's `docker-reference` to be this repository
    /// (HOST/REPO; alone: the repository being verified), so a signature
    /// made for another repository does not count.
    #[arg(
        long,
        value_name = "HOST/REPO",
        num_args = 0..=1,
        default_missing_value = "",
        require_equals = true
    )]
    pub reference: Option<String>,
}

impl ReferenceCheck {
    /// The repository the payload must name, if any.
    pub fn expected(&self, target: &RegistryRef) -> Option<String> {
        self.reference.as_ref().map(|r| {
            if r.is_empty() {
                format!("{}/{}", target.host, target.repository)
            } else {
                r.trim_start_matches("oci://").to_string()
            }
        })
    }
}

/// The public keys a signature may be made with.
pub fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<cosign::TrustedKey>> {
    Ok(paths
        .iter()
        .map(|p| cosign::TrustedKey::load(p))
        .collect::<Result<_, _>>()?)
}

/// `--sign-key`, shared by `publish` and `promote`. Read and decrypted with
/// `COSIGN_PASSWORD` (set and empty means no password, as cosign reads it)
/// before anything is pushed, so a wrong password stops a publish early.
#[derive(clap::Args, Clone, Debug)]
pub struct SignKey {
    /// Sign the manifest digest with this cosign private key (password from
    /// COSIGN_PASSWORD), under its `sha256-<hex>.sig` tag.
    #[arg(long = "sign-key", value_name = "cosign.key")]
    pub path: Option<std::path::PathBuf>,
}

impl SignKey {
    /// The key, decrypted before anything is pushed; `None` without the flag.
    pub fn load(&self) -> anyhow::Result<Option<cosign::SigningKey>> {
        self.path.as_deref().map(load_signing_key).transpose()
    }
}

pub fn load_signing_key(path: &Path) -> anyhow::Result<cosign::SigningKey> {
    let password = std::env::var_os("COSIGN_PASSWORD").with_context(|| {
        format!(
            "--sign-key {}: set COSIGN_PASSWORD to the key's password (empty for none)",
            path.display()
        )
    })?;
    Ok(cosign::SigningKey::load(path, password.as_encoded_bytes())?)
}

/// Signs `digest` in `target`'s repository and says so on stderr.
pub fn sign_digest(
    registry: &oci_artifact::Registry,
    key: &cosign::SigningKey,
    target: &RegistryRef,
    digest: &str,
    auth: &Auth,
    insecure: bool,
) -> anyhow::Result<cosign::SignOutcome> {
    let outcome = registry.sign(target, digest, key, auth, insecure)?;
    let note = if outcome.already_signed {
        " (already signed by this key)".to_string()
    } else if outcome.attempts > 1 {
        format!(
            " (written {} times: another signer replaced the tag meanwhile, and was merged)",
            outcome.attempts
        )
    } else {
        String::new()
    };
    eprintln!(
        "signed {digest}: {} ({} signature(s)){note}",
        outcome.signature, outcome.layers
    );
    Ok(outcome)
}
