//! `validate --server`: every rendered object, sent to a real kube-apiserver
//! with server-side dry-run and strict field validation. Exact by
//! construction: the server's own Go validation, CRD schemas and
//! `x-kubernetes-validations` rules, admission and defaulting.
//!
//! The API server is the pinned one the control plane builds (etcd and
//! kube-apiserver in `.tools/bin`), started on loopback with its data in a
//! temporary folder. The tree's CRDs (its own, then those under the schema
//! folders for the groups it uses) are installed, and the namespaces its
//! objects name created; nothing else persists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use super::{Check, Finding, Item};
use crate::cluster::local::crds::BUILTIN_GROUPS;
use crate::cluster::local::{self, ControlPlane};

/// What the server said of the tree.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// Distinct objects sent.
    pub objects: usize,
    pub rejected: usize,
    /// CRDs installed first.
    pub crds: usize,
    /// Start-up, CRDs and namespaces, and the dry-run itself.
    pub took: Duration,
}

/// How to get the binaries, said whenever they are missing.
pub const HOW_TO_GET: &str = "`cargo xtask e2e --build-only` builds etcd and kube-apiserver at their pinned versions into .tools/bin (`cargo xtask test --install-only` does it too)";

/// Starts the API server of `checkout` and asks it about `items`.
/// `schema_dirs` are searched for the CRDs of groups the tree uses but does
/// not define itself.
pub fn check(
    checkout: &Path,
    schema_dirs: &[PathBuf],
    items: &[Item],
    mut say: impl FnMut(&str),
) -> Result<Outcome> {
    let started = Instant::now();
    let binaries = local::api_server_binaries(checkout).map_err(|e| {
        anyhow!("validate --server needs the control plane's binaries ({e}): {HOW_TO_GET}")
    })?;
    let groups = distinct(items);
    let mut crds: Vec<Value> = groups
        .iter()
        .map(|g| &g.object)
        .filter(|o| is_crd(o))
        .cloned()
        .collect();
    let defined: BTreeSet<String> = crds.iter().filter_map(crd_group).collect();
    let wanted: BTreeSet<String> = groups
        .iter()
        .filter_map(|g| api_group(&g.object))
        .filter(|g| !BUILTIN_GROUPS.contains(&g.as_str()) && !defined.contains(g))
        .collect();
    crds.extend(crds_under(schema_dirs, &wanted));

    let cp = ControlPlane::start_api_server(checkout, &binaries, &mut say)
        .context("starting etcd and kube-apiserver")?;
    let work = tempfile::tempdir().context("a temporary folder")?;

    let crd_count = crds.len();
    if !crds.is_empty() {
        let file = work.path().join("crds.yaml");
        let text: Vec<String> = crds
            .iter()
            .map(|c| serde_yaml::to_string(&strip_for_install(c)).unwrap_or_default())
            .collect();
        std::fs::write(&file, text.join("---\n")).context("writing the CRDs")?;
        // A CRD the server refuses is reported with the objects below.
        let _ = cp
            .kube
            .cmd()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&file)
            .output();
        // One that never becomes Established shows in its objects' refusals.
        let _ = cp.kube.wait_crds_established();
    }
    let namespaces: BTreeSet<String> = groups
        .iter()
        .filter_map(|g| {
            g.object
                .pointer("/metadata/namespace")?
                .as_str()
                .map(str::to_string)
        })
        .filter(|n| !n.is_empty())
        .chain(["default".to_string()])
        .collect();
    let mut setup = String::new();
    for ns in &namespaces {
        if !["default", "kube-system", "kube-public", "kube-node-lease"].contains(&ns.as_str()) {
            setup.push_str(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n"
            ));
        }
        // Pods need their ServiceAccount; no controller-manager makes it here.
        setup.push_str(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n---\n"
        ));
    }
    let file = work.path().join("namespaces.yaml");
    std::fs::write(&file, &setup).context("writing the namespaces")?;
    cp.kube
        .cmd()
        .args(["apply", "--server-side", "-f"])
        .arg(&file)
        .read()
        .context("creating the namespaces")?;

    let dir = work.path().join("objects");
    std::fs::create_dir_all(&dir).context("a folder for the objects")?;
    // The fast way: one `kubectl proxy`, one HTTP request per object. Should
    // the proxy not come up, one kubectl per object says the same, slower.
    let verdicts = match Proxy::start(&cp, work.path()) {
        Ok(proxy) => proxy.dry_run(groups.iter().map(|g| &g.object))?,
        Err(e) => {
            say(&format!(
                "kubectl proxy: {e}; one kubectl per object instead"
            ));
            for (i, g) in groups.iter().enumerate() {
                let text = serde_yaml::to_string(&for_server(&g.object))?;
                std::fs::write(dir.join(format!("{i:05}.yaml")), text)?;
            }
            dry_run(&cp, &dir, groups.len())?
        }
    };
    let mut outcome = Outcome {
        objects: groups.len(),
        crds: crd_count,
        ..Outcome::default()
    };
    for (i, g) in groups.iter().enumerate() {
        let Some(message) = verdicts.get(&i) else {
            continue;
        };
        outcome.rejected += 1;
        let label = super::flux::describe(&g.object);
        for it in &g.items {
            outcome.findings.push(
                Finding::error(
                    Check::Server,
                    &it.file,
                    it.line,
                    format!("the API server rejects {label}: {message}"),
                )
                .with_object(label.clone()),
            );
        }
    }
    outcome.took = started.elapsed();
    Ok(outcome)
}

/// One distinct object and every place it comes from.
struct Group<'a> {
    object: Value,
    items: Vec<&'a Item>,
}

/// The objects to send, each once: complete ones (an object without
/// apiVersion, kind or name is the offline checks' to report).
fn distinct(items: &[Item]) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for it in items {
        let o = &it.object;
        let complete = ["apiVersion", "kind"].iter().all(|k| {
            o.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        }) && o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !complete {
            continue;
        }
        let key = serde_json::to_string(o).unwrap_or_default();
        match index.get(&key) {
            Some(&i) => out[i].items.push(it),
            None => {
                index.insert(key, out.len());
                out.push(Group {
                    object: o.clone(),
                    items: vec![it],
                });
            }
        }
    }
    out
}

fn is_crd(o: &Value) -> bool {
    o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
}

fn crd_group(o: &Value) -> Option<String> {
    o.pointer("/spec/group")?.as_str().map(str::to_string)
}

fn api_group(o: &Value) -> Option<String> {
    let v = o.get("apiVersion")?.as_str()?;
    Some(v.split_once('/').map_or("", |(g, _)| g).to_string())
}

/// The CRD documents under `dirs` (any depth, skipping the Kubernetes
/// OpenAPI folder) that define kinds of `groups`.
pub fn crds_under(dirs: &[PathBuf], groups: &BTreeSet<String>) -> Vec<Value> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != "kubernetes") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for doc in k8s_schema::registry::yaml_documents(&text) {
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if is_crd(&doc)
                && crd_group(&doc).is_some_and(|g| groups.contains(&g))
                && seen.insert(name)
            {
                out.push(doc.clone());
            }
        }
    }
    out
}

/// A CRD as installed: some charts' CRD files carry Helm template labels and
/// annotations; only the name and the spec matter here.
fn strip_for_install(crd: &Value) -> Value {
    let mut doc = crd.clone();
    doc["metadata"] = json!({"name": crd.pointer("/metadata/name").cloned()});
    if let Some(m) = doc.as_object_mut() {
        m.remove("status");
    }
    doc
}

/// An object as Flux would send it: SOPS metadata gone, each encrypted value
/// a stand-in (`{}`, which every Secret type's checks accept), status dropped.
fn for_server(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
        if m.remove("sops").is_some() {
            for (field, stand_in) in [("data", "e30="), ("stringData", "{}")] {
                if let Some(Value::Object(data)) = m.get_mut(field) {
                    for v in data.values_mut() {
                        if v.as_str().is_some_and(|s| s.starts_with("ENC[")) {
                            *v = Value::String(stand_in.to_string());
                        }
                    }
                }
            }
            super::blank_encrypted(&mut o);
        }
    }
    o
}

/// `kubectl proxy` on a loopback port: plain HTTP to the API server, so that
/// each object costs a request, not a kubectl process.
struct Proxy {
    port: u16,
    _process: local::process::Supervised,
    /// `apiVersion kind` → (resource, namespaced), from discovery.
    resources: std::sync::Mutex<HashMap<String, Option<(String, bool)>>>,
}

impl Proxy {
    fn start(cp: &ControlPlane, dir: &Path) -> Result<Self> {
        let port = local::process::free_port()?;
        let mut process = local::process::Supervised::spawn(
            "kubectl-proxy",
            &cp.kube.kubectl,
            [
                "--kubeconfig".to_string(),
                cp.kubeconfig.display().to_string(),
                "proxy".to_string(),
                "--address=127.0.0.1".to_string(),
                format!("--port={port}"),
            ],
            &[],
            &dir.join("kubectl-proxy.log"),
        )?;
        process.wait_until(Duration::from_secs(20), || {
            let (code, body) = local::http_get(port, "/api")?;
            if code == 200 {
                Ok(())
            } else {
                Err(format!("GET /api: {code} {body}").into())
            }
        })?;
        Ok(Self {
            port,
            _process: process,
            resources: Default::default(),
        })
    }

    /// The REST resource of `api_version`'s `kind`, from discovery (cached).
    fn resource(&self, api_version: &str, kind: &str) -> Result<Option<(String, bool)>> {
        let key = format!("{api_version} {kind}");
        if let Some(found) = self.resources.lock().expect("lock").get(&key) {
            return Ok(found.clone());
        }
        let path = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let (code, body) = request(self.port, "GET", &path, None)?;
        let list: Value = if code == 200 {
            serde_json::from_str(&body).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        let mut map = self.resources.lock().expect("lock");
        for r in list
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(k)) = (
                r.get("name").and_then(Value::as_str),
                r.get("kind").and_then(Value::as_str),
            ) else {
                continue;
            };
            if !name.contains('/') {
                let namespaced = r.get("namespaced").and_then(Value::as_bool) == Some(true);
                map.insert(
                    format!("{api_version} {k}"),
                    Some((name.to_string(), namespaced)),
                );
            }
        }
        Ok(map.entry(key).or_insert(None).clone())
    }

    /// A server-side apply of each object with `dryRun=All` and strict field
    /// validation, as `kubectl apply --server-side --dry-run=server
    /// --validate=strict` sends it; the refusals by index.
    fn dry_run<'a>(
        &self,
        objects: impl Iterator<Item = &'a Value>,
    ) -> Result<BTreeMap<usize, String>> {
        let mut out = BTreeMap::new();
        for (i, object) in objects.enumerate() {
            let sent = for_server(object);
            let api_version = sent.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = sent.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = sent
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some((resource, namespaced)) = self.resource(api_version, kind)? else {
                out.insert(
                    i,
                    format!("no matches for kind \"{kind}\" in version \"{api_version}\": install its CRD"),
                );
                continue;
            };
            let base = if api_version.contains('/') {
                format!("/apis/{api_version}")
            } else {
                format!("/api/{api_version}")
            };
            let scope = if namespaced {
                let ns = sent
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .unwrap_or("default");
                format!("/namespaces/{}", escape(ns))
            } else {
                String::new()
            };
            let name = escape(name);
            let path = format!(
                "{base}{scope}/{resource}/{name}?dryRun=All&fieldManager=xtask-validate&fieldValidation=Strict&force=true"
            );
            let body = serde_json::to_string(&sent)?;
            let (code, reply) = request(self.port, "PATCH", &path, Some(&body))?;
            if !(200..300).contains(&code) {
                out.insert(i, status_message(code, &reply));
            }
        }
        Ok(out)
    }
}

/// A path segment, percent-encoded (a bad name must reach the server to be
/// judged there, not break the URL).
fn escape(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One HTTP/1.0 request to the proxy (no chunking, the connection closes
/// after the reply): the status code and the body.
fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to kubectl proxy on port {port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n");
    match body {
        // A server-side apply; JSON is YAML.
        Some(body) => write!(
            s,
            "{head}Content-Type: application/apply-patch+yaml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?,
        None => write!(s, "{head}\r\n")?,
    }
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    local::split_response(&text)
        .ok_or_else(|| anyhow!("kubectl proxy answered {method} {path} with {text:?}"))
}

/// A refusal as kubectl prints it: `(<reason>): <message>`.
fn status_message(code: u16, body: &str) -> String {
    let status: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = status
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| body.trim().to_string(), str::to_string);
    match status.get("reason").and_then(Value::as_str) {
        Some(reason) if !reason.is_empty() => format!("({reason}): {message}"),
        _ => format!("(HTTP {code}): {message}"),
    }
}

/// How many objects are in flight at once: kubectl's start-up, not the
/// server, is the cost.
const PARALLEL: usize = 4;

/// `kubectl apply --server-side --dry-run=server --validate=strict` of each
/// file (one call per object: kubectl names neither the file nor the
/// namespace in a server-side apply's error, so a batch could not be split
/// back by object); the error of each refused one, by its index.
fn dry_run(cp: &ControlPlane, dir: &Path, count: usize) -> Result<BTreeMap<usize, String>> {
    let out = std::sync::Mutex::new(BTreeMap::new());
    let failed = std::sync::Mutex::new(None);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(count) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let run = cp
                        .kube
                        .cmd()
                        .args([
                            "apply",
                            "--server-side",
                            "--force-conflicts",
                            "--field-manager=xtask-validate",
                            "--dry-run=server",
                            "--validate=strict",
                            "-f",
                        ])
                        .arg(dir.join(format!("{i:05}.yaml")))
                        .output();
                    match run {
                        Ok(o) if o.status.success() => {}
                        Ok(o) => {
                            let text = clean(&String::from_utf8_lossy(&o.stderr));
                            out.lock().expect("lock").insert(i, text);
                        }
                        Err(e) => {
                            failed.lock().expect("lock").get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("lock") {
        return Err(e).context("kubectl apply --dry-run=server");
    }
    Ok(out.into_inner().expect("lock"))
}

/// kubectl's error down to the server's words: one line, without the
/// `Error from server` prefix and kubectl's warnings.
fn clean(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning:"))
        .map(|l| l.strip_prefix("Error from server ").unwrap_or(l))
        .collect();
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_servers_words() {
        let stderr = "Warning: unknown field\nError from server (Invalid): Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1\n  and more\n";
        assert_eq!(
            clean(stderr),
            "(Invalid): Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1 and more"
        );
    }

    #[test]
    fn missing_binaries_say_how_to_get_them() {
        let empty = tempfile::tempdir().unwrap();
        let err = check(empty.path(), &[], &[], |_| {}).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("cargo xtask e2e --build-only"), "{text}");
    }

    #[test]
    fn encrypted_values_get_stand_ins() {
        let o = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "ENC[AES256_GCM,data:x]"}, "stringData": {"b": "ENC[AES256_GCM,data:y]"},
            "sops": {"mac": "m"}});
        let sent = for_server(&o);
        assert!(sent.get("sops").is_none());
        assert_eq!(sent["data"]["a"], "e30=");
        assert_eq!(sent["stringData"]["b"], "{}");
    }
}
