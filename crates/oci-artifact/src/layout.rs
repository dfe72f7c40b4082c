//! OCI image layout folders (image-spec `image-layout.md`): `oci-layout`,
//! `index.json` naming each manifest by `org.opencontainers.image.ref.name`,
//! and `blobs/sha256/<hex>`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Artifact, ArtifactError, MANIFEST_MEDIA_TYPE, sha256_digest};
use exec::fsutil::write_atomic;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ArtifactError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ArtifactError::Layout {
            dir: dir.to_path_buf(),
            detail: format!("unsupported digest {digest:?}"),
        })?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let path = blob_path(dir, &sha256_digest(bytes))?;
    // Content addressed: an existing blob of the right size is the same blob.
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(());
    }
    write_atomic(&path, bytes).map_err(ArtifactError::io(&path))
}

/// Writes (or updates) the OCI image layout at `dir`, naming the manifest
/// `tag`. Other tags already in `index.json` are kept; the same tag is
/// replaced. `skopeo inspect oci:DIR:TAG` reads the result.
pub fn write_oci_layout(a: &Artifact, dir: &Path, tag: &str) -> Result<(), ArtifactError> {
    super::validate_tag(tag)?;
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(ArtifactError::io(&blobs))?;
    write_blob(dir, &a.layer)?;
    write_blob(dir, &a.config)?;
    write_blob(dir, &a.manifest)?;

    let layout = dir.join("oci-layout");
    write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(ArtifactError::io(&layout))?;

    let index_path = dir.join("index.json");
    let mut manifests: Vec<Value> = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
            .ok_or_else(|| ArtifactError::Layout {
                dir: dir.to_path_buf(),
                detail: "index.json is not an OCI image index".into(),
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ArtifactError::io(&index_path)(e)),
    };
    manifests.retain(|m| {
        m.pointer("/annotations/org.opencontainers.image.ref.name") != Some(&json!(tag))
    });
    manifests.push(json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": a.manifest_digest,
        "size": a.manifest.len(),
        "annotations": { REF_NAME: tag },
    }));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index).expect("serialising a JSON value");
    write_atomic(&index_path, &bytes).map_err(ArtifactError::io(&index_path))
}

/// Reads the manifest named `tag` (or the only manifest when `tag` is
/// `None`) from the OCI layout at `dir`: `(manifest bytes, digest)`.
pub fn read_oci_layout(dir: &Path, tag: Option<&str>) -> Result<(Vec<u8>, String), ArtifactError> {
    let layout_err = |detail: String| ArtifactError::Layout {
        dir: dir.to_path_buf(),
        detail,
    };
    let index_path = dir.join("index.json");
    let index: Value = serde_json::from_slice(
        &std::fs::read(&index_path).map_err(ArtifactError::io(&index_path))?,
    )
    .map_err(|e| layout_err(format!("index.json: {e}")))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| layout_err("index.json has no manifests".into()))?;
    let chosen = match tag {
        Some(t) => manifests
            .iter()
            .find(|m| {
                m.pointer("/annotations/org.opencontainers.image.ref.name") == Some(&json!(t))
            })
            .ok_or_else(|| layout_err(format!("no manifest tagged {t:?}")))?,
        None if manifests.len() == 1 => &manifests[0],
        None => {
            return Err(layout_err(format!(
                "{} manifests; name one with DIR:TAG",
                manifests.len()
            )));
        }
    };
    let digest = chosen
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| layout_err("manifest descriptor without digest".into()))?
        .to_string();
    let bytes = read_blob(dir, &digest)?;
    Ok((bytes, digest))
}

/// Reads a blob from the layout and checks its digest.
pub fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>, ArtifactError> {
    let path = blob_path(dir, digest)?;
    let bytes = std::fs::read(&path).map_err(ArtifactError::io(&path))?;
    if sha256_digest(&bytes) != digest {
        return Err(ArtifactError::Layout {
            dir: dir.to_path_buf(),
            detail: format!("blob {digest} does not match its digest"),
        });
    }
    Ok(bytes)
}
