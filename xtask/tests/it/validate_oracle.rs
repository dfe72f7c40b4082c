//! The real kube-apiserver is validate's oracle (issue 16): a corpus of
//! objects, valid and invalid, built-in and custom (with this tree's CRDs
//! from `.schemas/` installed), is applied with `kubectl apply
//! --dry-run=server --validate=strict` against the Docker-less control
//! plane's kube-apiserver, and `cargo xtask validate` (the whole verb, on a
//! tree with one kustomize directory per object) must give the same verdict
//! on every object. Every disagreement is printed and fails the test.
//!
//! Needs etcd and kube-apiserver built (`cargo xtask e2e --build-only`),
//! kubectl, kustomize and `.schemas/`. Skips with a notice when they are
//! missing, unless XTASK_REQUIRE_TOOLS=1.

use crate::common;

use std::io::Write as _;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};
use xtask::cluster::local::ControlPlane;
use xtask::validate::{self, Options, Severity};

/// The corpus: `(name, YAML)`. Each name is also a directory of the tree.
fn corpus() -> Vec<(String, String)> {
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, object: Value| {
        cases.push((name.to_string(), serde_yaml::to_string(&object).unwrap()));
    };
    let cm = |name: &str, extra: Value| {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}});
        merge(&mut o, extra);
        o
    };
    let container = || json!({"name": "web", "image": "nginx:1.27"});
    let pod = |name: &str, spec: Value| {
        let mut o = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container()]}});
        merge(&mut o, json!({"spec": spec}));
        o
    };
    let pod_with = |name: &str, c: Value| {
        let mut ctr = container();
        merge(&mut ctr, c);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [ctr]}})
    };
    let deploy = |name: &str, extra: Value| {
        let mut o = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container()]}}}});
        merge(&mut o, extra);
        o
    };
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let secret = |name: &str, extra: Value| {
        let mut o = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
        merge(&mut o, extra);
        o
    };
    let cert = |name: &str, spec: Value| {
        let mut o = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"secretName": "tls", "dnsNames": ["a.example.com"],
                "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}});
        merge(&mut o, json!({"spec": spec}));
        o
    };
    let ks = |name: &str, spec: Value| {
        let mut o = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"interval": "10m", "path": "./apps", "prune": true,
                "sourceRef": {"kind": "OCIRepository", "name": "flux-system"}}});
        merge(&mut o, json!({"spec": spec}));
        o
    };

    // ConfigMaps: names, labels, annotations, keys, formats, nulls.
    add("cm-valid", cm("cm-valid", json!({})));
    add("cm-subdomain-name", cm("cm.sub.domain", json!({})));
    add("cm-bad-name", cm("Bad_Name", json!({})));
    add(
        "cm-no-name",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": {"a": "b"}}, "data": {"a": "b"}}),
    );
    add(
        "cm-creation-null",
        cm(
            "cm-creation-null",
            json!({"metadata": {"creationTimestamp": null}}),
        ),
    );
    add(
        "cm-creation-yesterday",
        cm(
            "cm-creation-yesterday",
            json!({"metadata": {"creationTimestamp": "yesterday"}}),
        ),
    );
    add(
        "cm-creation-rfc3339",
        cm(
            "cm-creation-rfc3339",
            json!({"metadata": {"creationTimestamp": "2024-02-29T10:00:00Z"}}),
        ),
    );
    add(
        "cm-creation-no-zone",
        cm(
            "cm-creation-no-zone",
            json!({"metadata": {"creationTimestamp": "2024-02-29T10:00:00"}}),
        ),
    );
    add(
        "cm-int-value",
        cm("cm-int-value", json!({"data": {"a": 1}})),
    );
    add(
        "cm-bad-key",
        cm("cm-bad-key", json!({"data": {"bad key": "x"}})),
    );
    add(
        "cm-binary-valid",
        cm(
            "cm-binary-valid",
            json!({"binaryData": {"bin": "aGVsbG8="}}),
        ),
    );
    add(
        "cm-binary-not-base64",
        cm(
            "cm-binary-not-base64",
            json!({"binaryData": {"bin": "not base64!"}}),
        ),
    );
    add(
        "cm-binary-unpadded",
        cm(
            "cm-binary-unpadded",
            json!({"binaryData": {"bin": "aGVsbG8"}}),
        ),
    );
    add(
        "cm-key-in-both",
        cm("cm-key-in-both", json!({"binaryData": {"a": "aGVsbG8="}})),
    );
    add(
        "cm-label-prefixed",
        cm(
            "cm-label-prefixed",
            json!({"metadata": {"labels": {"example.com/app": "web", "tier": ""}}}),
        ),
    );
    add(
        "cm-label-bad-key",
        cm(
            "cm-label-bad-key",
            json!({"metadata": {"labels": {"-bad": "x"}}}),
        ),
    );
    add(
        "cm-label-bad-value",
        cm(
            "cm-label-bad-value",
            json!({"metadata": {"labels": {"a": "not valid!"}}}),
        ),
    );
    add(
        "cm-label-long-value",
        cm(
            "cm-label-long-value",
            json!({"metadata": {"labels": {"a": "x".repeat(64)}}}),
        ),
    );
    add(
        "cm-label-null-value",
        cm(
            "cm-label-null-value",
            json!({"metadata": {"labels": {"a": null}}}),
        ),
    );
    add(
        "cm-annotation-bad-key",
        cm(
            "cm-annotation-bad-key",
            json!({"metadata": {"annotations": {"bad key": "x"}}}),
        ),
    );
    add(
        "cm-annotation-upper",
        cm(
            "cm-annotation-upper",
            json!({"metadata": {"annotations": {"Example.com/Note": "any value at all!"}}}),
        ),
    );
    add(
        "cm-unknown-meta-field",
        cm(
            "cm-unknown-meta-field",
            json!({"metadata": {"lables": {"a": "b"}}}),
        ),
    );
    add("cm-data-null", cm("cm-data-null", json!({"data": null})));
    add(
        "cm-bad-namespace",
        cm(
            "cm-bad-namespace",
            json!({"metadata": {"namespace": "Bad_NS"}}),
        ),
    );
    add(
        "no-api-version",
        json!({"kind": "ConfigMap", "metadata": {"name": "no-api-version"}, "data": {"a": "b"}}),
    );
    add(
        "no-kind",
        json!({"apiVersion": "v1", "metadata": {"name": "no-kind"}, "data": {"a": "b"}}),
    );

    // Secrets: base64 (format byte), keys, types.
    add(
        "secret-valid",
        secret(
            "secret-valid",
            json!({"type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        ),
    );
    add(
        "secret-empty-value",
        secret("secret-empty-value", json!({"data": {"empty": ""}})),
    );
    add(
        "secret-not-base64",
        secret(
            "secret-not-base64",
            json!({"data": {"password": "hunter2!"}}),
        ),
    );
    add(
        "secret-wrapped-base64",
        secret(
            "secret-wrapped-base64",
            json!({"data": {"a": "aGVs\nbG8="}}),
        ),
    );
    add(
        "secret-string-data",
        secret(
            "secret-string-data",
            json!({"stringData": {"password": "not base64 at all"}}),
        ),
    );
    add(
        "secret-bad-key",
        secret("secret-bad-key", json!({"stringData": {"bad/key": "x"}})),
    );
    add(
        "secret-tls-valid",
        secret(
            "secret-tls-valid",
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
        ),
    );
    add(
        "secret-tls-no-key",
        secret(
            "secret-tls-no-key",
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}}),
        ),
    );
    add(
        "secret-dockerconfig-missing",
        secret(
            "secret-dockerconfig-missing",
            json!({"type": "kubernetes.io/dockerconfigjson", "data": {"a": "Yg=="}}),
        ),
    );

    // Pods: containers, names, images, policies, ports, quantities, nulls, ints.
    add("pod-valid", pod("pod-valid", json!({})));
    add(
        "pod-containers-null",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-containers-null"}, "spec": {"containers": null}}),
    );
    add(
        "pod-no-containers",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-no-containers"}, "spec": {}}),
    );
    add(
        "pod-spec-null",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-spec-null"}, "spec": null}),
    );
    add(
        "pod-container-null-item",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-container-null-item"}, "spec": {"containers": [null]}}),
    );
    add(
        "pod-optional-nulls",
        pod(
            "pod-optional-nulls",
            json!({"securityContext": null, "nodeSelector": null, "containers": [{"name": "web", "image": "nginx", "env": null, "resources": null}]}),
        ),
    );
    add(
        "pod-container-bad-name",
        pod_with("pod-container-bad-name", json!({"name": "Web_1"})),
    );
    add(
        "pod-container-dup-name",
        pod(
            "pod-container-dup-name",
            json!({"containers": [container(), container()]}),
        ),
    );
    add(
        "pod-init-dup-name",
        pod(
            "pod-init-dup-name",
            json!({"initContainers": [container()]}),
        ),
    );
    add(
        "pod-init-valid",
        pod(
            "pod-init-valid",
            json!({"initContainers": [{"name": "init", "image": "busybox"}]}),
        ),
    );
    add(
        "pod-no-image",
        pod("pod-no-image", json!({"containers": [{"name": "web"}]})),
    );
    add(
        "pod-pull-policy-bad",
        pod_with(
            "pod-pull-policy-bad",
            json!({"imagePullPolicy": "Sometimes"}),
        ),
    );
    add(
        "pod-pull-policy-never",
        pod_with("pod-pull-policy-never", json!({"imagePullPolicy": "Never"})),
    );
    add(
        "pod-restart-bad",
        pod("pod-restart-bad", json!({"restartPolicy": "Sometimes"})),
    );
    add(
        "pod-restart-onfailure",
        pod(
            "pod-restart-onfailure",
            json!({"restartPolicy": "OnFailure"}),
        ),
    );
    add(
        "pod-memory-1gb",
        pod_with(
            "pod-memory-1gb",
            json!({"resources": {"limits": {"memory": "1GB"}}}),
        ),
    );
    add(
        "pod-resources-valid",
        pod_with(
            "pod-resources-valid",
            json!({"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi", "ephemeral-storage": "1G"}}}),
        ),
    );
    add(
        "pod-cpu-fraction",
        pod_with(
            "pod-cpu-fraction",
            json!({"resources": {"requests": {"cpu": 0.5}}}),
        ),
    );
    add(
        "pod-request-over-limit",
        pod_with(
            "pod-request-over-limit",
            json!({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}),
        ),
    );
    add(
        "pod-negative-cpu",
        pod_with(
            "pod-negative-cpu",
            json!({"resources": {"requests": {"cpu": "-1"}}}),
        ),
    );
    add(
        "pod-resource-not-standard",
        pod_with(
            "pod-resource-not-standard",
            json!({"resources": {"limits": {"gpu": "1"}}}),
        ),
    );
    add(
        "pod-resource-extended",
        pod_with(
            "pod-resource-extended",
            json!({"resources": {"limits": {"example.com/gpu": "1"}}}),
        ),
    );
    add(
        "pod-port-valid",
        pod_with(
            "pod-port-valid",
            json!({"ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}),
        ),
    );
    add(
        "pod-port-too-big",
        pod_with(
            "pod-port-too-big",
            json!({"ports": [{"containerPort": 70000}]}),
        ),
    );
    add(
        "pod-port-zero",
        pod_with("pod-port-zero", json!({"ports": [{"containerPort": 0}]})),
    );
    add(
        "pod-port-int32-overflow",
        pod_with(
            "pod-port-int32-overflow",
            json!({"ports": [{"containerPort": 4294967376u64}]}),
        ),
    );
    add(
        "pod-port-protocol-bad",
        pod_with(
            "pod-port-protocol-bad",
            json!({"ports": [{"containerPort": 80, "protocol": "SCTPX"}]}),
        ),
    );
    add(
        "pod-port-name-bad",
        pod_with(
            "pod-port-name-bad",
            json!({"ports": [{"name": "http_web", "containerPort": 80}]}),
        ),
    );
    add(
        "pod-port-name-dup",
        pod_with(
            "pod-port-name-dup",
            json!({"ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}),
        ),
    );
    add(
        "pod-host-port-bad",
        pod_with(
            "pod-host-port-bad",
            json!({"ports": [{"containerPort": 80, "hostPort": 70000}]}),
        ),
    );
    add(
        "pod-unknown-container-field",
        pod_with(
            "pod-unknown-container-field",
            json!({"imagePullPolicyy": "Always"}),
        ),
    );
    add(
        "pod-int64-valid",
        pod(
            "pod-int64-valid",
            json!({"terminationGracePeriodSeconds": 9_000_000_000u64}),
        ),
    );
    add(
        "pod-active-deadline-too-big",
        pod(
            "pod-active-deadline-too-big",
            json!({"activeDeadlineSeconds": 9_000_000_000u64}),
        ),
    );
    add("pod-annotation-bad-key", {
        let mut p = pod("pod-annotation-bad-key", json!({}));
        merge(&mut p, json!({"metadata": {"annotations": {"a/b/c": "x"}}}));
        p
    });

    // Workloads: selectors, templates, restart policies, replicas.
    add("deploy-valid", deploy("deploy-valid", json!({})));
    add(
        "deploy-selector-mismatch",
        deploy(
            "deploy-selector-mismatch",
            json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
        ),
    );
    add(
        "deploy-selector-expressions",
        deploy(
            "deploy-selector-expressions",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}}}),
        ),
    );
    add("deploy-empty-selector", {
        let mut d = deploy("deploy-empty-selector", json!({}));
        d["spec"]["selector"] = json!({});
        d
    });
    add(
        "deploy-restart-never",
        deploy(
            "deploy-restart-never",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}),
        ),
    );
    add(
        "deploy-negative-replicas",
        deploy(
            "deploy-negative-replicas",
            json!({"spec": {"replicas": -1}}),
        ),
    );
    add(
        "deploy-no-spec",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deploy-no-spec"}}),
    );
    add(
        "deploy-bad-template-label",
        deploy(
            "deploy-bad-template-label",
            json!({"spec": {"template": {"metadata": {"labels": {"bad key": "x"}}}}}),
        ),
    );
    add(
        "deploy-memory-bad",
        deploy(
            "deploy-memory-bad",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"requests": {"memory": "512MB"}}}]}}}}),
        ),
    );
    add(
        "deploy-unknown-field",
        deploy("deploy-unknown-field", json!({"spec": {"replicass": 2}})),
    );
    add(
        "deploy-strategy-null",
        deploy("deploy-strategy-null", json!({"spec": {"strategy": null}})),
    );
    let sts = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container()]}}}})
    };
    add("sts-valid", sts("sts-valid"));
    add("sts-dotted-name", sts("sts.dotted"));
    add(
        "ds-valid",
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds-valid"},
        "spec": {"selector": {"matchLabels": {"app": "ds"}},
            "template": {"metadata": {"labels": {"app": "ds"}}, "spec": {"containers": [container()]}}}}),
    );
    let job = |name: &str, restart: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": restart, "containers": [container()]}}}})
    };
    add("job-valid", job("job-valid", json!("Never")));
    add(
        "job-restart-always",
        job("job-restart-always", json!("Always")),
    );
    add("job-no-restart", job("job-no-restart", Value::Null));
    add(
        "cronjob-valid",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cronjob-valid"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [container()]}}}}}}),
    );

    // Services: type, protocol, ports, names.
    let port = || json!([{"port": 80, "targetPort": 8080}]);
    add(
        "svc-valid",
        svc(
            "svc-valid",
            json!({"selector": {"app": "web"}, "ports": port()}),
        ),
    );
    add(
        "svc-type-superbalancer",
        svc(
            "svc-type-superbalancer",
            json!({"type": "SuperBalancer", "ports": port()}),
        ),
    );
    add(
        "svc-protocol-sctpx",
        svc(
            "svc-protocol-sctpx",
            json!({"ports": [{"port": 80, "protocol": "SCTPX"}]}),
        ),
    );
    add(
        "svc-port-zero",
        svc("svc-port-zero", json!({"ports": [{"port": 0}]})),
    );
    add(
        "svc-port-too-big",
        svc("svc-port-too-big", json!({"ports": [{"port": 65536}]})),
    );
    add(
        "svc-port-string",
        svc("svc-port-string", json!({"ports": [{"port": "80"}]})),
    );
    add(
        "svc-two-ports-unnamed",
        svc(
            "svc-two-ports-unnamed",
            json!({"ports": [{"port": 80}, {"port": 443}]}),
        ),
    );
    add(
        "svc-two-ports-named",
        svc(
            "svc-two-ports-named",
            json!({"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "targetPort": "https"}]}),
        ),
    );
    add(
        "svc-dup-port-names",
        svc(
            "svc-dup-port-names",
            json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}),
        ),
    );
    add("svc-name-digit", svc("1svc", json!({"ports": port()})));
    add(
        "svc-name-dotted",
        svc("svc.dotted", json!({"ports": port()})),
    );
    add(
        "svc-headless-no-ports",
        svc(
            "svc-headless-no-ports",
            json!({"clusterIP": "None", "selector": {"app": "web"}}),
        ),
    );
    add(
        "svc-no-ports",
        svc("svc-no-ports", json!({"selector": {"app": "web"}})),
    );
    add(
        "svc-external-name",
        svc(
            "svc-external-name",
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        ),
    );
    add(
        "svc-external-name-missing",
        svc("svc-external-name-missing", json!({"type": "ExternalName"})),
    );
    add(
        "svc-nodeport-on-clusterip",
        svc(
            "svc-nodeport-on-clusterip",
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    );
    add(
        "svc-nodeport-valid",
        svc(
            "svc-nodeport-valid",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
        ),
    );
    add(
        "svc-target-port-too-big",
        svc(
            "svc-target-port-too-big",
            json!({"ports": [{"port": 80, "targetPort": 70000}]}),
        ),
    );
    add(
        "svc-target-port-bad-name",
        svc(
            "svc-target-port-bad-name",
            json!({"ports": [{"port": 80, "targetPort": "http_web"}]}),
        ),
    );
    add(
        "svc-bad-selector",
        svc(
            "svc-bad-selector",
            json!({"selector": {"app": "not valid!"}, "ports": port()}),
        ),
    );

    // Cluster-scoped and other built-in kinds.
    add(
        "ns-valid",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "oracle-ns"}}),
    );
    add(
        "ns-dotted",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "oracle.ns"}}),
    );
    add(
        "ns-upper",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Oracle"}}),
    );
    add(
        "clusterrole-colon",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:Oracle-Role"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    );
    add(
        "clusterrole-slash",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a/b"}}),
    );
    add(
        "sa-valid",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa-valid"}}),
    );
    add(
        "ingress-valid",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ingress-valid"},
        "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}),
    );

    // Custom resources, validated against their CRDs.
    add("cert-valid", cert("cert-valid", json!({})));
    add(
        "cert-duration-null",
        cert("cert-duration-null", json!({"duration": null})),
    );
    add(
        "cert-duration-valid",
        cert("cert-duration-valid", json!({"duration": "2160h"})),
    );
    add(
        "cert-secret-name-null",
        cert("cert-secret-name-null", json!({"secretName": null})),
    );
    add("cert-no-secret-name", {
        let mut c = cert("cert-no-secret-name", json!({}));
        c["spec"].as_object_mut().unwrap().remove("secretName");
        c
    });
    add(
        "cert-unknown-field",
        cert("cert-unknown-field", json!({"secretNam": "x"})),
    );
    add("cert-bad-name", cert("Cert_Bad", json!({})));
    add("cert-bad-label", {
        let mut c = cert("cert-bad-label", json!({}));
        merge(
            &mut c,
            json!({"metadata": {"labels": {"app": "not valid!"}}}),
        );
        c
    });
    add("cert-creation-yesterday", {
        let mut c = cert("cert-creation-yesterday", json!({}));
        merge(
            &mut c,
            json!({"metadata": {"creationTimestamp": "yesterday"}}),
        );
        c
    });
    add(
        "cert-dnsnames-null-item",
        cert("cert-dnsnames-null-item", json!({"dnsNames": [null]})),
    );
    add("cert-no-api-version", {
        let mut c = cert("cert-no-api-version", json!({}));
        c.as_object_mut().unwrap().remove("apiVersion");
        c
    });
    add("ks-valid", ks("ks-valid", json!({})));
    add(
        "ks-timeout-null",
        ks("ks-timeout-null", json!({"timeout": null})),
    );
    add(
        "ks-interval-words",
        ks("ks-interval-words", json!({"interval": "5 minutes"})),
    );
    add("ks-no-source", {
        let mut k = ks("ks-no-source", json!({}));
        k["spec"].as_object_mut().unwrap().remove("sourceRef");
        k
    });
    add(
        "ks-prune-string",
        // Not "yes": kubectl reads YAML 1.1, where an unquoted yes is a boolean.
        ks("ks-prune-string", json!({"prune": "sometimes"})),
    );
    add(
        "oci-valid",
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "oci-valid", "namespace": "default"},
        "spec": {"interval": "1m", "url": "oci://ghcr.io/example/manifests", "ref": {"tag": "latest"}}}),
    );
    add(
        "oci-https-url",
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "oci-https-url", "namespace": "default"},
        "spec": {"interval": "1m", "url": "https://ghcr.io/example/manifests"}}),
    );
    add(
        "hr-valid",
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "hr-valid", "namespace": "default"},
        "spec": {"interval": "10m", "chart": {"spec": {"chart": "podinfo", "version": "6.5.0",
            "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}}}),
    );
    add(
        "hr-no-chart-name",
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "hr-no-chart-name", "namespace": "default"},
        "spec": {"interval": "10m", "chart": {"spec": {"sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}}}),
    );
    // Extended resources: whole numbers, requests equal to limits.
    let pod_res = |name: &str, res: Value| {
        serde_yaml::to_string(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "web", "image": "nginx", "resources": res}]}}),
        )
        .unwrap()
    };
    for (name, res) in [
        (
            "pod-extended-fraction",
            json!({"limits": {"example.com/gpu": "500m"}}),
        ),
        (
            "pod-extended-unequal",
            json!({"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}}),
        ),
        (
            "pod-extended-equal",
            json!({"requests": {"example.com/gpu": "2"}, "limits": {"example.com/gpu": "2"}}),
        ),
    ] {
        cases.push((name.to_string(), pod_res(name, res)));
    }
    // Docker config Secrets: the config must be JSON.
    let docker = |name: &str, data: &str| {
        serde_yaml::to_string(
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": data}}),
        )
        .unwrap()
    };
    // {"auths":{}} and "not json", base64-encoded.
    cases.push((
        "secret-dockerconfig-valid".into(),
        docker("secret-dockerconfig-valid", "eyJhdXRocyI6e319"),
    ));
    cases.push((
        "secret-dockerconfig-not-json".into(),
        docker("secret-dockerconfig-not-json", "bm90IGpzb24="),
    ));
    // Names the batch controllers turn into labels: length limits.
    let long = |n: usize| format!("batch-{}", "x".repeat(n - 6));
    let job_named = |name: &str| {
        serde_yaml::to_string(&json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "web", "image": "nginx"}]}}}}))
        .unwrap()
    };
    let cron_named = |name: &str| {
        serde_yaml::to_string(&json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "web", "image": "nginx"}]}}}}}}))
        .unwrap()
    };
    cases.push(("job-name-63".into(), job_named(&long(63))));
    cases.push(("job-name-64".into(), job_named(&long(64))));
    cases.push(("cronjob-name-52".into(), cron_named(&long(52))));
    cases.push(("cronjob-name-53".into(), cron_named(&long(53))));
    // Ingresses: hosts, paths, backends.
    let ing = |name: &str, host: &str, path: &str, path_type: &str, backend: Value| {
        serde_yaml::to_string(&json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [{"host": host, "http": {"paths": [{"path": path, "pathType": path_type, "backend": backend}]}}]}}))
        .unwrap()
    };
    let to = |svc: &str, port: Value| json!({"service": {"name": svc, "port": port}});
    for (name, host, path, path_type, backend) in [
        (
            "ing-wildcard-host",
            "*.example.com",
            "/",
            "Prefix",
            to("web", json!({"number": 80})),
        ),
        (
            "ing-ip-host",
            "10.0.0.1",
            "/",
            "Prefix",
            to("web", json!({"number": 80})),
        ),
        (
            "ing-bad-host",
            "bad_host.example.com",
            "/",
            "Prefix",
            to("web", json!({"number": 80})),
        ),
        (
            "ing-relative-path",
            "a.example.com",
            "api",
            "Prefix",
            to("web", json!({"number": 80})),
        ),
        (
            "ing-dot-path",
            "a.example.com",
            "/a/../b",
            "Exact",
            to("web", json!({"number": 80})),
        ),
        (
            "ing-impl-path",
            "a.example.com",
            "/api(/|$)(.*)",
            "ImplementationSpecific",
            to("web", json!({"name": "http"})),
        ),
        (
            "ing-port-too-big",
            "a.example.com",
            "/",
            "Prefix",
            to("web", json!({"number": 70000})),
        ),
        (
            "ing-port-both",
            "a.example.com",
            "/",
            "Prefix",
            to("web", json!({"number": 80, "name": "http"})),
        ),
        (
            "ing-no-port",
            "a.example.com",
            "/",
            "Prefix",
            to("web", json!({})),
        ),
        (
            "ing-service-dotted",
            "a.example.com",
            "/",
            "Prefix",
            to("web.svc", json!({"number": 80})),
        ),
    ] {
        cases.push((name.to_string(), ing(name, host, path, path_type, backend)));
    }
    // Written as text: 1e20 is no JSON integer serde_json can hold.
    cases.push((
        "pod-int64-overflow".into(),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-int64-overflow\nspec:\n  terminationGracePeriodSeconds: 99999999999999999999\n  containers:\n    - name: web\n      image: nginx\n".into(),
    ));
    cases
}

/// Deep-merges `patch` into `base` (objects merge, anything else replaces).
pub(crate) fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) if v.is_object() && slot.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// The API groups the corpus's custom resources belong to.
fn crd_groups(cases: &[(String, String)]) -> BTreeSet<String> {
    cases
        .iter()
        .filter_map(|(_, y)| serde_yaml::from_str::<Value>(y).ok())
        .filter_map(|v| {
            v.get("apiVersion")?
                .as_str()?
                .split_once('/')
                .map(|(g, _)| g.to_string())
        })
        .filter(|g| g.contains('.') && !g.ends_with(".k8s.io"))
        .collect()
}

/// The CRDs under `.schemas/` that define kinds of `groups` (found as
/// `validate --server` finds them), reduced to their name and spec: some
/// charts' CRD files carry Helm template labels.
fn crds_for(schemas: &Path, groups: &BTreeSet<String>) -> Vec<Value> {
    validate::server::crds_under(&[schemas.to_path_buf()], groups)
        .into_iter()
        .map(|mut doc| {
            doc["metadata"] = json!({"name": doc.pointer("/metadata/name").cloned()});
            doc
        })
        .collect()
}

/// The server's verdict on every case: `Ok(())` or the error kubectl printed.
pub(crate) fn server_verdicts(
    cp: &ControlPlane,
    dir: &Path,
    cases: &[(String, String)],
) -> BTreeMap<String, Result<(), String>> {
    let verdicts = crate::control_plane::on_three_threads(cases, |(name, _)| {
        let file = dir.join("apps").join(name).join("object.yaml");
        cp.kube
            .cmd()
            .args(["apply", "--dry-run=server", "--validate=strict", "-f"])
            .arg(&file)
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                }
            })
    });
    cases.iter().map(|(n, _)| n.clone()).zip(verdicts).collect()
}

/// The number of objects [`corpus`] holds.
const CORPUS_SIZE: usize = 154;

/// A tree with one kustomize directory per object (`apps/<name>/`), its
/// Secrets allowed in plain text.
pub(crate) fn write_tree(cases: &[(String, String)]) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    let mut allow = String::from("secrets:\n");
    for (name, yaml) in cases {
        let dir = tree.path().join("apps").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("object.yaml"), yaml).unwrap();
        std::fs::write(
            dir.join("kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - object.yaml\n",
        )
        .unwrap();
        allow.push_str(&format!(
            "  - file: apps/{name}/object.yaml\n    reason: the oracle corpus\n"
        ));
    }
    std::fs::write(tree.path().join(validate::ALLOW_FILE), allow).unwrap();
    tree
}

/// Offline `validate` (the whole verb) on a tree from [`write_tree`]: the
/// errors it finds, by case.
pub(crate) fn offline_errors(tree: &Path, schemas: &Path) -> BTreeMap<String, Vec<String>> {
    let mut opts = Options::new(tree);
    opts.schema_locations = vec![schemas.display().to_string()];
    opts.identities = None;
    let report = validate::run(&opts).unwrap();
    let mut ours: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
    {
        let case = f
            .file
            .strip_prefix("apps/")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("a finding outside the corpus: {f:?}"));
        ours.entry(case.to_string())
            .or_default()
            .push(format!("{}: {}", f.file, f.text()));
    }
    ours
}

/// What the API-server oracle tests need: the pinned etcd and
/// kube-apiserver, kubectl, kustomize and `.schemas/`. `None` after a SKIP
/// notice; a failure under XTASK_REQUIRE_TOOLS=1.
pub(crate) fn oracle_prerequisites()
-> Option<(BTreeMap<String, std::path::PathBuf>, std::path::PathBuf)> {
    let binaries = crate::control_plane::api_server_binaries()?;
    common::tool("kubectl")?;
    common::tool("kustomize")?;
    let schemas = common::root().join(".schemas");
    if !schemas.join("kubernetes").is_dir() {
        if common::tools_required() {
            panic!(".schemas/ is required (XTASK_REQUIRE_TOOLS=1); run `cargo xtask test`");
        }
        eprintln!("SKIP: .schemas/ is absent; `cargo xtask validate --fetch-schemas` fills it");
        return None;
    }
    Some((binaries, schemas))
}

#[test]
fn validate_agrees_with_the_api_server_on_every_object() {
    let _one = crate::control_plane::exclusive();
    let Some((binaries, schemas)) = oracle_prerequisites() else {
        return;
    };

    let cases = corpus();
    let names: BTreeSet<&String> = cases.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    assert_eq!(cases.len(), CORPUS_SIZE, "the corpus's size changed");

    let tree = write_tree(&cases);
    let started = std::time::Instant::now();
    let ours = offline_errors(tree.path(), &schemas);
    let ours_took = started.elapsed();

    // The server's: a real kube-apiserver with the CRDs of the corpus's groups.
    let cp =
        ControlPlane::start_api_server(&common::root(), &binaries, |l| eprintln!("{l}")).unwrap();
    let crds = crds_for(&schemas, &crd_groups(&cases));
    assert!(
        !crds.is_empty(),
        "no CRDs found under .schemas for the corpus"
    );
    let crd_file = tree.path().join("crds.yaml");
    let crd_text: Vec<String> = crds
        .iter()
        .map(|c| serde_yaml::to_string(c).unwrap())
        .collect();
    std::fs::write(&crd_file, crd_text.join("---\n")).unwrap();
    crate::control_plane::apply_crds(&cp, &crd_file);
    // Pods need their ServiceAccount (no controller-manager creates it here).
    cp.kube
        .apply_yaml("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: default\n")
        .unwrap();
    let started = std::time::Instant::now();
    let server = server_verdicts(&cp, tree.path(), &cases);
    let server_took = started.elapsed();

    let mut disagreements = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for (name, _) in &cases {
        let theirs = &server[name];
        let mine = ours.get(name);
        match theirs {
            Ok(()) => valid += 1,
            Err(_) => invalid += 1,
        }
        match (theirs, mine) {
            (Ok(()), Some(found)) => disagreements.push(format!(
                "{name}: the API server accepts it, validate rejects it:\n    {}",
                found.join("\n    ")
            )),
            (Err(e), None) => disagreements.push(format!(
                "{name}: the API server rejects it, validate accepts it:\n    {e}"
            )),
            _ => {}
        }
    }
    // Written to the process's stderr, past the test harness's capture, so
    // that `cargo xtask test` (and CI) show the corpus size.
    let _ = writeln!(
        std::io::stderr(),
        "oracle corpus: {} objects ({} CRDs installed from .schemas/): the API server accepts {valid}, rejects {invalid}; validate took {:.2} s, the server {:.1} s; {} disagreement(s)",
        cases.len(),
        crds.len(),
        ours_took.as_secs_f64(),
        server_took.as_secs_f64(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "validate and the API server disagree on {} of {} objects:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
    assert!(
        valid >= 20 && invalid >= 20,
        "the corpus must hold both kinds: {valid} valid, {invalid} invalid"
    );
}
