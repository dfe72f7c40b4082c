//! The application behind `cargo xtask`: one module per verb in [`verbs`],
//! and the parts only this repository needs (validate, diff, the clusters,
//! the ship gate). The reusable libraries are the crates under `crates/`.

pub mod cluster;
pub mod diff;
pub mod leaks;
pub mod placeholders;
pub mod ship;
pub mod testbed;
pub mod validate;
pub mod verbs;

use std::path::{Path, PathBuf};

/// The folders that hold the platform's manifests.
pub use flux_render::MANIFEST_DIRS;

/// The files at the root that shape how the manifests are judged and shipped:
/// a copy of the tree takes them along with [`MANIFEST_DIRS`].
pub const TREE_FILES: &[&str] = &[".sourceignore", ".sops.yaml", ".validate-allow.yaml"];

/// What marks a checkout of this repository: its pinned-tools manifest.
const ROOT_MARKER: &str = exec::tools::MANIFEST_PATH;

/// The nearest folder at or above `start` that is a checkout of this
/// repository (it holds `xtask/tools.toml`).
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(ROOT_MARKER).is_file())
        .map(Path::to_path_buf)
}

/// The checkout a run acts on, found at run time: above the current
/// directory, else above the running binary (`target/debug/xtask` lives
/// inside its checkout). Verbs that work on single files need none.
#[derive(Debug, Clone, Default)]
pub struct Checkout {
    found: Option<PathBuf>,
}

impl Checkout {
    pub fn locate() -> Self {
        let cwd = std::env::current_dir().ok();
        let exe = std::env::current_exe().ok();
        let found = [cwd, exe].into_iter().flatten().find_map(|p| find_root(&p));
        Self { found }
    }

    /// A checkout known in advance (tests, embedding).
    pub fn at(root: PathBuf) -> Self {
        Self { found: Some(root) }
    }

    /// The checkout's root: where `xtask/tools.toml`, `.tools/` and `target/` are.
    pub fn root(&self) -> anyhow::Result<&Path> {
        self.found.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "not inside a checkout of the platform repository (no {ROOT_MARKER} above the \
                 current directory): run from the checkout, or pass --root DIR to name the tree"
            )
        })
    }

    /// A path from the command line: relative ones are taken from the
    /// checkout's root (as the defaults under `target/` are), else as given.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.found {
            Some(root) if path.is_relative() => root.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The manifest tree to act on: `--root DIR` when given, else the checkout.
    pub fn tree(&self, given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        match given {
            Some(dir) => Ok(dir),
            None => self.root().map(Path::to_path_buf),
        }
    }
}

/// `<the user's cache folder>/devantler-platform/<what>`: caches that
/// belong to no checkout.
pub fn user_cache(what: &str) -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("devantler-platform")
        .join(what)
}

/// Where kustomize builds are cached: `$XTASK_KUSTOMIZE_CACHE` (a folder,
/// or `off`), else the user's cache folder.
pub fn kustomize_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("XTASK_KUSTOMIZE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => Some(user_cache("kustomize")),
    }
}

/// What lifts the bounds on a kustomize process, for its messages.
const KUSTOMIZE_BOUNDS_HELP: &str =
    "XTASK_KUSTOMIZE_TIMEOUT=<seconds> or XTASK_KUSTOMIZE_MEMORY=<MiB>, 0 for none";

/// The kustomize builds of every verb, cached by content in `cache` (see
/// [`flux_render::kustomize`]) and bounded: `$XTASK_KUSTOMIZE_TIMEOUT`
/// seconds (default 120) and `$XTASK_KUSTOMIZE_MEMORY` MiB of address space
/// (default 4096), `0` for no bound; `$XTASK_KUSTOMIZE_CACHE_MIB` bounds the
/// cache (default 256). Misses run in the long-lived `kustomize-build` helper
/// when it is built for the installed kustomize (`XTASK_KUSTOMIZE_HELPER=off`:
/// the CLI for every build).
pub fn kustomize_builder(
    cache: Option<PathBuf>,
) -> anyhow::Result<std::sync::Arc<flux_render::kustomize::Builder>> {
    use flux_render::kustomize::{self as k, BuildCache, Builder};
    let number = |var: &str, default: u64| -> anyhow::Result<u64> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{var}={v:?} is not a whole number")),
            _ => Ok(default),
        }
    };
    let timeout = number("XTASK_KUSTOMIZE_TIMEOUT", k::DEFAULT_TIMEOUT.as_secs())?;
    let memory = number("XTASK_KUSTOMIZE_MEMORY", k::DEFAULT_MEMORY_BYTES >> 20)?;
    let cache_mib = number("XTASK_KUSTOMIZE_CACHE_MIB", k::DEFAULT_CACHE_BYTES >> 20)?;
    let bounds = exec::Bounds {
        timeout: (timeout > 0).then(|| std::time::Duration::from_secs(timeout)),
        memory_bytes: (memory > 0).then_some(memory << 20),
        raise: KUSTOMIZE_BOUNDS_HELP.into(),
    };
    let builder = Builder::find()?;
    // `off`: every build runs the kustomize CLI, as without the helper.
    let builder = match std::env::var("XTASK_KUSTOMIZE_HELPER") {
        Ok(v) if v.trim() == "off" => builder,
        _ => builder.with_helper(),
    };
    Ok(std::sync::Arc::new(builder.with_bounds(bounds).with_cache(
        cache.map(|dir| BuildCache::new(dir, cache_mib << 20)),
    )))
}

/// `path:len:mtime` of a file, for a cache key that must change when the
/// file does (this binary, a tool).
pub fn file_identity(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{}:{}:{}",
        path.display(),
        m.len(),
        mtime.as_nanos()
    ))
}

/// Where charts are cached and which Kubernetes version they render for:
/// `$XTASK_CHART_CACHE` and `$XTASK_KUBE_VERSION` override the user's cache
/// folder and the one default version that validate also uses.
pub fn helm_options() -> flux_render::helm::HelmOptions {
    let cache_dir = std::env::var_os("XTASK_CHART_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| user_cache("charts"));
    let kube_version = std::env::var("XTASK_KUBE_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| k8s_schema::DEFAULT_KUBERNETES_VERSION.to_string());
    flux_render::helm::HelmOptions::new(cache_dir, &kube_version)
}

/// The checkout these unit tests were built in.
#[cfg(test)]
pub(crate) fn test_checkout() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    find_root(crate_dir).unwrap_or_else(|| crate_dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_pins_every_tool_and_schema_it_needs() {
        let root = test_checkout();
        let tools = exec::Manifest::of_repo(&root).unwrap();
        for name in &tools.test.tools {
            let tool = tools.get(name).unwrap();
            assert!(tool.version.starts_with('v'), "{name}: {}", tool.version);
            assert!(!tool.module.is_empty());
        }
        assert!(tools.tools.contains_key("kustomize"));
        let schemas = k8s_schema::fetch::SchemaManifest::of_repo(&root).unwrap();
        let pinned =
            k8s_schema::normalize_kubernetes_version(k8s_schema::DEFAULT_KUBERNETES_VERSION);
        assert_eq!(schemas.kubernetes.version, pinned, "one Kubernetes version");
        assert!(schemas.source.iter().any(|s| s.name == "helm-controller"));
    }

    #[test]
    fn a_given_tree_wins_over_the_checkout() {
        let checkout = Checkout::at(PathBuf::from("/repo"));
        assert_eq!(checkout.tree(None).unwrap(), PathBuf::from("/repo"));
        let other = checkout.tree(Some(PathBuf::from("/elsewhere"))).unwrap();
        assert_eq!(other, PathBuf::from("/elsewhere"));
        let none = Checkout::default().root().unwrap_err().to_string();
        assert!(none.contains("--root DIR"), "{none}");
    }

    #[test]
    fn the_root_is_found_from_any_folder_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("xtask")).unwrap();
        std::fs::write(root.join(ROOT_MARKER), "").unwrap();
        let deep = root.join("apps/whoami/base");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_root(&deep).as_deref(), Some(root));
        assert_eq!(find_root(root).as_deref(), Some(root));
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(find_root(outside.path()), None);
    }
}
