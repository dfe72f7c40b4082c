//! The content-addressed cache of kustomize builds, with the real kustomize:
//! a hit gives the bytes a miss gave (and kustomize itself gives), an edit
//! to any reached file invalidates exactly the builds that reach it, remote
//! resources are never cached, a torn entry is a miss, concurrent builders
//! share one folder, and an alias bomb is refused before kustomize runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exec::runner::Cmd;
use flux_render::kustomize::{BuildCache, BuildError, Builder, DEFAULT_CACHE_BYTES};

use crate::flux_agreement::kustomize_available;

pub(crate) const FLAGS: [&str; 2] = ["--load-restrictor", "LoadRestrictionsNone"];

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Two overlays over one base (one adds a component), a folder on its own,
/// and a file nothing reaches.
pub(crate) fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "base/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deploy.yaml\nconfigMapGenerator:\n  - name: settings\n    files:\n      - app.conf=settings.txt\n    envs:\n      - vars.env\n",
    );
    write(
        root,
        "base/deploy.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n",
    );
    write(root, "base/settings.txt", "level = info\n");
    write(root, "base/vars.env", "MODE=fast\n");
    write(
        root,
        "components/labels/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - path: patch.yaml\n    target:\n      kind: ServiceAccount\n",
    );
    write(
        root,
        "components/labels/patch.yaml",
        "- op: add\n  path: /metadata/labels\n  value:\n    tier: one\n",
    );
    write(
        root,
        "overlays/a/kustomization.yaml",
        "resources:\n  - ../../base\ncomponents:\n  - ../../components/labels\n",
    );
    write(
        root,
        "overlays/b/kustomization.yaml",
        "resources:\n  - ../../base\n",
    );
    write(
        root,
        "standalone/kustomization.yaml",
        "resources:\n  - cm.yaml\n",
    );
    write(
        root,
        "standalone/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alone\ndata:\n  k: v\n",
    );
    write(root, "notes/README.md", "nothing reaches this\n");
    dir
}

const DIRS: [&str; 3] = ["overlays/a", "overlays/b", "standalone"];

fn builder(cache: &Path) -> Builder {
    Builder::find()
        .unwrap()
        .with_cache(Some(BuildCache::new(cache, DEFAULT_CACHE_BYTES)))
}

/// What kustomize itself prints for `dir` (the oracle).
fn kustomize_says(dir: &Path) -> Vec<u8> {
    let bin = exec::tools::find("kustomize").expect("kustomize");
    Cmd::new(bin)
        .arg("build")
        .arg(dir)
        .args(FLAGS)
        .read_bytes()
        .unwrap()
}

/// Builds every fixture folder; returns those that ran kustomize (missed).
fn missed(b: &Builder, root: &Path) -> Vec<&'static str> {
    let mut out = Vec::new();
    for dir in DIRS {
        let (_, before) = b.stats();
        let bytes = b.build(&root.join(dir), &FLAGS).unwrap();
        assert_eq!(
            bytes,
            kustomize_says(&root.join(dir)),
            "{dir}: the cached builder and kustomize disagree"
        );
        if b.stats().1 > before {
            out.push(dir);
        }
    }
    out
}

/// The files of the cache folder but its size count (`.size`).
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name() != ".size")
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_hit_gives_the_bytes_of_the_miss() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    let dir = tree.path().join("overlays/a");
    let miss = b.build(&dir, &FLAGS).unwrap();
    assert_eq!(b.stats(), (0, 1));
    // A second builder (another run) on the same folder.
    let again = builder(cache.path());
    let hit = again.build(&dir, &FLAGS).unwrap();
    assert_eq!(again.stats(), (1, 0));
    assert_eq!(hit, miss);
    assert_eq!(hit, kustomize_says(&dir));
    // Other flags are another build.
    again.build(&dir, &[]).unwrap();
    assert_eq!(again.stats(), (1, 1));
}

#[test]
fn an_edit_invalidates_exactly_the_builds_that_reach_the_file() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let root = tree.path();
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    assert_eq!(missed(&b, root), DIRS);
    assert_eq!(missed(&b, root), Vec::<&str>::new());
    let edits: [(&str, &str, &[&str]); 8] = [
        // A generator's file and env file, through `../`.
        (
            "base/settings.txt",
            "level = debug\n",
            &["overlays/a", "overlays/b"],
        ),
        (
            "base/vars.env",
            "MODE=slow\n",
            &["overlays/a", "overlays/b"],
        ),
        // A resource of the base, through `../`.
        (
            "base/deploy.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app2\n",
            &["overlays/a", "overlays/b"],
        ),
        // A component's patch: only the overlay that uses it.
        (
            "components/labels/patch.yaml",
            "- op: add\n  path: /metadata/labels\n  value:\n    tier: two\n",
            &["overlays/a"],
        ),
        // The component's kustomization itself.
        (
            "components/labels/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - path: patch.yaml\n    target:\n      kind: ConfigMap\n",
            &["overlays/a"],
        ),
        (
            "standalone/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alone\ndata:\n  k: w\n",
            &["standalone"],
        ),
        (
            "overlays/b/kustomization.yaml",
            "resources:\n- ../../base\nnamePrefix: b-\n",
            &["overlays/b"],
        ),
        // Nothing reaches it.
        ("notes/README.md", "still nothing\n", &[]),
    ];
    for (file, text, expected) in edits {
        write(root, file, text);
        assert_eq!(missed(&b, root), expected, "after editing {file}");
    }
    // Going back to content built before is a hit again (by content, not time).
    write(
        root,
        "standalone/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alone\ndata:\n  k: v\n",
    );
    assert_eq!(missed(&b, root), Vec::<&str>::new());
}

#[test]
fn a_copy_of_the_tree_hits_the_same_entries() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let copy = tempfile::tempdir().unwrap();
    testkit::copy_tree(tree.path(), copy.path());
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    assert_eq!(missed(&b, tree.path()), DIRS);
    assert_eq!(missed(&b, copy.path()), Vec::<&str>::new());
}

#[test]
fn a_build_reaching_a_remote_resource_is_never_cached() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let root = tree.path();
    let remotes = [
        "https://example.invalid/deploy.yaml",
        "github.com/example/repo//deploy?ref=v1.0.0",
        "git@github.com:example/repo.git",
    ];
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    for (i, remote) in remotes.iter().enumerate() {
        // Reached through `../`: the overlay names a base that names the remote.
        write(
            root,
            &format!("remote{i}/base/kustomization.yaml"),
            &format!("resources:\n  - {remote}\n  - ../../standalone\n"),
        );
        write(
            root,
            &format!("remote{i}/overlay/kustomization.yaml"),
            "resources:\n  - ../base\n",
        );
        let dir = root.join(format!("remote{i}/overlay"));
        assert_eq!(b.key(&dir, &FLAGS).unwrap(), None, "{remote}");
        assert!(
            flux_render::kustomize::reach(&dir)
                .unwrap()
                .uncacheable
                .unwrap()
                .contains(remote),
            "{remote}"
        );
        // No network here: the build fails, and nothing is stored.
        let _ = b.build(&dir, &FLAGS);
        assert!(entries(cache.path()).is_empty(), "{remote}");
    }
    // A path that does not exist is tried as a URL by kustomize: not cached either.
    write(
        root,
        "gone/kustomization.yaml",
        "resources:\n  - missing.yaml\n",
    );
    assert_eq!(b.key(&root.join("gone"), &FLAGS).unwrap(), None);
    assert!(b.build(&root.join("gone"), &FLAGS).is_err());
    assert!(entries(cache.path()).is_empty());
    assert_eq!(b.stats().0, 0);
}

#[test]
fn a_torn_or_corrupt_entry_is_a_miss_never_an_error() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let dir = tree.path().join("standalone");
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    let good = b.build(&dir, &FLAGS).unwrap();
    let [entry] = entries(cache.path()).try_into().unwrap();
    let whole = std::fs::read(&entry).unwrap();
    let damaged: [Vec<u8>; 3] = [
        whole[..whole.len() / 2].to_vec(),
        Vec::new(),
        whole.iter().map(|b| b ^ 0x20).collect(),
    ];
    for (round, bytes) in damaged.into_iter().enumerate() {
        std::fs::write(&entry, bytes).unwrap();
        let (_, before) = b.stats();
        assert_eq!(b.build(&dir, &FLAGS).unwrap(), good, "round {round}");
        assert_eq!(b.stats().1, before + 1, "round {round}: a miss");
        // The miss wrote a whole entry back.
        assert_eq!(std::fs::read(&entry).unwrap(), whole);
    }
}

#[test]
fn concurrent_builders_share_one_cache_folder() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let root = tree.path();
    let cache = tempfile::tempdir().unwrap();
    let expected: Vec<Vec<u8>> = DIRS.iter().map(|d| kustomize_says(&root.join(d))).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let b = builder(cache.path());
                for _ in 0..3 {
                    for (dir, want) in DIRS.iter().zip(&expected) {
                        assert_eq!(&b.build(&root.join(dir), &FLAGS).unwrap(), want, "{dir}");
                    }
                }
            });
        }
    });
    // One whole entry per build, no temporary files left.
    let left = entries(cache.path());
    assert_eq!(left.len(), DIRS.len(), "{left:?}");
}

#[test]
fn an_alias_bomb_is_refused_before_kustomize_runs() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let root = tree.path();
    let bomb = testkit::alias_bomb();
    write(root, "base/bomb.yaml", &bomb);
    write(
        root,
        "base/kustomization.yaml",
        "resources:\n  - deploy.yaml\n  - bomb.yaml\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    let started = Instant::now();
    let err = b.build(&root.join("overlays/b"), &FLAGS).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, BuildError::Aliases { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}: yaml: document contains excessive aliasing: alias *l2 at line 8",
            root.join("base/bomb.yaml").display()
        )),
        "{msg}"
    );
    assert_eq!(b.stats(), (0, 0), "kustomize never ran");
    // The folder that does not reach it still builds.
    b.build(&root.join("standalone"), &FLAGS).unwrap();
}

#[test]
fn a_kustomize_past_its_bounds_is_stopped_and_says_how_to_raise_them() {
    if !kustomize_available() {
        return;
    }
    let tree = fixture();
    let dir = tree.path().join("standalone");
    // 64 MiB of address space: the Go runtime cannot even start.
    assert_stopped_at_the_memory_bound(&bounded(false, None, Some(64 << 20)), &dir);
    // No time at all: stopped, and said so.
    let err = bounded(false, Some(Duration::ZERO), None)
        .build(&dir, &FLAGS)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "kustomize ran longer than 0 s and was stopped (raise the bound with KUSTOMIZE_BOUNDS)"
    );
    // The defaults build it.
    assert_eq!(
        Builder::find().unwrap().build(&dir, &FLAGS).unwrap(),
        kustomize_says(&dir)
    );
}

/// A builder under these bounds, its misses in the helper or not.
pub(crate) fn bounded(
    helper: bool,
    timeout: Option<Duration>,
    memory_bytes: Option<u64>,
) -> Builder {
    let b = Builder::find().unwrap();
    let b = if helper { b.with_helper() } else { b };
    b.with_bounds(exec::Bounds {
        timeout,
        memory_bytes,
        raise: "KUSTOMIZE_BOUNDS".into(),
    })
}

/// The build of `dir` fails at the memory bound of 64 MiB, and says how to
/// raise it.
pub(crate) fn assert_stopped_at_the_memory_bound(b: &Builder, dir: &Path) {
    let err = b.build(dir, &FLAGS).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "kustomize ran out of its memory bound of 64 MiB (raise it with KUSTOMIZE_BOUNDS): "
        ),
        "{err}"
    );
}
