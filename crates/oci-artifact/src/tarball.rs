//! The deterministic tar.gz, following Flux's builder rules (fluxcd/pkg
//! `oci/build.go`): relative names in walk order, directories included,
//! symlinks skipped, uid/gid 0, empty user and group names, zero times.
//! Unlike Flux, modes are normalised (0644, or 0755 for directories and
//! executables) so that the umask of the checkout does not change the digest;
//! the gzip header is fixed (mtime 0, no name, OS byte 255).

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use super::ArtifactError;
use super::tree::{Kind, TreeEntry};

/// The built layer.
pub struct Built {
    /// The compressed layer bytes.
    pub gz: Vec<u8>,
    /// `sha256:` of the uncompressed tar (the OCI diff id).
    pub diff_id: String,
    /// Entry names in archive order.
    pub entries: Vec<String>,
}

/// Mode bits written for an entry.
pub fn normalized_mode(kind: Kind) -> u32 {
    match kind {
        Kind::Dir | Kind::File { executable: true } => 0o755,
        Kind::File { executable: false } => 0o644,
    }
}

/// Builds the tar.gz of `entries` (from [`super::tree::collect`]), reading
/// each file from disk.
pub fn build(root: &Path, entries: &[TreeEntry]) -> Result<Built, ArtifactError> {
    build_with(root, entries, |i| {
        let path = &entries[i].path;
        std::fs::read(path)
            .map(Cow::Owned)
            .map_err(ArtifactError::io(path))
    })
}

/// Builds the tar.gz of `entries` with the bytes `content` gives for the
/// file at each index: a caller that judged those bytes archives exactly
/// them, whatever happens on disk meanwhile.
pub fn build_with<'a>(
    root: &Path,
    entries: &[TreeEntry],
    content: impl Fn(usize) -> Result<Cow<'a, [u8]>, ArtifactError>,
) -> Result<Built, ArtifactError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut names = Vec::with_capacity(entries.len());
    for (index, e) in entries.iter().enumerate() {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_mode(normalized_mode(e.kind));
        h.set_username("").map_err(ArtifactError::io(root))?;
        h.set_groupname("").map_err(ArtifactError::io(root))?;
        let tar_err = ArtifactError::io(&e.path);
        match e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                builder
                    .append_data(&mut h, &e.name, std::io::empty())
                    .map_err(tar_err)?;
            }
            Kind::File { .. } => {
                let data = content(index)?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                builder
                    .append_data(&mut h, &e.name, &*data)
                    .map_err(tar_err)?;
            }
        }
        names.push(e.name.clone());
    }
    let tar = builder.into_inner().map_err(ArtifactError::io(root))?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));

    let mut gz = GzBuilder::new().mtime(0).operating_system(255).write(
        Vec::with_capacity(tar.len() / 4 + 64),
        Compression::default(),
    );
    gz.write_all(&tar).map_err(ArtifactError::io(root))?;
    let gz = gz.finish().map_err(ArtifactError::io(root))?;
    Ok(Built {
        gz,
        diff_id,
        entries: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn build_with_archives_the_bytes_it_is_given_not_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "changed on disk\n").unwrap();
        let entries = crate::tree::collect(dir.path()).unwrap();
        let judged = b"the bytes that were judged\n";
        let built = build_with(dir.path(), &entries, |_| Ok(Cow::Borrowed(&judged[..]))).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(built.gz.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut file = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().to_str() == Some("a.yaml"))
            .unwrap();
        let mut text = Vec::new();
        file.read_to_end(&mut text).unwrap();
        assert_eq!(text, judged);
    }
}
