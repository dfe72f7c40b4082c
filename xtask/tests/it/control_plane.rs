//! What the tests that start the Docker-less control plane share: its
//! prerequisites, and a lock so that one runs at a time (they share the logs
//! under target/e2e, and two would crowd a 2-core machine).

use std::sync::{Mutex, MutexGuard};

use xtask::cluster::local;

use crate::common;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the control plane for one test.
pub fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The four binaries, kubectl and docker-registry: `false` (after a SKIP
/// notice) when one is missing, a failure under XTASK_REQUIRE_TOOLS=1.
pub fn prerequisites() -> bool {
    if !local::all_cached(&common::root()) {
        if common::tools_required() {
            panic!(
                "the control-plane binaries are required (XTASK_REQUIRE_TOOLS=1) but not built; run `cargo xtask e2e --build-only`"
            );
        }
        eprintln!(
            "SKIP: etcd, kube-apiserver and the Flux controllers are not built; `cargo xtask e2e --build-only` builds them"
        );
        return false;
    }
    common::tool("kubectl").is_some() && common::tool("docker-registry").is_some()
}

/// etcd and kube-apiserver: `None` (after a SKIP notice) when not built, a
/// failure under XTASK_REQUIRE_TOOLS=1.
pub fn api_server_binaries() -> Option<std::collections::BTreeMap<String, std::path::PathBuf>> {
    match local::api_server_binaries(&common::root()) {
        Ok(binaries) => {
            assert_pinned_api_server(&binaries);
            Some(binaries)
        }
        Err(_) if common::tools_required() => panic!(
            "etcd and kube-apiserver are required (XTASK_REQUIRE_TOOLS=1) but not built; run `cargo xtask e2e --build-only`"
        ),
        Err(_) => {
            eprintln!(
                "SKIP: etcd and kube-apiserver are not built; `cargo xtask e2e --build-only` builds them"
            );
            None
        }
    }
}

/// The oracle is the kube-apiserver that `xtask/controlplane.toml` pins, not
/// whatever answers first on PATH (its own `--version` is unstamped in a
/// module build): its Go build info must say so.
pub fn assert_pinned_api_server(binaries: &std::collections::BTreeMap<String, std::path::PathBuf>) {
    let pins = local::build::Pins::of_repo(&common::root()).unwrap();
    let pin = pins.get("kube-apiserver").unwrap();
    common::assert_go_build(&binaries["kube-apiserver"], &pin.module, &pin.version);
}

/// Applies the CRDs of `file` (server-side) and waits until every CRD is Established.
pub fn apply_crds(cp: &xtask::cluster::local::ControlPlane, file: &std::path::Path) {
    cp.kube
        .cmd()
        .args(["apply", "--server-side", "-f"])
        .arg(file)
        .read()
        .unwrap();
    cp.kube.wait_crds_established().unwrap();
}

/// `f` on every item, three at a time (the API server answers requests in
/// parallel), results in the items' order.
pub fn on_three_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let out: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    out.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
