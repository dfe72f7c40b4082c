//! `cargo xtask bench <what>`: runs our verb and the peer tool side by side in
//! one run, on the same input, and prints the median times and their ratio.
//! Benchmarks are not tests: nothing here asserts a time.

mod diff;
mod publish;
mod reconcile;
mod secrets;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;

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
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let runs = self.runs.max(1);
        let root = checkout.root()?;
        let report = match self.what {
            Bench::Secrets { files } => secrets::run(files, runs)?,
            Bench::Validate => validate::run(root, runs)?,
            Bench::Diff => diff::run(root, runs)?,
            Bench::Publish => publish::run(root, runs)?,
            Bench::Reconcile { cycles } => reconcile::run(root, cycles.max(1))?,
        };
        report.print();
        Ok(ExitCode::SUCCESS)
    }
}

/// One side-by-side comparison. The rule for every bench: each side runs
/// the same number of times on the same input; the speed-up is the peer's
/// median over ours.
struct Report {
    title: String,
    rows: Vec<Row>,
}

struct Row {
    label: String,
    ours: Samples,
    /// `None` where no peer tool does the same thing.
    peer: Option<Samples>,
}

impl Row {
    fn new(label: impl Into<String>, ours: Samples, peer: Samples) -> Self {
        Self {
            label: label.into(),
            ours,
            peer: Some(peer),
        }
    }

    fn alone(label: impl Into<String>, ours: Samples) -> Self {
        Self {
            label: label.into(),
            ours,
            peer: None,
        }
    }
}

impl Report {
    fn print(&self) {
        println!("{}", self.title);
        println!("machine: {}", machine());
        println!(
            "{:<48} {:>28} {:>28} {:>9}",
            "case", "ours: median (min-max)", "peer: median (min-max)", "speed-up"
        );
        for row in &self.rows {
            let (peer, ratio) = match &row.peer {
                Some(peer) => (
                    peer.to_string(),
                    format!("{:.1}x", speed_up(&row.ours, peer)),
                ),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<48} {:>28} {:>28} {:>9}",
                row.label,
                row.ours.to_string(),
                peer,
                ratio
            );
        }
    }
}

/// The peer's median over ours.
fn speed_up(ours: &Samples, peer: &Samples) -> f64 {
    peer.median().as_secs_f64() / ours.median().as_secs_f64().max(1e-9)
}

/// The durations of repeated runs of one side.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self(samples)
    }

    pub fn min(&self) -> Duration {
        self.0.first().copied().unwrap_or_default()
    }

    pub fn median(&self) -> Duration {
        self.0.get(self.0.len() / 2).copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

impl std::fmt::Display for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}-{})",
            ms(self.median()),
            ms(self.min()),
            ms(self.max())
        )
    }
}

/// Runs `setup` (untimed) then times `f`, `runs` times.
fn time(
    runs: usize,
    mut setup: impl FnMut() -> anyhow::Result<()>,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        setup()?;
        let started = Instant::now();
        f()?;
        samples.push(started.elapsed());
    }
    Ok(Samples::new(samples))
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        return format!("{:.1} s", d.as_secs_f64());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_min_median_max_and_the_ratio_is_of_medians() {
        let secs = |v: &[u64]| Samples::new(v.iter().map(|&s| Duration::from_secs(s)).collect());
        let ours = secs(&[3, 1, 2]);
        assert_eq!(ours.min(), Duration::from_secs(1));
        assert_eq!(ours.median(), Duration::from_secs(2));
        assert_eq!(ours.max(), Duration::from_secs(3));
        assert_eq!(ours.to_string(), "2000.0 ms (1000.0 ms-3000.0 ms)");
        let peer = secs(&[8, 4, 100]);
        assert_eq!(speed_up(&ours, &peer), 4.0);
        assert_eq!(Samples::default().median(), Duration::ZERO);
    }
}
