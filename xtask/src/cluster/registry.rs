//! The local registry and the pull-through mirrors: docker containers on the
//! `kind` network, the `hosts.toml` containerd reads on every node, and the
//! `local-registry-hosting` ConfigMap (KEP-1755). The text and objects come
//! from pure functions; the docker calls are thin.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Toolbox;
use exec::runner::{Cmd, RunError};

/// containerd reads one `hosts.toml` per registry from here.
pub const CERTS_D: &str = "/etc/containerd/certs.d";

/// The local registry's container name. `clusters/local/flux-system/oci-repository.yaml`
/// pulls from `oci://platform-registry:5000/platform`.
pub const REGISTRY_NAME: &str = "platform-registry";
/// The repository the artifact is pushed to.
pub const REPOSITORY: &str = "platform";
pub const DEFAULT_PORT: u16 = 5050;
/// Distribution 3: a pull-through cache whose upstream is unreachable at
/// start still serves (2.8 crash-loops offline), as kind's recipe uses.
pub const IMAGE: &str = "registry:3";
/// The docker network kind creates.
pub const KIND_NETWORK: &str = "kind";
/// Every container this tool starts carries this label.
pub const LABEL: &str = "dev.devantler.platform=registry";

/// One registry container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// Container name, reachable as `http://<name>:5000` on the kind network.
    pub name: String,
    /// The host name containerd sees in image references (`localhost:5050`, `docker.io`).
    pub host: String,
    /// Other names image references may use for it (`platform-registry:5000`,
    /// the `hostFromContainerRuntime` of KEP-1755); each gets a hosts.toml.
    pub aliases: Vec<String>,
    /// For a pull-through cache: the upstream URL.
    pub upstream: Option<String>,
    /// Published on 127.0.0.1 (the local registry only).
    pub host_port: Option<u16>,
}

/// The pull-through caches: (host in image references, upstream).
pub const MIRRORS: [(&str, &str); 4] = [
    ("docker.io", "https://registry-1.docker.io"),
    ("ghcr.io", "https://ghcr.io"),
    ("quay.io", "https://quay.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
];

pub fn local(port: u16) -> Registry {
    Registry {
        name: REGISTRY_NAME.into(),
        host: format!("localhost:{port}"),
        aliases: vec![format!("{REGISTRY_NAME}:5000")],
        upstream: None,
        host_port: Some(port),
    }
}

/// `platform-mirror-docker-io`, ...
pub fn mirror_name(host: &str) -> String {
    format!("platform-mirror-{}", host.replace('.', "-"))
}

pub fn mirrors() -> Vec<Registry> {
    MIRRORS
        .iter()
        .map(|(host, upstream)| Registry {
            name: mirror_name(host),
            host: (*host).into(),
            aliases: Vec::new(),
            upstream: Some((*upstream).into()),
            host_port: None,
        })
        .collect()
}

impl Registry {
    /// `docker run` arguments (after `docker`).
    pub fn run_args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["run", "-d", "--restart=always", "--name", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--label".into(), LABEL.into()]);
        if let Some(p) = self.host_port {
            a.extend(["-p".into(), format!("127.0.0.1:{p}:5000")]);
        }
        if let Some(u) = &self.upstream {
            a.extend(["-e".into(), format!("REGISTRY_PROXY_REMOTEURL={u}")]);
        }
        a.push(IMAGE.into());
        a
    }

    /// Where containerd looks for this registry's hosts file on a node.
    pub fn hosts_dir(&self) -> String {
        format!("{CERTS_D}/{}", self.host)
    }

    /// Every name containerd may be asked to pull from: the host, then the aliases.
    pub fn hosts(&self) -> Vec<&str> {
        std::iter::once(self.host.as_str())
            .chain(self.aliases.iter().map(String::as_str))
            .collect()
    }

    pub fn hosts_toml(&self) -> String {
        hosts_toml(
            self.upstream.as_deref(),
            &format!("http://{}:5000", self.name),
        )
    }
}

/// A containerd `hosts.toml`: pull and resolve through `endpoint`; for a
/// mirror, `server` is the upstream to fall back to.
pub fn hosts_toml(server: Option<&str>, endpoint: &str) -> String {
    let mut s = String::new();
    if let Some(server) = server {
        s.push_str(&format!("server = \"{server}\"\n\n"));
    }
    s.push_str(&format!(
        "[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    ));
    s
}

/// KEP-1755: tells tools where the cluster's local registry is.
pub fn local_registry_hosting(port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "local-registry-hosting", "namespace": "kube-public" },
        "data": {
            "localRegistryHosting.v1": format!(
                "host: \"localhost:{port}\"\nhostFromContainerRuntime: \"{REGISTRY_NAME}:5000\"\nhostFromClusterNetwork: \"{REGISTRY_NAME}:5000\"\nhelp: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n"
            )
        }
    })
}

/// What `docker inspect` says about a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    Stopped,
    Running,
}

pub fn state(t: &Toolbox, name: &str) -> anyhow::Result<State> {
    Ok(inspect(t, name)?.map_or(State::Absent, |(s, _)| s))
}

/// The container's state and image; `None` when it does not exist.
pub fn inspect(t: &Toolbox, name: &str) -> anyhow::Result<Option<(State, String)>> {
    let out = Cmd::new(&t.docker)
        .args([
            "inspect",
            "-f",
            "{{.State.Running}} {{.Config.Image}}",
            name,
        ])
        .output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.to_lowercase().contains("no such") || err.trim().is_empty() {
            return Ok(None);
        }
        anyhow::bail!("docker inspect {name} failed: {}", err.trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let state = match words.next() {
        Some("true") => State::Running,
        _ => State::Stopped,
    };
    Ok(Some((state, words.next().unwrap_or("").to_string())))
}

/// Runs, starts or reuses the container. A container of another image (a
/// `registry:2` from an older run) is replaced: the mirrors are caches and
/// bootstrap publishes the local registry's artifact again.
pub fn ensure(t: &Toolbox, r: &Registry) -> anyhow::Result<String> {
    Ok(match inspect(t, &r.name)? {
        Some((_, image)) if image != IMAGE => {
            Cmd::new(&t.docker)
                .args(["rm", "-f", "-v", &r.name])
                .read()?;
            Cmd::new(&t.docker).args(r.run_args()).read()?;
            format!("replaced ({image} -> {IMAGE})")
        }
        Some((State::Running, _)) => "reused".into(),
        Some(_) => {
            Cmd::new(&t.docker).args(["start", &r.name]).read()?;
            "started".into()
        }
        None => {
            Cmd::new(&t.docker).args(r.run_args()).read()?;
            "created".into()
        }
    })
}

/// Polls until the registry answers `GET /v2/`, so a crash-looping mirror
/// is named here rather than as an image pull failure minutes later. The
/// local registry is asked on its published port; the mirrors publish none,
/// so they are asked inside their container (the image's busybox wget).
pub fn wait_ready(t: &Toolbox, r: &Registry, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let why = match r.host_port {
            Some(port) => match probe_v2(port) {
                Ok(()) => return Ok(started.elapsed()),
                Err(e) => format!("127.0.0.1:{port}: {e}"),
            },
            None => {
                let out = Cmd::new(&t.docker)
                    .args(["exec", &r.name, "wget", "-q", "-O", "/dev/null"])
                    .arg("http://127.0.0.1:5000/v2/")
                    .output()?;
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if out.status.success() {
                    return Ok(started.elapsed());
                }
                // An image without wget cannot be asked: running has to do.
                if err.contains("executable file not found") && state(t, &r.name)? == State::Running
                {
                    return Ok(started.elapsed());
                }
                err
            }
        };
        if started.elapsed() >= timeout {
            let logs = Cmd::new(&t.docker)
                .args(["logs", "--tail", "5", &r.name])
                .output()
                .map(|o| {
                    let mut l = String::from_utf8_lossy(&o.stdout).into_owned();
                    l.push_str(&String::from_utf8_lossy(&o.stderr));
                    l.trim().replace('\n', " | ")
                })
                .unwrap_or_default();
            anyhow::bail!(
                "{} does not answer /v2/ after {}s ({why}); its last log lines: {logs}",
                r.name,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `GET /v2/` on 127.0.0.1:`port`: a registry answers 200 (or 401 when it
/// asks for credentials).
pub fn probe_v2(port: u16) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    match &head[9..12] {
        b"200" | b"401" => Ok(()),
        other => Err(std::io::Error::other(format!(
            "127.0.0.1:{port}/v2/ answered HTTP {}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The host port the local registry publishes (it may differ from the one
/// asked for when the container predates the flag); `None` when it
/// publishes none (`docker port` then exits 1).
pub fn published_port(t: &Toolbox, name: &str) -> anyhow::Result<Option<u16>> {
    let out = Cmd::new(&t.docker)
        .args(["port", name, "5000/tcp"])
        .output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No public port") || err.to_lowercase().contains("no such") {
            return Ok(None);
        }
        anyhow::bail!("docker port {name} failed: {}", err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit(':').next())
        .find_map(|p| p.trim().parse().ok()))
}

/// Joins the kind network unless already on it.
pub fn connect(t: &Toolbox, name: &str) -> anyhow::Result<bool> {
    let nets = Cmd::new(&t.docker)
        .args([
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            name,
        ])
        .read()?;
    if nets.split_whitespace().any(|n| n == KIND_NETWORK) {
        return Ok(false);
    }
    Cmd::new(&t.docker)
        .args(["network", "connect", KIND_NETWORK, name])
        .read()?;
    Ok(true)
}

/// Writes `hosts.toml` for `r` under the name `host` into node container `node`.
pub fn write_hosts(t: &Toolbox, node: &str, r: &Registry, host: &str) -> Result<(), RunError> {
    let dir = format!("{CERTS_D}/{host}");
    Cmd::new(&t.docker)
        .args(["exec", "-i", node, "sh", "-c"])
        .arg(format!("mkdir -p '{dir}' && cat > '{dir}/hosts.toml'"))
        .stdin_bytes(r.hosts_toml())
        .read()
        .map(|_| ())
}

/// `docker rm -f -v`, fine when absent.
pub fn remove(t: &Toolbox, name: &str) -> anyhow::Result<bool> {
    if state(t, name)? == State::Absent {
        return Ok(false);
    }
    Cmd::new(&t.docker).args(["rm", "-f", "-v", name]).read()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_registry_hosts_toml() {
        let r = local(5050);
        assert_eq!(r.hosts_dir(), "/etc/containerd/certs.d/localhost:5050");
        assert_eq!(
            r.hosts_toml(),
            "[host.\"http://platform-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        let parsed: toml::Value = toml::from_str(&r.hosts_toml()).unwrap();
        assert_eq!(
            parsed["host"]["http://platform-registry:5000"]["capabilities"][0].as_str(),
            Some("pull")
        );
    }

    #[test]
    fn mirror_hosts_toml_falls_back_to_upstream() {
        let m = &mirrors()[0];
        assert_eq!(m.name, "platform-mirror-docker-io");
        assert_eq!(m.hosts_dir(), "/etc/containerd/certs.d/docker.io");
        let parsed: toml::Value = toml::from_str(&m.hosts_toml()).unwrap();
        assert_eq!(
            parsed["server"].as_str(),
            Some("https://registry-1.docker.io")
        );
        assert!(parsed["host"]["http://platform-mirror-docker-io:5000"].is_table());
        let names: Vec<_> = mirrors().iter().map(|m| m.host.clone()).collect();
        assert_eq!(
            names,
            ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"]
        );
    }

    #[test]
    fn run_args_publish_only_the_local_registry() {
        let a = local(5050).run_args().join(" ");
        assert_eq!(
            a,
            "run -d --restart=always --name platform-registry --label dev.devantler.platform=registry -p 127.0.0.1:5050:5000 registry:3"
        );
        let m = mirrors()[1].run_args().join(" ");
        assert!(
            m.contains("-e REGISTRY_PROXY_REMOTEURL=https://ghcr.io"),
            "{m}"
        );
        assert!(!m.contains("-p "), "{m}");
    }

    #[test]
    fn probe_reads_the_status_of_v2() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 64];
                let _ = c.read(&mut buf).unwrap();
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\n{{}}");
                c.write_all(reply.as_bytes()).unwrap();
            }
        });
        probe_v2(port).unwrap();
        let err = probe_v2(port).unwrap_err().to_string();
        assert!(err.contains("answered HTTP 503"), "{err}");
        t.join().unwrap();
        // The listener is gone with its thread.
        assert!(probe_v2(port).is_err());
    }

    #[test]
    fn config_map_follows_kep_1755() {
        let cm = local_registry_hosting(5050);
        assert_eq!(cm["metadata"]["namespace"], "kube-public");
        assert_eq!(cm["metadata"]["name"], "local-registry-hosting");
        let v1: serde_json::Value =
            flux_render::parse_stream(cm["data"]["localRegistryHosting.v1"].as_str().unwrap())
                .unwrap()
                .remove(0);
        assert_eq!(v1["host"], "localhost:5050");
        assert_eq!(v1["hostFromClusterNetwork"], "platform-registry:5000");
        // containerd finds a hosts.toml (plain HTTP) for the name the
        // ConfigMap tells tools to put in image references.
        let runtime = v1["hostFromContainerRuntime"].as_str().unwrap();
        assert!(local(5050).hosts().contains(&runtime), "{runtime}");
        assert_eq!(
            local(5050).hosts(),
            ["localhost:5050", "platform-registry:5000"]
        );
        assert!(v1["help"].as_str().unwrap().starts_with("https://"));
    }
}
