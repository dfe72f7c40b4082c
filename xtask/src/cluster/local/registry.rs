//! A real OCI registry on loopback: Debian's `docker-registry` (distribution
//! 2.8) with its own storage folder, optionally behind htpasswd auth. Used by
//! the e2e control plane, the publish bench and the tests; stopped on drop.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{Supervised, free_port};
use super::{HttpError, LocalError, http_get, io_err};

pub struct LocalRegistry {
    pub port: u16,
    /// The registry's storage root (its `docker/registry/v2` tree lives below).
    pub storage: PathBuf,
    process: Supervised,
}

impl LocalRegistry {
    /// Starts a registry whose config, storage and log live in `dir`. With
    /// `htpasswd`, every request needs Basic credentials from that file.
    pub fn start(dir: &Path, htpasswd: Option<&Path>) -> Result<Self, LocalError> {
        let bin = exec::tools::find("docker-registry")?;
        std::fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
        let port = free_port().map_err(io_err("a free port"))?;
        let storage = dir.join("registry");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some(file) = htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: local-registry\n    path: {}\n",
                file.display()
            ));
        }
        let config_file = dir.join("registry.yml");
        std::fs::write(&config_file, config).map_err(io_err(config_file.display()))?;
        let mut process = Supervised::spawn(
            "registry",
            &bin,
            [OsStr::new("serve"), config_file.as_os_str()],
            &[],
            &dir.join("registry.log"),
        )?;
        process.wait_until(Duration::from_secs(20), || match http_get(port, "/v2/")? {
            (200 | 401, _) => Ok(()),
            (code, _) => Err(HttpError::Unexpected { path: "/v2/", code }.into()),
        })?;
        Ok(Self {
            port,
            storage,
            process,
        })
    }

    /// Hands the process to a caller that supervises several (the control plane).
    pub fn into_process(self) -> Supervised {
        self.process
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("oci://{}/{repo}", self.host())
    }
}
