//! `bench publish`: our publish of the real tree against the tarball that
//! `flux push artifact` builds, pushed by `oras push` with Flux's media types,
//! to the same loopback `docker-registry`.

use std::path::Path;

use exec::runner::Cmd;
use exec::tools;

use super::{Report, Row, ours, time};
use crate::cluster::local::registry::LocalRegistry;

pub(super) fn run(root: &Path, runs: usize) -> anyhow::Result<Report> {
    let oras = tools::find("oras")?;
    let scratch = tempfile::tempdir()?;
    let registry = LocalRegistry::start(&scratch.path().join("registry"), None)?;
    let xtask = ours()?;
    let mut repo = 0;
    // Each first-push sample goes to a new repository, so nothing is there yet.
    let mut next_repo = || {
        repo += 1;
        format!("bench-{repo}")
    };
    let ours_publish = |repo: &str| {
        Cmd::new(&xtask)
            .args([
                "publish",
                "--registry",
                &registry.url(repo),
                "--tag",
                "latest",
            ])
            .dir(root)
            .read()
    };
    // The peer: the tarball as `flux push artifact` builds it (tar + gzip of
    // the tree, owners and times zeroed), then oras with Flux's media types.
    let tarball = scratch.path().join("manifests.tgz");
    let config = scratch.path().join("config.json");
    std::fs::write(&config, "{}")?;
    let peer_publish = |repo: &str| -> anyhow::Result<()> {
        Cmd::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=@0",
                "-czf",
            ])
            .arg(&tarball)
            .args(crate::MANIFEST_DIRS)
            .dir(root)
            .read()?;
        Cmd::new(&oras)
            .args(["push", "--plain-http", "--disable-path-validation"])
            .arg(format!("{}/{repo}:latest", registry.host()))
            .arg("--config")
            .arg(format!(
                "{}:application/vnd.cncf.flux.config.v1+json",
                config.display()
            ))
            .arg(format!(
                "{}:application/vnd.cncf.flux.content.v1.tar+gzip",
                tarball.display()
            ))
            .dir(scratch.path())
            .read()?;
        Ok(())
    };
    // A new commit: nothing cached, so the tree is walked, gated and packaged.
    let ours_cold = time(
        runs,
        || Ok(crate::ship::cache::forget(root)?),
        || {
            ours_publish(&next_repo())?;
            Ok(())
        },
    )?;
    // The same commit again, to a new repository: packaged from the cache
    // that the runs above left.
    let ours_first = time(
        runs,
        || Ok(()),
        || {
            ours_publish(&next_repo())?;
            Ok(())
        },
    )?;
    let peer_first = time(runs, || Ok(()), || peer_publish(&next_repo()))?;
    ours_publish("again")?;
    let ours_again = time(
        runs,
        || Ok(()),
        || {
            ours_publish("again")?;
            Ok(())
        },
    )?;
    peer_publish("again-peer")?;
    let peer_again = time(runs, || Ok(()), || peer_publish("again-peer"))?;
    Ok(Report {
        title: format!(
            "bench publish: the real tree to docker-registry on 127.0.0.1, {runs} runs per side; peer = flux-style tar.gz + oras push"
        ),
        rows: vec![
            Row::new(
                "first push, commit shipped before",
                ours_first,
                peer_first.clone(),
            ),
            Row::new("first push, new commit", ours_cold, peer_first),
            Row::new("re-push, unchanged", ours_again, peer_again),
        ],
    })
}
