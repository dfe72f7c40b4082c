//! The blocking face of the registry code: one [`Registry`] owns the one
//! tokio runtime (current thread) and the oci-client clients, one per host,
//! so that a publish that also signs connects once. Verbs and cluster code
//! call these methods; async stays inside this module's siblings. A
//! [`Preflight`] drives the same runtime from a thread of its own while the
//! caller makes the artifact, and the publish reuses its connections.

use std::sync::Arc;

use super::auth::Auth;
use super::cosign::{self, CosignError, SignOutcome, SigningKey, TrustedKey, Verified};
use super::promote::{PromoteError, PromoteOutcome, Verification};
use super::registry::{Answers, Clients, Inspection, PublishOutcome, RegistryRef};
use super::{Artifact, ArtifactError};

/// The registry operations, blocking.
pub struct Registry {
    // Shared with a preflight's thread.
    rt: Arc<tokio::runtime::Runtime>,
    clients: Arc<Clients>,
}

/// What a publish asks of the registry while its artifact is still being
/// made ([`Registry::preflight`]).
pub struct Preflight {
    reference: String,
    auth: Auth,
    answers: std::thread::JoinHandle<Option<Answers>>,
}

impl Registry {
    /// Starts the runtime; no connection is made before the first call.
    pub fn new() -> Result<Self, ArtifactError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ArtifactError::Runtime)?;
        Ok(Self {
            rt: Arc::new(rt),
            clients: Arc::default(),
        })
    }

    /// Starts asking, on a thread of its own, what a publish of `tags` to
    /// `reference` can know before its artifact exists, so that only the
    /// uploads wait for the artifact. Only reads, and only of an anonymous
    /// registry on this machine; a failed question is asked again by the
    /// publish. Hand it to [`Registry::publish_after`].
    pub fn preflight(&self, reference: &str, tags: &[String], auth: &Auth) -> Preflight {
        let (rt, clients) = (self.rt.clone(), self.clients.clone());
        let (given, tags, asking) = (reference.to_string(), tags.to_vec(), auth.clone());
        let answers = std::thread::spawn(move || {
            rt.block_on(super::registry::preflight(&clients, &given, &tags, &asking))
        });
        Preflight {
            reference: reference.to_string(),
            auth: auth.clone(),
            answers,
        }
    }

    /// Pushes `a` to `reference` (`oci://host/repo`) under every tag in
    /// `tags`; see [`super::registry`] for the order of operations.
    pub fn publish(
        &self,
        a: &Artifact,
        reference: &str,
        tags: &[String],
        auth: &Auth,
        insecure: bool,
        progress: bool,
    ) -> Result<PublishOutcome, ArtifactError> {
        self.rt.block_on(super::registry::publish(
            &self.clients,
            a,
            reference,
            tags,
            auth,
            insecure,
            progress,
            None,
        ))
    }

    /// [`Registry::publish`] to the reference and with the credentials
    /// `preflight` was started for, using what it learned.
    pub fn publish_after(
        &self,
        preflight: Preflight,
        a: &Artifact,
        tags: &[String],
        insecure: bool,
        progress: bool,
    ) -> Result<PublishOutcome, ArtifactError> {
        let answers = preflight.answers.join().ok().flatten();
        self.rt.block_on(super::registry::publish(
            &self.clients,
            a,
            &preflight.reference,
            tags,
            &preflight.auth,
            insecure,
            progress,
            answers,
        ))
    }

    /// Reads an artifact back: `oci://host/repo[:tag]` (default `latest`).
    pub fn inspect(
        &self,
        reference: &str,
        auth: &Auth,
        insecure: bool,
    ) -> Result<Inspection, ArtifactError> {
        self.rt.block_on(super::registry::inspect_registry(
            &self.clients,
            reference,
            auth,
            insecure,
        ))
    }

    /// Points every tag of `to` at the manifest `from` (a tag or digest)
    /// names, resolved once and verified first when `verify` has keys.
    pub fn promote(
        &self,
        registry: &str,
        from: &str,
        to: &[String],
        verify: &Verification,
        auth: &Auth,
        insecure: bool,
    ) -> Result<PromoteOutcome, PromoteError> {
        self.rt.block_on(super::promote::promote(
            &self.clients,
            registry,
            from,
            to,
            verify,
            auth,
            insecure,
        ))
    }

    /// Signs manifest `digest` of `r` with `key` (cosign's `.sig` tag).
    pub fn sign(
        &self,
        r: &RegistryRef,
        digest: &str,
        key: &SigningKey,
        auth: &Auth,
        insecure: bool,
    ) -> Result<SignOutcome, CosignError> {
        self.rt
            .block_on(cosign::sign(&self.clients, r, digest, key, auth, insecure))
    }

    /// Stores a signature made elsewhere over `payload` under `digest`'s
    /// `.sig` tag, as [`Registry::sign`] stores its own.
    pub fn append_signature(
        &self,
        r: &RegistryRef,
        digest: &str,
        payload: &[u8],
        signature: &str,
        auth: &Auth,
        insecure: bool,
    ) -> Result<SignOutcome, CosignError> {
        self.rt.block_on(cosign::append_signature(
            &self.clients,
            r,
            digest,
            payload,
            signature,
            auth,
            insecure,
        ))
    }

    /// Verifies that `r` (at `digest`, else its tag) is signed by one of
    /// `keys`, for the repository `reference` when given.
    pub fn verify(
        &self,
        r: &RegistryRef,
        digest: Option<&str>,
        keys: &[TrustedKey],
        reference: Option<&str>,
        auth: &Auth,
        insecure: bool,
    ) -> Result<Verified, CosignError> {
        self.rt.block_on(cosign::verify(
            &self.clients,
            r,
            digest,
            keys,
            reference,
            auth,
            insecure,
        ))
    }
}
