//! `validate` on the kustomize build cache: a warm run and a run after a
//! one-file edit report exactly what a cold run reports, the edit rebuilds
//! only the kustomization that reaches the file, two validates at once share
//! one cache folder, and a YAML alias bomb is refused by name before any
//! kustomize process sees it (fast, in little memory).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::validate_checks::schemas;

use xtask::validate::{self, Options, Report};

fn base_tree() -> Option<(tempfile::TempDir, PathBuf)> {
    common::tool("kustomize")?;
    let schemas = schemas()?;
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(
        &common::root().join("xtask/tests/fixtures/validate/base"),
        dir.path(),
    );
    Some((dir, schemas))
}

fn options(root: &Path, schemas: &Path, cache: &Path) -> Options {
    let mut opts = Options::new(root);
    opts.schema_locations = vec![schemas.display().to_string()];
    opts.kustomize_cache = Some(cache.to_path_buf());
    // No verdict or schema cache: the render beside validate runs every
    // time, so the kustomize processes counted are the same every time.
    opts.cache_dir = None;
    opts
}

/// Everything a report says (the JSON output; times left out).
fn said(report: &Report) -> String {
    let mut json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
    if let Some(summary) = json.get_mut("summary").and_then(|s| s.as_object_mut()) {
        summary.remove("seconds");
    }
    json.to_string()
}

/// Adds a field the Deployment's schema does not know to the one file only
/// apps/demo reaches; returns the file and its text before.
fn add_schema_error(root: &Path) -> (PathBuf, String) {
    let file = root.join("apps/demo/deployment.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replace("  replicas:", "  replicaz: 3\n  replicas:");
    std::fs::write(&file, edited).unwrap();
    (file, text)
}

/// [`options`] with validate's own cache folder too (verdicts, parses), and
/// the two folders, removed when dropped.
fn with_every_cache(
    root: &Path,
    schemas: &Path,
) -> (Options, tempfile::TempDir, tempfile::TempDir) {
    let kustomize = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(root, schemas, kustomize.path());
    opts.cache_dir = Some(cache.path().to_path_buf());
    (opts, kustomize, cache)
}

/// A cold run: a cache folder of its own.
fn cold(root: &Path, schemas: &Path) -> Report {
    let cache = tempfile::tempdir().unwrap();
    let report = validate::run(&options(root, schemas, cache.path())).unwrap();
    // apps/demo and infra, and the cluster's root sync (the kustomization
    // Flux generates for clusters/test) that the render beside builds; the
    // render's builds of apps/demo and infra are validate's.
    assert_eq!(
        report.kustomize_runs, 3,
        "a cold run builds each folder once"
    );
    report
}

#[test]
fn warm_and_edited_runs_report_what_a_cold_run_reports() {
    let Some((tree, schemas)) = base_tree() else {
        return;
    };
    let root = tree.path();
    let cache = tempfile::tempdir().unwrap();
    let opts = options(root, &schemas, cache.path());
    let first = validate::run(&opts).unwrap();
    assert_eq!(first.kustomize_runs, 3);
    let warm = validate::run(&opts).unwrap();
    assert_eq!(
        warm.kustomize_runs, 0,
        "nothing changed: no kustomize process"
    );
    assert_eq!(said(&warm), said(&first));
    assert_eq!(said(&warm), said(&cold(root, &schemas)));

    // One file that only apps/demo reaches, edited to hold a schema error.
    let (file, text) = add_schema_error(root);
    let edited = validate::run(&opts).unwrap();
    assert_eq!(edited.kustomize_runs, 1, "only apps/demo builds again");
    assert_eq!(said(&edited), said(&cold(root, &schemas)));
    assert_eq!(edited.errors(), 1, "{}", edited.render_text());
    assert!(
        edited.findings[0].text().contains("replicaz"),
        "{}",
        edited.render_text()
    );

    // The edit undone: the first entries serve it again.
    std::fs::write(&file, text).unwrap();
    let back = validate::run(&opts).unwrap();
    assert_eq!(back.kustomize_runs, 0);
    assert_eq!(said(&back), said(&first));
}

#[test]
fn two_validates_at_once_share_the_cache() {
    let Some((tree, schemas)) = base_tree() else {
        return;
    };
    let root = tree.path();
    let expected = said(&cold(root, &schemas));
    let cache = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let reports: Vec<Report> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..2)
                .map(|_| s.spawn(|| validate::run(&options(root, &schemas, cache.path()))))
                .collect();
            runs.into_iter()
                .map(|r| r.join().unwrap().unwrap())
                .collect()
        });
        for r in &reports {
            assert_eq!(said(r), expected, "round {round}");
        }
    }
    // One whole entry per build (beside the folder's size count), no
    // temporary file left behind.
    let mut names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".size")
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.len() == 64), "{names:?}");
}

/// Runs `program` under a small python3 parent and returns its output with
/// its peak resident memory (KiB) and the CPU time it used, both read from
/// the parent's `RUSAGE_CHILDREN`. A child spawned straight from this test
/// process would carry the test process's own resident size into its peak
/// at exec; CPU time, unlike wall time, does not grow with the machine's load.
fn run_measured(
    program: &Path,
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &std::ffi::OsStr)],
) -> (std::process::Output, i64, Duration) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
code = subprocess.call(sys.argv[2:])\n\
u = resource.getrusage(resource.RUSAGE_CHILDREN)\n\
open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime + u.ru_stime}')\n\
sys.exit(code)\n";
    let usage_file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", MEASURE])
        .arg(usage_file.path())
        .arg(program)
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let usage = std::fs::read_to_string(usage_file.path()).unwrap();
    let (peak, cpu) = usage.trim().split_once(' ').unwrap();
    (
        out,
        peak.parse().unwrap(),
        Duration::from_secs_f64(cpu.parse().unwrap()),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn an_alias_bomb_is_refused_by_name_before_any_build() {
    let Some((tree, schemas)) = base_tree() else {
        return;
    };
    let root = tree.path();
    // The rest of the tree built once before, so that the run measured
    // starts no kustomize process: its peak memory is the refusal's own.
    let cache = tempfile::tempdir().unwrap();
    let warm = validate::run(&options(root, &schemas, cache.path())).unwrap();
    assert!(warm.kustomize_runs > 0);
    let bomb = common::alias_bomb();
    std::fs::write(root.join("apps/demo/bomb.yaml"), bomb).unwrap();
    let k = root.join("apps/demo/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    std::fs::write(
        &k,
        text.replace("resources:\n", "resources:\n  - bomb.yaml\n"),
    )
    .unwrap();
    let kustomize_dir = common::tool("kustomize").unwrap();
    let path = std::env::join_paths(
        std::iter::once(kustomize_dir.parent().unwrap().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ),
    )
    .unwrap();
    let (out, peak_kib, cpu) = run_measured(
        Path::new(env!("CARGO_BIN_EXE_xtask")),
        &[
            "validate".as_ref(),
            "-v".as_ref(),
            "--root".as_ref(),
            root.as_os_str(),
            "--schema-location".as_ref(),
            schemas.as_os_str(),
        ],
        &[
            ("PATH", path.as_os_str()),
            ("XTASK_KUSTOMIZE_CACHE", cache.path().as_os_str()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let refusal = "document contains excessive aliasing: alias *l2 at line 8";
    // Said at the file and the line of the alias.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.windows(2).any(|w| w[0] == "apps/demo/bomb.yaml"
            && w[1].trim_start().starts_with("8:1")
            && w[1].contains(refusal)),
        "{stdout}"
    );
    // The folder that reaches it never went to kustomize, and the rest of
    // the tree came from the cache the warm run filled.
    let builds: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("kustomize build"))
        .collect();
    assert!(builds.is_empty(), "{stderr}");
    eprintln!("alias bomb refused in {cpu:?} of CPU, peak RSS {peak_kib} KiB");
    assert!(cpu < Duration::from_secs(1), "took {cpu:?} of CPU");
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn objects_judged_before_are_not_judged_again() {
    let Some((tree, schemas)) = base_tree() else {
        return;
    };
    let root = tree.path();
    let (opts, _kustomize, cache) = with_every_cache(root, &schemas);
    let first = validate::run(&opts).unwrap();
    assert_eq!(first.objects_judged, first.objects_checked);
    assert!(first.objects_checked > 0);
    let again = validate::run(&opts).unwrap();
    assert_eq!(again.objects_judged, 0);
    assert_eq!(said(&again), said(&first));

    // One object changes: it alone is judged, in its two forms (as built,
    // with variable defaults, and as Flux applies it, with the
    // Kustomization's postBuild values); the report is a cold run's.
    add_schema_error(root);
    let edited = validate::run(&opts).unwrap();
    assert_eq!(edited.objects_judged, 2);
    assert_eq!(said(&edited), said(&cold(root, &schemas)));
    assert_eq!(edited.errors(), 1, "{}", edited.render_text());

    // A store that does not read is a miss, not an error.
    let stores: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("verdicts-"))
        .collect();
    assert_eq!(stores.len(), 1, "one store for the one binary");
    std::fs::write(stores[0].path(), "{\"trunc").unwrap();
    let torn = validate::run(&opts).unwrap();
    assert_eq!(torn.objects_judged, torn.objects_checked);
    assert_eq!(said(&torn), said(&edited));
}

#[test]
fn kept_parses_report_what_a_cold_run_reports() {
    let Some((tree, schemas)) = base_tree() else {
        return;
    };
    let root = tree.path();
    let (opts, _kustomize, cache) = with_every_cache(root, &schemas);
    let kept = cache.path().join("sources-1.json");
    let kept_files = || {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
        json["files"].as_object().unwrap().len()
    };
    let first = validate::run(&opts).unwrap();
    assert_eq!(kept_files(), first.files, "every file's parse is kept");
    let written = std::fs::read(&kept).unwrap();
    let warm = validate::run(&opts).unwrap();
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        written,
        "a warm run parses nothing, so keeps what it found"
    );
    assert_eq!(said(&warm), said(&first));
    assert_eq!(said(&warm), said(&cold(root, &schemas)));

    // A file that does not parse is never kept: each run finds its error.
    let broken = root.join("apps/demo/deployment.yaml");
    let text = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(&broken, format!("{text}bad: [\n")).unwrap();
    let once = validate::run(&opts).unwrap();
    assert_eq!(kept_files(), first.files - 1, "all but the broken file");
    let twice = validate::run(&opts).unwrap();
    assert!(
        once.errors() > 0 && once.render_text().contains("deployment.yaml"),
        "{}",
        once.render_text()
    );
    assert_eq!(said(&twice), said(&once));
    let fresh = tempfile::tempdir().unwrap();
    let cold_broken = validate::run(&options(root, &schemas, fresh.path())).unwrap();
    assert_eq!(said(&twice), said(&cold_broken));

    // A torn file of kept parses is read as empty, not as an error.
    std::fs::write(&broken, &text).unwrap();
    std::fs::write(&kept, "{\"binary\":\"x\",\"fi").unwrap();
    let torn = validate::run(&opts).unwrap();
    assert_eq!(said(&torn), said(&first));
}
