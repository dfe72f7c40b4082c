//! Step 1 of the local bootstrap: everything that can be checked before
//! anything is created (tools, the container engine, ports, the tree, the
//! age key, the Flux release), reported together.

use super::*;

/// What preflight found: everything later steps need.
pub struct Ready {
    pub tools: Toolbox,
    pub rendered: RenderedCluster,
    pub keys: Vec<String>,
    pub pin: FluxPin,
    pub cluster_exists: bool,
    pub notes: Vec<String>,
}

/// Something listens on 127.0.0.1:`port`. (A connect, not a bind: binding
/// ports below 1024 needs privileges even when they are free.)
pub fn port_busy(port: u16) -> bool {
    port_busy_on(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// Something listens where kind would bind `addr:port`; for `0.0.0.0`,
/// loopback answers for every interface.
pub fn port_busy_on(addr: IpAddr, port: u16) -> bool {
    let ip = if addr.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr
    };
    TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_millis(300)).is_ok()
}

/// Checks everything up front and returns one line per problem.
pub fn preflight(o: &Options) -> Result<Ready, Vec<String>> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let tools = match Toolbox::resolve() {
        Ok(t) => Some(t),
        Err(missing) => {
            problems.extend(missing);
            None
        }
    };
    let kind_file = match kind::read_kind_file(&o.kind_config) {
        Ok(f) => Some(f),
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    };
    let mut engine = None;
    if let Some(docker) = crate::cluster::find_tool("docker") {
        match engine::check(&docker) {
            Ok(info) => engine = Some(info),
            Err(line) => problems.push(line.to_string()),
        }
    }
    if let (Some(info), Some(f)) = (&engine, &kind_file) {
        let allow = std::env::var_os("XTASK_ALLOW_ROOTLESS").is_some_and(|v| v == "1");
        let (p, w) = engine::rootless_findings(
            info,
            &f.host_ports,
            engine::unprivileged_port_start(),
            allow,
        );
        problems.extend(p);
        notes.extend(w);
    }
    if let Some(t) = &tools
        && let Ok(pinned) = exec::tools::Manifest::of_repo(&o.checkout)
        && let Ok(pin) = pinned.get("kind")
        && let Ok(v) = t.kind_cmd().arg("version").read()
        && !v.contains(&pin.version)
    {
        notes.push(format!(
            "kind is {} but {} is pinned: `cargo xtask tools install kind`",
            v.split_whitespace().nth(1).unwrap_or("unknown"),
            pin.version
        ));
    }
    if let Some(f) = &kind_file {
        for (addr, port) in f.listens.iter().filter(|(a, _)| a.is_unspecified()) {
            notes.push(format!(
                "{} maps port {port} on every interface ({addr}): your network can reach it; set `listenAddress: \"127.0.0.1\"`",
                o.kind_config.display()
            ));
        }
    }
    let mut cluster_exists = false;
    if let Some(t) = &tools
        && engine.is_some()
    {
        match kind::exists(t, &o.cluster) {
            Ok(e) => cluster_exists = e,
            Err(e) => problems.push(format!("kind get clusters: {e:#}")),
        }
        if !cluster_exists && let Some(f) = &kind_file {
            for (addr, p) in &f.listens {
                if port_busy_on(*addr, *p) {
                    problems.push(format!(
                        "port {p} is in use: the cluster maps it to Traefik; stop what listens on it"
                    ));
                }
            }
        }
        let reg_state =
            registry::state(t, registry::REGISTRY_NAME).unwrap_or(registry::State::Absent);
        if reg_state == registry::State::Absent && port_busy(o.registry_port) {
            problems.push(format!(
                "port {} is in use: free it or pass --registry-port",
                o.registry_port
            ));
        }
    }
    let keys = match age_key::local_keys(&o.root, &o.cluster) {
        Ok(k) => k,
        Err(e) => {
            problems.push(format!("{e:#}"));
            Vec::new()
        }
    };
    let pin = match FluxPin::of_repo(&o.checkout) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    };
    let rendered = crate::cluster::render_or_note(&o.root, &o.cluster, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Ready {
        tools: tools.expect("no problems"),
        rendered: rendered.expect("no problems"),
        keys,
        pin: pin.expect("no problems"),
        cluster_exists,
        notes,
    })
}
