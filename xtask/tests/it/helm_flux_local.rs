//! The peer check: flux-local (`pip install flux-local`) renders the same
//! fixture tree, HelmReleases included, and the set of objects agrees.

use crate::common;
use crate::support;

use std::collections::BTreeSet;

use exec::runner::Cmd;
use flux_render::RenderOptions;
use flux_render::helm;
use serde_json::Value;

fn key(o: &Value) -> (String, String, String) {
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

#[test]
fn flux_local_build_renders_the_same_objects() {
    let Some(flux_local) = support::flux_local() else {
        return;
    };
    let Some(flux) = support::flux() else {
        return;
    };
    let Some(charts) = support::charts() else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    charts.write_tree(tree.path()).unwrap();
    support::adapt_for_flux_local(tree.path());
    Cmd::new("git")
        .dir(tree.path())
        .args(["init", "-q"])
        .read()
        .unwrap();

    let rendered =
        flux_render::render_cluster(tree.path(), "test", &RenderOptions::default()).unwrap();
    let mut ours: BTreeSet<_> = rendered
        .kustomizations
        .iter()
        .flat_map(|k| &k.objects)
        .map(key)
        .collect();
    for release in helm::render_cluster(&rendered, &charts.options()) {
        let objects = release
            .result
            .unwrap_or_else(|e| panic!("{}: {e}", release.name));
        ours.extend(objects.iter().map(key));
    }

    // flux-local runs kustomize, helm and flux from PATH.
    let path = std::env::join_paths(
        [
            common::root().join(".tools/bin"),
            flux.parent().unwrap().to_path_buf(),
        ]
        .into_iter()
        .chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let build = |what: &str| {
        Cmd::new(&flux_local)
            .dir(tree.path())
            .env("PATH", &path)
            .env("HELM_CACHE_HOME", charts.cache.path().join("flux-local"))
            .args([
                "build",
                what,
                "--path",
                "clusters/test",
                "--sources",
                "flux-system=./",
                "-A",
            ])
            .args(["--no-skip-crds", "--no-skip-secrets"])
            .read()
            .unwrap()
    };
    let output = format!("{}\n---\n{}", build("ks"), build("hr"));
    let theirs: BTreeSet<_> = flux_render::parse_stream(&output)
        .unwrap()
        .iter()
        .map(key)
        .collect();
    // flux-local runs `helm template` without --include-crds, whatever
    // install.crds says; helm-controller installs a chart's crds/ by default.
    ours.retain(|(kind, _, _)| kind != "CustomResourceDefinition");
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only ours: {only_ours:#?}\nonly flux-local: {only_theirs:#?}"
    );
}
