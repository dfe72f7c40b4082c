//! Corpus trees of the Flux layouts that discovery and the closure must
//! handle (a sync root in a subfolder, a FluxInstance, `ks.yaml` three
//! levels deep, a cycle, a suspended and an unbuildable Kustomization, an
//! ExternalArtifact), shared by the render's and validate's tests.

pub fn ks(name: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{extra}"
    )
}

pub fn cm(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  from: ${{origin:=none}}\n"
    )
}

pub const PLACEHOLDER: &str = "# This file will be generated automatically by flux bootstrap.\n";

pub struct Layout {
    pub name: &'static str,
    pub cluster: &'static str,
    pub files: Vec<(&'static str, String)>,
    /// Rendered (besides the root), in this order.
    pub rendered: &'static [&'static str],
    pub skipped: &'static [&'static str],
    pub failed: &'static [&'static str],
    /// ExternalArtifacts as folder copies `(from, to)`, for flux.
    pub artifacts: &'static [(&'static str, &'static [(&'static str, &'static str)])],
}

pub fn layouts() -> Vec<Layout> {
    let deps = |names: &[&str]| {
        let mut out = String::from("  dependsOn:\n");
        for n in names {
            out.push_str(&format!("    - name: {n}\n"));
        }
        out
    };
    vec![
        Layout {
            name: "sync-root-in-a-subfolder",
            cluster: "home",
            files: vec![
                (
                    "clusters/home/flux/flux-system/gotk-sync.yaml",
                    format!(
                        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://example.invalid/fleet\n  ref:\n    branch: main\n---\n{}",
                        ks("flux-system", "./clusters/home/flux", "")
                    ),
                ),
                (
                    "clusters/home/flux/flux-system/kustomization.yaml",
                    "resources:\n  - gotk-sync.yaml\n".into(),
                ),
                (
                    "clusters/home/flux/apps.yaml",
                    ks("apps", "./apps", "  postBuild:\n    substitute:\n      origin: apps\n"),
                ),
                // Outside the sync root: not applied.
                ("clusters/home/notes/extra.yaml", cm("not-synced")),
                ("apps/cm.yaml", cm("app")),
            ],
            rendered: &["apps"],
            skipped: &[],
            failed: &[],
            artifacts: &[],
        },
        Layout {
            name: "flux-instance",
            cluster: "edge",
            files: vec![
                (
                    "clusters/edge/flux-instance.yaml",
                    "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  distribution:\n    version: \"2.x\"\n    registry: ghcr.io/fluxcd\n  sync:\n    kind: OCIRepository\n    url: oci://example.invalid/fleet\n    ref: latest\n    path: clusters/edge/sync\n".into(),
                ),
                (
                    "clusters/edge/sync/infra.yaml",
                    ks("infra", "./infra", "").replace("kind: GitRepository", "kind: OCIRepository"),
                ),
                // The same name from a Git source is another repository here.
                ("clusters/edge/sync/git.yaml", ks("from-git", "./infra", "")),
                ("infra/cm.yaml", cm("infra")),
            ],
            rendered: &["infra"],
            skipped: &["from-git"],
            failed: &[],
            artifacts: &[],
        },
        Layout {
            name: "nested-ks-three-levels",
            cluster: "lab",
            files: vec![
                ("clusters/lab/flux-system/gotk-sync.yaml", PLACEHOLDER.into()),
                ("clusters/lab/flux-system/gotk-components.yaml", PLACEHOLDER.into()),
                (
                    "clusters/lab/flux-system/kustomization.yaml",
                    "resources:\n  - gotk-components.yaml\n  - gotk-sync.yaml\n".into(),
                ),
                (
                    "clusters/lab/apps.yaml",
                    ks("cluster-apps", "./kubernetes/apps", ""),
                ),
                (
                    "kubernetes/apps/kustomization.yaml",
                    "resources:\n  - ./web/ks.yaml\n  - ./db/ks.yaml\n".into(),
                ),
                (
                    "kubernetes/apps/db/ks.yaml",
                    ks("db", "./kubernetes/apps/db/app", &deps(&["cluster-apps"])),
                ),
                (
                    "kubernetes/apps/web/ks.yaml",
                    // Depends on a Kustomization one level deeper than itself.
                    ks("web", "./kubernetes/apps/web/app", &deps(&["db-schema"])),
                ),
                (
                    "kubernetes/apps/db/app/kustomization.yaml",
                    "resources:\n  - cm.yaml\n  - schema-ks.yaml\n".into(),
                ),
                ("kubernetes/apps/db/app/cm.yaml", cm("db")),
                (
                    "kubernetes/apps/db/app/schema-ks.yaml",
                    ks(
                        "db-schema",
                        "./kubernetes/apps/db/schema",
                        &format!(
                            "{}  targetNamespace: db\n",
                            deps(&["db", "cluster-apps"])
                        ),
                    ),
                ),
                ("kubernetes/apps/db/schema/cm.yaml", cm("schema")),
                ("kubernetes/apps/web/app/cm.yaml", cm("web")),
            ],
            rendered: &["cluster-apps", "db", "db-schema", "web"],
            skipped: &[],
            failed: &[],
            artifacts: &[],
        },
        Layout {
            name: "cycle-suspended-and-unbuildable",
            cluster: "c",
            files: vec![
                ("clusters/c/a.yaml", ks("a", "./a", &deps(&["b"]))),
                ("clusters/c/b.yaml", ks("b", "./a", &deps(&["a"]))),
                ("clusters/c/after-cycle.yaml", ks("after-cycle", "./a", &deps(&["b"]))),
                ("clusters/c/good.yaml", ks("good", "./a", "")),
                (
                    "clusters/c/paused.yaml",
                    ks("paused", "./a", "  suspend: true\n"),
                ),
                (
                    "clusters/c/after-paused.yaml",
                    ks("after-paused", "./a", &deps(&["paused"])),
                ),
                ("clusters/c/broken.yaml", ks("broken", "./broken", "")),
                (
                    "clusters/c/after-broken.yaml",
                    ks("after-broken", "./a", &deps(&["broken", "good"])),
                ),
                ("a/cm.yaml", cm("a")),
                (
                    "broken/kustomization.yaml",
                    "resources:\n  - cm.yaml\n  - missing.yaml\n".into(),
                ),
                ("broken/cm.yaml", cm("broken")),
            ],
            // good first: after-broken, declared before it, depends on it.
            rendered: &["good", "after-paused"],
            skipped: &["paused"],
            failed: &["a", "b", "broken", "after-broken", "after-cycle"],
            artifacts: &[],
        },
        Layout {
            name: "external-artifact-from-a-later-kustomization",
            cluster: "x",
            files: vec![
                (
                    "clusters/x/apps.yaml",
                    ks("apps", "./prod", "").replace(
                        "kind: GitRepository\n    name: flux-system",
                        "kind: ExternalArtifact\n    name: apps",
                    ),
                ),
                (
                    "clusters/x/generators.yaml",
                    ks("generators", "./generators", ""),
                ),
                (
                    "generators/apps.yaml",
                    "apiVersion: source.extensions.fluxcd.io/v1beta1\nkind: ArtifactGenerator\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  sources:\n    - alias: repo\n      kind: GitRepository\n      name: flux-system\n  artifacts:\n    - name: apps\n      copy:\n        - from: \"@repo/deploy/base/**\"\n          to: \"@artifact/base/\"\n        - from: \"@repo/deploy/prod/**\"\n          to: \"@artifact/prod/\"\n".into(),
                ),
                ("deploy/base/cm.yaml", cm("base")),
                (
                    "deploy/base/kustomization.yaml",
                    "resources:\n  - cm.yaml\n".into(),
                ),
                (
                    "deploy/prod/kustomization.yaml",
                    "resources:\n  - ../base\nnamePrefix: prod-\n".into(),
                ),
                ("deploy/other/cm.yaml", cm("not-copied")),
            ],
            // apps waits for the generator that generators applies.
            rendered: &["apps", "generators"],
            skipped: &[],
            failed: &[],
            artifacts: &[("apps", &[("deploy/base", "base"), ("deploy/prod", "prod")])],
        },
    ]
}
