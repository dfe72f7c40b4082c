//! Clusters: the local Kind cluster with its registries that `cargo xtask
//! bootstrap` brings up ([`bootstrap`], [`engine`], [`kind`], [`registry`],
//! [`flux_install`], [`age_key`]), an existing cluster (dev, prod) that
//! `bootstrap --cluster` takes from the kubeconfig ([`existing`]), the CNI
//! step both share ([`cni`]), and Flux objects over kubectl ([`flux`]).
//!
//! Every docker, kind, kubectl and helm call goes through [`exec::runner::Cmd`].
//! The tools are found with [`exec::tools::find`] (`.tools/bin`, then PATH);
//! `XTASK_DOCKER`, `XTASK_KIND`, `XTASK_KUBECTL` and `XTASK_HELM` name another
//! binary instead (e.g. `XTASK_DOCKER=podman`, or the named test doubles in
//! `xtask/tests/doubles`).

pub mod age_key;
pub mod bootstrap;
pub mod cni;
pub mod engine;
pub mod existing;
pub mod flux;
pub mod flux_install;
pub mod kind;
pub mod local;
pub mod registry;
pub mod steps;

use std::path::PathBuf;

use exec::runner::Cmd;
use exec::tools;

/// Resolved paths of the CLIs a local cluster needs.
#[derive(Clone, Debug)]
pub struct Toolbox {
    pub docker: PathBuf,
    pub kind: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

/// Where `name` is: `XTASK_<NAME>` if set, else `.tools/bin`, else PATH.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let var = format!("XTASK_{}", name.to_uppercase());
    if let Some(v) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(&v);
        if p.components().count() > 1 {
            return p.is_file().then_some(p);
        }
        // A bare name (XTASK_DOCKER=podman): look it up like any tool.
        return tools::find(&p.to_string_lossy()).ok();
    }
    tools::find(name).ok()
}

/// One clear line on how to get a missing tool.
pub fn install_hint(name: &str) -> String {
    match name {
        "docker" => "docker not found: install Docker (https://docs.docker.com/get-docker/) and start it".into(),
        "kubectl" => "kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/) or put it on PATH".into(),
        other => format!("{other} not found: install it with `cargo xtask tools install {other}`"),
    }
}

impl Toolbox {
    /// Every tool, or one line per missing tool.
    pub fn resolve() -> Result<Self, Vec<String>> {
        let names = ["docker", "kind", "kubectl", "helm"];
        let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_tool(n)).collect();
        let missing: Vec<String> = names
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| install_hint(n))
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut it = found.into_iter().flatten();
        Ok(Self {
            docker: it.next().expect("docker"),
            kind: it.next().expect("kind"),
            kubectl: it.next().expect("kubectl"),
            helm: it.next().expect("helm"),
        })
    }

    /// A `kind` command. With Podman as the engine, kind is told so
    /// (`KIND_EXPERIMENTAL_PROVIDER=podman`); otherwise it picks Docker
    /// whenever both are installed.
    pub fn kind_cmd(&self) -> Cmd {
        let cmd = Cmd::new(&self.kind);
        if engine::is_podman(&self.docker)
            && std::env::var_os("KIND_EXPERIMENTAL_PROVIDER").is_none_or(|v| v.is_empty())
        {
            return cmd.env("KIND_EXPERIMENTAL_PROVIDER", "podman");
        }
        cmd
    }

    /// The engine answers, or the one-line message `bootstrap`'s preflight gives.
    pub fn require_engine(&self) -> anyhow::Result<engine::EngineInfo> {
        Ok(engine::check(&self.docker)?)
    }

    /// Only what `down` needs (docker and kind).
    pub fn resolve_for_down() -> anyhow::Result<Self> {
        let get = |n: &str| find_tool(n).ok_or_else(|| anyhow::anyhow!(install_hint(n)));
        Ok(Self {
            docker: get("docker")?,
            kind: get("kind")?,
            kubectl: find_tool("kubectl").unwrap_or_else(|| "kubectl".into()),
            helm: find_tool("helm").unwrap_or_else(|| "helm".into()),
        })
    }
}

/// Per-user state and caches: `XTASK_CACHE_DIR`, else
/// `<cache dir>/devantler-platform` (`~/.cache/devantler-platform` on Linux).
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XTASK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("devantler-platform")
}

/// The kubeconfig bootstrap writes for cluster `name` (kind also merges it
/// into the default kubeconfig as context `kind-<name>`).
pub fn kubeconfig_path(name: &str) -> PathBuf {
    state_dir().join(format!("kubeconfig-{name}"))
}

/// kubectl bound to the cluster's kubeconfig and context.
pub fn kube(t: &Toolbox, name: &str) -> flux::Kube {
    flux::Kube {
        kubectl: t.kubectl.clone(),
        kubeconfig: kubeconfig_path(name),
        context: Some(kind::context(name)),
        cache_dir: Some(state_dir().join("kube-cache")),
    }
}

/// The cluster as Flux would apply it, or `None` with the reason added to a
/// preflight's `problems`.
pub fn render_or_note(
    root: &std::path::Path,
    cluster: &str,
    problems: &mut Vec<String>,
) -> Option<flux_render::RenderedCluster> {
    flux_render::render_cluster(root, cluster, &flux_render::RenderOptions::default())
        .map_err(|e| {
            problems.push(format!(
                "clusters/{cluster} does not render, so Flux could not apply it: {e}"
            ))
        })
        .ok()
}
