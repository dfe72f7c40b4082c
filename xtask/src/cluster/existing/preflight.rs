//! Step 1 of an existing-cluster bootstrap: the context, the server, the
//! nodes and whether they wait for a CNI, the rendered cluster, the age
//! identities and the pull credentials, all checked before anything is applied.

use super::*;

/// The nodes whose Ready condition is False because the container runtime
/// has no network: kubelet's `NetworkReady=false` /
/// `NetworkPluginNotReady` / `cni plugin not initialized` (what a Talos node
/// with `cni: none` reports until a CNI runs).
pub fn cni_missing(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| {
            condition(n, "Ready").is_some_and(|(status, _, message)| {
                let m = message.to_lowercase();
                status != "True"
                    && (m.contains("networkready=false")
                        || m.contains("networkpluginnotready")
                        || m.contains("cni plugin not initialized")
                        || m.contains("network plugin is not ready"))
            })
        })
        .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// `oci://HOST/...` → `HOST` (with its port).
pub fn registry_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("oci://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| host.to_string())
}

/// The `kubernetes.io/dockerconfigjson` Secret source-controller reads for
/// `host`, as `kubectl create secret docker-registry` writes it.
pub fn pull_secret(name: &str, namespace: &str, host: &str, user: &str, password: &str) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({
        "auths": {
            host: {
                "username": user,
                "password": password,
                "auth": b64(&format!("{user}:{password}")),
            }
        }
    });
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(&config.to_string())},
    })
}

/// The OCIRepository of the root sync.
pub(super) fn source_of(root_sync: &[Value]) -> Option<&Value> {
    root_sync
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some("OCIRepository"))
}

/// The credentials for `host`: `(user, password, origin)`, `None` when
/// nothing was given.
pub(super) fn credentials_for(
    c: &Credentials,
    host: &str,
) -> anyhow::Result<Option<(String, String, String)>> {
    match c {
        Credentials::Given {
            username,
            password,
            origin,
        } => Ok(Some((username.clone(), password.clone(), origin.clone()))),
        Credentials::None => Ok(None),
        Credentials::Environment { docker_config } => {
            let dir = docker_config
                .clone()
                .or_else(oci_artifact::auth::docker_config_dir);
            let r = oci_artifact::auth::resolve_auth_with(
                host,
                None,
                &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
                dir.as_deref(),
            )?;
            Ok(match r.auth {
                oci_artifact::Auth::Basic { username, password } => {
                    Some((username, password, r.origin))
                }
                oci_artifact::Auth::Anonymous => None,
            })
        }
    }
}

/// The context kubectl uses when none is given.
fn current_context(kube: &Kube) -> anyhow::Result<String> {
    let out = kube.cmd().args(["config", "current-context"]).read()?;
    let ctx = out.trim().to_string();
    if ctx.is_empty() {
        anyhow::bail!(
            "{} sets no current-context: pass --context",
            kube.kubeconfig.display()
        );
    }
    Ok(ctx)
}

/// The Node objects (cluster-scoped: no `-A`).
fn list_nodes(kube: &Kube) -> anyhow::Result<Vec<Value>> {
    let out = kube.cmd().args(["get", "nodes", "-o", "json"]).read()?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Checks everything up front; one line per problem.
pub fn preflight(o: &Options, kube: &mut Kube) -> Result<Found, Vec<String>> {
    let mut problems = Vec::new();
    if !kube.kubeconfig.is_file() {
        return Err(vec![format!(
            "no kubeconfig at {}: pass --kubeconfig or set KUBECONFIG",
            kube.kubeconfig.display()
        )]);
    }
    if kube.context.is_none() {
        match current_context(kube) {
            Ok(c) => kube.context = Some(c),
            Err(e) => return Err(vec![format!("{e:#}")]),
        }
    }
    let context = kube.context.clone().unwrap_or_default();
    let server_version = match kube
        .cmd()
        .args(["get", "--raw", "/version", "--request-timeout=15s"])
        .read()
    {
        // /version, not `kubectl version`: that one refuses versions it cannot parse.
        Ok(out) => serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| {
                v.pointer("/gitVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".into()),
        Err(e) => {
            return Err(vec![format!(
                "context {context} of {} is not reachable: {e}",
                kube.kubeconfig.display()
            )]);
        }
    };
    let nodes = list_nodes(kube).unwrap_or_else(|e| {
        problems.push(format!("listing the nodes: {e:#}"));
        Vec::new()
    });
    let missing = cni_missing(&nodes);

    let rendered = crate::cluster::render_or_note(&o.root, &o.cluster, &mut problems);
    let flux_dir = o.root.join("clusters").join(&o.cluster).join("flux-system");
    let root_sync = match flux_render::kustomize_build(&flux_dir) {
        Ok(objects) if root_sync_from_tree(&objects).len() == 2 => objects,
        Ok(_) => {
            problems.push(format!(
                "clusters/{}/flux-system must declare OCIRepository and Kustomization flux-system",
                o.cluster
            ));
            Vec::new()
        }
        Err(e) => {
            problems.push(format!("kustomize build {}: {e}", flux_dir.display()));
            Vec::new()
        }
    };

    let recipients = age_key::recipients(&o.root, &o.cluster).unwrap_or_else(|e| {
        problems.push(format!("{e:#}"));
        Vec::new()
    });
    let keys = if recipients.is_empty() {
        Vec::new()
    } else {
        age_key::select(&o.age_sources, &recipients, &o.cluster).unwrap_or_else(|e| {
            problems.push(format!(
                "{e}: give the {} identity in SOPS_AGE_KEY or SOPS_AGE_KEY_FILE",
                o.cluster
            ));
            Vec::new()
        })
    };

    // Placeholders must not reach the cluster (a LUKS passphrase would
    // become the permanent key of every volume made with it).
    if !keys.is_empty()
        && let Some(r) = &rendered
        && let Some(refusal) = crate::placeholders::refusal_for(&o.root, &o.cluster, r, &keys)
    {
        problems.push(refusal);
    }

    let mut pull = PullPlan::NotNeeded;
    if let Some(src) = source_of(&root_sync) {
        let ns = src
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("flux-system");
        let url = src
            .pointer("/spec/url")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(name) = src.pointer("/spec/secretRef/name").and_then(Value::as_str) {
            let host = registry_host(url).unwrap_or_default();
            match credentials_for(&o.credentials, &host) {
                Ok(Some((user, password, origin))) => {
                    pull = PullPlan::Apply {
                        secret: pull_secret(name, ns, &host, &user, &password),
                        origin,
                    };
                }
                Ok(None) => match kube.get("secret", Some(ns), name) {
                    Ok(Some(_)) => pull = PullPlan::Keep { name: name.into() },
                    Ok(None) => problems.push(format!(
                        "the OCIRepository pulls {url} with secretRef {ns}/{name}, which does not exist, and no credentials for {host} were given: set GITHUB_TOKEN (a token that reads the package), REGISTRY_USERNAME/REGISTRY_PASSWORD, or pass --docker-config"
                    )),
                    Err(e) => problems.push(format!("reading secret {ns}/{name}: {e}")),
                },
                Err(e) => problems.push(format!("credentials for {host}: {e:#}")),
            }
        }
    }

    let mut cilium = None;
    if !missing.is_empty()
        && let Some(r) = &rendered
    {
        match (find_tool("helm"), cilium_install(r)) {
            (Some(helm), Ok(h)) => cilium = Some((helm, h)),
            (None, _) => problems.push(format!(
                "{} node(s) wait for a CNI, and installing Cilium needs helm: {}",
                missing.len(),
                install_hint("helm")
            )),
            (_, Err(e)) => problems.push(format!(
                "{} node(s) wait for a CNI, but the tree declares none to install: {e:#}",
                missing.len()
            )),
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Found {
        context,
        server_version,
        nodes: nodes.len(),
        cni_missing: missing,
        rendered: rendered.expect("no problems"),
        root_sync,
        keys,
        recipients,
        pull,
        cilium,
    })
}
