//! The real kube-apiserver is the policies' oracle (issue 25). The tree's
//! Kyverno ValidatingPolicies and PolicyExceptions (`kustomize build
//! infrastructure/policies`) are turned into ValidatingAdmissionPolicies:
//! the same match constraints, match conditions, variables, validations and
//! messages, each exception a match condition that negates its own. The API
//! server evaluates that text with its own CEL (v1.34, VAP GA) on every
//! corpus object under `--dry-run=server` (ephemeral containers through the
//! `pods/ephemeralcontainers` subresource of a Pod that exists), and
//! `k8s_policy` must give the same verdict on every object. Every policy,
//! Audit ones included, is bound with Deny here: the question is whether the
//! rule flags the object, not what the cluster does about it.
//!
//! Needs etcd and kube-apiserver built, kubectl and kustomize; skips with a
//! notice when they are missing, unless XTASK_REQUIRE_TOOLS=1.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use xtask::cluster::local::ControlPlane;

use crate::common;

const APPS: &str = "apps-ns";
const OTHER: &str = "other-ns";

/// One case: a name, the object, and for an ephemeral-container case the
/// containers to add to the (already created) object.
struct Case {
    name: String,
    object: Value,
    ephemeral: Option<Value>,
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                // null removes, as in a JSON merge patch.
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, e) => *b = e,
    }
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": "registry.example.com/web:1.2.3",
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}})
}

/// A compliant pod spec, changed by `patch` (a JSON merge).
fn pod_spec(patch: Value) -> Value {
    let mut spec = json!({"containers": [container("web")]});
    merge(&mut spec, patch);
    spec
}

/// `kind` carrying `spec` in `ns`, named `name`, labelled unless `labelled` is false.
fn workload(kind: &str, name: &str, ns: &str, spec: Value, labelled: bool) -> Value {
    let labels = json!({"app": name});
    let template = json!({"metadata": {"labels": labels}, "spec": spec});
    let selector = json!({"matchLabels": labels});
    let (api, body) = match kind {
        "Pod" => ("v1", spec.clone()),
        "ReplicationController" => ("v1", json!({"selector": labels, "template": template})),
        "Deployment" | "ReplicaSet" | "DaemonSet" => (
            "apps/v1",
            json!({"selector": selector, "template": template}),
        ),
        "StatefulSet" => (
            "apps/v1",
            json!({"selector": selector, "serviceName": name, "template": template}),
        ),
        "Job" => {
            let mut t = template.clone();
            merge(&mut t, json!({"spec": {"restartPolicy": "Never"}}));
            ("batch/v1", json!({"template": t}))
        }
        "CronJob" => {
            let mut t = template.clone();
            merge(&mut t, json!({"spec": {"restartPolicy": "Never"}}));
            (
                "batch/v1",
                json!({"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": t}}}),
            )
        }
        other => panic!("no such workload kind {other}"),
    };
    let mut meta = json!({"name": name, "namespace": ns, "labels": labels});
    if labelled {
        merge(
            &mut meta,
            json!({"labels": {"app.kubernetes.io/name": name}}),
        );
    }
    json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": body})
}

const KINDS: [&str; 8] = [
    "Pod",
    "ReplicationController",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
];

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: String, object: Value| {
        cases.push(Case {
            name,
            object,
            ephemeral: None,
        })
    };
    // Every pod-carrying kind: compliant, and failing one rule each.
    for kind in KINDS {
        let k = kind.to_ascii_lowercase();
        add(
            format!("{k}-good"),
            workload(kind, &format!("{k}-good"), APPS, pod_spec(json!({})), true),
        );
        add(
            format!("{k}-no-name-label"),
            workload(
                kind,
                &format!("{k}-no-name-label"),
                APPS,
                pod_spec(json!({})),
                false,
            ),
        );
        let mut init = container("init");
        merge(&mut init, json!({"securityContext": {"privileged": true}}));
        add(
            format!("{k}-privileged-init"),
            workload(
                kind,
                &format!("{k}-privileged-init"),
                APPS,
                pod_spec(json!({"initContainers": [init]})),
                true,
            ),
        );
        let mut latest = container("web");
        merge(&mut latest, json!({"image": "nginx:latest"}));
        add(
            format!("{k}-latest-elsewhere"),
            workload(
                kind,
                &format!("{k}-latest-elsewhere"),
                OTHER,
                pod_spec(json!({"containers": [latest]})),
                true,
            ),
        );
        add(
            format!("{k}-host-path-elsewhere"),
            workload(
                kind,
                &format!("{k}-host-path-elsewhere"),
                OTHER,
                pod_spec(json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]})),
                true,
            ),
        );
        let mut bare = container("web");
        bare.as_object_mut().unwrap().remove("resources");
        add(
            format!("{k}-no-requests"),
            workload(
                kind,
                &format!("{k}-no-requests"),
                APPS,
                pod_spec(json!({"containers": [bare]})),
                true,
            ),
        );
    }
    // Pod-level variants of each rule.
    let pod = |name: &str, ns: &str, patch: Value| workload("Pod", name, ns, pod_spec(patch), true);
    let with = |patch: Value| {
        let mut c = container("web");
        merge(&mut c, patch);
        json!({"containers": [c]})
    };
    add(
        "pod-privileged".into(),
        pod(
            "pod-privileged",
            APPS,
            with(json!({"securityContext": {"privileged": true}})),
        ),
    );
    add(
        "pod-privileged-false".into(),
        pod(
            "pod-privileged-false",
            APPS,
            with(json!({"securityContext": {"privileged": false}})),
        ),
    );
    add(
        "pod-host-network".into(),
        pod("pod-host-network", APPS, json!({"hostNetwork": true})),
    );
    add(
        "pod-host-network-false".into(),
        pod(
            "pod-host-network-false",
            APPS,
            json!({"hostNetwork": false}),
        ),
    );
    add(
        "pod-host-pid".into(),
        pod("pod-host-pid", OTHER, json!({"hostPID": true})),
    );
    add(
        "pod-host-ipc".into(),
        pod("pod-host-ipc", APPS, json!({"hostIPC": true})),
    );
    add(
        "pod-host-path-allowed".into(),
        pod(
            "pod-host-path-allowed",
            APPS,
            json!({"volumes": [{"name": "tz", "hostPath": {"path": "/etc/localtime"}}]}),
        ),
    );
    add(
        "pod-host-path-var".into(),
        pod(
            "pod-host-path-var",
            APPS,
            json!({"volumes": [{"name": "v", "hostPath": {"path": "/var/run"}}, {"name": "e", "emptyDir": {}}]}),
        ),
    );
    add(
        "pod-empty-dir".into(),
        pod(
            "pod-empty-dir",
            APPS,
            json!({"volumes": [{"name": "e", "emptyDir": {}}]}),
        ),
    );
    add(
        "pod-cap-net-admin".into(),
        pod(
            "pod-cap-net-admin",
            APPS,
            with(json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}})),
        ),
    );
    add(
        "pod-cap-baseline".into(),
        pod(
            "pod-cap-baseline",
            APPS,
            with(
                json!({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]}}}),
            ),
        ),
    );
    add(
        "pod-cap-sys-admin-elsewhere".into(),
        pod(
            "pod-cap-sys-admin-elsewhere",
            OTHER,
            with(json!({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}})),
        ),
    );
    add(
        "pod-untagged".into(),
        pod("pod-untagged", APPS, with(json!({"image": "nginx"}))),
    );
    add(
        "pod-untagged-registry-port".into(),
        pod(
            "pod-untagged-registry-port",
            APPS,
            with(json!({"image": "localhost:5000/web"})),
        ),
    );
    add(
        "pod-tagged-registry-port".into(),
        pod(
            "pod-tagged-registry-port",
            APPS,
            with(json!({"image": "localhost:5000/web:1.0"})),
        ),
    );
    add(
        "pod-digest".into(),
        pod(
            "pod-digest",
            APPS,
            with(json!({"image": format!("nginx@sha256:{}", "a".repeat(64))})),
        ),
    );
    add(
        "pod-latest-init".into(),
        pod("pod-latest-init", APPS, {
            let mut i = container("init");
            merge(&mut i, json!({"image": "busybox:latest"}));
            json!({"initContainers": [i]})
        }),
    );
    add(
        "pod-limits-only".into(),
        pod(
            "pod-limits-only",
            APPS,
            with(
                json!({"resources": {"requests": null, "limits": {"cpu": "10m", "memory": "16Mi"}}}),
            ),
        ),
    );
    add(
        "pod-cpu-request-only".into(),
        pod(
            "pod-cpu-request-only",
            APPS,
            with(json!({"resources": {"requests": {"memory": null}}})),
        ),
    );
    add(
        "pod-zero-cpu-request".into(),
        pod(
            "pod-zero-cpu-request",
            APPS,
            with(json!({"resources": {"requests": {"cpu": "0"}}})),
        ),
    );
    add(
        "pod-numeric-requests".into(),
        pod(
            "pod-numeric-requests",
            APPS,
            with(json!({"resources": {"requests": {"cpu": 1, "memory": 1048576}}})),
        ),
    );
    add(
        "pod-init-no-requests".into(),
        pod(
            "pod-init-no-requests",
            APPS,
            json!({"initContainers": [{"name": "init", "image": "busybox:1.36"}]}),
        ),
    );
    add(
        "pod-no-requests-elsewhere".into(),
        pod(
            "pod-no-requests-elsewhere",
            OTHER,
            with(json!({"resources": null})),
        ),
    );
    // The kube-system exception lifts the PSS baseline, and only it.
    add(
        "pod-kube-system-privileged".into(),
        pod(
            "pod-kube-system-privileged",
            "kube-system",
            json!({"hostNetwork": true, "containers": [{"name": "agent", "image": "cilium:1.18.0", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}}}],
            "volumes": [{"name": "bpf", "hostPath": {"path": "/sys/fs/bpf"}}]}),
        ),
    );
    add(
        "daemonset-kube-system-host".into(),
        workload(
            "DaemonSet",
            "daemonset-kube-system-host",
            "kube-system",
            pod_spec(
                json!({"hostNetwork": true, "volumes": [{"name": "dev", "hostPath": {"path": "/dev"}}]}),
            ),
            true,
        ),
    );
    add(
        "pod-kube-system-latest".into(),
        pod(
            "pod-kube-system-latest",
            "kube-system",
            with(json!({"image": "cilium:latest"})),
        ),
    );
    // A Job its CronJob owns is left to the owner's label.
    let mut owned = workload(
        "Job",
        "job-owned-no-label",
        APPS,
        pod_spec(json!({})),
        false,
    );
    merge(
        &mut owned,
        json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
        "name": "nightly", "uid": "6f1c2a4e-0000-4000-8000-000000000001"}]}}),
    );
    add("job-owned-no-label".into(), owned);
    // Objects no policy matches.
    add(
        "configmap".into(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": APPS}, "data": {"a": "b"}}),
    );
    add(
        "service".into(),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": APPS},
        "spec": {"ports": [{"port": 80}]}}),
    );
    // Ephemeral containers, added to a compliant Pod through its subresource.
    for (name, patch) in [
        ("ephemeral-good", json!({})),
        (
            "ephemeral-privileged",
            json!({"securityContext": {"privileged": true}}),
        ),
        ("ephemeral-latest", json!({"image": "busybox:latest"})),
        (
            "ephemeral-cap-sys-ptrace",
            json!({"securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}),
        ),
    ] {
        let mut e = json!({"name": "debug", "image": "busybox:1.36", "targetContainerName": "web"});
        merge(&mut e, patch);
        cases.push(Case {
            name: name.into(),
            object: pod(name, APPS, json!({})),
            ephemeral: Some(json!([e])),
        });
    }
    cases
}

fn yaml_stream(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `Ok(())` or the server's refusal, for every case.
fn server_verdicts(cp: &ControlPlane, cases: &[Case]) -> BTreeMap<String, Result<(), String>> {
    let result = |o: std::process::Output| {
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
        }
    };
    let verdicts = crate::control_plane::on_three_threads(cases, |case| {
        let yaml = serde_yaml::to_string(&case.object).unwrap();
        let Some(containers) = &case.ephemeral else {
            return cp
                .kube
                .cmd()
                .args(["create", "--dry-run=server", "-f", "-"])
                .stdin_bytes(yaml)
                .output()
                .map_err(|e| e.to_string())
                .and_then(result);
        };
        // The Pod exists for real; the subresource update is the dry run.
        cp.kube
            .cmd()
            .args(["create", "-f", "-"])
            .stdin_bytes(yaml)
            .read()
            .unwrap();
        cp.kube
            .cmd()
            .args([
                "patch",
                "pod",
                &case.name,
                "-n",
                APPS,
                "--subresource=ephemeralcontainers",
                "--type=merge",
                "--dry-run=server",
                "-p",
            ])
            .arg(json!({"spec": {"ephemeralContainers": containers}}).to_string())
            .output()
            .map_err(|e| e.to_string())
            .and_then(result)
    });
    cases.iter().map(|c| c.name.clone()).zip(verdicts).collect()
}

#[test]
fn policies_agree_with_the_api_server_on_every_object() {
    let _one = crate::control_plane::exclusive();
    let Some(binaries) = crate::control_plane::api_server_binaries() else {
        return;
    };
    if common::tool("kubectl").is_none() || common::tool("kustomize").is_none() {
        return;
    }
    // The tree's policy text, as Flux applies it.
    let built = exec::runner::Cmd::new("kustomize")
        .arg("build")
        .arg(common::root().join("infrastructure/policies"))
        .read()
        .unwrap();
    let policy_objects: Vec<Value> = serde_yaml::Deserializer::from_str(&built)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let namespaces = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS, "labels": {"platform.devantler.tech/tier": "apps"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER}}),
    ];
    let set = k8s_policy::PolicySet::load(policy_objects.iter().chain(&namespaces))
        .unwrap_or_else(|e| panic!("the tree's policies do not load: {e:?}"));
    assert_eq!(
        set.policies.len(),
        7,
        "4 rules: 4 Deny in apps, 3 Audit elsewhere"
    );

    let cases = corpus();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    // Ours.
    let mut ours: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for case in &cases {
        let mut object = case.object.clone();
        if let Some(e) = &case.ephemeral {
            object["spec"]["ephemeralContainers"] = e.clone();
        }
        let verdict = set.evaluate(&object);
        let mut said: Vec<String> = verdict
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.policy, v.message))
            .collect();
        said.extend(verdict.errors.iter().map(|e| e.to_string()));
        ours.insert(case.name.clone(), said);
    }

    // The server's.
    let cp =
        ControlPlane::start_api_server(&common::root(), &binaries, |l| eprintln!("{l}")).unwrap();
    let mut setup = namespaces.clone();
    for ns in [APPS, OTHER, "kube-system"] {
        // No controller-manager creates it here; Pods need it.
        setup.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}));
    }
    cp.kube.apply_yaml(&yaml_stream(&setup)).unwrap();
    cp.kube
        .apply_yaml(&yaml_stream(&k8s_policy::admission_policies(
            &policy_objects,
            k8s_policy::Binding::Deny,
        )))
        .unwrap();
    // The admission plugin picks each policy and binding up from its
    // informer on its own: wait until every policy refuses a probe by name.
    let no_requests = {
        let mut c = container("web");
        c.as_object_mut().unwrap().remove("resources");
        json!({"containers": [c]})
    };
    let latest = pod_spec(
        json!({"containers": [{"name": "web", "image": "nginx:latest",
        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]}),
    );
    let probes = [
        (
            "pss-baseline",
            workload(
                "Pod",
                "probe",
                APPS,
                pod_spec(json!({"hostNetwork": true})),
                true,
            ),
        ),
        (
            "pss-baseline-audit",
            workload(
                "Pod",
                "probe",
                OTHER,
                pod_spec(json!({"hostNetwork": true})),
                true,
            ),
        ),
        (
            "image-tags",
            workload("Pod", "probe", APPS, latest.clone(), true),
        ),
        (
            "image-tags-audit",
            workload("Pod", "probe", OTHER, latest, true),
        ),
        (
            "require-requests",
            workload("Pod", "probe", APPS, no_requests, true),
        ),
        (
            "workload-name-label",
            workload("Deployment", "probe", APPS, pod_spec(json!({})), false),
        ),
        (
            "workload-name-label-audit",
            workload("Deployment", "probe", OTHER, pod_spec(json!({})), false),
        ),
    ];
    assert_eq!(probes.len(), set.policies.len(), "a probe per policy");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (policy, probe) in &probes {
        let named = format!("ValidatingAdmissionPolicy '{policy}'");
        loop {
            let o = cp
                .kube
                .cmd()
                .args(["create", "--dry-run=server", "-f", "-"])
                .stdin_bytes(serde_yaml::to_string(probe).unwrap())
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stderr).contains(&named) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the API server never enforced {policy}"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    let server = server_verdicts(&cp, &cases);

    let mut disagreements = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for case in &cases {
        let theirs = &server[&case.name];
        let mine = &ours[&case.name];
        match (theirs, mine.is_empty()) {
            (Ok(()), true) => accepted += 1,
            (Err(e), false) => {
                refused += 1;
                // The refusal carries one of the rules' own messages that we gave.
                if !mine
                    .iter()
                    .any(|m| e.contains(m.split_once(": ").map_or(m.as_str(), |(_, msg)| msg)))
                {
                    disagreements.push(format!(
                        "{}: both refuse, with different rules:\n    server: {e}\n    ours: {}",
                        case.name,
                        mine.join("; ")
                    ));
                }
            }
            (Ok(()), false) => disagreements.push(format!(
                "{}: the API server accepts it, we flag it: {}",
                case.name,
                mine.join("; ")
            )),
            (Err(e), true) => disagreements.push(format!(
                "{}: the API server refuses it, we accept it: {e}",
                case.name
            )),
        }
    }
    eprintln!(
        "policy oracle: {} objects ({accepted} accepted, {refused} refused by both), {} disagreements",
        cases.len(),
        disagreements.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert_eq!(cases.len(), 81, "the corpus size");
    assert_eq!((accepted, refused), (27, 54), "accepted and refused");
}

/// `status` reads Kyverno's PolicyReports from a real API server with
/// Kyverno's report CRD (from `.schemas/`): one line per failing rule and resource.
#[test]
fn status_reads_policy_reports_from_the_api_server() {
    let _one = crate::control_plane::exclusive();
    let Some(binaries) = crate::control_plane::api_server_binaries() else {
        return;
    };
    if common::tool("kubectl").is_none() {
        return;
    }
    let crd = common::root()
        .join(".schemas/kyverno/config__crds__policyreport__wgpolicyk8s.io_policyreports.yaml");
    if !crd.is_file() {
        if common::tools_required() {
            panic!(
                ".schemas/kyverno is required (XTASK_REQUIRE_TOOLS=1); run `cargo xtask validate --fetch-schemas`"
            );
        }
        eprintln!(
            "SKIP: .schemas/kyverno is absent; `cargo xtask validate --fetch-schemas` fills it"
        );
        return;
    }
    let cp =
        ControlPlane::start_api_server(&common::root(), &binaries, |l| eprintln!("{l}")).unwrap();
    // No report CRD yet: nothing to show, and no failure.
    assert!(xtask::verbs::status::read_policy_failures(&cp.kube).is_empty());
    crate::control_plane::apply_crds(&cp, &crd);
    let report = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "whoami-report", "namespace": "default"},
        "scope": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "whoami"},
        "results": [
            {"policy": "image-tags-audit", "rule": "image-tags-audit", "result": "fail",
             "message": "images must be pinned to a tag other than latest, or to a digest", "source": "KyvernoValidatingPolicy"},
            {"policy": "pss-baseline-audit", "rule": "pss-baseline-audit", "result": "pass", "message": "", "source": "KyvernoValidatingPolicy"}]});
    cp.kube
        .apply_yaml(&serde_yaml::to_string(&report).unwrap())
        .unwrap();
    let got: Vec<String> = xtask::verbs::status::read_policy_failures(&cp.kube)
        .iter()
        .map(|f| format!("{} {} {}: {}", f.result, f.resource, f.policy, f.message))
        .collect();
    assert_eq!(
        got,
        [
            "fail Deployment default/whoami image-tags-audit: images must be pinned to a tag other than latest, or to a digest"
        ]
    );
}
