//! Loopback chart servers for the diff bench and the tests: the demo chart
//! of `xtask/tests/fixtures/helm` packaged at two versions, pushed to a real
//! OCI registry on loopback (`helm push` to `docker-registry`) and served as
//! an https-style chart repository (`helm repo index` plus a plain HTTP file
//! server). Everything stops on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use exec::runner::Cmd;
use flux_render::helm::HelmOptions;

use crate::cluster::local::registry::LocalRegistry;

/// The chart versions served.
pub const VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];

/// The chart and tree fixtures of a checkout.
pub fn fixture(checkout: &Path, sub: &str) -> PathBuf {
    checkout.join("xtask/tests/fixtures/helm").join(sub)
}

/// The charts, served both ways.
pub struct Charts {
    pub helm: PathBuf,
    pub registry: LocalRegistry,
    pub http: FileServer,
    pub cache: tempfile::TempDir,
    fixtures: PathBuf,
    dir: tempfile::TempDir,
}

impl Charts {
    /// Packages and serves the demo chart with `helm`, from `checkout`'s fixtures.
    pub fn start(checkout: &Path, helm: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let registry = LocalRegistry::start(&dir.path().join("registry"), None)
            .context("starting docker-registry for the charts")?;
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo)?;
        let http = FileServer::start(&repo)?;
        let helm_env = |cmd: Cmd| {
            cmd.env("HELM_REGISTRY_CONFIG", dir.path().join("registry.json"))
                .env("HELM_CACHE_HOME", dir.path().join("cache"))
                .env("HELM_CONFIG_HOME", dir.path().join("config"))
        };
        let fixtures = fixture(checkout, "");
        for version in VERSIONS {
            let src = dir.path().join(format!("src-{version}/demo"));
            copy_replacing(&fixtures.join("charts/demo"), &src, &|text| text)?;
            let chart_yaml = src.join("Chart.yaml");
            let text = std::fs::read_to_string(&chart_yaml)?
                .replace("version: 0.1.0", &format!("version: {version}"));
            std::fs::write(&chart_yaml, text)?;
            helm_env(Cmd::new(helm))
                .arg("package")
                .arg(&src)
                .arg("--destination")
                .arg(&repo)
                .read()?;
            helm_env(Cmd::new(helm))
                .arg("push")
                .arg(repo.join(format!("demo-{version}.tgz")))
                .arg(registry.url("charts"))
                .arg("--plain-http")
                .read()?;
        }
        helm_env(Cmd::new(helm))
            .args(["repo", "index"])
            .arg(&repo)
            .args(["--url", &http.url()])
            .read()?;
        Ok(Self {
            helm: helm.to_path_buf(),
            registry,
            http,
            cache: tempfile::tempdir()?,
            fixtures,
            dir,
        })
    }

    /// Writes the fixture tree into `dest`, pointing at these servers.
    pub fn write_tree(&self, dest: &Path) -> std::io::Result<()> {
        copy_replacing(&self.fixtures.join("tree"), dest, &|text| {
            text.replace("__HTTP__", &self.http.url())
                .replace("__OCI__", &self.registry.host())
        })
    }

    /// The folder the https-style repository serves.
    pub fn repo_dir(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// Render options that use this helm and an empty chart cache of its own.
    pub fn options(&self) -> HelmOptions {
        let mut opts = HelmOptions::new(
            self.cache.path().to_path_buf(),
            k8s_schema::DEFAULT_KUBERNETES_VERSION,
        );
        opts.helm = Some(self.helm.clone());
        opts
    }
}

/// Copies a folder, passing each file's text through `edit`.
fn copy_replacing(from: &Path, to: &Path, edit: &dyn Fn(String) -> String) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_replacing(&entry.path(), &target, edit)?;
        } else {
            let text = std::fs::read_to_string(entry.path())?;
            std::fs::write(&target, edit(text))?;
        }
    }
    Ok(())
}

/// Adapts the fixture tree to flux-local where it departs from
/// helm-controller: drops the release whose chart does not exist (flux-local
/// stops on it) and the typed `targetPath` value (flux-local sets it as a
/// string where helm-controller's strvals types it, and the chart's schema
/// rejects that).
pub fn adapt_for_flux_local(tree: &Path) -> std::io::Result<()> {
    let path = tree.join("apps/releases.yaml");
    let text = std::fs::read_to_string(&path)?.replace(
        "    - kind: ConfigMap\n      name: demo-values\n      valuesKey: replicas\n      targetPath: replicas\n",
        "",
    );
    let kept: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: broken"))
        .collect();
    // flux-local names a release with targetNamespace by its own name;
    // helm-controller (and we) use `<targetNamespace>-<name>`. Pin the name.
    let kept = kept.join("\n---\n").replace(
        "  targetNamespace: other\n",
        "  targetNamespace: other\n  releaseName: ociref\n",
    );
    std::fs::write(&path, kept)
}

/// Serves the files of a folder over plain HTTP on loopback (GET and HEAD);
/// stops accepting when dropped.
pub struct FileServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    pub fn start(root: &Path) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let root = root.clone();
                        std::thread::spawn(move || serve_one(stream, &root));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { port, stop })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(stream: TcpStream, root: &Path) {
    let _ = stream.set_nonblocking(false);
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/").split('?').next().unwrap_or("/");
    let file = root.join(path.trim_start_matches('/'));
    let mut stream = stream;
    let mut body = Vec::new();
    let found = !path.contains("..")
        && file.is_file()
        && std::fs::File::open(&file)
            .and_then(|mut f| f.read_to_end(&mut body))
            .is_ok();
    if !found {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        let _ = stream.write_all(&body);
    }
}
