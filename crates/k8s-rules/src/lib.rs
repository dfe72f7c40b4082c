//! What the API server rejects that no OpenAPI schema says: its own Go
//! validation of built-in kinds (and the metadata rules it applies to every
//! object). A small table; each rule names the Kubernetes function it
//! mirrors, so a reader can check it against the source.
//!
//! The rules read objects as the server would see them after decoding and
//! defaulting (a missing `protocol` is TCP, a missing `imagePullPolicy` is
//! defaulted, `null` is unset), and skip values of the wrong type: the schema
//! check reports those.

mod apps;
mod common;
mod kinds;
mod pod;
mod pvc;

use serde_json::{Map, Value};

use k8s_schema::Gvk;
use k8s_schema::formats::parse_quantity;

/// One rule broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path from the object root.
    pub path: String,
    pub message: String,
    /// The Kubernetes validation function the rule mirrors.
    pub mirrors: &'static str,
}

/// Which objects a rule reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every object (metadata rules; CRDs too).
    All,
    /// Built-in objects of these `group/Kind`s (the core group is empty).
    Kinds(&'static [&'static str]),
}

/// A server-side rule.
pub struct Rule {
    pub name: &'static str,
    /// The function in Kubernetes' source it mirrors, with its package.
    pub mirrors: &'static str,
    pub scope: Scope,
    pub check: fn(&Gvk, &Value, &mut Out),
}

/// Where a rule puts what it finds.
pub struct Out {
    mirrors: &'static str,
    found: Vec<Violation>,
}

impl Out {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push(Violation {
            path: path.into(),
            message: message.into(),
            mirrors: self.mirrors,
        });
    }
}

/// Kinds whose objects carry a pod template (or are a Pod), with where.
const POD_SPECS: &[(&str, &str)] = &[
    ("/Pod", "spec"),
    ("/PodTemplate", "template.spec"),
    ("/ReplicationController", "spec.template.spec"),
    ("apps/Deployment", "spec.template.spec"),
    ("apps/ReplicaSet", "spec.template.spec"),
    ("apps/StatefulSet", "spec.template.spec"),
    ("apps/DaemonSet", "spec.template.spec"),
    ("batch/Job", "spec.template.spec"),
    ("batch/CronJob", "spec.jobTemplate.spec.template.spec"),
];

const WORKLOADS: &[&str] = &[
    "/Pod",
    "/PodTemplate",
    "/ReplicationController",
    "apps/Deployment",
    "apps/ReplicaSet",
    "apps/StatefulSet",
    "apps/DaemonSet",
    "batch/Job",
    "batch/CronJob",
];

/// The rules, in the order they run.
pub static RULES: &[Rule] = &[
    Rule {
        name: "object name",
        mirrors: "ValidateObjectMeta with the kind's name function (ValidateNamespaceName, ValidateServiceName, ValidateStatefulSetName, NameIsDNSSubdomain, ValidateRBACName, ...) in k8s.io/apimachinery/pkg/api/validation and k8s.io/kubernetes/pkg/apis/*/validation; the name lengths of ValidateJob and ValidateCronJobCreate (batch)",
        scope: Scope::All,
        check: object_name,
    },
    Rule {
        name: "namespace",
        mirrors: "ValidateObjectMeta (namespace: ValidateNamespaceName) in k8s.io/apimachinery/pkg/api/validation",
        scope: Scope::All,
        check: namespace,
    },
    Rule {
        name: "labels",
        mirrors: "ValidateLabels in k8s.io/apimachinery/pkg/apis/meta/v1/validation",
        scope: Scope::All,
        check: labels,
    },
    Rule {
        name: "annotations",
        mirrors: "ValidateAnnotations in k8s.io/apimachinery/pkg/api/validation",
        scope: Scope::All,
        check: annotations,
    },
    Rule {
        name: "containers",
        mirrors: "validateContainers / validateInitContainers / validateContainerCommon in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: containers,
    },
    Rule {
        name: "container ports",
        mirrors: "validateContainerPorts in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: container_ports,
    },
    Rule {
        name: "imagePullPolicy",
        mirrors: "validatePullPolicy in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: pull_policy,
    },
    Rule {
        name: "resources",
        mirrors: "ValidateContainerResourceRequirements / ValidateResourceQuantityValue in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: resources,
    },
    Rule {
        name: "restartPolicy",
        mirrors: "validateRestartPolicy (core), ValidatePodTemplateSpecForReplicaSet / ValidateDeploymentSpec / ValidateStatefulSetSpec / ValidateDaemonSetSpec (apps), validateJobSpec (batch)",
        scope: Scope::Kinds(WORKLOADS),
        check: restart_policy,
    },
    Rule {
        name: "activeDeadlineSeconds",
        mirrors: "ValidatePodSpec (a positive int32) in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: active_deadline,
    },
    // One rule per kind, so that each finding names its own kind's function.
    Rule {
        name: "Deployment replicas and selector",
        mirrors: "ValidateDeploymentSpec in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/Deployment"]),
        check: workload_selector,
    },
    Rule {
        name: "ReplicaSet replicas and selector",
        mirrors: "ValidateReplicaSetSpec in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/ReplicaSet"]),
        check: workload_selector,
    },
    Rule {
        name: "StatefulSet replicas and selector",
        mirrors: "ValidateStatefulSetSpec in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/StatefulSet"]),
        check: workload_selector,
    },
    Rule {
        name: "DaemonSet selector",
        mirrors: "ValidateDaemonSetSpec in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/DaemonSet"]),
        check: workload_selector,
    },
    Rule {
        name: "pod spec structure",
        mirrors: "ValidatePodSpec (ValidateVolumes, validateVolumeMounts, ValidateEnv, validateProbe, validateHandler, validateTolerations, validateTopologySpreadConstraints, validateAffinity, validatePodDNSConfig, ValidatePodSecurityContext) in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: pod::pod_spec,
    },
    Rule {
        name: "ephemeral containers",
        mirrors: "ValidatePodCreate / ValidatePodTemplateSpec in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(WORKLOADS),
        check: pod::ephemeral_containers,
    },
    Rule {
        name: "Deployment spec",
        mirrors: "ValidateDeploymentSpec (ValidateDeploymentStrategy, ValidateRollingUpdateDeployment) in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/Deployment"]),
        check: apps::workload_spec,
    },
    Rule {
        name: "ReplicaSet spec",
        mirrors: "ValidateReplicaSetSpec in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/ReplicaSet"]),
        check: apps::workload_spec,
    },
    Rule {
        name: "StatefulSet spec",
        mirrors: "ValidateStatefulSetSpec (ValidatePersistentVolumeClaimTemplate) in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/StatefulSet"]),
        check: apps::workload_spec,
    },
    Rule {
        name: "DaemonSet spec",
        mirrors: "ValidateDaemonSetSpec (ValidateDaemonSetUpdateStrategy, ValidateRollingUpdateDaemonSet) in k8s.io/kubernetes/pkg/apis/apps/validation",
        scope: Scope::Kinds(&["apps/DaemonSet"]),
        check: apps::workload_spec,
    },
    Rule {
        name: "Job spec",
        mirrors: "validateJobSpec (validatePodFailurePolicy) in k8s.io/kubernetes/pkg/apis/batch/validation",
        scope: Scope::Kinds(&["batch/Job"]),
        check: apps::job,
    },
    Rule {
        name: "CronJob spec",
        mirrors: "validateCronJobSpec (validateScheduleFormat, ValidateTimeZone, validateJobSpec) in k8s.io/kubernetes/pkg/apis/batch/validation",
        scope: Scope::Kinds(&["batch/CronJob"]),
        check: apps::cronjob,
    },
    Rule {
        name: "HorizontalPodAutoscaler",
        mirrors: "ValidateHorizontalPodAutoscalerSpec (validateMetrics, validateMetricTarget, validateBehavior) in k8s.io/kubernetes/pkg/apis/autoscaling/validation",
        scope: Scope::Kinds(&["autoscaling/HorizontalPodAutoscaler"]),
        check: apps::hpa,
    },
    Rule {
        name: "PodDisruptionBudget",
        mirrors: "ValidatePodDisruptionBudgetSpec in k8s.io/kubernetes/pkg/apis/policy/validation",
        scope: Scope::Kinds(&["policy/PodDisruptionBudget"]),
        check: apps::pdb,
    },
    Rule {
        name: "PersistentVolumeClaim",
        mirrors: "ValidatePersistentVolumeClaimSpec in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/PersistentVolumeClaim"]),
        check: pvc::pvc,
    },
    Rule {
        name: "PersistentVolume",
        mirrors: "ValidatePersistentVolumeSpec in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/PersistentVolume"]),
        check: pvc::pv,
    },
    Rule {
        name: "StorageClass",
        mirrors: "ValidateStorageClass (validateProvisioner, validateReclaimPolicy, validateVolumeBindingMode) in k8s.io/kubernetes/pkg/apis/storage/validation",
        scope: Scope::Kinds(&["storage.k8s.io/StorageClass"]),
        check: pvc::storage_class,
    },
    Rule {
        name: "service",
        mirrors: "ValidateService in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/Service"]),
        check: service,
    },
    Rule {
        name: "ingress",
        mirrors: "ValidateIngressSpec (validateIngressRules, validateHTTPIngressPath, validateIngressBackend) in k8s.io/kubernetes/pkg/apis/networking/validation",
        scope: Scope::Kinds(&["networking.k8s.io/Ingress"]),
        check: ingress,
    },
    Rule {
        name: "service ports and policies",
        mirrors: "ValidateService (validateServicePort, validateServiceExternalTrafficPolicy, validateServiceInternalTrafficFieldsValue) in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/Service"]),
        check: kinds::service_more,
    },
    Rule {
        name: "ingress pathType, class and TLS",
        mirrors: "ValidateIngressSpec (validateHTTPIngressPath, validateIngressTLS) in k8s.io/kubernetes/pkg/apis/networking/validation",
        scope: Scope::Kinds(&["networking.k8s.io/Ingress"]),
        check: kinds::ingress_more,
    },
    Rule {
        name: "IngressClass",
        mirrors: "ValidateIngressClass (validateIngressClassParametersReference) in k8s.io/kubernetes/pkg/apis/networking/validation",
        scope: Scope::Kinds(&["networking.k8s.io/IngressClass"]),
        check: kinds::ingress_class,
    },
    Rule {
        name: "NetworkPolicy",
        mirrors: "ValidateNetworkPolicySpec (ValidateNetworkPolicyPort, ValidateNetworkPolicyPeer, ValidateIPBlock) in k8s.io/kubernetes/pkg/apis/networking/validation",
        scope: Scope::Kinds(&["networking.k8s.io/NetworkPolicy"]),
        check: kinds::network_policy,
    },
    Rule {
        name: "RBAC rules",
        mirrors: "ValidatePolicyRule (ValidateRole, ValidateClusterRole) in k8s.io/kubernetes/pkg/apis/rbac/validation",
        scope: Scope::Kinds(&[
            "rbac.authorization.k8s.io/Role",
            "rbac.authorization.k8s.io/ClusterRole",
        ]),
        check: kinds::role,
    },
    Rule {
        name: "RBAC bindings",
        mirrors: "ValidateRoleBinding / ValidateClusterRoleBinding (ValidateRoleBindingSubject) in k8s.io/kubernetes/pkg/apis/rbac/validation",
        scope: Scope::Kinds(&[
            "rbac.authorization.k8s.io/RoleBinding",
            "rbac.authorization.k8s.io/ClusterRoleBinding",
        ]),
        check: kinds::binding,
    },
    Rule {
        name: "PriorityClass",
        mirrors: "ValidatePriorityClass in k8s.io/kubernetes/pkg/apis/scheduling/validation",
        scope: Scope::Kinds(&["scheduling.k8s.io/PriorityClass"]),
        check: kinds::priority_class,
    },
    Rule {
        name: "LimitRange",
        mirrors: "ValidateLimitRange in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/LimitRange"]),
        check: kinds::limit_range,
    },
    Rule {
        name: "ResourceQuota",
        mirrors: "ValidateResourceQuotaSpec (validateResourceQuotaResourceName, validateResourceQuotaScopes) in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/ResourceQuota"]),
        check: kinds::resource_quota,
    },
    Rule {
        name: "secret",
        mirrors: "ValidateSecret in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/Secret"]),
        check: secret,
    },
    Rule {
        name: "configmap",
        mirrors: "ValidateConfigMap in k8s.io/kubernetes/pkg/apis/core/validation",
        scope: Scope::Kinds(&["/ConfigMap"]),
        check: configmap,
    },
];

/// Runs every rule that applies to `object`. `builtin` says whether its kind
/// is served by the API server itself (else it is a custom resource).
pub fn check(gvk: &Gvk, object: &Value, builtin: bool) -> Vec<Violation> {
    let key = format!("{}/{}", gvk.group, gvk.kind);
    let mut all = Vec::new();
    for rule in RULES {
        let applies = match rule.scope {
            Scope::All => true,
            Scope::Kinds(kinds) => builtin && kinds.contains(&key.as_str()),
        };
        if applies {
            let mut out = Out {
                mirrors: rule.mirrors,
                found: Vec::new(),
            };
            (rule.check)(gvk, object, &mut out);
            all.extend(out.found);
        }
    }
    all
}

// ---- syntax (k8s.io/apimachinery/pkg/util/validation) ----

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// `IsDNS1123Subdomain`: at most 253 characters in all; its dot-separated
/// parts follow the label syntax but, unlike labels, have no 63-character
/// limit of their own.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_subdomain_part)
}

fn is_subdomain_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain.
fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        None => is_qualified_name_part(s),
        Some((prefix, name)) => {
            !prefix.is_empty()
                && is_dns1123_subdomain(prefix)
                && !name.contains('/')
                && is_qualified_name_part(name)
        }
    }
}

/// `IsValidLabelValue`: empty, or a qualified name part.
fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// `IsValidPortName` (IANA_SVC_NAME): 1–15 of `[-a-z0-9]`, a letter, no `--`,
/// no `-` at either end.
fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && !s.contains("--")
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253, not `.`/`..`/`..x`.
fn is_config_map_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && s != "."
        && !s.starts_with("..")
}

/// `IsValidPathSegmentName` (RBAC names): not `.`/`..`, no `/` or `%`.
fn is_path_segment_name(s: &str) -> bool {
    s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

fn is_port_num(n: i64) -> bool {
    (1..=65535).contains(&n)
}

// ---- helpers ----

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn obj<'a>(v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int_at(v: &Value, key: &str) -> Option<i64> {
    let n = v.get(key)?;
    n.as_i64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

fn key_path(base: &str, key: &str) -> String {
    format!("{base}[{}]", Value::String(key.to_string()))
}

fn pod_spec_path(gvk: &Gvk) -> Option<&'static str> {
    let key = format!("{}/{}", gvk.group, gvk.kind);
    POD_SPECS.iter().find(|(k, _)| *k == key).map(|(_, p)| *p)
}

/// `(path, container)` of every container and init container of the pod spec.
fn each_container<'a>(gvk: &Gvk, object: &'a Value) -> Vec<(String, &'a Value)> {
    let Some(base) = pod_spec_path(gvk) else {
        return Vec::new();
    };
    let Some(spec) = at(object, base) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if c.is_object() {
                out.push((format!("{base}.{list}[{i}]"), c));
            }
        }
    }
    out
}

// ---- metadata ----

/// The name function `ValidateObjectMeta` is given for a kind.
fn name_rule(gvk: &Gvk) -> (&'static str, fn(&str) -> bool) {
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Namespace") => ("a DNS-1123 label", is_dns1123_label),
        ("", "Service") => ("a DNS-1035 label", is_dns1035_label),
        ("apps", "StatefulSet") => ("a DNS-1123 label", is_dns1123_label),
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => ("a path segment name", is_path_segment_name),
        _ => ("a DNS-1123 subdomain", is_dns1123_subdomain),
    }
}

fn object_name(gvk: &Gvk, object: &Value, out: &mut Out) {
    let name = object.pointer("/metadata/name").and_then(Value::as_str);
    let generate = object
        .pointer("/metadata/generateName")
        .and_then(Value::as_str);
    match name {
        None | Some("") => {
            if generate.is_none_or(str::is_empty) {
                out.add(
                    "metadata.name",
                    "Required value: name or generateName is required",
                );
            }
        }
        Some(name) => {
            let (what, ok) = name_rule(gvk);
            if !ok(name) {
                out.add(
                    "metadata.name",
                    format!("Invalid value {name:?}: a {} name must be {what}", gvk.kind),
                );
            }
            // The controllers put these names into label values (and a
            // CronJob's Jobs add an 11-character suffix): ValidateJob /
            // ValidateCronJobCreate bound them.
            let max = match (gvk.group.as_str(), gvk.kind.as_str()) {
                ("batch", "CronJob") => 52,
                ("batch", "Job") => 63,
                _ => usize::MAX,
            };
            if name.len() > max {
                out.add(
                    "metadata.name",
                    format!("Invalid value {name:?}: must be no more than {max} characters"),
                );
            }
        }
    }
}

fn namespace(_: &Gvk, object: &Value, out: &mut Out) {
    if let Some(ns) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        && !ns.is_empty()
        && !is_dns1123_label(ns)
    {
        out.add(
            "metadata.namespace",
            format!("Invalid value {ns:?}: a namespace must be a DNS-1123 label"),
        );
    }
}

fn check_labels(map: &Map<String, Value>, base: &str, out: &mut Out) {
    for (k, v) in map {
        if !is_qualified_name(k) {
            out.add(
                key_path(base, k),
                format!("Invalid label key {k:?}: must be a qualified name ([prefix/]name, name at most 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends)"),
            );
        }
        if let Some(v) = v.as_str()
            && !is_label_value(v)
        {
            out.add(
                key_path(base, k),
                format!("Invalid label value {v:?}: at most 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends, or empty"),
            );
        }
    }
}

fn labels(gvk: &Gvk, object: &Value, out: &mut Out) {
    if let Some(map) = obj(object, "metadata.labels") {
        check_labels(map, "metadata.labels", out);
    }
    // Pod templates carry an ObjectMeta the server validates the same way.
    if let Some(spec) = pod_spec_path(gvk)
        && let Some(template) = spec.strip_suffix(".spec")
    {
        let base = format!("{template}.metadata.labels");
        if let Some(map) = obj(object, &base) {
            check_labels(map, &base, out);
        }
    }
}

fn annotations(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(map) = obj(object, "metadata.annotations") else {
        return;
    };
    let mut total = 0;
    for (k, v) in map {
        total += k.len() + v.as_str().map_or(0, str::len);
        if !is_qualified_name(&k.to_lowercase()) {
            out.add(
                key_path("metadata.annotations", k),
                format!("Invalid annotation key {k:?}: must be a qualified name ([prefix/]name)"),
            );
        }
    }
    if total > 256 * 1024 {
        out.add(
            "metadata.annotations",
            format!("Too long: annotations may not have more than 262144 bytes, have {total}"),
        );
    }
}

// ---- pods and workloads (k8s.io/kubernetes/pkg/apis/core/validation) ----

fn containers(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(base) = pod_spec_path(gvk) else {
        return;
    };
    let has_containers = at(object, base)
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_containers {
        out.add(
            format!("{base}.containers"),
            "Required value: a pod needs at least one container",
        );
    }
    let mut names = std::collections::HashSet::new();
    for (path, c) in each_container(gvk, object) {
        match str_at(c, "name") {
            None | Some("") => out.add(format!("{path}.name"), "Required value"),
            Some(name) => {
                if !is_dns1123_label(name) {
                    out.add(
                        format!("{path}.name"),
                        format!(
                            "Invalid value {name:?}: a container name must be a DNS-1123 label"
                        ),
                    );
                }
                if !names.insert(name.to_string()) {
                    out.add(format!("{path}.name"), format!("Duplicate value {name:?}"));
                }
            }
        }
        if str_at(c, "image").is_none_or(str::is_empty) {
            out.add(format!("{path}.image"), "Required value");
        }
    }
}

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

fn container_ports(gvk: &Gvk, object: &Value, out: &mut Out) {
    for (path, c) in each_container(gvk, object) {
        let mut names = std::collections::HashSet::new();
        for (i, p) in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let pp = format!("{path}.ports[{i}]");
            if let Some(name) = str_at(p, "name")
                && !name.is_empty()
            {
                if !is_port_name(name) {
                    out.add(
                        format!("{pp}.name"),
                        format!("Invalid value {name:?}: a port name must be an IANA_SVC_NAME (at most 15 of [-a-z0-9], a letter, no '--')"),
                    );
                } else if !names.insert(name) {
                    out.add(format!("{pp}.name"), format!("Duplicate value {name:?}"));
                }
            }
            match int_at(p, "containerPort") {
                None | Some(0) if p.get("containerPort").is_none_or(Value::is_number) => {
                    out.add(format!("{pp}.containerPort"), "Required value");
                }
                Some(n) if !is_port_num(n) => out.add(
                    format!("{pp}.containerPort"),
                    format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                ),
                _ => {}
            }
            if let Some(n) = int_at(p, "hostPort")
                && n != 0
                && !is_port_num(n)
            {
                out.add(
                    format!("{pp}.hostPort"),
                    format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                );
            }
            protocol(p, &pp, out);
        }
    }
}

/// A port's protocol, defaulted to TCP when empty.
fn protocol(port: &Value, path: &str, out: &mut Out) {
    if let Some(proto) = str_at(port, "protocol")
        && !proto.is_empty()
        && !PROTOCOLS.contains(&proto)
    {
        out.add(
            format!("{path}.protocol"),
            format!("Unsupported value {proto:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""),
        );
    }
}

fn pull_policy(gvk: &Gvk, object: &Value, out: &mut Out) {
    for (path, c) in each_container(gvk, object) {
        if let Some(policy) = str_at(c, "imagePullPolicy")
            && !policy.is_empty()
            && !["Always", "IfNotPresent", "Never"].contains(&policy)
        {
            out.add(
                format!("{path}.imagePullPolicy"),
                format!("Unsupported value {policy:?}: supported values: \"Always\", \"IfNotPresent\", \"Never\""),
            );
        }
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn resources(gvk: &Gvk, object: &Value, out: &mut Out) {
    for (path, c) in each_container(gvk, object) {
        let mut parsed: [std::collections::HashMap<&str, f64>; 2] = Default::default();
        for (slot, kind) in ["limits", "requests"].into_iter().enumerate() {
            let base = format!("{path}.resources.{kind}");
            let Some(map) = c
                .get("resources")
                .and_then(|r| r.get(kind))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (name, q) in map {
                let kp = key_path(&base, name);
                if !is_qualified_name(name) {
                    out.add(
                        kp.clone(),
                        format!("Invalid value {name:?}: a resource name must be a qualified name"),
                    );
                } else if !name.contains('/') && !is_standard_container_resource(name) {
                    out.add(
                        kp.clone(),
                        format!(
                            "Invalid value {name:?}: must be a standard resource for containers"
                        ),
                    );
                }
                // A malformed string is the schema check's (format quantity).
                let value = match q {
                    Value::String(s) => parse_quantity(s.as_str()).ok().map(|q| q.0),
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                };
                if let Some(v) = value {
                    if v < 0.0 {
                        out.add(
                            kp.clone(),
                            format!("Invalid value {q}: must be greater than or equal to 0"),
                        );
                    }
                    let key: &str = name;
                    parsed[slot].insert(key, v);
                }
            }
        }
        for (slot, kind) in ["limits", "requests"].into_iter().enumerate() {
            for (name, v) in &parsed[slot] {
                if name.contains('/') && !name.starts_with("kubernetes.io/") && v.fract() != 0.0 {
                    out.add(
                        key_path(&format!("{path}.resources.{kind}"), name),
                        format!("Invalid value {v}: an extended resource must be a whole number"),
                    );
                }
            }
        }
        for (name, request) in &parsed[1] {
            let extended = name.contains('/') && !name.starts_with("kubernetes.io/");
            if let Some(limit) = parsed[0].get(name)
                && extended
                && request != limit
            {
                out.add(
                    key_path(&format!("{path}.resources.requests"), name),
                    format!("Invalid value: must be equal to {name} limit"),
                );
            } else if let Some(limit) = parsed[0].get(name)
                && request > limit
            {
                out.add(
                    key_path(&format!("{path}.resources.requests"), name),
                    format!("Invalid value: must be less than or equal to {name} limit"),
                );
            }
        }
    }
}

fn active_deadline(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(base) = pod_spec_path(gvk) else {
        return;
    };
    if let Some(n) = at(object, base).and_then(|s| int_at(s, "activeDeadlineSeconds"))
        && !(1..=i64::from(i32::MAX)).contains(&n)
    {
        out.add(
            format!("{base}.activeDeadlineSeconds"),
            format!("Invalid value {n}: must be between 1 and 2147483647, inclusive"),
        );
    }
}

fn restart_policy(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(base) = pod_spec_path(gvk) else {
        return;
    };
    let policy = at(object, base)
        .and_then(|s| str_at(s, "restartPolicy"))
        .filter(|p| !p.is_empty());
    let path = format!("{base}.restartPolicy");
    let (allowed, default): (&[&str], &str) = match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Pod" | "PodTemplate") => (&["Always", "OnFailure", "Never"], "Always"),
        ("batch", _) => (&["OnFailure", "Never"], "Always"),
        _ => (&["Always"], "Always"),
    };
    let value = policy.unwrap_or(default);
    if !allowed.contains(&value) {
        let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        if policy.is_none() {
            out.add(
                path,
                format!("Required value: valid values: {}", list.join(", ")),
            );
        } else {
            out.add(
                path,
                format!(
                    "Unsupported value {value:?}: supported values: {}",
                    list.join(", ")
                ),
            );
        }
    }
}

/// Does a label selector (`matchLabels` and `matchExpressions`) select `labels`?
pub fn selects(selector: &Value, labels: &Map<String, Value>) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    let by_expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let key = str_at(e, "key").unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match str_at(e, "operator") {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => true,
            }
        });
    by_labels && by_expressions
}

fn workload_selector(_: &Gvk, object: &Value, out: &mut Out) {
    if let Some(n) = at(object, "spec.replicas").and_then(Value::as_i64)
        && n < 0
    {
        out.add(
            "spec.replicas",
            format!("Invalid value {n}: must be greater than or equal to 0"),
        );
    }
    let Some(selector) = at(object, "spec.selector").filter(|s| s.is_object()) else {
        // A missing selector is the schema's `required`.
        return;
    };
    let empty = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
        && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if empty {
        out.add("spec.selector", "Invalid value: empty selector is invalid");
        return;
    }
    let empty_map = Map::new();
    let labels = obj(object, "spec.template.metadata.labels").unwrap_or(&empty_map);
    if !selects(selector, labels) {
        out.add(
            "spec.template.metadata.labels",
            "Invalid value: `selector` does not match template `labels`",
        );
    }
    if let Some(map) = selector.get("matchLabels").and_then(Value::as_object) {
        check_labels(map, "spec.selector.matchLabels", out);
    }
}

// ---- Service ----

fn service(_: &Gvk, object: &Value, out: &mut Out) {
    let empty = Value::Object(Map::new());
    let spec = at(object, "spec").unwrap_or(&empty);
    let ty = str_at(spec, "type")
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        out.add(
            "spec.type",
            format!("Unsupported value {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        );
        return;
    }
    if ty == "ExternalName" {
        match str_at(spec, "externalName") {
            None | Some("") => out.add("spec.externalName", "Required value"),
            Some(name) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                if !is_dns1123_subdomain(name) || !name.contains('.') {
                    out.add(
                        "spec.externalName",
                        format!("Invalid value {name:?}: must be a fully qualified domain name (a DNS-1123 subdomain with at least two segments)"),
                    );
                }
            }
        }
    }
    let headless = str_at(spec, "clusterIP") == Some("None");
    let ports: Vec<&Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if ports.is_empty() && !headless && ty != "ExternalName" {
        out.add("spec.ports", "Required value");
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        match str_at(p, "name").filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => out.add(format!("{pp}.name"), "Required value"),
            None => {}
            Some(name) => {
                if !is_dns1123_label(name) {
                    out.add(
                        format!("{pp}.name"),
                        format!("Invalid value {name:?}: a port name must be a DNS-1123 label"),
                    );
                }
                if !names.insert(name) {
                    out.add(format!("{pp}.name"), format!("Duplicate value {name:?}"));
                }
            }
        }
        if let Some(n) = int_at(p, "port")
            && !is_port_num(n)
        {
            out.add(
                format!("{pp}.port"),
                format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
            );
        }
        protocol(p, &pp, out);
        match p.get("targetPort") {
            Some(Value::Number(_)) => {
                if let Some(n) = int_at(p, "targetPort")
                    && n != 0
                    && !is_port_num(n)
                {
                    out.add(
                        format!("{pp}.targetPort"),
                        format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                    );
                }
            }
            Some(Value::String(name)) if !name.is_empty() && !is_port_name(name) => out.add(
                format!("{pp}.targetPort"),
                format!("Invalid value {name:?}: a named port must be an IANA_SVC_NAME (at most 15 of [-a-z0-9], a letter, no '--')"),
            ),
            _ => {}
        }
        if let Some(n) = int_at(p, "nodePort")
            && n != 0
        {
            if ty == "ClusterIP" || ty == "ExternalName" {
                out.add(
                    format!("{pp}.nodePort"),
                    format!("Forbidden: may not be used when `type` is '{ty}'"),
                );
            } else if !is_port_num(n) {
                out.add(
                    format!("{pp}.nodePort"),
                    format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                );
            }
        }
    }
    if let Some(map) = spec.get("selector").and_then(Value::as_object) {
        check_labels(map, "spec.selector", out);
    }
}

// ---- Ingress (k8s.io/kubernetes/pkg/apis/networking/validation) ----

fn ingress_backend(backend: &Value, path: &str, out: &mut Out) {
    let service = backend.get("service").filter(|s| s.is_object());
    let resource = backend.get("resource").filter(|r| r.is_object());
    match (service, resource) {
        (Some(_), Some(_)) => out.add(
            path,
            "Invalid value: cannot set both resource and service backends",
        ),
        (None, None) => out.add(
            path,
            "Invalid value: resource or service backend is required",
        ),
        (None, Some(_)) => {}
        (Some(svc), None) => {
            match str_at(svc, "name") {
                None | Some("") => out.add(format!("{path}.service.name"), "Required value"),
                Some(name) if !is_dns1035_label(name) => out.add(
                    format!("{path}.service.name"),
                    format!("Invalid value {name:?}: a Service name must be a DNS-1035 label"),
                ),
                _ => {}
            }
            let port = svc.get("port");
            let name = port
                .and_then(|p| str_at(p, "name"))
                .filter(|n| !n.is_empty());
            let number = port.and_then(|p| int_at(p, "number")).filter(|n| *n != 0);
            match (name, number) {
                (Some(_), Some(_)) => out.add(
                    path,
                    "Invalid value: cannot set both port name & port number",
                ),
                (Some(n), None) if !is_port_name(n) => out.add(
                    format!("{path}.service.port.name"),
                    format!("Invalid value {n:?}: a port name must be an IANA_SVC_NAME"),
                ),
                (None, Some(n)) if !is_port_num(n) => out.add(
                    format!("{path}.service.port.number"),
                    format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                ),
                (None, None) => out.add(path, "Required value: port name or number is required"),
                _ => {}
            }
        }
    }
}

fn ingress(_: &Gvk, object: &Value, out: &mut Out) {
    let empty = Value::Object(Map::new());
    let spec = at(object, "spec").unwrap_or(&empty);
    let rules: Vec<&Value> = spec
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if let Some(b) = spec.get("defaultBackend").filter(|b| b.is_object()) {
        ingress_backend(b, "spec.defaultBackend", out);
    } else if rules.is_empty() {
        out.add(
            "spec",
            "Invalid value: either `defaultBackend` or `rules` must be specified",
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = str_at(rule, "host").filter(|h| !h.is_empty()) {
            if host.parse::<std::net::IpAddr>().is_ok() {
                out.add(
                    format!("{rp}.host"),
                    format!("Invalid value {host:?}: must be a DNS name, not an IP address"),
                );
            }
            let ok = match host.strip_prefix("*.") {
                Some(rest) => is_dns1123_subdomain(rest) && host.len() <= 253,
                None => !host.contains('*') && is_dns1123_subdomain(host),
            };
            if !ok {
                out.add(
                    format!("{rp}.host"),
                    format!("Invalid value {host:?}: must be a DNS-1123 subdomain, optionally with a leading '*.'"),
                );
            }
        }
        let Some(http) = rule.get("http").filter(|h| h.is_object()) else {
            continue;
        };
        let paths: Vec<&Value> = http
            .get("paths")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        if paths.is_empty() {
            out.add(format!("{rp}.http.paths"), "Required value");
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = format!("{rp}.http.paths[{j}]");
            let path = str_at(p, "path").unwrap_or("");
            match str_at(p, "pathType") {
                // A missing or unknown pathType is the schema's (required, enum).
                Some("Exact" | "Prefix") => {
                    if !path.starts_with('/') {
                        out.add(
                            format!("{pp}.path"),
                            format!("Invalid value {path:?}: must be an absolute path"),
                        );
                    }
                    for bad in ["//", "/./", "/../", "%2f", "%2F"] {
                        if path.contains(bad) {
                            out.add(
                                format!("{pp}.path"),
                                format!("Invalid value {path:?}: must not contain '{bad}'"),
                            );
                        }
                    }
                    for bad in ["/..", "/."] {
                        if path.ends_with(bad) {
                            out.add(
                                format!("{pp}.path"),
                                format!("Invalid value {path:?}: cannot end with '{bad}'"),
                            );
                        }
                    }
                }
                Some("ImplementationSpecific") if !path.is_empty() && !path.starts_with('/') => {
                    out.add(
                        format!("{pp}.path"),
                        format!("Invalid value {path:?}: must be an absolute path"),
                    );
                }
                _ => {}
            }
            if let Some(b) = p.get("backend").filter(|b| b.is_object()) {
                ingress_backend(b, &format!("{pp}.backend"), out);
            }
        }
    }
}

// ---- Secret and ConfigMap ----

fn data_keys(object: &Value, fields: &[&str], out: &mut Out) -> usize {
    let mut size = 0;
    for field in fields {
        for (k, v) in obj(object, field).into_iter().flatten() {
            if !is_config_map_key(k) {
                out.add(
                    key_path(field, k),
                    format!("Invalid value {k:?}: a key must consist of alphanumeric characters, '-', '_' or '.'"),
                );
            }
            size += v.as_str().map_or(0, str::len);
        }
    }
    size
}

fn secret(_: &Gvk, object: &Value, out: &mut Out) {
    let size = data_keys(object, &["data", "stringData"], out);
    if size > 1024 * 1024 {
        out.add("data", "Too long: a Secret may hold at most 1 MiB of data");
    }
    let has = |k: &str| {
        ["data", "stringData"]
            .iter()
            .any(|f| obj(object, f).is_some_and(|m| m.contains_key(k)))
    };
    let required: &[&str] = match str_at(object, "type").unwrap_or("Opaque") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            out.add(key_path("data", k), "Required value");
        }
    }
    // These two want a non-empty value, not just the key.
    let filled = |k: &str| {
        obj(object, "stringData")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
            || obj(object, "data")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty())
    };
    match str_at(object, "type") {
        Some("kubernetes.io/ssh-auth") if !filled("ssh-privatekey") => {
            out.add(key_path("data", "ssh-privatekey"), "Required value");
        }
        Some("kubernetes.io/basic-auth") if !filled("username") && !filled("password") => {
            out.add(
                "data",
                "Required value: must have at least one of username or password",
            );
        }
        _ => {}
    }
    // The docker config itself must be JSON (stringData as written, data
    // once decoded; undecodable data is the schema's format byte).
    if str_at(object, "type") == Some("kubernetes.io/dockerconfigjson") {
        use base64::Engine as _;
        let key = ".dockerconfigjson";
        let text = obj(object, "stringData")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                let raw = obj(object, "data")?.get(key)?.as_str()?;
                let clean: String = raw.chars().filter(|c| *c != '\n' && *c != '\r').collect();
                base64::engine::general_purpose::STANDARD.decode(clean).ok()
            });
        if let Some(bytes) = text
            && serde_json::from_slice::<Value>(&bytes).is_err()
        {
            out.add(
                key_path("data", key),
                "Invalid value: the docker config is not JSON",
            );
        }
    }
    if str_at(object, "type") == Some("kubernetes.io/service-account-token")
        && object
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        out.add(
            "metadata.annotations[\"kubernetes.io/service-account.name\"]",
            "Required value",
        );
    }
}

fn configmap(_: &Gvk, object: &Value, out: &mut Out) {
    let size = data_keys(object, &["data", "binaryData"], out);
    if size > 1024 * 1024 {
        out.add(
            "data",
            "Too long: a ConfigMap may hold at most 1 MiB of data",
        );
    }
    if let (Some(data), Some(binary)) = (obj(object, "data"), obj(object, "binaryData")) {
        for k in data.keys().filter(|k| binary.contains_key(*k)) {
            out.add(
                key_path("binaryData", k),
                format!("Duplicate value {k:?}: a key may be in data or binaryData, not both"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(object: Value) -> Vec<Violation> {
        let gvk = Gvk::of(&object).unwrap();
        check(&gvk, &object, true)
    }

    #[test]
    fn every_rule_names_what_it_mirrors() {
        for r in RULES {
            assert!(
                r.mirrors.contains("Validate") || r.mirrors.contains("validate"),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn service_type_protocol_and_ports() {
        let found = run(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "SuperBalancer", "ports": [{"port": 80}]}}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "spec.type");
        assert!(found[0].mirrors.starts_with("ValidateService"));
        let found = run(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 70000, "protocol": "SCTPX"}]}}),
        );
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["spec.ports[0].port", "spec.ports[0].protocol"]);
        assert!(
            run(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}]}})
            )
            .is_empty()
        );
    }

    #[test]
    fn names_per_kind() {
        let cm = run(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a.b"}}));
        assert!(cm.is_empty(), "{cm:?}");
        let svc = run(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1abc"},
            "spec": {"clusterIP": "None"}}),
        );
        assert_eq!(svc.len(), 1, "{svc:?}");
        let role = run(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:Things"}}),
        );
        assert!(role.is_empty(), "{role:?}");
    }

    #[test]
    fn subdomain_parts_may_pass_63_characters() {
        let name = "c".repeat(64);
        let cm = run(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}));
        assert!(cm.is_empty(), "{cm:?}");
        let name = "c".repeat(254);
        let cm = run(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}));
        assert_eq!(cm.len(), 1, "{cm:?}");
        // A StatefulSet's name is a label: 63 at most.
        let sts = run(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "s".repeat(64)},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}}));
        assert_eq!(sts.len(), 1, "{sts:?}");
    }

    #[test]
    fn each_workload_kind_cites_its_own_function() {
        let sts = run(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "y"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(sts.len(), 1, "{sts:?}");
        assert!(
            sts[0].mirrors.starts_with("ValidateStatefulSetSpec"),
            "{sts:?}"
        );
    }

    #[test]
    fn pod_spec_structure() {
        let found = run(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}],
                "containers": [{"name": "c", "image": "i",
                    "env": [{"name": "A=B", "value": "x"}, {"name": "B", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "volumeMounts": [{"name": "gone", "mountPath": "/x"}],
                    "livenessProbe": {"httpGet": {"path": "/", "port": "8080"}, "successThreshold": 2},
                    "readinessProbe": {"periodSeconds": 3}}]}}),
        );
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.volumes[1].name",
                "spec.containers[0].volumeMounts[0].name",
                "spec.containers[0].env[0].name",
                "spec.containers[0].env[1].valueFrom",
                "spec.containers[0].livenessProbe.httpGet.port",
                "spec.containers[0].livenessProbe.successThreshold",
                "spec.containers[0].readinessProbe",
            ]
        );
    }

    #[test]
    fn cron_schedules_and_zones() {
        let cron = |schedule: &str, tz: Option<&str>| {
            run(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                "spec": {"schedule": schedule, "timeZone": tz, "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}}))
            .len()
        };
        assert_eq!(cron("*/5 * * * *", Some("Europe/Copenhagen")), 0);
        assert_eq!(cron("0 9 * jan-mar MON-FRI", None), 0);
        assert_eq!(cron("@every 1h30m", None), 0);
        assert_eq!(cron("60 * * * *", None), 1);
        assert_eq!(cron("0 0 * * 7", None), 1);
        assert_eq!(cron("*/0 * * * *", None), 1);
        assert_eq!(cron("0 0 * *", None), 1);
        assert_eq!(cron("@fortnightly", None), 1);
        assert_eq!(cron("TZ=UTC 0 * * * *", None), 1);
        assert_eq!(cron("0 * * * *", Some("Local")), 1);
        assert_eq!(cron("0 * * * *", Some("Mars/Olympus")), 1);
    }

    #[test]
    fn limits_between_fields() {
        let hpa = run(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"},
                "minReplicas": 6, "maxReplicas": 5}}),
        );
        assert_eq!(hpa.len(), 1, "{hpa:?}");
        let pdb = run(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "p"}, "spec": {"minAvailable": "150%", "maxUnavailable": 1}}),
        );
        assert_eq!(pdb.len(), 2, "{pdb:?}");
        let np = run(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "n"}, "spec": {"podSelector": {}, "ingress": [{
                "ports": [{"port": 8080, "endPort": 80}], "from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}}),
        );
        assert_eq!(np.len(), 2, "{np:?}");
        let deploy = run(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "strategy": {"rollingUpdate": {"maxUnavailable": "one", "maxSurge": "150%"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(deploy.len(), 1, "{deploy:?}");
        assert_eq!(deploy[0].path, "spec.strategy.rollingUpdate.maxUnavailable");
    }

    #[test]
    fn rbac_subjects_default_their_group() {
        let rb = |subject: Value| {
            run(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [subject]}))
            .len()
        };
        assert_eq!(rb(json!({"kind": "User", "name": "jane"})), 0);
        assert_eq!(rb(json!({"kind": "Robot", "name": "r2"})), 1);
        assert_eq!(rb(json!({"kind": "ServiceAccount", "name": "web"})), 1);
    }

    #[test]
    fn workloads() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "y"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "A", "image": "i",
                        "imagePullPolicy": "Sometimes",
                        "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}]}}}});
        let found = run(deploy);
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.template.spec.containers[0].name",
                "spec.template.spec.containers[0].imagePullPolicy",
                "spec.template.spec.containers[0].resources.requests[\"memory\"]",
                "spec.template.spec.restartPolicy",
                "spec.template.metadata.labels",
            ]
        );
        let job = run(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}}),
        );
        assert_eq!(job.len(), 1, "{job:?}");
        assert!(job[0].message.starts_with("Required value"));
    }

    #[test]
    fn labels_and_secret_keys() {
        let found = run(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "labels": {"-bad": "x", "ok": "not valid!"}},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "", "bad key": ""}}));
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.labels[\"-bad\"]",
                "metadata.labels[\"ok\"]",
                "data[\"bad key\"]",
                "data[\"tls.key\"]"
            ]
        );
    }
}
