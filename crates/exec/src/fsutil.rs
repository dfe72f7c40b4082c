//! File-system helpers shared by the verbs.

use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` atomically: a temp file in the same folder,
/// fsync, then rename over the target. The old file's permissions are kept.
/// A reader sees either the old bytes or the new ones, never a mix.
///
/// The temp file is `.xtask-<name>.<pid>.<random>.tmp`: a write killed
/// halfway leaves it behind, and the next write of the same file removes it
/// once its process is gone (the ship gate refuses such files meanwhile).
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_replacing(path, contents, true, true)
}

/// [`write_atomic`] without the fsync, for caches and output that can be
/// made again: a reader still never sees a mix, but after a power loss the
/// file may be empty or old, so a reader must treat such a file as a miss.
/// An fsync costs milliseconds per file, more than a cache hit saves.
pub fn write_atomic_unsynced(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_replacing(path, contents, false, true)
}

/// [`write_atomic_unsynced`] for a cache folder of many entries: the folder
/// is not read for the leftovers of killed writes (reading thousands of
/// names costs more than the write); the cache removes them with
/// [`remove_leftovers_in`] when it reads the folder anyway.
pub fn write_cache_entry(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_replacing(path, contents, false, false)
}

/// Keeps the `newest` files of `dir` whose extension is `extension` (by
/// modification time) and removes the others: a cache folder's bound.
pub fn keep_newest(dir: &Path, extension: &str, newest: usize) {
    let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == extension))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() > newest {
        files.sort();
        for (_, old) in &files[..files.len() - newest] {
            let _ = std::fs::remove_file(old);
        }
    }
}

/// Removes the temp files that killed writes of any file left in `dir`
/// (their process is gone).
pub fn remove_leftovers_in(dir: &Path) {
    remove_leftovers(dir, ".xtask-");
}

fn write_replacing(path: &Path, contents: &[u8], sync: bool, tidy: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".xtask-{name}.");
    if tidy {
        remove_leftovers(dir, &prefix);
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}.", std::process::id()))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    if sync {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes the temp files of earlier writes of the same file whose process
/// is gone.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(prefix))
            .filter(|r| r.ends_with(".tmp"))
        else {
            continue;
        };
        // `<pid>.<random>.tmp` after the prefix of one file; after the
        // prefix of any file, the name may hold dots: the pid is then the
        // second part from the end.
        let pid = rest
            .trim_end_matches(".tmp")
            .rsplit('.')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Without /proc a leftover is kept: only a system with it can tell.
#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "old").unwrap();
        write_atomic(&file, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_leftover_of_a_killed_write_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.enc.yaml");
        // A process that is gone: a child that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let leftover = dir
            .path()
            .join(format!(".xtask-a.enc.yaml.{gone}.Xy12.tmp"));
        std::fs::write(&leftover, "plaintext").unwrap();
        // Another file's leftover, and a live process's, stay.
        let other = dir.path().join(format!(".xtask-b.yaml.{gone}.Xy12.tmp"));
        std::fs::write(&other, "x").unwrap();
        let live = dir
            .path()
            .join(format!(".xtask-a.enc.yaml.{}.Xy12.tmp", std::process::id()));
        std::fs::write(&live, "x").unwrap();
        write_atomic(&file, b"new").unwrap();
        assert!(!leftover.exists());
        assert!(other.exists() && live.exists());
        // A cache write looks for none; the folder-wide sweep removes every
        // dead process's, whatever its file.
        write_cache_entry(&dir.path().join("c"), b"x").unwrap();
        assert!(other.exists());
        remove_leftovers_in(dir.path());
        assert!(!other.exists() && live.exists());
    }

    #[test]
    fn keep_newest_removes_the_oldest_files_of_its_kind_only() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for (i, name) in ["old.json", "mid.json", "new.json", "other.txt"]
            .iter()
            .enumerate()
        {
            let path = dir.path().join(name);
            std::fs::write(&path, "x").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(base + std::time::Duration::from_secs(i as u64 * 60))
                .unwrap();
        }
        keep_newest(dir.path(), "json", 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["mid.json", "new.json", "other.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.txt");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&file, b"y").unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
