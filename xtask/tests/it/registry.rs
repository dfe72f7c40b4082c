//! A real OCI registry for tests (Debian's `docker-registry`, distribution
//! 2.8), optionally behind htpasswd, started per test on a free port and
//! stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use exec::runner::Cmd;
use xtask::cluster::local::registry::LocalRegistry;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` process with its own storage (the library's
/// [`LocalRegistry`]); killed on drop.
pub struct Registry {
    pub port: u16,
    pub storage: PathBuf,
    _registry: LocalRegistry,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry`, optionally with htpasswd auth for one user.
    /// `None` (a SKIP notice) when the binary or htpasswd is missing.
    pub fn start(user: Option<(&str, &str)>) -> Option<Self> {
        crate::common::tool("docker-registry")?;
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = match user {
            Some((u, p)) => {
                let bin = crate::common::tool("htpasswd")?;
                let line = Cmd::new(bin).args(["-Bbn", u, p]).read().unwrap();
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, line.trim()).unwrap();
                Some(file)
            }
            None => None,
        };
        let registry = LocalRegistry::start(dir.path(), htpasswd.as_deref())
            .unwrap_or_else(|e| panic!("docker-registry did not start: {e}"));
        Some(Self {
            port: registry.port,
            storage: registry.storage.clone(),
            _registry: registry,
            _dir: dir,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("oci://{}/{repo}", self.host())
    }

    /// Every file the registry stored (to show that nothing was written).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out);
                    } else {
                        out.push(path);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.storage, &mut out);
        out.sort();
        out
    }
}
