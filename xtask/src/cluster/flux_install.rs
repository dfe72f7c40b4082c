//! Installs Flux without the flux CLI: the `install.yaml` asset of the
//! fluxcd/flux2 release pinned in `xtask/tools.toml` (`[flux]`), downloaded
//! once into the user cache, checked against the sha256 recorded there or,
//! while none is, against the release's published checksums file, and
//! applied server-side. A flux CLI of exactly that version on PATH is
//! used instead (`flux install`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::flux::Kube;
use exec::runner::Cmd;

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

    /// The pin in a checkout's `xtask/tools.toml`.
    pub fn of_repo(root: &Path) -> anyhow::Result<Self> {
        let path = root.join(exec::tools::MANIFEST_PATH);
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

impl FluxPin {
    /// The release's checksums file, next to `install.yaml`: goreleaser's
    /// `{{ .ProjectName }}_{{ .Version }}_checksums.txt`, the version without `v`.
    pub fn checksums_url(&self) -> String {
        let url = self.url();
        let base = url.rsplit_once('/').map_or("", |(b, _)| b);
        format!(
            "{base}/flux_{}_checksums.txt",
            self.version.trim_start_matches('v')
        )
    }

    /// The asset's file name (`install.yaml`).
    pub fn asset_name(&self) -> String {
        let url = self.url();
        url.rsplit('/').next().unwrap_or("install.yaml").to_string()
    }
}

/// The digest a checksums file (`<hex>  <name>` lines, as goreleaser and
/// `sha256sum` write them) gives for `name`.
pub fn checksum_for(checksums: &str, name: &str) -> Option<String> {
    checksums.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (hash, file) = (w.next()?, w.next()?);
        (file.trim_start_matches('*') == name
            && hash.len() == 64
            && hash.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hash.to_ascii_lowercase())
    })
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

/// The install manifest, from the cache or downloaded into it (see
/// [`ensure_manifest_at`]).
pub fn ensure_manifest(pin: &FluxPin) -> anyhow::Result<(PathBuf, String)> {
    ensure_manifest_at(pin, &pin.cache_path())
}

/// The install manifest at `path`: from the cache, else downloaded (with
/// curl) into it. The download is checked against the sha256 recorded in
/// `xtask/tools.toml`, or, while none is recorded, against the release's
/// checksums file, and the digest to record is printed. Only a checked file
/// is cached; without a recorded sha256, a cached file counts only with the
/// `.sha256` written when it was checked. Returns the path and a note for
/// the step line.
pub fn ensure_manifest_at(pin: &FluxPin, path: &Path) -> anyhow::Result<(PathBuf, String)> {
    let marker = path.with_extension("yaml.sha256");
    let recorded = !pin.sha256.trim().is_empty();
    if path.is_file() {
        let bytes = std::fs::read(path)?;
        if recorded {
            verify(pin, &bytes, &path.display().to_string())?;
            return Ok((path.to_path_buf(), "cached, sha256 verified".into()));
        }
        let checked = std::fs::read_to_string(&marker).unwrap_or_default();
        if checked.trim() == sha256_hex(&bytes) {
            return Ok((path.to_path_buf(), "cached".into()));
        }
        // An unchecked file (from an older run): download and check it again.
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
    let checked = if recorded {
        verify(pin, &bytes, &url).map(|()| "downloaded, sha256 verified".to_string())
    } else {
        verify_against_release(pin, &bytes)
    };
    let note = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path)?;
    exec::fsutil::write_atomic(&marker, sha256_hex(&bytes).as_bytes())?;
    Ok((path.to_path_buf(), note))
}

/// Checks a download against the release's checksums file and prints the
/// digest to record.
fn verify_against_release(pin: &FluxPin, bytes: &[u8]) -> anyhow::Result<String> {
    let url = pin.url();
    let sums_url = pin.checksums_url();
    let sums = Cmd::new("curl")
        .args(["-fsSL", "--retry", "3"])
        .arg(&sums_url)
        .read()
        .map_err(|e| {
            anyhow::anyhow!(
                "no sha256 is recorded under [flux] in xtask/tools.toml, and the release's checksums file could not be fetched to check {url}: {sums_url}: {e}"
            )
        })?;
    let name = pin.asset_name();
    let want = checksum_for(&sums, &name).ok_or_else(|| {
        anyhow::anyhow!(
            "{sums_url} lists no {name}: check {url} yourself and record its sha256 under [flux] in xtask/tools.toml"
        )
    })?;
    let got = sha256_hex(bytes);
    if got != want {
        anyhow::bail!(
            "{url}: sha256 {got} does not match the {want} of {sums_url}; nothing was cached (a broken download or a proxy rewriting it?)"
        );
    }
    eprintln!(
        "note: {url} matches the release's checksums file; pin it with\n  sha256 = \"{got}\"\nunder [flux] in xtask/tools.toml"
    );
    Ok(format!(
        "downloaded, matches {}; record sha256 = \"{got}\" in xtask/tools.toml",
        sums_url.rsplit('/').next().unwrap_or("the checksums file")
    ))
}

/// The flux CLI `cargo xtask test` builds into `.tools/bin` for flux-local
/// embeds placeholder install manifests, so `flux install` from it would
/// apply those: bootstrap never uses it.
pub fn is_test_build(flux: &Path) -> bool {
    // `cargo xtask test` stamps the folder it builds that flux into.
    flux.parent()
        .is_some_and(|dir| dir.join(".flux.version").is_file())
}

/// A flux CLI at exactly the pinned version, if one is on PATH (not the
/// test build in `.tools/bin`).
pub fn matching_cli(pin: &FluxPin) -> Option<PathBuf> {
    let flux = if std::env::var_os("XTASK_FLUX").is_some_and(|v| !v.is_empty()) {
        super::find_tool("flux").filter(|f| !is_test_build(f))?
    } else {
        // PATH only: `.tools/bin` holds the test build.
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("flux"))
            .find(|c| c.is_file() && !is_test_build(c))?
    };
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
        let pin = FluxPin::of_repo(&crate::test_checkout()).unwrap();
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

    #[test]
    fn the_test_build_of_flux_is_never_installed_from() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_test_build(&dir.path().join("flux")));
        std::fs::write(
            dir.path().join(".flux.version"),
            "github.com/fluxcd/flux2/v2@v2.9.5\n",
        )
        .unwrap();
        assert!(is_test_build(&dir.path().join("flux")));
    }

    #[test]
    fn checksums_file_is_found_next_to_the_asset() {
        let pin = FluxPin {
            version: "v2.9.5".into(),
            install_url: "https://github.com/fluxcd/flux2/releases/download/{version}/install.yaml"
                .into(),
            sha256: String::new(),
        };
        assert_eq!(
            pin.checksums_url(),
            "https://github.com/fluxcd/flux2/releases/download/v2.9.5/flux_2.9.5_checksums.txt"
        );
        assert_eq!(pin.asset_name(), "install.yaml");
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let sums = format!(
            "{a}  flux_2.9.5_linux_amd64.tar.gz\n{b}  install.yaml\n{a} *manifests.tar.gz\n"
        );
        assert_eq!(checksum_for(&sums, "install.yaml"), Some("b".repeat(64)));
        assert_eq!(checksum_for(&sums, "manifests.tar.gz"), Some(a));
        assert_eq!(checksum_for(&sums, "install"), None);
        assert_eq!(checksum_for("xyz  install.yaml", "install.yaml"), None);
    }
}
