//! Builds the control plane's binaries from their Go modules, once per
//! pinned version (`xtask/controlplane.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use exec::runner::{Cmd, RunError};

/// The binaries, in the order they are built and started.
pub const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "source-controller",
    "kustomize-controller",
];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Pins { path: PathBuf, message: String },
    #[error("{0} is not pinned in xtask/controlplane.toml")]
    Unknown(String),
    #[error("building {name} failed; the full log is {log}:\n{tail}")]
    Go {
        name: String,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot read the go.mod of {module}@{version}: {message}")]
    GoMod {
        module: String,
        version: String,
        message: String,
    },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One pinned binary.
#[derive(Clone, Debug, Deserialize)]
pub struct BinaryPin {
    pub module: String,
    pub version: String,
    /// The `main` package to build.
    pub package: String,
    /// For k8s.io/kubernetes: the version every replaced staging module is pinned to.
    #[serde(default)]
    pub staging: Option<String>,
    /// Modules required at the same version (a controller's `api` module).
    #[serde(default)]
    pub also: Vec<String>,
    /// Extra `replace` lines, `module version`: a dependency version the Go
    /// module proxy does not serve, swapped for one it does.
    #[serde(default)]
    pub replace: Vec<String>,
}

/// `xtask/controlplane.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct Pins {
    pub binaries: BTreeMap<String, BinaryPin>,
}

impl Pins {
    pub fn load(path: &Path) -> Result<Self, BuildError> {
        let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| BuildError::Pins {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The pins in a checkout's `xtask/controlplane.toml`.
    pub fn of_repo(root: &Path) -> Result<Self, BuildError> {
        Self::load(&root.join("xtask/controlplane.toml"))
    }

    pub fn get(&self, name: &str) -> Result<&BinaryPin, BuildError> {
        self.binaries
            .get(name)
            .ok_or_else(|| BuildError::Unknown(name.to_string()))
    }
}

impl BinaryPin {
    /// What the version stamp records.
    pub fn stamp(&self) -> String {
        let mut stamp = format!("{}@{}", self.module, self.version);
        if let Some(s) = &self.staging {
            stamp.push_str(&format!(" staging {s}"));
        }
        for r in &self.replace {
            stamp.push_str(&format!(" replace {r}"));
        }
        stamp
    }
}

/// What happened to one binary.
#[derive(Clone, Debug)]
pub enum BuildEvent {
    /// Already built at the pinned version.
    Cached {
        name: String,
        path: PathBuf,
    },
    Started {
        name: String,
        log: PathBuf,
    },
    Built {
        name: String,
        path: PathBuf,
        took: Duration,
    },
}

/// Where the throwaway Go modules live (git-ignored).
pub fn build_root(root: &Path) -> PathBuf {
    root.join(".tools/build")
}

/// Where the build logs go.
pub fn log_dir(root: &Path) -> PathBuf {
    super::e2e_dir(root)
}

/// The built binary's path if it exists at the pinned version.
pub fn cached(name: &str, pin: &BinaryPin, bin_dir: &Path) -> Option<PathBuf> {
    let bin = bin_dir.join(name);
    let stamp = std::fs::read_to_string(bin_dir.join(format!(".{name}.version"))).ok()?;
    (stamp.trim() == pin.stamp() && bin.is_file()).then_some(bin)
}

/// Whether all four binaries are built at their pinned versions.
pub fn all_cached(root: &Path) -> bool {
    Pins::of_repo(root).is_ok_and(|pins| {
        BINARIES.iter().all(|name| {
            pins.get(name)
                .is_ok_and(|pin| cached(name, pin, &exec::tools::bin_dir(root)).is_some())
        })
    })
}

/// Builds (or finds cached) etcd, kube-apiserver, source-controller and
/// kustomize-controller into `.tools/bin`, one at a time. Idempotent: a
/// binary whose version stamp matches is not rebuilt. Returns their paths.
pub fn build_binaries(
    root: &Path,
    mut progress: impl FnMut(&BuildEvent),
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    let pins = Pins::of_repo(root)?;
    let bin_dir = exec::tools::bin_dir(root);
    let mut out = BTreeMap::new();
    for name in BINARIES {
        let pin = pins.get(name)?;
        if let Some(path) = cached(name, pin, &bin_dir) {
            progress(&BuildEvent::Cached {
                name: name.into(),
                path: path.clone(),
            });
            out.insert(name.to_string(), path);
            continue;
        }
        let log = log_dir(root).join(format!("build-{name}.log"));
        progress(&BuildEvent::Started {
            name: name.into(),
            log: log.clone(),
        });
        let started = Instant::now();
        let path = build_one(name, pin, &build_root(root).join(name), &bin_dir, &log)?;
        progress(&BuildEvent::Built {
            name: name.into(),
            path: path.clone(),
            took: started.elapsed(),
        });
        out.insert(name.to_string(), path);
    }
    Ok(out)
}

/// The go.mod of the throwaway module for one binary.
pub fn go_mod(name: &str, pin: &BinaryPin, upstream: &Replaces) -> String {
    let mut text = format!("module xtask.local/build/{name}\n\ngo 1.24.0\n\nrequire (\n");
    text.push_str(&format!("\t{} {}\n", pin.module, pin.version));
    for m in &pin.also {
        text.push_str(&format!("\t{m} {}\n", pin.version));
    }
    text.push_str(")\n");
    let mut replaces: Vec<String> = Vec::new();
    if let Some(staging) = &pin.staging {
        replaces.extend(
            upstream
                .local
                .iter()
                .map(|m| format!("{m} => {m} {staging}")),
        );
    }
    // The module's own versioned replaces (e.g. Flux pins go-digest): a
    // dependency's replaces are ignored, so they must be repeated here.
    let ours = |r: &str| {
        pin.replace
            .iter()
            .any(|p| r.starts_with(&format!("{} ", p.split(' ').next().unwrap_or(""))))
    };
    replaces.extend(upstream.versioned.iter().filter(|r| !ours(r)).cloned());
    for r in &pin.replace {
        let (m, v) = r.split_once(' ').unwrap_or((r.as_str(), ""));
        replaces.push(format!("{m} => {m} {}", v.trim()));
    }
    if !replaces.is_empty() {
        text.push_str("\nreplace (\n");
        for r in replaces {
            text.push_str(&format!("\t{r}\n"));
        }
        text.push_str(")\n");
    }
    text
}

/// The replace directives of a module's own go.mod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replaces {
    /// Modules replaced with a local path (`k8s.io/api => ./staging/src/k8s.io/api`).
    pub local: Vec<String>,
    /// Versioned replaces, as `old => new version` lines.
    pub versioned: Vec<String>,
}

/// Reads the replace directives of `module@version`'s go.mod.
pub fn upstream_replaces(module: &str, version: &str) -> Result<Replaces, BuildError> {
    let err = |message: String| BuildError::GoMod {
        module: module.into(),
        version: version.into(),
        message,
    };
    let json = go()
        .args(["mod", "download", "-json", &format!("{module}@{version}")])
        .read()?;
    let info: serde_json::Value = serde_json::from_str(&json).map_err(|e| err(e.to_string()))?;
    let path = info
        .get("GoMod")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| err(format!("no GoMod in {json}")))?;
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    Ok(parse_replaces(&text))
}

/// Parses `X => ./path` and `X [v] => Y v` lines (inside or outside a `replace (` block).
pub fn parse_replaces(go_mod: &str) -> Replaces {
    let mut out = Replaces::default();
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let line = line.strip_prefix("replace").unwrap_or(line).trim();
        let Some((left, right)) = line.split_once("=>") else {
            continue;
        };
        let old = left.split_whitespace().next().unwrap_or("");
        let right: Vec<&str> = right.split_whitespace().collect();
        if old.is_empty() {
            continue;
        }
        match right.as_slice() {
            [path] if path.starts_with("./") || path.starts_with("../") => {
                out.local.push(old.to_string())
            }
            [new, version] => out.versioned.push(format!("{old} => {new} {version}")),
            _ => {}
        }
    }
    out
}

fn go() -> Cmd {
    Cmd::new("go")
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOTOOLCHAIN", "local")
}

fn build_one(
    name: &str,
    pin: &BinaryPin,
    dir: &Path,
    bin_dir: &Path,
    log: &Path,
) -> Result<PathBuf, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::create_dir_all(bin_dir).map_err(io(bin_dir))?;
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let upstream = upstream_replaces(&pin.module, &pin.version)?;
    let gomod = dir.join("go.mod");
    std::fs::write(&gomod, go_mod(name, pin, &upstream)).map_err(io(&gomod))?;
    let _ = std::fs::remove_file(dir.join("go.sum"));
    // `go mod tidy` would also want the test dependencies of every package,
    // some of which the proxy does not serve; `go build -mod=mod` resolves
    // only what the binary imports.
    let _ = std::fs::remove_file(dir.join("tools.go"));
    let out = bin_dir.join(name);
    let cmd = go()
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(&pin.package)
        .dir(dir);
    let mut text = format!("$ {}\n", cmd.display());
    let result = cmd.output()?;
    text.push_str(&String::from_utf8_lossy(&result.stdout));
    text.push_str(&String::from_utf8_lossy(&result.stderr));
    std::fs::write(log, &text).map_err(io(log))?;
    if !result.status.success() {
        return Err(BuildError::Go {
            name: name.into(),
            log: log.to_path_buf(),
            tail: super::process::tail(log, 30),
        });
    }
    let stamp = bin_dir.join(format!(".{name}.version"));
    std::fs::write(&stamp, format!("{}\n", pin.stamp())).map_err(io(&stamp))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_pins_every_binary() {
        let pins = Pins::of_repo(&crate::test_checkout()).unwrap();
        for name in BINARIES {
            let pin = pins.get(name).unwrap();
            assert!(pin.version.starts_with('v'), "{name}");
        }
        // One Flux release for bootstrap (xtask/tools.toml) and e2e: Flux
        // v2.M.P ships source- and kustomize-controller v1.M.P.
        let flux = crate::cluster::flux_install::FluxPin::of_repo(&crate::test_checkout()).unwrap();
        let controllers = flux.version.replacen("v2.", "v1.", 1);
        for name in ["source-controller", "kustomize-controller"] {
            assert_eq!(
                pins.get(name).unwrap().version,
                controllers,
                "{name} vs Flux {}",
                flux.version
            );
        }
        let k = pins.get("kube-apiserver").unwrap();
        assert!(k.staging.as_deref().unwrap().starts_with("v0."));
    }

    #[test]
    fn local_replaces_are_found_in_blocks_and_lines() {
        let text = "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\nreplace k8s.io/kms => ./staging/src/k8s.io/kms\n";
        let r = parse_replaces(text);
        assert_eq!(r.local, ["k8s.io/api", "k8s.io/client-go", "k8s.io/kms"]);
        assert_eq!(r.versioned, ["github.com/x/y => github.com/x/y v1.0.0"]);
    }

    #[test]
    fn go_mod_pins_staging_and_api_modules() {
        let pin = BinaryPin {
            module: "k8s.io/kubernetes".into(),
            version: "v1.34.4".into(),
            package: "k8s.io/kubernetes/cmd/kube-apiserver".into(),
            staging: Some("v0.34.4".into()),
            also: vec![],
            replace: vec![],
        };
        let upstream = Replaces {
            local: vec!["k8s.io/api".into()],
            versioned: vec![],
        };
        let text = go_mod("kube-apiserver", &pin, &upstream);
        assert!(text.contains("\tk8s.io/kubernetes v1.34.4\n"), "{text}");
        assert!(
            text.contains("\tk8s.io/api => k8s.io/api v0.34.4\n"),
            "{text}"
        );
        let pin = BinaryPin {
            module: "github.com/fluxcd/source-controller".into(),
            version: "v1.9.5".into(),
            package: "github.com/fluxcd/source-controller".into(),
            staging: None,
            also: vec!["github.com/fluxcd/source-controller/api".into()],
            replace: vec!["github.com/fluxcd/pkg/artifact v0.18.0".into()],
        };
        let upstream = Replaces {
            local: vec!["github.com/fluxcd/source-controller/api".into()],
            versioned: vec![
                "github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1"
                    .into(),
            ],
        };
        let text = go_mod("source-controller", &pin, &upstream);
        assert!(text.contains("\tgithub.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1\n"), "{text}");
        assert!(!text.contains("./api"), "{text}");
        assert!(text.contains("\tgithub.com/fluxcd/source-controller/api v1.9.5\n"));
        assert!(text.contains(
            "\tgithub.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.0\n"
        ));
    }

    /// Every generated module resolves all packages its binary imports
    /// (network or a warm module cache; no compiling).
    #[test]
    #[ignore = "needs the Go module proxy or a warm module cache"]
    fn generated_modules_resolve() {
        let pins = Pins::of_repo(&crate::test_checkout()).unwrap();
        for name in BINARIES {
            let pin = pins.get(name).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let upstream = upstream_replaces(&pin.module, &pin.version).unwrap();
            std::fs::write(dir.path().join("go.mod"), go_mod(name, pin, &upstream)).unwrap();
            let out = go()
                .args(["list", "-deps", &pin.package])
                .dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
