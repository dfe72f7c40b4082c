//! Offline `validate` scored against the real kube-apiserver (issue 28).
//!
//! A corpus of built-in objects, valid and invalid, is made here: a valid
//! object per kind, and mutations of it, one per rule of Kubernetes' own
//! validation (pkg/apis/*/validation), that break it or stay just inside
//! it. Nothing labels them but the API server (the pinned kube-apiserver,
//! `kubectl apply --dry-run=server --validate=strict`). Offline validate
//! (the whole verb) is then scored against those labels: the test prints
//! the agreement, the misses (the server rejects, validate accepts) by rule
//! family, and the false alarms, and fails on any false alarm.
//!
//! Needs etcd and kube-apiserver built (`cargo xtask e2e --build-only`),
//! kubectl, kustomize and `.schemas/`; skips with a notice when they are
//! missing, unless XTASK_REQUIRE_TOOLS=1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use serde_json::{Value, json};
use xtask::cluster::local::ControlPlane;
use xtask::validate;

use crate::common;
use crate::validate_oracle::{
    merge, offline_errors, oracle_prerequisites, server_verdicts, write_tree,
};

/// The number of objects [`corpus`] makes.
const CORPUS_SIZE: usize = 394;

fn with(mut base: Value, patch: Value) -> Value {
    merge(&mut base, patch);
    base
}

fn container(patch: Value) -> Value {
    with(json!({"name": "web", "image": "nginx:1.27"}), patch)
}

fn pod(name: &str, spec: Value) -> Value {
    with(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container(json!({}))]}}),
        json!({"spec": spec}),
    )
}

fn deployment(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container(json!({}))]}}}}),
        patch,
    )
}

fn statefulset(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [container(json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}))]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        patch,
    )
}

fn daemonset(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [container(json!({}))]}}}}),
        patch,
    )
}

fn job(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [container(json!({}))]}}}}),
        patch,
    )
}

fn cronjob(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [container(json!({}))]}}}}}}),
        patch,
    )
}

fn hpa(name: &str, spec: Value) -> Value {
    with(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
        json!({"spec": spec}),
    )
}

fn metric(m: Value) -> Value {
    json!({"metrics": [m]})
}

fn pdb(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
        "spec": with(json!({"selector": {"matchLabels": {"app": "web"}}}), spec)})
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": with(json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}), spec)})
}

fn ingress(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
        "spec": with(json!({"rules": [{"host": "web.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}), spec)})
}

fn ingress_path(p: Value) -> Value {
    json!({"rules": [{"host": "web.example.com", "http": {"paths": [with(
        json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}),
        p,
    )]}}]})
}

fn ingress_class(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": name},
        "spec": with(json!({"controller": "k8s.io/ingress-nginx"}), spec)})
}

fn netpol(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
        "spec": with(json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}), spec)})
}

fn np_port(port: Value) -> Value {
    json!({"ingress": [{"ports": [port]}]})
}

fn np_peer(peer: Value) -> Value {
    json!({"ingress": [{"from": [peer]}]})
}

fn rbac(kind: &str, name: &str, body: Value) -> Value {
    with(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name}}),
        body,
    )
}

fn rule(r: Value) -> Value {
    json!({"rules": [r]})
}

fn binding(kind: &str, name: &str, role_kind: &str, subject: Value) -> Value {
    rbac(
        kind,
        name,
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": "view"},
            "subjects": [subject]}),
    )
}

fn pvc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": spec})
}

fn pvc_spec(patch: Value) -> Value {
    with(
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        patch,
    )
}

fn pv(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec})
}

fn pv_spec(patch: Value) -> Value {
    with(
        json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/srv/pv"}}),
        patch,
    )
}

fn storage_class(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": "rancher.io/local-path"}),
        patch,
    )
}

fn priority_class(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": 1000}),
        patch,
    )
}

fn limit_range(name: &str, limit: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": name},
        "spec": {"limits": [limit]}})
}

fn quota(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": spec})
}

fn secret(name: &str, patch: Value) -> Value {
    with(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}),
        patch,
    )
}

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}})
}

/// Pod-spec mutations: `(name, spec patch)`; each also becomes a Pod, and
/// the first ones templates of the workload kinds.
fn pod_spec_mutations() -> Vec<(&'static str, Value)> {
    let probe = |p: Value| json!({"containers": [container(json!({"livenessProbe": p}))]});
    let readiness = |p: Value| json!({"containers": [container(json!({"readinessProbe": p}))]});
    let env = |e: Value| json!({"containers": [container(json!({"env": [e]}))]});
    let env_from = |e: Value| json!({"containers": [container(json!({"envFrom": [e]}))]});
    let mount = |m: Value| {
        json!({"volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [container(json!({"volumeMounts": [m]}))]})
    };
    let toleration = |t: Value| json!({"tolerations": [t]});
    let spread = |c: Value| {
        json!({"topologySpreadConstraints": [with(
            json!({"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}),
            c,
        )]})
    };
    let node_expr = |e: Value| {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [e]}]}}}})
    };
    let pod_term = |t: Value| {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [with(
            json!({"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}),
            t,
        )]}}})
    };
    let ctx = |c: Value| json!({"containers": [container(json!({"securityContext": c}))]});
    vec![
        // Handlers and their ports (validateProbe, validateHandler, ValidatePortNumOrName).
        (
            "probe-port-digits",
            probe(json!({"httpGet": {"path": "/", "port": "8080"}})),
        ),
        (
            "probe-port-underscore",
            probe(json!({"httpGet": {"path": "/", "port": "http_port"}})),
        ),
        (
            "probe-port-named",
            probe(json!({"httpGet": {"path": "/", "port": "http"}})),
        ),
        (
            "probe-port-number",
            probe(json!({"httpGet": {"path": "/healthz", "port": 8080}})),
        ),
        (
            "probe-two-handlers",
            probe(json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}})),
        ),
        ("probe-no-handler", probe(json!({"periodSeconds": 5}))),
        (
            "probe-tcp-port-big",
            probe(json!({"tcpSocket": {"port": 70000}})),
        ),
        ("probe-grpc", probe(json!({"grpc": {"port": 9090}}))),
        ("probe-grpc-port-zero", probe(json!({"grpc": {"port": 0}}))),
        (
            "probe-liveness-success-2",
            probe(json!({"tcpSocket": {"port": 80}, "successThreshold": 2})),
        ),
        (
            "probe-readiness-success-3",
            readiness(json!({"tcpSocket": {"port": 80}, "successThreshold": 3})),
        ),
        (
            "probe-negative-period",
            probe(json!({"tcpSocket": {"port": 80}, "periodSeconds": -1})),
        ),
        (
            "probe-negative-delay",
            probe(json!({"tcpSocket": {"port": 80}, "initialDelaySeconds": -5})),
        ),
        (
            "probe-readiness-grace",
            readiness(json!({"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 10})),
        ),
        (
            "probe-liveness-grace-zero",
            probe(json!({"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 0})),
        ),
        (
            "probe-liveness-grace",
            probe(json!({"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 10})),
        ),
        ("probe-exec-empty", probe(json!({"exec": {"command": []}}))),
        (
            "probe-scheme-ftp",
            probe(json!({"httpGet": {"path": "/", "port": 80, "scheme": "FTP"}})),
        ),
        (
            "lifecycle-sleep",
            json!({"containers": [container(json!({"lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}))]}),
        ),
        (
            "lifecycle-two-handlers",
            json!({"containers": [container(json!({"lifecycle": {"preStop": {"sleep": {"seconds": 5}, "exec": {"command": ["true"]}}}}))]}),
        ),
        (
            "lifecycle-no-handler",
            json!({"containers": [container(json!({"lifecycle": {"postStart": {}}}))]}),
        ),
        // ValidateEnv.
        (
            "env-value-and-from",
            env(
                json!({"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            ),
        ),
        ("env-name-equals", env(json!({"name": "A=B", "value": "x"}))),
        (
            "env-name-relaxed",
            env(json!({"name": "1-dash.ok", "value": "x"})),
        ),
        ("env-from-empty", env(json!({"name": "A", "valueFrom": {}}))),
        (
            "env-from-two",
            env(
                json!({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}, "secretKeyRef": {"name": "s", "key": "k"}}}),
            ),
        ),
        (
            "env-fieldref",
            env(json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})),
        ),
        (
            "env-fieldref-label",
            env(
                json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}),
            ),
        ),
        (
            "env-fieldref-bad",
            env(json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}})),
        ),
        (
            "env-fieldref-all-labels",
            env(json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}})),
        ),
        (
            "env-resourcefield",
            env(
                json!({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}),
            ),
        ),
        (
            "env-resourcefield-bad",
            env(
                json!({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}),
            ),
        ),
        (
            "env-cm-key-bad",
            env(
                json!({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "bad key"}}}),
            ),
        ),
        (
            "envfrom-prefix-bad",
            env_from(json!({"prefix": "A=", "configMapRef": {"name": "c"}})),
        ),
        (
            "envfrom-prefix-ok",
            env_from(json!({"prefix": "APP_", "configMapRef": {"name": "c"}})),
        ),
        (
            "envfrom-both",
            env_from(json!({"configMapRef": {"name": "c"}, "secretRef": {"name": "s"}})),
        ),
        // ValidateVolumes and validateVolumeMounts.
        (
            "mount-missing-volume",
            json!({"containers": [container(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}))]}),
        ),
        (
            "mount-ok",
            mount(json!({"name": "scratch", "mountPath": "/scratch"})),
        ),
        (
            "mount-dup-path",
            json!({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
            "containers": [container(json!({"volumeMounts": [{"name": "a", "mountPath": "/x"}, {"name": "b", "mountPath": "/x"}]}))]}),
        ),
        (
            "mount-subpath-absolute",
            mount(json!({"name": "scratch", "mountPath": "/s", "subPath": "/abs"})),
        ),
        (
            "mount-subpath-dotdot",
            mount(json!({"name": "scratch", "mountPath": "/s", "subPath": "../up"})),
        ),
        (
            "mount-subpath-ok",
            mount(json!({"name": "scratch", "mountPath": "/s", "subPath": "down/here"})),
        ),
        (
            "mount-propagation-bad",
            mount(json!({"name": "scratch", "mountPath": "/s", "mountPropagation": "Shared"})),
        ),
        (
            "volume-dup-names",
            json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]}),
        ),
        (
            "volume-two-sources",
            json!({"volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]}),
        ),
        ("volume-no-source", json!({"volumes": [{"name": "v"}]})),
        (
            "volume-bad-name",
            json!({"volumes": [{"name": "Bad_Vol", "emptyDir": {}}]}),
        ),
        (
            "volume-items-dotdot",
            json!({"volumes": [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "../k"}]}}]}),
        ),
        (
            "volume-items-ok",
            json!({"volumes": [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "conf/k"}]}}]}),
        ),
        (
            "volume-device-missing",
            json!({"containers": [container(json!({"volumeDevices": [{"name": "nope", "devicePath": "/dev/x"}]}))]}),
        ),
        // validateTolerations.
        (
            "toleration-operator-bad",
            toleration(json!({"key": "k", "operator": "Like", "value": "v"})),
        ),
        (
            "toleration-exists-value",
            toleration(json!({"key": "k", "operator": "Exists", "value": "v"})),
        ),
        (
            "toleration-empty-key-equal",
            toleration(json!({"operator": "Equal", "value": "v"})),
        ),
        (
            "toleration-everything",
            toleration(json!({"operator": "Exists"})),
        ),
        (
            "toleration-seconds-noschedule",
            toleration(
                json!({"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 30}),
            ),
        ),
        (
            "toleration-seconds-noexecute",
            toleration(
                json!({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}),
            ),
        ),
        (
            "toleration-effect-bad",
            toleration(json!({"key": "k", "operator": "Exists", "effect": "Never"})),
        ),
        (
            "toleration-ok",
            toleration(
                json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}),
            ),
        ),
        // validateTopologySpreadConstraints.
        ("spread-maxskew-zero", spread(json!({"maxSkew": 0}))),
        ("spread-ok", spread(json!({}))),
        (
            "spread-when-bad",
            spread(json!({"whenUnsatisfiable": "Maybe"})),
        ),
        (
            "spread-mindomains-anyway",
            spread(json!({"whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2})),
        ),
        ("spread-mindomains-ok", spread(json!({"minDomains": 2}))),
        ("spread-no-key", spread(json!({"topologyKey": ""}))),
        (
            "spread-policy-bad",
            spread(json!({"nodeTaintsPolicy": "Sometimes"})),
        ),
        (
            "spread-duplicate",
            json!({"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
            {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
        ),
        // validateAffinity.
        (
            "affinity-node-operator-bad",
            node_expr(json!({"key": "k", "operator": "Like", "values": ["v"]})),
        ),
        (
            "affinity-node-gt-two",
            node_expr(json!({"key": "k", "operator": "Gt", "values": ["1", "2"]})),
        ),
        (
            "affinity-node-gt",
            node_expr(json!({"key": "k", "operator": "Gt", "values": ["5"]})),
        ),
        (
            "affinity-node-in-empty",
            node_expr(json!({"key": "k", "operator": "In", "values": []})),
        ),
        (
            "affinity-node-exists-values",
            node_expr(json!({"key": "k", "operator": "Exists", "values": ["v"]})),
        ),
        (
            "affinity-node-in",
            node_expr(json!({"key": "k", "operator": "In", "values": ["a", "b"]})),
        ),
        (
            "affinity-pod-no-topology",
            pod_term(json!({"topologyKey": ""})),
        ),
        (
            "affinity-pod-selector-bad",
            pod_term(
                json!({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Has"}]}}),
            ),
        ),
        ("affinity-pod-ok", pod_term(json!({}))),
        (
            "affinity-weight-zero",
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 0, "podAffinityTerm": {"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "web"}}}}]}}}),
        ),
        // validateDNSPolicy / validatePodDNSConfig.
        ("dns-none-no-config", json!({"dnsPolicy": "None"})),
        (
            "dns-none-ok",
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
        ),
        ("dns-policy-bad", json!({"dnsPolicy": "Cluster"})),
        (
            "dns-four-servers",
            json!({"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}}),
        ),
        (
            "dns-server-not-ip",
            json!({"dnsConfig": {"nameservers": ["dns.example.com"]}}),
        ),
        // Pod-level fields.
        (
            "node-selector-bad-value",
            json!({"nodeSelector": {"disk": "not valid!"}}),
        ),
        ("hostname-bad", json!({"hostname": "Host_Name"})),
        (
            "security-run-as-negative",
            json!({"securityContext": {"runAsUser": -1}}),
        ),
        (
            "security-seccomp-localhost-bare",
            ctx(json!({"seccompProfile": {"type": "Localhost"}})),
        ),
        (
            "security-seccomp-type-bad",
            ctx(json!({"seccompProfile": {"type": "Strict"}})),
        ),
        (
            "security-escalation-privileged",
            ctx(json!({"privileged": true, "allowPrivilegeEscalation": false})),
        ),
        (
            "security-ok",
            ctx(
                json!({"runAsNonRoot": true, "allowPrivilegeEscalation": false, "seccompProfile": {"type": "RuntimeDefault"}}),
            ),
        ),
        (
            "init-probe",
            json!({"initContainers": [{"name": "init", "image": "busybox", "readinessProbe": {"tcpSocket": {"port": 80}}}]}),
        ),
        (
            "init-sidecar-probe",
            json!({"initContainers": [{"name": "side", "image": "busybox", "restartPolicy": "Always", "readinessProbe": {"tcpSocket": {"port": 80}}}]}),
        ),
        (
            "init-restart-bad",
            json!({"initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "OnFailure"}]}),
        ),
        (
            "hostnetwork-port-mismatch",
            json!({"hostNetwork": true, "containers": [container(json!({"ports": [{"containerPort": 80, "hostPort": 81}]}))]}),
        ),
        (
            "termination-message-bad",
            json!({"containers": [container(json!({"terminationMessagePolicy": "Always"}))]}),
        ),
    ]
}

/// The corpus: `(name, YAML)`.
fn corpus() -> Vec<(String, String)> {
    let mut cases: Vec<(String, Value)> = Vec::new();
    let mut add = |name: &str, object: Value| cases.push((name.to_string(), object));

    // Every pod-spec mutation as a Pod; the first of each family also in a
    // workload's template.
    let mutations = pod_spec_mutations();
    for (name, spec) in &mutations {
        add(
            &format!("pod-{name}"),
            pod(&format!("pod-{name}"), spec.clone()),
        );
    }
    let templated = [
        "probe-port-digits",
        "probe-two-handlers",
        "env-value-and-from",
        "env-name-equals",
        "mount-missing-volume",
        "volume-dup-names",
        "toleration-operator-bad",
        "spread-maxskew-zero",
        "affinity-node-operator-bad",
        "dns-none-no-config",
        "mount-ok",
        "toleration-ok",
    ];
    for (name, spec) in mutations.iter().filter(|(n, _)| templated.contains(n)) {
        let n = format!("deploy-{name}");
        add(
            &n,
            deployment(&n, json!({"spec": {"template": {"spec": spec}}})),
        );
        let n = format!("cronjob-{name}");
        add(
            &n,
            cronjob(
                &n,
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            ),
        );
    }
    add(
        "pod-ephemeral",
        pod(
            "pod-ephemeral",
            json!({"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}),
        ),
    );
    add(
        "deploy-ephemeral",
        deployment(
            "deploy-ephemeral",
            json!({"spec": {"template": {"spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}}}}),
        ),
    );

    // Deployments (ValidateDeploymentSpec, ValidateRollingUpdateDeployment).
    let rolling =
        |r: Value| json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": r}}});
    for (name, patch) in [
        ("deploy-ok", json!({})),
        (
            "deploy-recreate-with-rolling",
            json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}),
        ),
        (
            "deploy-recreate",
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
        (
            "deploy-strategy-bad",
            json!({"spec": {"strategy": {"type": "BlueGreen"}}}),
        ),
        (
            "deploy-unavailable-one",
            rolling(json!({"maxUnavailable": "one"})),
        ),
        (
            "deploy-unavailable-150",
            rolling(json!({"maxUnavailable": "150%"})),
        ),
        (
            "deploy-unavailable-digits",
            rolling(json!({"maxUnavailable": "1"})),
        ),
        ("deploy-surge-150", rolling(json!({"maxSurge": "150%"}))),
        (
            "deploy-both-zero",
            rolling(json!({"maxSurge": 0, "maxUnavailable": 0})),
        ),
        (
            "deploy-both-zero-percent",
            rolling(json!({"maxSurge": "0%", "maxUnavailable": 0})),
        ),
        (
            "deploy-unavailable-zero",
            rolling(json!({"maxUnavailable": 0})),
        ),
        ("deploy-surge-negative", rolling(json!({"maxSurge": -1}))),
        (
            "deploy-progress-not-above-ready",
            json!({"spec": {"minReadySeconds": 10, "progressDeadlineSeconds": 10}}),
        ),
        (
            "deploy-progress-ok",
            json!({"spec": {"minReadySeconds": 10, "progressDeadlineSeconds": 60}}),
        ),
        (
            "deploy-ready-negative",
            json!({"spec": {"minReadySeconds": -1}}),
        ),
        (
            "deploy-history-negative",
            json!({"spec": {"revisionHistoryLimit": -1}}),
        ),
        (
            "deploy-selector-operator-bad",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["web"]}]}}}),
        ),
        (
            "deploy-selector-in-empty",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": []}]}}}),
        ),
        (
            "deploy-selector-exists-values",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["web"]}]}}}),
        ),
        (
            "deploy-selector-expression",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}}),
        ),
        (
            "deploy-replicas-negative",
            json!({"spec": {"replicas": -1}}),
        ),
    ] {
        add(name, deployment(name, patch));
    }
    add(
        "rs-ok",
        with(
            deployment("rs-ok", json!({})),
            json!({"kind": "ReplicaSet"}),
        ),
    );
    add(
        "rs-ready-negative",
        with(
            deployment(
                "rs-ready-negative",
                json!({"spec": {"minReadySeconds": -3}}),
            ),
            json!({"kind": "ReplicaSet"}),
        ),
    );

    // StatefulSets (ValidateStatefulSetSpec, ValidatePersistentVolumeClaimSpec).
    let claim = |spec: Value| json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": spec}]}});
    for (name, patch) in [
        ("sts-ok", json!({})),
        (
            "sts-access-bad",
            claim(
                json!({"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "1Gi"}}}),
            ),
        ),
        (
            "sts-access-none",
            claim(json!({"resources": {"requests": {"storage": "1Gi"}}})),
        ),
        (
            "sts-storage-zero",
            claim(
                json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "0"}}}),
            ),
        ),
        (
            "sts-storage-none",
            claim(json!({"accessModes": ["ReadWriteOnce"]})),
        ),
        (
            "sts-rwop-mixed",
            claim(
                json!({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
            ),
        ),
        (
            "sts-rwop",
            claim(
                json!({"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "1Gi"}}}),
            ),
        ),
        (
            "sts-claim-name-bad",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "Data_1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "sts-management-bad",
            json!({"spec": {"podManagementPolicy": "Random"}}),
        ),
        (
            "sts-management-parallel",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
        (
            "sts-update-bad",
            json!({"spec": {"updateStrategy": {"type": "Rolling"}}}),
        ),
        (
            "sts-partition-negative",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}}),
        ),
        (
            "sts-partition-ok",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}}),
        ),
        (
            "sts-ondelete-with-rolling",
            json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}}),
        ),
        (
            "sts-retention-bad",
            json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}}),
        ),
        (
            "sts-retention-ok",
            json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"}}}),
        ),
        (
            "sts-ordinals-negative",
            json!({"spec": {"ordinals": {"start": -1}}}),
        ),
        (
            "sts-selector-mismatch",
            json!({"spec": {"template": {"metadata": {"labels": {"app": "other"}}}}}),
        ),
    ] {
        add(name, statefulset(name, patch));
    }
    let long = "s".repeat(63);
    add(&long, statefulset(&long, json!({})));
    let longer = "s".repeat(64);
    add(&longer, statefulset(&longer, json!({})));

    // DaemonSets (ValidateDaemonSetUpdateStrategy).
    for (name, patch) in [
        ("ds-ok", json!({})),
        (
            "ds-update-bad",
            json!({"spec": {"updateStrategy": {"type": "Always"}}}),
        ),
        (
            "ds-unavailable-zero",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}}}),
        ),
        (
            "ds-surge",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}}),
        ),
        (
            "ds-unavailable-200",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "200%"}}}}),
        ),
        (
            "ds-ondelete",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
        ),
    ] {
        add(name, daemonset(name, patch));
    }

    // Jobs (validateJobSpec, validatePodFailurePolicy).
    let pfp = |rules: Value| json!({"spec": {"podFailurePolicy": {"rules": rules}}});
    for (name, patch) in [
        ("job-ok", json!({})),
        (
            "job-parallelism-negative",
            json!({"spec": {"parallelism": -1}}),
        ),
        (
            "job-completions-negative",
            json!({"spec": {"completions": -1}}),
        ),
        (
            "job-backoff-negative",
            json!({"spec": {"backoffLimit": -1}}),
        ),
        (
            "job-deadline-negative",
            json!({"spec": {"activeDeadlineSeconds": -1}}),
        ),
        (
            "job-ttl-negative",
            json!({"spec": {"ttlSecondsAfterFinished": -1}}),
        ),
        (
            "job-ttl-zero",
            json!({"spec": {"ttlSecondsAfterFinished": 0}}),
        ),
        (
            "job-failure-policy-onfailure",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
            "template": {"spec": {"restartPolicy": "OnFailure"}}}}),
        ),
        (
            "job-failure-policy",
            pfp(json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}])),
        ),
        (
            "job-failure-policy-conditions",
            pfp(
                json!([{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]),
            ),
        ),
        (
            "job-failure-policy-both",
            pfp(
                json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}, "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]),
            ),
        ),
        (
            "job-failure-policy-action-bad",
            pfp(json!([{"action": "Retry", "onExitCodes": {"operator": "In", "values": [1]}}])),
        ),
        (
            "job-failure-policy-in-zero",
            pfp(
                json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 1]}}]),
            ),
        ),
        (
            "job-failure-policy-unordered",
            pfp(
                json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3, 1]}}]),
            ),
        ),
        (
            "job-failure-policy-operator-bad",
            pfp(
                json!([{"action": "FailJob", "onExitCodes": {"operator": "Equals", "values": [1]}}]),
            ),
        ),
        (
            "job-failure-policy-failindex",
            pfp(json!([{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}])),
        ),
        (
            "job-indexed-no-completions",
            json!({"spec": {"completionMode": "Indexed"}}),
        ),
        (
            "job-indexed-parallel-no-completions",
            json!({"spec": {"completionMode": "Indexed", "parallelism": 2}}),
        ),
        (
            "job-indexed",
            json!({"spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 3}}),
        ),
        (
            "job-completion-mode-bad",
            json!({"spec": {"completionMode": "Ordered"}}),
        ),
        (
            "job-per-index-not-indexed",
            json!({"spec": {"backoffLimitPerIndex": 1, "completions": 2}}),
        ),
        (
            "job-per-index",
            json!({"spec": {"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1, "maxFailedIndexes": 1}}),
        ),
        (
            "job-max-failed-alone",
            json!({"spec": {"completionMode": "Indexed", "completions": 2, "maxFailedIndexes": 1}}),
        ),
        (
            "job-restart-always",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}),
        ),
    ] {
        add(name, job(name, patch));
    }

    // CronJobs (validateScheduleFormat, ValidateTimeZone, validateCronJobSpec).
    let schedule = |s: &str| json!({"spec": {"schedule": s}});
    let zone = |z: &str| json!({"spec": {"timeZone": z}});
    for (name, patch) in [
        ("cron-ok", json!({})),
        ("cron-minute-60", schedule("60 * * * *")),
        ("cron-hour-24", schedule("0 24 * * *")),
        ("cron-day-zero", schedule("0 0 0 * *")),
        ("cron-month-13", schedule("0 0 1 13 *")),
        ("cron-weekday-7", schedule("0 0 * * 7")),
        ("cron-four-fields", schedule("0 0 * *")),
        ("cron-six-fields", schedule("0 0 0 * * *")),
        ("cron-step-zero", schedule("*/0 * * * *")),
        ("cron-range-reversed", schedule("30-10 * * * *")),
        ("cron-names", schedule("0 9 * jan-mar MON-FRI")),
        ("cron-list-steps", schedule("0,15,30/5 1-5/2 * * *")),
        ("cron-question-mark", schedule("0 0 ? * *")),
        ("cron-daily", schedule("@daily")),
        ("cron-fortnightly", schedule("@fortnightly")),
        ("cron-every", schedule("@every 1h30m")),
        ("cron-every-bad", schedule("@every fortnight")),
        ("cron-tz-prefix", schedule("TZ=UTC 0 * * * *")),
        ("cron-letters", schedule("a b c d e")),
        ("cron-zone", zone("Europe/Copenhagen")),
        ("cron-zone-utc", zone("UTC")),
        ("cron-zone-etc", zone("Etc/GMT+2")),
        ("cron-zone-mars", zone("Mars/Olympus_Mons")),
        ("cron-zone-local", zone("Local")),
        ("cron-zone-spaces", zone("Europe / Copenhagen")),
        (
            "cron-concurrency-bad",
            json!({"spec": {"concurrencyPolicy": "Queue"}}),
        ),
        (
            "cron-concurrency-forbid",
            json!({"spec": {"concurrencyPolicy": "Forbid"}}),
        ),
        (
            "cron-deadline-negative",
            json!({"spec": {"startingDeadlineSeconds": -10}}),
        ),
        (
            "cron-history-negative",
            json!({"spec": {"successfulJobsHistoryLimit": -1}}),
        ),
        (
            "cron-job-backoff-negative",
            json!({"spec": {"jobTemplate": {"spec": {"backoffLimit": -2}}}}),
        ),
        (
            "cron-restart-always",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}}}),
        ),
    ] {
        add(name, cronjob(name, patch));
    }
    let name52 = format!("c{}", "r".repeat(51));
    add(&name52, cronjob(&name52, json!({})));
    let name53 = format!("c{}", "r".repeat(52));
    add(&name53, cronjob(&name53, json!({})));

    // HorizontalPodAutoscalers (ValidateHorizontalPodAutoscalerSpec).
    let behavior = |dir: &str, r: Value| json!({"behavior": {dir: r}});
    for (name, spec) in [
        ("hpa-ok", json!({})),
        ("hpa-min-above-max", json!({"minReplicas": 6})),
        ("hpa-min-zero", json!({"minReplicas": 0})),
        ("hpa-max-zero", json!({"minReplicas": 1, "maxReplicas": 0})),
        ("hpa-min-equals-max", json!({"minReplicas": 5})),
        ("hpa-no-min", json!({"minReplicas": null})),
        (
            "hpa-target-type-bad",
            metric(
                json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Percentage", "averageUtilization": 80}}}),
            ),
        ),
        (
            "hpa-utilization-zero",
            metric(
                json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}),
            ),
        ),
        (
            "hpa-resource-average-value",
            metric(
                json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}}),
            ),
        ),
        (
            "hpa-resource-raw-value",
            metric(
                json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}}),
            ),
        ),
        (
            "hpa-resource-no-target-value",
            metric(
                json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}),
            ),
        ),
        (
            "hpa-metric-type-bad",
            metric(
                json!({"type": "Custom", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}),
            ),
        ),
        (
            "hpa-metric-source-missing",
            metric(
                json!({"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}),
            ),
        ),
        (
            "hpa-pods",
            metric(
                json!({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}),
            ),
        ),
        (
            "hpa-pods-average-zero",
            metric(
                json!({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "0"}}}),
            ),
        ),
        (
            "hpa-external",
            metric(
                json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}),
            ),
        ),
        (
            "hpa-external-negative",
            metric(
                json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "-1"}}}),
            ),
        ),
        (
            "hpa-container-resource",
            metric(
                json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "web", "target": {"type": "Utilization", "averageUtilization": 60}}}),
            ),
        ),
        (
            "hpa-container-resource-no-container",
            metric(
                json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "", "target": {"type": "Utilization", "averageUtilization": 60}}}),
            ),
        ),
        (
            "hpa-behavior",
            behavior(
                "scaleDown",
                json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}),
            ),
        ),
        (
            "hpa-behavior-period-zero",
            behavior(
                "scaleUp",
                json!({"policies": [{"type": "Pods", "value": 2, "periodSeconds": 0}]}),
            ),
        ),
        (
            "hpa-behavior-period-long",
            behavior(
                "scaleUp",
                json!({"policies": [{"type": "Pods", "value": 2, "periodSeconds": 1801}]}),
            ),
        ),
        (
            "hpa-behavior-window-long",
            behavior("scaleDown", json!({"stabilizationWindowSeconds": 4000})),
        ),
        (
            "hpa-behavior-select-bad",
            behavior("scaleUp", json!({"selectPolicy": "Average"})),
        ),
        (
            "hpa-behavior-type-bad",
            behavior(
                "scaleUp",
                json!({"policies": [{"type": "Nodes", "value": 2, "periodSeconds": 60}]}),
            ),
        ),
        (
            "hpa-behavior-value-zero",
            behavior(
                "scaleUp",
                json!({"policies": [{"type": "Pods", "value": 0, "periodSeconds": 60}]}),
            ),
        ),
        (
            "hpa-behavior-disabled",
            behavior("scaleDown", json!({"selectPolicy": "Disabled"})),
        ),
        (
            "hpa-target-no-kind",
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "", "name": "web"}}),
        ),
        (
            "hpa-target-name-slash",
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a/b"}}),
        ),
    ] {
        add(name, hpa(name, spec));
    }
    let v1 = |name: &str, spec: Value| {
        json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": with(json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}), spec)})
    };
    add("hpa-v1-ok", v1("hpa-v1-ok", json!({})));
    add(
        "hpa-v1-cpu-zero",
        v1(
            "hpa-v1-cpu-zero",
            json!({"targetCPUUtilizationPercentage": 0}),
        ),
    );
    add(
        "hpa-v1-min-above-max",
        v1("hpa-v1-min-above-max", json!({"minReplicas": 4})),
    );

    // PodDisruptionBudgets (ValidatePodDisruptionBudgetSpec).
    for (name, spec) in [
        ("pdb-min", json!({"minAvailable": 1})),
        ("pdb-percent", json!({"minAvailable": "50%"})),
        ("pdb-max-100", json!({"maxUnavailable": "100%"})),
        ("pdb-both", json!({"minAvailable": 1, "maxUnavailable": 1})),
        ("pdb-150", json!({"minAvailable": "150%"})),
        ("pdb-one", json!({"maxUnavailable": "one"})),
        ("pdb-negative", json!({"minAvailable": -1})),
        (
            "pdb-eviction-bad",
            json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}),
        ),
        (
            "pdb-eviction",
            json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}),
        ),
        (
            "pdb-selector-bad",
            json!({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "app", "operator": "Matches", "values": ["x"]}]}}),
        ),
    ] {
        add(name, pdb(name, spec));
    }

    // Services (ValidateService).
    for (name, spec) in [
        (
            "svc-duplicate-ports",
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
        ),
        (
            "svc-same-port-udp",
            json!({"ports": [{"name": "a", "port": 53}, {"name": "b", "port": 53, "protocol": "UDP"}]}),
        ),
        (
            "svc-local-clusterip",
            json!({"externalTrafficPolicy": "Local"}),
        ),
        (
            "svc-local-nodeport",
            json!({"type": "NodePort", "externalTrafficPolicy": "Local"}),
        ),
        (
            "svc-local-externalips",
            json!({"externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Local"}),
        ),
        (
            "svc-traffic-bad",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Everywhere"}),
        ),
        ("svc-internal-bad", json!({"internalTrafficPolicy": "Node"})),
        (
            "svc-internal-local",
            json!({"internalTrafficPolicy": "Local"}),
        ),
        ("svc-affinity-bad", json!({"sessionAffinity": "Cookie"})),
        (
            "svc-affinity-timeout-zero",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}),
        ),
        (
            "svc-affinity-client-ip",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}),
        ),
        ("svc-family-bad", json!({"ipFamilies": ["IPv5"]})),
        (
            "svc-family-policy-bad",
            json!({"ipFamilyPolicy": "DualStack"}),
        ),
        ("svc-cluster-ip-bad", json!({"clusterIP": "300.1.1.1"})),
        ("svc-headless", json!({"clusterIP": "None"})),
        (
            "svc-ranges-clusterip",
            json!({"loadBalancerSourceRanges": ["10.0.0.0/8"]}),
        ),
        (
            "svc-ranges-bad",
            json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/33"]}),
        ),
        (
            "svc-ranges",
            json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}),
        ),
        ("svc-external-ip-bad", json!({"externalIPs": ["not-an-ip"]})),
        (
            "svc-health-port-nodeport",
            json!({"type": "NodePort", "healthCheckNodePort": 30100}),
        ),
    ] {
        add(name, service(name, spec));
    }

    // Ingresses (ValidateIngressSpec) and IngressClasses (ValidateIngressClass).
    for (name, spec) in [
        ("ing-ok", json!({})),
        (
            "ing-path-type-bad",
            ingress_path(json!({"pathType": "Regex"})),
        ),
        (
            "ing-path-type-missing",
            ingress_path(json!({"pathType": null})),
        ),
        (
            "ing-implementation-specific",
            ingress_path(json!({"pathType": "ImplementationSpecific", "path": "/api(/|$)(.*)"})),
        ),
        (
            "ing-exact",
            ingress_path(json!({"pathType": "Exact", "path": "/login"})),
        ),
        ("ing-class-bad", json!({"ingressClassName": "Nginx_Class"})),
        ("ing-class", json!({"ingressClassName": "nginx"})),
        (
            "ing-tls-host-bad",
            json!({"tls": [{"hosts": ["Web.Example.com"], "secretName": "tls"}]}),
        ),
        (
            "ing-tls-wildcard",
            json!({"tls": [{"hosts": ["*.example.com"], "secretName": "tls"}]}),
        ),
    ] {
        add(name, ingress(name, spec));
    }
    for (name, spec) in [
        ("ic-ok", json!({})),
        ("ic-controller-bare", json!({"controller": "nginx"})),
        (
            "ic-cluster-with-namespace",
            json!({"parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p", "scope": "Cluster", "namespace": "default"}}),
        ),
        (
            "ic-namespace-scope-bare",
            json!({"parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p", "scope": "Namespace"}}),
        ),
        (
            "ic-namespace-scope",
            json!({"parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p", "scope": "Namespace", "namespace": "default"}}),
        ),
        (
            "ic-scope-bad",
            json!({"parameters": {"kind": "Params", "name": "p", "scope": "Global"}}),
        ),
        (
            "ic-params-no-kind",
            json!({"parameters": {"kind": "", "name": "p"}}),
        ),
        (
            "ic-params-cluster",
            json!({"parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"}}),
        ),
    ] {
        add(name, ingress_class(name, spec));
    }

    // NetworkPolicies (ValidateNetworkPolicySpec).
    for (name, spec) in [
        ("np-ok", json!({})),
        (
            "np-end-port-below",
            np_port(json!({"port": 8080, "endPort": 8000})),
        ),
        (
            "np-end-port",
            np_port(json!({"port": 8000, "endPort": 8080})),
        ),
        (
            "np-end-port-named",
            np_port(json!({"port": "http", "endPort": 8080})),
        ),
        ("np-end-port-alone", np_port(json!({"endPort": 8080}))),
        ("np-port-named-bad", np_port(json!({"port": "http_port"}))),
        (
            "np-protocol-bad",
            np_port(json!({"protocol": "ICMP", "port": 80})),
        ),
        (
            "np-cidr-33",
            np_peer(json!({"ipBlock": {"cidr": "10.0.0.0/33"}})),
        ),
        (
            "np-cidr",
            np_peer(json!({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}})),
        ),
        (
            "np-cidr-not-cidr",
            np_peer(json!({"ipBlock": {"cidr": "10.0.0.0"}})),
        ),
        (
            "np-except-wider",
            np_peer(json!({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]}})),
        ),
        (
            "np-block-and-selector",
            np_peer(json!({"ipBlock": {"cidr": "10.0.0.0/16"}, "podSelector": {}})),
        ),
        ("np-peer-empty", np_peer(json!({}))),
        ("np-policy-type-bad", json!({"policyTypes": ["Inbound"]})),
        (
            "np-selector-bad",
            json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}),
        ),
    ] {
        add(name, netpol(name, spec));
    }

    // RBAC (ValidatePolicyRule, ValidateRoleBindingSubject).
    let resource_rule = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]});
    for (kind, name, body) in [
        ("Role", "role-ok", rule(resource_rule.clone())),
        (
            "Role",
            "role-non-resource",
            rule(json!({"nonResourceURLs": ["/healthz"], "verbs": ["get"]})),
        ),
        (
            "ClusterRole",
            "clusterrole-non-resource",
            rule(json!({"nonResourceURLs": ["/healthz"], "verbs": ["get"]})),
        ),
        (
            "ClusterRole",
            "clusterrole-mixed",
            rule(
                json!({"nonResourceURLs": ["/healthz"], "resources": ["pods"], "apiGroups": [""], "verbs": ["get"]}),
            ),
        ),
        (
            "Role",
            "role-no-verbs",
            rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": []})),
        ),
        (
            "Role",
            "role-no-groups",
            rule(json!({"resources": ["pods"], "verbs": ["get"]})),
        ),
        (
            "Role",
            "role-no-resources",
            rule(json!({"apiGroups": [""], "verbs": ["get"]})),
        ),
        (
            "ClusterRole",
            "clusterrole-aggregated",
            json!({"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]}}),
        ),
    ] {
        add(name, rbac(kind, name, body));
    }
    let sa = json!({"kind": "ServiceAccount", "name": "web", "namespace": "default"});
    for (kind, name, role_kind, subject) in [
        ("RoleBinding", "rb-ok", "ClusterRole", sa.clone()),
        ("RoleBinding", "rb-role", "Role", sa.clone()),
        (
            "RoleBinding",
            "rb-kind-bad",
            "ClusterRole",
            json!({"kind": "Robot", "name": "r2"}),
        ),
        (
            "RoleBinding",
            "rb-user-defaulted-group",
            "ClusterRole",
            json!({"kind": "User", "name": "jane"}),
        ),
        (
            "RoleBinding",
            "rb-user-group-bad",
            "ClusterRole",
            json!({"kind": "User", "name": "jane", "apiGroup": "example.com"}),
        ),
        (
            "RoleBinding",
            "rb-sa-group-bad",
            "ClusterRole",
            json!({"kind": "ServiceAccount", "name": "web", "apiGroup": "rbac.authorization.k8s.io"}),
        ),
        (
            "RoleBinding",
            "rb-sa-no-namespace",
            "ClusterRole",
            json!({"kind": "ServiceAccount", "name": "web"}),
        ),
        (
            "RoleBinding",
            "rb-no-name",
            "ClusterRole",
            json!({"kind": "Group", "name": "", "apiGroup": "rbac.authorization.k8s.io"}),
        ),
        ("RoleBinding", "rb-role-kind-bad", "Deployment", sa.clone()),
        ("ClusterRoleBinding", "crb-ok", "ClusterRole", sa.clone()),
        (
            "ClusterRoleBinding",
            "crb-sa-no-namespace",
            "ClusterRole",
            json!({"kind": "ServiceAccount", "name": "web"}),
        ),
        ("ClusterRoleBinding", "crb-role", "Role", sa.clone()),
        (
            "ClusterRoleBinding",
            "crb-group",
            "ClusterRole",
            json!({"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}),
        ),
    ] {
        add(name, binding(kind, name, role_kind, subject));
    }

    // Storage: StorageClass, PersistentVolumeClaim, PersistentVolume.
    for (name, patch) in [
        (
            "sc-ok",
            json!({"reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}),
        ),
        ("sc-recycle", json!({"reclaimPolicy": "Recycle"})),
        ("sc-reclaim-bad", json!({"reclaimPolicy": "Keep"})),
        ("sc-binding-bad", json!({"volumeBindingMode": "Lazy"})),
        (
            "sc-provisioner-bad",
            json!({"provisioner": "bad provisioner!"}),
        ),
        (
            "sc-provisioner-upper",
            json!({"provisioner": "Example.com/Disk"}),
        ),
    ] {
        add(name, storage_class(name, patch));
    }
    for (name, spec) in [
        ("pvc-ok", pvc_spec(json!({}))),
        (
            "pvc-access-bad",
            pvc_spec(json!({"accessModes": ["ReadWriteAll"]})),
        ),
        ("pvc-access-none", pvc_spec(json!({"accessModes": []}))),
        (
            "pvc-storage-zero",
            pvc_spec(json!({"resources": {"requests": {"storage": "0Gi"}}})),
        ),
        ("pvc-storage-none", pvc_spec(json!({"resources": null}))),
        (
            "pvc-storage-negative",
            pvc_spec(json!({"resources": {"requests": {"storage": "-1Gi"}}})),
        ),
        (
            "pvc-rwop-mixed",
            pvc_spec(json!({"accessModes": ["ReadWriteOncePod", "ReadOnlyMany"]})),
        ),
        (
            "pvc-rwop",
            pvc_spec(json!({"accessModes": ["ReadWriteOncePod"]})),
        ),
        (
            "pvc-many",
            pvc_spec(json!({"accessModes": ["ReadWriteMany", "ReadOnlyMany"]})),
        ),
        ("pvc-mode-bad", pvc_spec(json!({"volumeMode": "Raw"}))),
        ("pvc-block", pvc_spec(json!({"volumeMode": "Block"}))),
    ] {
        add(name, pvc(name, spec));
    }
    for (name, spec) in [
        ("pv-ok", pv_spec(json!({}))),
        ("pv-no-capacity", pv_spec(json!({"capacity": null}))),
        (
            "pv-capacity-cpu",
            pv_spec(json!({"capacity": {"cpu": "1"}})),
        ),
        ("pv-no-access", pv_spec(json!({"accessModes": null}))),
        ("pv-no-source", pv_spec(json!({"hostPath": null}))),
        (
            "pv-two-sources",
            pv_spec(json!({"nfs": {"server": "nfs.example.com", "path": "/"}})),
        ),
        (
            "pv-reclaim-bad",
            pv_spec(json!({"persistentVolumeReclaimPolicy": "Keep"})),
        ),
        (
            "pv-reclaim-retain",
            pv_spec(json!({"persistentVolumeReclaimPolicy": "Retain"})),
        ),
        (
            "pv-local-no-affinity",
            pv_spec(json!({"hostPath": null, "local": {"path": "/mnt/disk"}})),
        ),
        (
            "pv-local",
            pv_spec(json!({"hostPath": null, "local": {"path": "/mnt/disk"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}}})),
        ),
    ] {
        add(name, pv(name, spec));
    }

    // PriorityClass (ValidatePriorityClass).
    for (name, patch) in [
        ("pc-ok", json!({})),
        ("pc-too-high", json!({"value": 2_000_000_000})),
        ("pc-limit", json!({"value": 1_000_000_000})),
        ("system-custom", json!({})),
        ("pc-negative", json!({"value": -5})),
        ("pc-preemption-bad", json!({"preemptionPolicy": "Always"})),
        ("pc-never", json!({"preemptionPolicy": "Never"})),
    ] {
        add(name, priority_class(name, patch));
    }

    // LimitRange (ValidateLimitRange) and ResourceQuota (ValidateResourceQuota).
    for (name, limit) in [
        (
            "lr-ok",
            json!({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "2"}, "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "200m"}}),
        ),
        (
            "lr-min-above-max",
            json!({"type": "Container", "min": {"memory": "2Gi"}, "max": {"memory": "1Gi"}}),
        ),
        (
            "lr-default-above-max",
            json!({"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "2"}}),
        ),
        (
            "lr-request-above-default",
            json!({"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}}),
        ),
        (
            "lr-ratio-below-one",
            json!({"type": "Container", "maxLimitRequestRatio": {"cpu": "0.5"}}),
        ),
        (
            "lr-pod-default",
            json!({"type": "Pod", "default": {"cpu": "1"}}),
        ),
        ("lr-pvc-bare", json!({"type": "PersistentVolumeClaim"})),
        (
            "lr-pvc",
            json!({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}),
        ),
    ] {
        add(name, limit_range(name, limit));
    }
    for (name, spec) in [
        (
            "rq-ok",
            json!({"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi"}}),
        ),
        ("rq-name-bad", json!({"hard": {"gpus": "1"}})),
        ("rq-count", json!({"hard": {"count/deployments.apps": "5"}})),
        ("rq-negative", json!({"hard": {"pods": "-1"}})),
        (
            "rq-scope-bad",
            json!({"hard": {"pods": "1"}, "scopes": ["Forever"]}),
        ),
    ] {
        add(name, quota(name, spec));
    }

    // Secrets and ConfigMaps.
    add(
        "secret-basic",
        secret(
            "secret-basic",
            json!({"type": "kubernetes.io/basic-auth", "stringData": {"username": "u", "password": "p"}}),
        ),
    );
    add(
        "secret-basic-empty",
        secret(
            "secret-basic-empty",
            json!({"type": "kubernetes.io/basic-auth"}),
        ),
    );
    add(
        "secret-basic-password",
        secret(
            "secret-basic-password",
            json!({"type": "kubernetes.io/basic-auth", "stringData": {"password": "p"}}),
        ),
    );
    add(
        "secret-ssh-empty",
        secret(
            "secret-ssh-empty",
            json!({"type": "kubernetes.io/ssh-auth", "stringData": {"ssh-privatekey": ""}}),
        ),
    );
    let cm64 = "c".repeat(64);
    add(&cm64, config_map(&cm64));
    let cm254 = "c".repeat(254);
    add("cm-254", config_map(&cm254));
    let cm_parts = format!("{}.{}", "a".repeat(70), "b".repeat(70));
    add("cm-long-parts", config_map(&cm_parts));

    cases
        .into_iter()
        .map(|(name, object)| (name, serde_yaml::to_string(&object).unwrap()))
        .collect()
}

/// The family a case belongs to, for the tally: its name up to the second dash.
fn family(name: &str) -> String {
    name.splitn(3, '-').take(2).collect::<Vec<_>>().join("-")
}

#[test]
fn offline_validate_scored_against_the_api_server() {
    let cases = corpus();
    let names: BTreeSet<&String> = cases.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    assert_eq!(cases.len(), CORPUS_SIZE, "the corpus's size changed");

    let _one = crate::control_plane::exclusive();
    let Some((binaries, schemas)) = oracle_prerequisites() else {
        return;
    };

    let tree = write_tree(&cases);
    let started = std::time::Instant::now();
    let ours = offline_errors(tree.path(), &schemas);
    let ours_took = started.elapsed();

    let cp =
        ControlPlane::start_api_server(&common::root(), &binaries, |l| eprintln!("{l}")).unwrap();
    cp.kube
        .apply_yaml("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: default\n")
        .unwrap();
    let started = std::time::Instant::now();
    let server = server_verdicts(&cp, tree.path(), &cases);
    let server_took = started.elapsed();
    drop(cp);

    // `validate --server` is the oracle itself: it must say the same of
    // every object.
    let mut opts = validate::Options::new(tree.path());
    opts.schema_locations = vec![schemas.display().to_string()];
    opts.identities = None;
    opts.server = Some(common::root());
    let with_server = validate::run(&opts).unwrap();
    let refused_by_flag: BTreeSet<String> = with_server
        .findings
        .iter()
        .filter(|f| f.check == validate::Check::Server)
        .filter_map(|f| {
            f.file
                .strip_prefix("apps/")?
                .split('/')
                .next()
                .map(str::to_string)
        })
        .collect();
    let refused_by_kubectl: BTreeSet<String> = server
        .iter()
        .filter(|(_, v)| v.is_err())
        .map(|(n, _)| n.clone())
        .collect();
    let flag_seconds = with_server.server.as_ref().map_or(0.0, |s| s.seconds);

    let (mut valid, mut invalid, mut agree) = (0usize, 0usize, 0usize);
    let mut missed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut false_alarms = Vec::new();
    for (name, _) in &cases {
        let theirs = &server[name];
        match theirs {
            Ok(()) => valid += 1,
            Err(_) => invalid += 1,
        }
        match (theirs, ours.get(name)) {
            (Ok(()), Some(found)) => false_alarms.push(format!(
                "{name}: the API server accepts it, validate rejects it:\n    {}",
                found.join("\n    ")
            )),
            (Err(e), None) => missed
                .entry(family(name))
                .or_default()
                .push(format!("{name}: {}", e.lines().last().unwrap_or(e))),
            _ => agree += 1,
        }
    }
    let total = cases.len();
    let missed_count: usize = missed.values().map(Vec::len).sum();
    let mut summary = format!(
        "rules corpus: {total} objects, the API server accepts {valid} and rejects {invalid}; offline validate agrees on {agree} ({:.1}%), misses {missed_count}, false alarms {}; validate took {:.2} s, the server {:.1} s\n",
        100.0 * agree as f64 / total as f64,
        false_alarms.len(),
        ours_took.as_secs_f64(),
        server_took.as_secs_f64(),
    );
    for (family, cases) in &missed {
        summary.push_str(&format!("  missed, {family}:\n"));
        for c in cases {
            summary.push_str(&format!("    {c}\n"));
        }
    }
    summary.push_str(&format!(
        "validate --server: {} refused, {:.1} s; it and the oracle differ on {:?}\n",
        refused_by_flag.len(),
        flag_seconds,
        refused_by_flag
            .symmetric_difference(&refused_by_kubectl)
            .collect::<Vec<_>>()
    ));
    // Past the harness's capture: CI logs show the score.
    let _ = write!(std::io::stderr(), "{summary}");
    assert_eq!(
        refused_by_flag, refused_by_kubectl,
        "validate --server and the oracle disagree"
    );
    assert!(
        false_alarms.is_empty(),
        "{} false alarm(s):\n{}",
        false_alarms.len(),
        false_alarms.join("\n")
    );
    assert!(
        valid >= 100 && invalid >= 150,
        "the corpus must hold both kinds: {valid} valid, {invalid} invalid"
    );
}
