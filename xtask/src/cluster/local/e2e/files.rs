//! Files of the temporary tree and the registry: the probe, encrypted
//! Secrets, copying manifests, reading and writing YAML streams.

use super::*;

pub(crate) fn probe_yaml(value: &str) -> String {
    format!(
        "---\n# Written by cargo xtask e2e: what the edit test changes.\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {PROBE}\n  namespace: flux-system\ndata:\n  value: \"{value}\"\n  domain: \"${{domain}}\"\n"
    )
}

pub(crate) fn encrypt_secret(secret: &Value, recipient: &str) -> Result<String, LocalError> {
    let plain = serde_yaml::to_string(secret)
        .map_err(|e| LocalError::Other(format!("serialising a Secret: {e}")))?;
    let rule = CreationRule::new(
        vec![recipient.to_string()],
        Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let bytes = sops::encrypt(plain.as_bytes(), Format::Yaml, &rule)
        .map_err(|e| LocalError::Other(format!("sops encrypt: {e}")))?;
    String::from_utf8(bytes).map_err(|e| LocalError::Other(format!("sops output: {e}")))
}

pub(super) fn secret_value(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// The manifest digest a registry serves for `repo:tag` (HEAD, Docker-Content-Digest).
pub fn registry_digest(port: u16, repo: &str, tag: &str) -> Result<String, HttpError> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .ok_or_else(|| HttpError::NoDigest {
            repo: repo.to_string(),
            tag: tag.to_string(),
            response: one_line(&text, 200),
        })
}

/// Copies the manifest folders (and the ignore files) of the repository.
pub(super) fn copy_manifests(root: &Path, to: &Path) -> Result<(), LocalError> {
    for dir in crate::MANIFEST_DIRS {
        copy_dir(&root.join(dir), &to.join(dir))?;
    }
    for file in crate::TREE_FILES {
        let from = root.join(file);
        if from.is_file() {
            std::fs::copy(&from, to.join(file)).map_err(io_err(from.display()))?;
        }
    }
    Ok(())
}

pub(super) fn copy_dir(from: &Path, to: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(to).map_err(io_err(to.display()))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from.display()))? {
        let entry = entry.map_err(io_err(from.display()))?;
        let ty = entry.file_type().map_err(io_err(entry.path().display()))?;
        let target = to.join(entry.file_name());
        if ty.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &target).map_err(io_err(entry.path().display()))?;
        }
    }
    Ok(())
}

pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir.display()))? {
        let path = entry.map_err(io_err(dir.display()))?.path();
        if path.is_dir() {
            out.extend(yaml_files(&path)?);
        } else if flux_render::is_yaml(&path) && !path.ends_with("kustomization.yaml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn read_docs(path: &Path) -> Result<Vec<Value>, LocalError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path.display()))?;
    flux_render::parse_stream(&text)
        .map_err(|e| LocalError::Other(format!("{}: {e}", path.display())))
}

pub(crate) fn write_docs(path: &Path, docs: &[Value]) -> Result<(), LocalError> {
    std::fs::write(path, flux_render::to_yaml_stream(docs)).map_err(io_err(path.display()))
}
