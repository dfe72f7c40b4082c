//! A Docker-less local control plane built from real parts (issue 7): etcd,
//! kube-apiserver, Debian's docker-registry and Flux's source-controller and
//! kustomize-controller, run as plain processes on 127.0.0.1, with their logs
//! in `target/e2e/<name>.log`. There is no kubelet: Pods never run.
//!
//! - [`build_binaries`] builds (once per pinned version) the four Go binaries.
//! - [`ControlPlane::start`] starts everything and installs the CRDs;
//!   dropping it stops every process (see [`process`]).
//! - [`e2e`] is the end-to-end scenario behind `cargo xtask e2e`, and the
//!   edit→Ready loop behind `cargo xtask bench reconcile`; [`e2e::existing`]
//!   is `cargo xtask e2e --cluster dev|prod`, where this control plane
//!   stands in for an existing cluster.

pub mod build;
pub mod crds;
pub mod e2e;

pub mod pki;
pub mod process;
pub mod registry;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use build::{BuildEvent, Pins, all_cached, build_binaries};
pub use e2e::{E2eOptions, E2eReport, Scenario, run_e2e};

use crate::cluster::flux::{FluxError, Kube};
use process::{ProcessError, Supervised, free_port, port_open};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Build(#[from] build::BuildError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Flux(#[from] FluxError),
    #[error(transparent)]
    Tool(#[from] exec::tools::ToolError),
    #[error(transparent)]
    Run(#[from] exec::runner::RunError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Assertion(#[from] e2e::AssertionFailed),
    #[error("{0} is not built: run `cargo xtask e2e` (it builds it) or `cargo xtask test`")]
    Missing(String),
    #[error("{0}")]
    Other(String),
}

pub(crate) fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> LocalError {
    let what = what.to_string();
    move |source| LocalError::Io { what, source }
}

/// Where the control plane keeps its logs (and, under `run/`, its data).
pub fn e2e_dir(root: &Path) -> PathBuf {
    root.join("target/e2e")
}

/// The running control plane. Dropping it stops every process, newest first.
pub struct ControlPlane {
    pub kube: Kube,
    pub kubeconfig: PathBuf,
    /// `127.0.0.1:<port>` of the plain-http registry.
    pub registry: String,
    pub api_server: String,
    pub log_dir: PathBuf,
    /// How long each step of [`ControlPlane::start`] took.
    pub timings: Vec<(String, Duration)>,
    /// The supervised processes, in start order.
    pub processes: Vec<Supervised>,
    /// The checkout, whose `xtask/controlplane.toml` pins the controllers.
    checkout: PathBuf,
    data: tempfile::TempDir,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(mut p) = self.processes.pop() {
            p.stop(Duration::from_secs(3));
        }
    }
}

/// The paths of the four binaries, found built at their pinned versions.
pub fn built_binaries(root: &Path) -> Result<BTreeMap<String, PathBuf>, LocalError> {
    built(root, &build::BINARIES)
}

/// etcd and kube-apiserver, found built: all [`ControlPlane::start_api_server`] needs.
pub fn api_server_binaries(root: &Path) -> Result<BTreeMap<String, PathBuf>, LocalError> {
    built(root, &build::BINARIES[..2])
}

fn built(root: &Path, names: &[&str]) -> Result<BTreeMap<String, PathBuf>, LocalError> {
    let pins = Pins::of_repo(root)?;
    let bin_dir = exec::tools::bin_dir(root);
    let mut out = BTreeMap::new();
    for &name in names {
        let path = build::cached(name, pins.get(name)?, &bin_dir)
            .ok_or_else(|| LocalError::Missing(name.to_string()))?;
        out.insert(name.to_string(), path);
    }
    Ok(out)
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver, the registry and the two Flux controllers,
    /// and installs the Flux CRDs. `say` receives one line per step.
    /// `root` is the checkout: logs and data go under its `target/e2e`.
    pub fn start(
        root: &Path,
        binaries: &BTreeMap<String, PathBuf>,
        mut say: impl FnMut(&str),
    ) -> Result<Self, LocalError> {
        let mut cp = Self::start_api_server(root, binaries, &mut say)?;
        cp.start_flux(binaries, &mut say)?;
        Ok(cp)
    }

    /// Starts etcd and kube-apiserver only (no CRDs, no registry, no
    /// controllers; `registry` stays empty): enough to ask the API server
    /// what it accepts.
    pub fn start_api_server(
        root: &Path,
        binaries: &BTreeMap<String, PathBuf>,
        mut say: impl FnMut(&str),
    ) -> Result<Self, LocalError> {
        let bin = |name: &str| {
            binaries
                .get(name)
                .cloned()
                .ok_or_else(|| LocalError::Missing(name.to_string()))
        };
        let log_dir = e2e_dir(root);
        std::fs::create_dir_all(&log_dir).map_err(io_err(log_dir.display()))?;
        let run_dir = log_dir.join("run");
        std::fs::create_dir_all(&run_dir).map_err(io_err(run_dir.display()))?;
        remove_stale(&run_dir, Duration::from_secs(30 * 60));
        let data = tempfile::Builder::new()
            .prefix("cp-")
            .tempdir_in(&run_dir)
            .map_err(io_err("creating the data dir"))?;
        let dir = data.path().to_path_buf();
        let log = |name: &str| log_dir.join(format!("{name}.log"));
        let mut timings = Vec::new();
        let mut processes = Vec::new();

        // etcd
        let started = Instant::now();
        let etcd_port = free_port().map_err(io_err("a free port"))?;
        let peer_port = free_port().map_err(io_err("a free port"))?;
        let client = format!("http://127.0.0.1:{etcd_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Supervised::spawn(
            "etcd",
            &bin("etcd")?,
            [
                "--name=e2e".to_string(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster=e2e={peer}"),
                "--unsafe-no-fsync=true".to_string(),
                "--log-level=warn".to_string(),
            ],
            &[],
            &log("etcd"),
        )?;
        etcd.wait_until(Duration::from_secs(30), || {
            let (code, body) = http_get(etcd_port, "/health")?;
            if code == 200 && body.contains("true") {
                Ok(())
            } else {
                Err(HttpError::Status {
                    path: "/health",
                    code,
                    body,
                }
                .into())
            }
        })?;
        processes.push(etcd);
        timings.push(("etcd".to_string(), started.elapsed()));
        say(&format!(
            "etcd ready on {client} ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));

        // kube-apiserver
        let started = Instant::now();
        let pki = pki::generate(&dir.join("pki"))?;
        let api_port = free_port().map_err(io_err("a free port"))?;
        let api_server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, pki::kubeconfig(&pki, &api_server))
            .map_err(io_err(kubeconfig.display()))?;
        let mut apiserver = Supervised::spawn(
            "kube-apiserver",
            &bin("kube-apiserver")?,
            [
                format!("--etcd-servers={client}"),
                "--bind-address=127.0.0.1".to_string(),
                "--advertise-address=127.0.0.1".to_string(),
                format!("--secure-port={api_port}"),
                format!("--tls-cert-file={}", pki.server_cert.display()),
                format!("--tls-private-key-file={}", pki.server_key.display()),
                format!("--client-ca-file={}", pki.ca_cert.display()),
                format!("--service-account-key-file={}", pki.sa_pub.display()),
                format!(
                    "--service-account-signing-key-file={}",
                    pki.sa_key.display()
                ),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
                "--service-cluster-ip-range=10.96.0.0/16".to_string(),
                "--authorization-mode=RBAC".to_string(),
                // As kind and Talos run it: privileged containers are for
                // admission policies to refuse, not for the server's own flag.
                "--allow-privileged=true".to_string(),
                "--enable-priority-and-fairness=false".to_string(),
                "--profiling=false".to_string(),
                format!("--cert-dir={}", dir.join("pki").display()),
                "--v=1".to_string(),
            ],
            &[],
            &log("kube-apiserver"),
        )?;
        let kube = Kube::new(&kubeconfig)?.with_cache_dir(dir.join("kube-cache"));
        let probe = kube.cmd().args(["get", "--raw", "/readyz"]);
        apiserver.wait_until(Duration::from_secs(90), || {
            let out = probe.read()?;
            if out.trim() == "ok" {
                Ok(())
            } else {
                Err(HttpError::Body {
                    path: "/readyz",
                    body: out,
                }
                .into())
            }
        })?;
        processes.push(apiserver);
        timings.push(("kube-apiserver".to_string(), started.elapsed()));
        say(&format!(
            "kube-apiserver ready on {api_server} ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));
        Ok(Self {
            kube,
            kubeconfig,
            registry: String::new(),
            api_server,
            log_dir,
            timings,
            checkout: root.to_path_buf(),
            processes,
            data,
        })
    }

    /// Installs the CRD files of the pinned source- and kustomize-controller
    /// and the flux-system namespace, and waits until the CRDs are served.
    /// Returns how many CRD files there were.
    pub fn install_flux_crds(&self) -> Result<usize, LocalError> {
        let crd_files = crds::flux_crd_files(&self.checkout)?;
        for f in &crd_files {
            let yaml = std::fs::read_to_string(f).map_err(io_err(f.display()))?;
            self.kube.apply_yaml(&yaml)?;
        }
        self.kube.wait_crds_established()?;
        self.kube
            .apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n")?;
        Ok(crd_files.len())
    }

    /// The Flux CRDs, the registry and the two Flux controllers, on a
    /// running API server.
    fn start_flux(
        &mut self,
        binaries: &BTreeMap<String, PathBuf>,
        mut say: impl FnMut(&str),
    ) -> Result<(), LocalError> {
        let bin = |name: &str| {
            binaries
                .get(name)
                .cloned()
                .ok_or_else(|| LocalError::Missing(name.to_string()))
        };
        let dir = self.data.path().to_path_buf();
        let log_dir = self.log_dir.clone();
        let log = |name: &str| log_dir.join(format!("{name}.log"));
        let kubeconfig = self.kubeconfig.clone();
        let mut timings = Vec::new();
        let mut processes = Vec::new();

        // The Flux CRDs, from the controllers' own modules.
        let started = Instant::now();
        let crd_count = self.install_flux_crds()?;
        timings.push(("flux CRDs".to_string(), started.elapsed()));
        say(&format!(
            "installed {crd_count} Flux CRDs from the controllers' modules ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));

        // The registry.
        let started = Instant::now();
        let registry = registry::LocalRegistry::start(&dir, None)?;
        let reg_port = registry.port;
        processes.push(registry.into_process());
        timings.push(("registry".to_string(), started.elapsed()));
        say(&format!(
            "registry ready on 127.0.0.1:{reg_port} ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));

        // The Flux controllers, as Flux's developers run them locally.
        for name in ["source-controller", "kustomize-controller"] {
            let started = Instant::now();
            let health = free_port().map_err(io_err("a free port"))?;
            let metrics = free_port().map_err(io_err("a free port"))?;
            let mut args = vec![
                format!("--metrics-addr=127.0.0.1:{metrics}"),
                format!("--health-addr=127.0.0.1:{health}"),
                "--enable-leader-election=false".to_string(),
                "--log-encoding=console".to_string(),
                "--log-level=info".to_string(),
                "--watch-all-namespaces=true".to_string(),
            ];
            if name == "source-controller" {
                let storage = free_port().map_err(io_err("a free port"))?;
                let path = dir.join("storage");
                std::fs::create_dir_all(&path).map_err(io_err(path.display()))?;
                args.extend([
                    format!("--storage-path={}", dir.join("storage").display()),
                    format!("--storage-addr=127.0.0.1:{storage}"),
                    format!("--storage-adv-addr=127.0.0.1:{storage}"),
                ]);
            } else {
                // Dependents retry every second instead of every 30 s.
                args.push("--requeue-dependency=1s".to_string());
            }
            let mut p = Supervised::spawn(
                name,
                &bin(name)?,
                &args,
                &[
                    ("KUBECONFIG", kubeconfig.as_os_str()),
                    ("RUNTIME_NAMESPACE", OsStr::new("flux-system")),
                    ("TMPDIR", dir.as_os_str()),
                ],
                &log(name),
            )?;
            p.wait_until(Duration::from_secs(60), || {
                let (code, body) = http_get(health, "/readyz")?;
                if code == 200 {
                    Ok(())
                } else {
                    Err(HttpError::Status {
                        path: "/readyz",
                        code,
                        body,
                    }
                    .into())
                }
            })?;
            processes.push(p);
            timings.push((name.to_string(), started.elapsed()));
            say(&format!(
                "{name} ready ({:.1} s)",
                started.elapsed().as_secs_f64()
            ));
        }

        self.registry = format!("127.0.0.1:{reg_port}");
        self.timings.extend(timings);
        self.processes.extend(processes);
        Ok(())
    }

    /// The data directory (certificates, etcd, storage, kubeconfig); removed on drop.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `Err` naming the process (with its log's tail) if one has died.
    pub fn check_alive(&mut self) -> Result<(), LocalError> {
        for p in &mut self.processes {
            p.check_alive()?;
        }
        Ok(())
    }
}

/// Removes what runs killed by a signal left in `run/` (a signal exits
/// without running destructors), if older than `age`.
fn remove_stale(run_dir: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d > age);
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Why a plain HTTP request on loopback, or a readiness probe built on one,
/// did not give the answer wanted.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("nothing listens on port {0} yet")]
    NotListening(u16),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not HTTP: {0}")]
    NotHttp(String),
    /// A probe's path answered, but not ready: `code` and `body` as served.
    #[error("{path}: {code} {body}")]
    Status {
        path: &'static str,
        code: u16,
        body: String,
    },
    #[error("{path} answered {code}")]
    Unexpected { path: &'static str, code: u16 },
    /// `kubectl get --raw` answered, but not `ok`.
    #[error("{path}: {body}")]
    Body { path: &'static str, body: String },
    #[error("no Docker-Content-Digest for {repo}:{tag}: {response}")]
    NoDigest {
        repo: String,
        tag: String,
        response: String,
    },
}

/// A plain HTTP/1.0 GET on 127.0.0.1: `(status code, body)`.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), HttpError> {
    if !port_open(port) {
        return Err(HttpError::NotListening(port));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    split_response(&text).ok_or_else(|| HttpError::NotHttp(text.clone()))
}

/// An HTTP/1.x response's status code and body, or `None` when it is not one.
pub fn split_response(text: &str) -> Option<(u16, String)> {
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}
