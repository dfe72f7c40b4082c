//! `bench publish`: our publish of the real tree against the tarball that
//! `flux push artifact` builds, pushed by `oras push` with Flux's media types,
//! to the same loopback `docker-registry`.

use std::path::Path;

use exec::runner::Cmd;
use exec::tools;

use std::time::{Duration, Instant};

use super::{Report, Row, Samples, ours};
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
    let publish_from = |tree: &Path, repo: &str| {
        Cmd::new(&xtask)
            .args(["publish", "--path"])
            .arg(tree)
            .args(["--registry", &registry.url(repo), "--tag", "latest"])
            .dir(tree)
            .read()
    };
    let ours_publish = |repo: &str| publish_from(root, repo);
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
    // New commits that leave the shipped tree as it was (tooling or docs)
    // are made in a clone.
    let clone = scratch.path().join("clone");
    Cmd::new("git")
        .args(["clone", "-q", "--local"])
        .arg(root)
        .arg(&clone)
        .read()?;
    // Files checked out in the second the index is written are "racily
    // clean" to git, which then hashes each of them again on every status
    // until an index is written a second later: a state a fresh checkout is
    // in for one second, not the one this case measures.
    std::thread::sleep(Duration::from_millis(1100));
    Cmd::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["update-index", "-q", "--refresh"])
        .read()?;
    publish_from(&clone, &next_repo())?;
    ours_publish("again")?;
    peer_publish("again-peer")?;
    // The cases take turns within each round, so that the load of a shared
    // machine weighs on every case alike, not on one block of samples.
    let timed = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        f()?;
        Ok(started.elapsed())
    };
    let mut samples: [Vec<Duration>; 6] = Default::default();
    for round in 1..=runs {
        // A new commit that leaves the shipped tree as it was: untimed.
        std::fs::write(clone.join("README.md"), format!("bench commit {round}\n"))?;
        Cmd::new("git")
            .arg("-C")
            .arg(&clone)
            .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
            .args(["commit", "-q", "-am", "bench"])
            .read()?;
        samples[0].push(timed(&mut || {
            publish_from(&clone, &next_repo())?;
            Ok(())
        })?);
        // A changed shipped tree: nothing cached, so it is walked, gated
        // and packaged (the entry it leaves serves the next case).
        crate::ship::cache::forget(&crate::ship::cache::location(Some(root)), root)?;
        samples[1].push(timed(&mut || {
            ours_publish(&next_repo())?;
            Ok(())
        })?);
        // The same commit again, to a new repository: from the cache.
        samples[2].push(timed(&mut || {
            ours_publish(&next_repo())?;
            Ok(())
        })?);
        samples[3].push(timed(&mut || peer_publish(&next_repo()))?);
        samples[4].push(timed(&mut || {
            ours_publish("again")?;
            Ok(())
        })?);
        samples[5].push(timed(&mut || peer_publish("again-peer"))?);
    }
    let [
        ours_new_commit,
        ours_cold,
        ours_first,
        peer_first,
        ours_again,
        peer_again,
    ] = samples.map(Samples::new);
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
            Row::new(
                "first push, new commit, same shipped tree",
                ours_new_commit,
                peer_first.clone(),
            ),
            Row::new(
                "first push, shipped tree changed (nothing cached)",
                ours_cold,
                peer_first,
            ),
            Row::new("re-push, unchanged", ours_again, peer_again),
        ],
    })
}
