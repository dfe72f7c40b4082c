//! The container engine behind `docker` (Docker or Podman, rootful or
//! rootless), read from `docker info`, and the one-line message every
//! cluster verb gives when its daemon is not reachable.

use std::path::Path;

use serde_json::Value;

use exec::runner::Cmd;

/// Why `info` gave no engine.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("`info` printed no JSON document ({0})")]
    NotJson(#[source] serde_json::Error),
    /// The daemon's own reason (Docker's `ServerErrors`).
    #[error("{0}")]
    Server(String),
    #[error("the daemon reported no server version")]
    NoVersion,
}

/// The engine does not answer: the one line every cluster verb prints.
#[derive(Debug, thiserror::Error)]
#[error("{name} is installed but its daemon is not reachable: {fix} ({why})")]
pub struct Unreachable {
    pub name: &'static str,
    /// What to do: start the engine, or get access to its socket.
    pub fix: String,
    pub why: String,
}

/// What preflight needs to know about the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub podman: bool,
    pub rootless: bool,
    /// The engine runs cgroup v1 (kind and Cilium expect v2).
    pub cgroup_v1: bool,
    pub version: String,
}

/// Reads `docker info --format '{{json .}}'` (Docker) or
/// `podman info --format json` (Podman): both answer the first form.
/// `Err` carries the reason the daemon did not answer.
pub fn parse_info(text: &str) -> Result<EngineInfo, InfoError> {
    let v: Value = serde_json::from_str(text.trim()).map_err(InfoError::NotJson)?;
    if let Some(host) = v.get("host") {
        // Podman: {"host": {"security": {"rootless": ..}, "cgroupVersion": "v2"}, "version": {..}}
        return Ok(EngineInfo {
            podman: true,
            rootless: host
                .pointer("/security/rootless")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            cgroup_v1: host.get("cgroupVersion").and_then(Value::as_str) == Some("v1"),
            version: v
                .pointer("/version/Version")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    // Docker prints its client-side view with ServerErrors when the daemon is down.
    if let Some(err) = v
        .get("ServerErrors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .and_then(Value::as_str)
    {
        return Err(InfoError::Server(err.to_string()));
    }
    let version = v
        .get("ServerVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if version.is_empty() {
        return Err(InfoError::NoVersion);
    }
    let security: Vec<&str> = v
        .get("SecurityOptions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Ok(EngineInfo {
        podman: false,
        rootless: security
            .iter()
            .any(|s| s.split(',').any(|p| p == "name=rootless")),
        cgroup_v1: v.get("CgroupVersion").and_then(Value::as_str) == Some("1"),
        version,
    })
}

/// `docker` is Podman by name (`XTASK_DOCKER=podman`).
pub fn is_podman(docker: &Path) -> bool {
    docker
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("podman"))
}

/// Asks the engine; the error is the one line every cluster verb prints.
pub fn check(docker: &Path) -> Result<EngineInfo, Unreachable> {
    let (name, product) = if is_podman(docker) {
        ("podman", "Podman (`podman machine start` on macOS/Windows)")
    } else {
        ("docker", "Docker")
    };
    let unreachable = |why: String| {
        let fix = if why.contains("permission denied") && name == "docker" {
            "give your user access to its socket (`sudo usermod -aG docker $USER`, then log in again)".to_string()
        } else {
            format!("start {product}")
        };
        Unreachable { name, fix, why }
    };
    let out = Cmd::new(docker)
        .args(["info", "--format", "{{json .}}"])
        .output()
        .map_err(|e| unreachable(first_line(&e.to_string())))?;
    let parsed = parse_info(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        let why = match parsed {
            // Docker's own reason, from the JSON it printed before failing.
            Err(InfoError::Server(e)) => e,
            _ => first_line(&String::from_utf8_lossy(&out.stderr)),
        };
        return Err(unreachable(why));
    }
    parsed.map_err(|e| unreachable(e.to_string()))
}

/// The lowest port an unprivileged process may bind (Linux sysctl
/// `net.ipv4.ip_unprivileged_port_start`); `None` where it does not apply.
pub fn unprivileged_port_start() -> Option<u16> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .or(Some(1024))
}

/// Preflight problems and warnings a rootless engine brings: ports below
/// the unprivileged start cannot be bound, and Cilium needs BPF, which a
/// rootless engine cannot grant (bpf() checks capabilities in the host's
/// user namespace). `allow_rootless` turns the BPF problem into a warning.
pub fn rootless_findings(
    info: &EngineInfo,
    host_ports: &[u16],
    unprivileged_start: Option<u16>,
    allow_rootless: bool,
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let engine = if info.podman { "Podman" } else { "Docker" };
    if info.cgroup_v1 {
        warnings.push(format!(
            "{engine} runs cgroup v1: kind and Cilium expect cgroup v2; if the CNI step fails, boot with systemd.unified_cgroup_hierarchy=1"
        ));
    }
    if !info.rootless {
        return (problems, warnings);
    }
    if let Some(start) = unprivileged_start {
        let low: Vec<String> = host_ports
            .iter()
            .filter(|p| **p < start)
            .map(|p| p.to_string())
            .collect();
        if !low.is_empty() {
            let lowest = host_ports.iter().min().copied().unwrap_or(start);
            problems.push(format!(
                "rootless {engine} cannot bind host port(s) {} (below net.ipv4.ip_unprivileged_port_start={start}): run `sudo sysctl -w net.ipv4.ip_unprivileged_port_start={lowest}` (and put it in /etc/sysctl.d/ to keep it)",
                low.join(", ")
            ));
        }
    }
    let fix = if info.podman {
        "`podman machine set --rootful`, or run as root"
    } else {
        "rootful Docker, or `docker context use default`"
    };
    let bpf = format!(
        "rootless {engine}: Cilium needs BPF, which a rootless engine cannot give its containers; use {fix} (XTASK_ALLOW_ROOTLESS=1 tries anyway)"
    );
    if allow_rootless {
        warnings.push(bpf);
    } else {
        problems.push(bpf);
    }
    (problems, warnings)
}

/// The first non-empty line of a tool's message.
pub(crate) fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_info_reads_rootless_and_cgroups() {
        let rootful = parse_info(
            r#"{"ServerVersion":"28.0.0","CgroupVersion":"2","SecurityOptions":["name=apparmor","name=seccomp,profile=builtin","name=cgroupns"]}"#,
        )
        .unwrap();
        assert!(!rootful.rootless && !rootful.podman && !rootful.cgroup_v1);
        let rootless = parse_info(
            r#"{"ServerVersion":"28.0.0","CgroupVersion":"1","SecurityOptions":["name=seccomp,profile=builtin","name=rootless","name=cgroupns"]}"#,
        )
        .unwrap();
        assert!(rootless.rootless && rootless.cgroup_v1);
        let down = parse_info(
            r#"{"ServerVersion":"","ServerErrors":["Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"]}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&down, InfoError::Server(e) if e.starts_with("Cannot connect")),
            "{down}"
        );
        assert!(matches!(parse_info("28.0.0"), Err(InfoError::NotJson(_))));
    }

    #[test]
    fn unreachable_reads_as_one_line_with_the_fix() {
        let e = Unreachable {
            name: "docker",
            fix: "start Docker".into(),
            why: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "docker is installed but its daemon is not reachable: start Docker (x)"
        );
    }

    #[test]
    fn podman_info_reads_rootless() {
        let p = parse_info(
            r#"{"host":{"cgroupVersion":"v2","security":{"rootless":true}},"version":{"Version":"5.2.0"}}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            EngineInfo {
                podman: true,
                rootless: true,
                cgroup_v1: false,
                version: "5.2.0".into()
            }
        );
        assert!(is_podman(Path::new("/usr/bin/podman")));
        assert!(!is_podman(Path::new("/usr/bin/docker")));
    }

    #[test]
    fn rootless_engines_are_named_in_preflight() {
        let info = EngineInfo {
            podman: false,
            rootless: true,
            cgroup_v1: false,
            version: "28".into(),
        };
        let (problems, warnings) = rootless_findings(&info, &[80, 443], Some(1024), false);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("cannot bind host port(s) 80, 443"));
        assert!(problems[0].contains("ip_unprivileged_port_start=80"));
        assert!(problems[1].contains("Cilium needs BPF"));
        assert!(warnings.is_empty());
        // Ports allowed by the sysctl, BPF accepted on request.
        let (problems, warnings) = rootless_findings(&info, &[80, 443], Some(80), true);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(warnings[0].contains("Cilium needs BPF"));
        // Rootful: nothing to say.
        let rootful = EngineInfo {
            rootless: false,
            ..info
        };
        assert_eq!(
            rootless_findings(&rootful, &[80], Some(1024), false),
            (vec![], vec![])
        );
    }
}
