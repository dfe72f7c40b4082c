//! age identities and the per-recipient wrapping of the data key.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::SopsError;

/// The age identities available to decrypt data keys.
pub struct Identities {
    ids: Vec<Box<dyn age::Identity + Send + Sync>>,
    sources: Vec<String>,
    /// The public recipient of each X25519 identity; `None` once another
    /// kind (a plugin's) is added, whose recipient is not known here.
    recipients: Option<Vec<String>>,
}

impl Default for Identities {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            sources: Vec::new(),
            recipients: Some(Vec::new()),
        }
    }
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("count", &self.ids.len())
            .field("sources", &self.sources)
            .finish()
    }
}

impl Identities {
    /// No identities.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The recipients these identities open, sorted: what a caller that
    /// keeps results which depend on the keys can key them by (no private
    /// material). `None` when an identity's recipient is not known.
    pub fn recipients(&self) -> Option<Vec<String>> {
        let mut recipients = self.recipients.clone()?;
        recipients.sort();
        recipients.dedup();
        Some(recipients)
    }

    /// All identities sops would load: `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE` and
    /// `<UserConfigDir>/sops/age/keys.txt`, combined. None found is not an error.
    pub fn from_env() -> Result<Self, SopsError> {
        let mut out = Self::default();
        if let Some(text) = std::env::var_os("SOPS_AGE_KEY") {
            let text = text.to_string_lossy();
            // Several keys per line, whitespace-separated.
            let joined: String = text
                .lines()
                .flat_map(|l| {
                    if l.trim_start().starts_with('#') {
                        vec![]
                    } else {
                        l.split_whitespace().map(str::to_string).collect()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.add_text(&joined, "SOPS_AGE_KEY")?;
        }
        if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE") {
            out.add_file(Path::new(&path))?;
        }
        let default = default_keys_file();
        if let Some(path) = default
            && path.is_file()
        {
            out.add_file(&path)?;
        }
        Ok(out)
    }

    /// Parses keys.txt text (`#` and empty lines skipped).
    pub fn from_keys_text(text: &str) -> Result<Self, SopsError> {
        let mut out = Self::default();
        out.add_text(text, "keys text")?;
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many identities were loaded.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Adds every identity of a keys.txt file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), SopsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SopsError::Keys {
            reason: format!("cannot read age keys file {}: {e}", path.display()),
        })?;
        self.add_text(&text, &path.display().to_string())
    }

    fn add_text(&mut self, text: &str, source: &str) -> Result<(), SopsError> {
        let cleaned: String = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if cleaned.is_empty() {
            return Ok(());
        }
        let file =
            age::IdentityFile::from_buffer(cleaned.as_bytes()).map_err(|e| SopsError::Keys {
                reason: format!("{source}: not a valid age identity file: {e}"),
            })?;
        let ids = file.into_identities().map_err(|e| SopsError::Keys {
            reason: format!("{source}: unsupported age identity: {e}"),
        })?;
        let publics: Option<Vec<String>> = cleaned
            .lines()
            .map(|line| {
                line.parse::<age::x25519::Identity>()
                    .ok()
                    .map(|id| id.to_public().to_string())
            })
            .collect();
        match (self.recipients.as_mut(), publics) {
            (Some(known), Some(publics)) => known.extend(publics),
            _ => self.recipients = None,
        }
        self.ids.extend(ids);
        self.sources.push(source.to_string());
        Ok(())
    }

    /// Decrypts an (armored or binary) age file with any of the identities.
    pub fn decrypt_age(&self, file: &[u8]) -> Result<Vec<u8>, SopsError> {
        let text = String::from_utf8_lossy(file);
        self.unwrap(&text).map_err(|e| SopsError::Keys {
            reason: e.to_string(),
        })
    }

    /// Unwraps an armored age file holding the data key, trying every identity.
    pub(crate) fn unwrap(&self, armored: &str) -> Result<Vec<u8>, UnwrapError> {
        let broken = |e: &dyn std::fmt::Display| UnwrapError::Broken(e.to_string());
        let reader = age::armor::ArmoredReader::new(armored.trim_start().as_bytes());
        let dec = age::Decryptor::new_buffered(reader).map_err(|e| broken(&e))?;
        let mut r = dec
            .decrypt(self.ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => UnwrapError::NoMatch,
                other => broken(&other),
            })?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| broken(&e))?;
        Ok(out)
    }
}

/// Why a wrapped data key did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnwrapError {
    /// None of the identities is a recipient: someone else's file.
    #[error("no identity matches")]
    NoMatch,
    /// The age block is damaged, or opened but failed its checks.
    #[error("{0}")]
    Broken(String),
}

/// `<UserConfigDir>/sops/age/keys.txt`: `$XDG_CONFIG_HOME` or `~/.config` on Linux.
pub fn default_keys_file() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME")
        && !x.is_empty()
    {
        return Some(PathBuf::from(x).join("sops/age/keys.txt"));
    }
    dirs::config_dir().map(|d| d.join("sops/age/keys.txt"))
}

/// Parses an X25519 recipient (`age1...`).
pub(crate) fn parse_recipient(r: &str) -> Result<age::x25519::Recipient, SopsError> {
    let r = r.trim();
    r.parse::<age::x25519::Recipient>()
        .map_err(|e| SopsError::Keys {
            reason: format!("unsupported or invalid age recipient {r:?}: {e}"),
        })
}

/// Wraps the data key for one recipient as an armored age file (sops style).
pub(crate) fn wrap(recipient: &str, data_key: &[u8]) -> Result<String, SopsError> {
    let r = parse_recipient(recipient)?;
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).map_err(
        |e| SopsError::Keys {
            reason: format!("age: {e}"),
        },
    )?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| SopsError::Keys {
            reason: format!("age armor: {e}"),
        })?;
    let mut w = enc.wrap_output(armor).map_err(|e| SopsError::Keys {
        reason: format!("age: {e}"),
    })?;
    w.write_all(data_key)
        .and_then(|_| w.finish())
        .and_then(|a| a.finish())
        .map_err(|e| SopsError::Keys {
            reason: format!("age: {e}"),
        })?;
    let mut s = String::from_utf8(out).expect("armor is ASCII");
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// A fresh X25519 identity: (its secret key line, its recipient `age1...`).
pub fn generate_identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (
        id.to_string().expose_secret().to_string(),
        id.to_public().to_string(),
    )
}
