//! Installs Flux without the flux CLI: the `install.yaml` asset of the
//! fluxcd/flux2 release pinned in `xtask/tools.toml` (`[flux]`), downloaded
//! once into the user cache, checked against its sha256 when one is recorded,
//! and applied server-side. A flux CLI of exactly that version on PATH is
//! used instead (`flux install`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::flux::Kube;
use crate::runner::Cmd;

/// The `[flux]` table of `xtask/tools.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct FluxPin {
    pub version: String,
    /// The release asset; `{version}` is replaced.
    pub install_url: String,
    /// Hex sha256 of the asset; empty until first recorded.
    #[serde(default)]
    pub sha256: String,
}

#[derive(Deserialize)]
struct ToolsFile {
    flux: Option<FluxPin>,
}

impl FluxPin {
    pub fn parse(tools_toml: &str) -> anyhow::Result<Self> {
        let f: ToolsFile = toml::from_str(tools_toml)?;
        f.flux
            .ok_or_else(|| anyhow::anyhow!("xtask/tools.toml has no [flux] table"))
    }

    pub fn project() -> anyhow::Result<Self> {
        let path = crate::project_root().join("xtask/tools.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text)
    }

    pub fn url(&self) -> String {
        self.install_url.replace("{version}", &self.version)
    }

    /// `<state dir>/flux/<version>/install.yaml`.
    pub fn cache_path(&self) -> PathBuf {
        super::state_dir()
            .join("flux")
            .join(&self.version)
            .join("install.yaml")
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` against the recorded digest (nothing recorded: accepted).
pub fn verify(pin: &FluxPin, bytes: &[u8], origin: &str) -> anyhow::Result<()> {
    let got = sha256_hex(bytes);
    let want = pin.sha256.trim();
    if !want.is_empty() && !want.eq_ignore_ascii_case(&got) {
        anyhow::bail!(
            "{origin}: sha256 {got} does not match the {want} recorded in xtask/tools.toml [flux] for {}; delete the file to download it again",
            pin.version
        );
    }
    Ok(())
}

/// The install manifest: from the cache, else downloaded (with curl) into it.
/// Returns the path and a note for the step line.
pub fn ensure_manifest(pin: &FluxPin) -> anyhow::Result<(PathBuf, String)> {
    let path = pin.cache_path();
    if path.is_file() {
        let bytes = std::fs::read(&path)?;
        verify(pin, &bytes, &path.display().to_string())?;
        return Ok((path, "cached".into()));
    }
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("install.yaml.part");
    let url = pin.url();
    Cmd::new("curl")
        .args(["-fsSL", "--retry", "3", "-o"])
        .arg(&tmp)
        .arg(&url)
        .read()
        .map_err(|e| anyhow::anyhow!("downloading {url}: {e}"))?;
    let bytes = std::fs::read(&tmp)?;
    if let Err(e) = verify(pin, &bytes, &url) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path)?;
    let note = if pin.sha256.trim().is_empty() {
        eprintln!(
            "note: record sha256 = \"{}\" under [flux] in xtask/tools.toml to pin {url}",
            sha256_hex(&bytes)
        );
        "downloaded (sha256 not recorded yet)".to_string()
    } else {
        "downloaded, sha256 verified".to_string()
    };
    Ok((path, note))
}

/// A flux CLI at exactly the pinned version, if one is on PATH.
pub fn matching_cli(pin: &FluxPin) -> Option<PathBuf> {
    let flux = super::find_tool("flux")?;
    let out = Cmd::new(&flux).args(["version", "--client"]).read().ok()?;
    let want = pin.version.trim_start_matches('v');
    out.split_whitespace()
        .any(|w| w.trim_start_matches('v') == want)
        .then_some(flux)
}

/// Installs (or converges) the Flux controllers and waits for them.
pub fn install(
    kube: &Kube,
    pin: &FluxPin,
    timeout: Duration,
    note: &dyn Fn(&str),
) -> anyhow::Result<String> {
    let how = if let Some(flux) = matching_cli(pin) {
        note(&format!("flux install ({})", pin.version));
        let mut cmd = Cmd::new(flux)
            .arg("install")
            .arg("--kubeconfig")
            .arg(&kube.kubeconfig);
        if let Some(ctx) = &kube.context {
            cmd = cmd.arg("--context").arg(ctx);
        }
        cmd.read()?;
        format!("flux install {}", pin.version)
    } else {
        let (path, origin) = ensure_manifest(pin)?;
        note(&format!("applying install.yaml {} ({origin})", pin.version));
        apply_file(kube, &path)?;
        format!("{} install.yaml, {origin}", pin.version)
    };
    note("waiting for the controllers");
    kube.cmd()
        .args([
            "-n",
            "flux-system",
            "wait",
            "--for=condition=Available",
            "deployment",
            "--all",
            &format!("--timeout={}s", timeout.as_secs().max(1)),
        ])
        .read()?;
    Ok(how)
}

fn apply_file(kube: &Kube, path: &Path) -> anyhow::Result<()> {
    kube.cmd()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=xtask",
            "-f",
        ])
        .arg(path)
        .read()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_pins_a_release_asset() {
        let pin = FluxPin::project().unwrap();
        assert!(pin.version.starts_with("v2."), "{}", pin.version);
        assert_eq!(
            pin.url(),
            format!(
                "https://github.com/fluxcd/flux2/releases/download/{}/install.yaml",
                pin.version
            )
        );
        assert!(pin.sha256.is_empty() || pin.sha256.len() == 64);
    }

    #[test]
    fn sha256_is_checked_only_when_recorded() {
        let mut pin = FluxPin {
            version: "v2.7.0".into(),
            install_url: "x".into(),
            sha256: String::new(),
        };
        assert!(verify(&pin, b"abc", "f").is_ok());
        pin.sha256 = sha256_hex(b"abc");
        assert!(verify(&pin, b"abc", "f").is_ok());
        let err = verify(&pin, b"abd", "f").unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }
}
