//! Pod-spec structure (k8s.io/kubernetes/pkg/apis/core/validation): volumes
//! and their mounts, env, probes and lifecycle handlers, tolerations,
//! topology spread, affinity, DNS, security context, ephemeral containers.

use std::collections::HashSet;

use serde_json::Value;

use super::common::{items, join, label_selector, non_negative, one_of, strings, unsupported};
use super::{
    Out, at, check_labels, each_container, int_at, is_config_map_key, is_dns1123_label,
    is_dns1123_subdomain, is_label_value, is_port_name, is_port_num, is_qualified_name,
    pod_spec_path, str_at,
};
use k8s_schema::Gvk;

/// `ValidatePodCreate` / `ValidatePodTemplateSpec`: no ephemeral containers
/// on create or in a template.
pub(super) fn ephemeral_containers(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(base) = pod_spec_path(gvk) else {
        return;
    };
    if at(object, base)
        .and_then(|s| s.get("ephemeralContainers"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        let why = if gvk.kind == "Pod" {
            "Forbidden: cannot be set on create"
        } else {
            "Forbidden: ephemeral containers not allowed in pod template"
        };
        out.add(format!("{base}.ephemeralContainers"), why);
    }
}

/// The fields of a `Volume` that are not its source.
const VOLUME_META: [&str; 1] = ["name"];

/// `ValidateVolumes`: named, unique, at most one source (none defaults to emptyDir).
fn volumes(spec: &Value, base: &str, out: &mut Out) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in items(spec, "volumes").into_iter().enumerate() {
        let vp = format!("{base}.volumes[{i}]");
        match str_at(v, "name") {
            None | Some("") => out.add(format!("{vp}.name"), "Required value"),
            Some(name) => {
                if !is_dns1123_label(name) {
                    out.add(
                        format!("{vp}.name"),
                        format!("Invalid value {name:?}: a volume name must be a DNS-1123 label"),
                    );
                }
                if !names.insert(name.to_string()) {
                    out.add(format!("{vp}.name"), format!("Duplicate value {name:?}"));
                }
            }
        }
        let sources = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, val)| !VOLUME_META.contains(&k.as_str()) && !val.is_null())
            .count();
        if sources > 1 {
            out.add(
                vp.clone(),
                "Forbidden: may not specify more than 1 volume type",
            );
        }
        if let Some(cm) = v.get("configMap").filter(|x| x.is_object()) {
            key_paths(cm, &format!("{vp}.configMap"), out);
        }
        if let Some(s) = v.get("secret").filter(|x| x.is_object()) {
            key_paths(s, &format!("{vp}.secret"), out);
        }
    }
    names
}

/// `validateKeyToPath`: each projected key and a relative path without `..`.
fn key_paths(source: &Value, base: &str, out: &mut Out) {
    for (i, kp) in items(source, "items").into_iter().enumerate() {
        let ip = format!("{base}.items[{i}]");
        if str_at(kp, "key").is_none_or(str::is_empty) {
            out.add(format!("{ip}.key"), "Required value");
        }
        match str_at(kp, "path") {
            None | Some("") => out.add(format!("{ip}.path"), "Required value"),
            Some(p) => relative_path(p, &format!("{ip}.path"), out),
        }
    }
}

/// `validateLocalDescendingPath`: relative, no `..` element.
fn relative_path(p: &str, path: &str, out: &mut Out) {
    if p.starts_with('/') {
        out.add(
            path,
            format!("Invalid value {p:?}: must be a relative path"),
        );
    }
    if p.split('/').any(|part| part == "..") {
        out.add(path, format!("Invalid value {p:?}: must not contain '..'"));
    }
}

/// Every pod-spec structure rule, once per pod spec.
pub(super) fn pod_spec(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(base) = pod_spec_path(gvk) else {
        return;
    };
    let Some(spec) = at(object, base).filter(|s| s.is_object()) else {
        return;
    };
    let mut volume_names = volumes(spec, base, out);
    // A StatefulSet's pods also get a volume per claim template.
    if gvk.kind == "StatefulSet" {
        for t in object
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = t.pointer("/metadata/name").and_then(Value::as_str) {
                volume_names.insert(n.to_string());
            }
        }
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for (path, c) in each_container(gvk, object) {
        let init = path.contains(".initContainers[");
        let sidecar = init && str_at(c, "restartPolicy") == Some("Always");
        mounts(c, &path, &volume_names, out);
        env(c, &path, out);
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let Some(p) = c.get(probe).filter(|p| p.is_object()) else {
                continue;
            };
            let pp = format!("{path}.{probe}");
            if init && !sidecar {
                out.add(pp, "Forbidden: may not be set for init containers");
                continue;
            }
            self::probe(p, probe, &pp, out);
        }
        if let Some(lc) = c.get("lifecycle").filter(|l| l.is_object()) {
            if init && !sidecar {
                out.add(
                    format!("{path}.lifecycle"),
                    "Forbidden: may not be set for init containers without restartPolicy=Always",
                );
            } else {
                for hook in ["postStart", "preStop"] {
                    if let Some(h) = lc.get(hook).filter(|h| h.is_object()) {
                        handler(
                            h,
                            &["exec", "httpGet", "tcpSocket", "sleep"],
                            &format!("{path}.lifecycle.{hook}"),
                            out,
                        );
                    }
                }
            }
        }
        if host_network {
            for (i, p) in items(c, "ports").into_iter().enumerate() {
                if let (Some(host), Some(container)) =
                    (int_at(p, "hostPort"), int_at(p, "containerPort"))
                    && host != 0
                    && host != container
                {
                    out.add(
                        format!("{path}.ports[{i}].hostPort"),
                        format!("Invalid value {host}: must match `containerPort` when `hostNetwork` is true"),
                    );
                }
            }
        }
        security_context(
            c.get("securityContext"),
            &format!("{path}.securityContext"),
            false,
            out,
        );
        one_of(
            str_at(c, "terminationMessagePolicy"),
            &["FallbackToLogsOnError", "File"],
            &format!("{path}.terminationMessagePolicy"),
            out,
        );
    }
    security_context(
        spec.get("securityContext"),
        &format!("{base}.securityContext"),
        true,
        out,
    );
    tolerations(spec, base, out);
    topology_spread(spec, base, out);
    affinity(spec, base, out);
    dns(spec, base, out);
    if let Some(map) = spec.get("nodeSelector").and_then(Value::as_object) {
        check_labels(map, &format!("{base}.nodeSelector"), out);
    }
    for key in ["hostname", "subdomain"] {
        if let Some(h) = str_at(spec, key).filter(|h| !h.is_empty())
            && !is_dns1123_label(h)
        {
            out.add(
                join(base, key),
                format!("Invalid value {h:?}: must be a DNS-1123 label"),
            );
        }
    }
    for key in ["serviceAccountName", "priorityClassName"] {
        if let Some(n) = str_at(spec, key).filter(|n| !n.is_empty())
            && !is_dns1123_subdomain(n)
        {
            out.add(
                join(base, key),
                format!("Invalid value {n:?}: must be a DNS-1123 subdomain"),
            );
        }
    }
}

/// `validateVolumeMounts`: a mount names a volume of the pod, has a path
/// unique in its container, and a relative subPath.
fn mounts(c: &Value, path: &str, volumes: &HashSet<String>, out: &mut Out) {
    let mut paths = HashSet::new();
    for (i, m) in items(c, "volumeMounts").into_iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        match str_at(m, "name") {
            None | Some("") => out.add(format!("{mp}.name"), "Required value"),
            Some(n) if !volumes.contains(n) => {
                out.add(format!("{mp}.name"), format!("Not found: {n:?}"));
            }
            _ => {}
        }
        match str_at(m, "mountPath") {
            None | Some("") => out.add(format!("{mp}.mountPath"), "Required value"),
            Some(p) => {
                if !paths.insert(p) {
                    out.add(
                        format!("{mp}.mountPath"),
                        format!("Invalid value {p:?}: must be unique"),
                    );
                }
            }
        }
        for key in ["subPath", "subPathExpr"] {
            if let Some(p) = str_at(m, key).filter(|p| !p.is_empty()) {
                relative_path(p, &format!("{mp}.{key}"), out);
            }
        }
        if str_at(m, "subPath").is_some_and(|p| !p.is_empty())
            && str_at(m, "subPathExpr").is_some_and(|p| !p.is_empty())
        {
            out.add(
                format!("{mp}.subPathExpr"),
                "Invalid value: subPathExpr and subPath are mutually exclusive",
            );
        }
        one_of(
            str_at(m, "mountPropagation"),
            &["Bidirectional", "HostToContainer", "None"],
            &format!("{mp}.mountPropagation"),
            out,
        );
    }
    for (i, d) in items(c, "volumeDevices").into_iter().enumerate() {
        if let Some(n) = str_at(d, "name")
            && !volumes.contains(n)
        {
            out.add(
                format!("{path}.volumeDevices[{i}].name"),
                format!("Not found: {n:?}"),
            );
        }
    }
}

/// `validateEnvVarName` with RelaxedEnvironmentVariableValidation (on by
/// default since 1.32): printable ASCII other than `=`.
fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| (0x20..=0x7e).contains(&c) && c != b'=')
}

const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `ValidateEnv` / `validateEnvFrom`.
fn env(c: &Value, path: &str, out: &mut Out) {
    for (i, e) in items(c, "env").into_iter().enumerate() {
        let ep = format!("{path}.env[{i}]");
        match str_at(e, "name") {
            None | Some("") => out.add(format!("{ep}.name"), "Required value"),
            Some(n) if !is_env_name(n) => out.add(
                format!("{ep}.name"),
                format!("Invalid value {n:?}: a valid environment variable name must consist only of printable ASCII characters other than '='"),
            ),
            _ => {}
        }
        let Some(from) = e.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        if str_at(e, "value").is_some_and(|v| !v.is_empty()) {
            out.add(
                format!("{ep}.valueFrom"),
                "Invalid value: may not be specified when `value` is not empty",
            );
        }
        let sources: Vec<&str> = [
            "configMapKeyRef",
            "secretKeyRef",
            "fieldRef",
            "resourceFieldRef",
        ]
        .into_iter()
        .filter(|k| from.get(*k).is_some_and(Value::is_object))
        .collect();
        let fp = format!("{ep}.valueFrom");
        match sources.len() {
            0 => out.add(
                fp.clone(),
                "Invalid value: must specify one of: `configMapKeyRef`, `fieldRef`, `resourceFieldRef` or `secretKeyRef`",
            ),
            1 => {}
            _ => out.add(
                fp.clone(),
                "Invalid value: may not have more than one field specified at a time",
            ),
        }
        for key_ref in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = from.get(key_ref).filter(|r| r.is_object()) {
                match str_at(r, "key") {
                    None | Some("") => out.add(format!("{fp}.{key_ref}.key"), "Required value"),
                    Some(k) if !is_config_map_key(k) => out.add(
                        format!("{fp}.{key_ref}.key"),
                        format!("Invalid value {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
                    ),
                    _ => {}
                }
            }
        }
        if let Some(f) = from.get("fieldRef").filter(|r| r.is_object()) {
            match str_at(f, "fieldPath") {
                None | Some("") => out.add(format!("{fp}.fieldRef.fieldPath"), "Required value"),
                Some(p) => {
                    let subscripted = ["metadata.labels['", "metadata.annotations['"]
                        .iter()
                        .any(|pre| p.starts_with(pre) && p.ends_with("']"));
                    if !subscripted && !ENV_FIELD_PATHS.contains(&p) {
                        out.add(
                            format!("{fp}.fieldRef.fieldPath"),
                            unsupported(p, &ENV_FIELD_PATHS),
                        );
                    }
                }
            }
        }
        if let Some(r) = from.get("resourceFieldRef").filter(|r| r.is_object()) {
            let resource = str_at(r, "resource").unwrap_or("");
            let ok = [
                "limits.cpu",
                "limits.memory",
                "limits.ephemeral-storage",
                "requests.cpu",
                "requests.memory",
                "requests.ephemeral-storage",
            ]
            .contains(&resource)
                || resource.starts_with("limits.hugepages-")
                || resource.starts_with("requests.hugepages-");
            if !ok {
                out.add(
                    format!("{fp}.resourceFieldRef.resource"),
                    format!("Unsupported value {resource:?}"),
                );
            }
        }
    }
    for (i, e) in items(c, "envFrom").into_iter().enumerate() {
        let ep = format!("{path}.envFrom[{i}]");
        if let Some(p) = str_at(e, "prefix").filter(|p| !p.is_empty())
            && !is_env_name(p)
        {
            out.add(
                format!("{ep}.prefix"),
                format!("Invalid value {p:?}: a valid environment variable name must consist only of printable ASCII characters other than '='"),
            );
        }
        let n = ["configMapRef", "secretRef"]
            .iter()
            .filter(|k| e.get(**k).is_some_and(Value::is_object))
            .count();
        if n > 1 {
            out.add(
                ep,
                "Invalid value: may not have more than one field specified at a time",
            );
        }
    }
}

/// `ValidatePortNumOrName`: 1–65535, or an IANA service name.
fn port_num_or_name(v: Option<&Value>, path: &str, out: &mut Out) {
    match v {
        None | Some(Value::Null) => out.add(path, "Required value"),
        Some(Value::Number(n)) => {
            if let Some(n) = n.as_i64()
                && !is_port_num(n)
            {
                out.add(
                    path,
                    format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                );
            }
        }
        Some(Value::String(s)) => {
            if s.is_empty() {
                out.add(path, "Required value");
            } else if !is_port_name(s) {
                out.add(
                    path,
                    format!("Invalid value {s:?}: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at least one letter, at most 15 characters"),
                );
            }
        }
        _ => {}
    }
}

/// `validateHandler`: exactly one of `kinds`, each well formed.
fn handler(h: &Value, kinds: &[&str], path: &str, out: &mut Out) {
    let set: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| h.get(*k).is_some_and(Value::is_object))
        .collect();
    match set.len() {
        0 => out.add(path, "Required value: must specify a handler type"),
        1 => {}
        _ => out.add(
            format!("{path}.{}", set[1]),
            "Forbidden: may not specify more than 1 handler type",
        ),
    }
    if let Some(exec) = h.get("exec").filter(|e| e.is_object())
        && strings(exec, "command").is_empty()
    {
        out.add(format!("{path}.exec.command"), "Required value");
    }
    if let Some(get) = h.get("httpGet").filter(|e| e.is_object()) {
        port_num_or_name(get.get("port"), &format!("{path}.httpGet.port"), out);
        one_of(
            str_at(get, "scheme"),
            &["HTTP", "HTTPS"],
            &format!("{path}.httpGet.scheme"),
            out,
        );
    }
    if let Some(tcp) = h.get("tcpSocket").filter(|e| e.is_object()) {
        port_num_or_name(tcp.get("port"), &format!("{path}.tcpSocket.port"), out);
    }
    if let Some(grpc) = h.get("grpc").filter(|e| e.is_object())
        && let Some(n) = int_at(grpc, "port")
        && !is_port_num(n)
    {
        out.add(
            format!("{path}.grpc.port"),
            format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
        );
    }
}

/// `validateProbe` and the per-probe rules of `validateContainerCommon`.
fn probe(p: &Value, which: &str, path: &str, out: &mut Out) {
    handler(p, &["exec", "httpGet", "tcpSocket", "grpc"], path, out);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        non_negative(p, key, path, out);
    }
    if which != "readinessProbe"
        && let Some(n) = int_at(p, "successThreshold")
        && n != 0
        && n != 1
    {
        out.add(
            format!("{path}.successThreshold"),
            format!("Invalid value {n}: must be 1"),
        );
    }
    if let Some(n) = int_at(p, "terminationGracePeriodSeconds") {
        if which == "readinessProbe" {
            out.add(
                format!("{path}.terminationGracePeriodSeconds"),
                "Invalid value: must not be set for readinessProbes",
            );
        } else if n <= 0 {
            out.add(
                format!("{path}.terminationGracePeriodSeconds"),
                format!("Invalid value {n}: must be greater than 0"),
            );
        }
    }
}

/// `validateTolerations`.
fn tolerations(spec: &Value, base: &str, out: &mut Out) {
    for (i, t) in items(spec, "tolerations").into_iter().enumerate() {
        let tp = format!("{base}.tolerations[{i}]");
        let key = str_at(t, "key").unwrap_or("");
        if !key.is_empty() && !is_qualified_name(key) {
            out.add(
                format!("{tp}.key"),
                format!("Invalid value {key:?}: must be a qualified name"),
            );
        }
        let op = str_at(t, "operator").unwrap_or("");
        if key.is_empty() && op != "Exists" {
            out.add(
                format!("{tp}.operator"),
                format!("Invalid value {op:?}: operator must be Exists when `key` is empty, which means \"match all values and all keys\""),
            );
        }
        let value = str_at(t, "value").unwrap_or("");
        match op {
            "" | "Equal" => {
                if !is_label_value(value) {
                    out.add(
                        format!("{tp}.value"),
                        format!("Invalid value {value:?}: must be a valid label value"),
                    );
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    out.add(
                        format!("{tp}.operator"),
                        "Invalid value: value must be empty when `operator` is 'Exists'",
                    );
                }
            }
            other => out.add(
                format!("{tp}.operator"),
                unsupported(other, &["Equal", "Exists"]),
            ),
        }
        let effect = str_at(t, "effect").unwrap_or("");
        one_of(
            Some(effect),
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            &format!("{tp}.effect"),
            out,
        );
        if t.get("tolerationSeconds").is_some_and(|s| !s.is_null()) && effect != "NoExecute" {
            out.add(
                format!("{tp}.effect"),
                "Invalid value: effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
    }
}

/// `validateTopologySpreadConstraints`.
fn topology_spread(spec: &Value, base: &str, out: &mut Out) {
    let mut pairs = HashSet::new();
    for (i, c) in items(spec, "topologySpreadConstraints")
        .into_iter()
        .enumerate()
    {
        let cp = format!("{base}.topologySpreadConstraints[{i}]");
        if let Some(n) = int_at(c, "maxSkew")
            && n <= 0
        {
            out.add(
                format!("{cp}.maxSkew"),
                format!("Invalid value {n}: must be greater than zero"),
            );
        }
        let key = str_at(c, "topologyKey").unwrap_or("");
        if key.is_empty() {
            out.add(
                format!("{cp}.topologyKey"),
                "Required value: can not be empty",
            );
        } else if !is_qualified_name(key) {
            out.add(
                format!("{cp}.topologyKey"),
                format!("Invalid value {key:?}: must be a qualified name"),
            );
        }
        let when = str_at(c, "whenUnsatisfiable").unwrap_or("");
        one_of(
            Some(when),
            &["DoNotSchedule", "ScheduleAnyway"],
            &format!("{cp}.whenUnsatisfiable"),
            out,
        );
        if !key.is_empty() && !when.is_empty() && !pairs.insert((key, when)) {
            out.add(cp.clone(), format!("Duplicate value: {{{key}, {when}}}"));
        }
        if let Some(n) = int_at(c, "minDomains") {
            if n <= 0 {
                out.add(
                    format!("{cp}.minDomains"),
                    format!("Invalid value {n}: must be greater than 0"),
                );
            } else if when != "DoNotSchedule" {
                out.add(
                    format!("{cp}.minDomains"),
                    "Invalid value: can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                );
            }
        }
        for key in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            one_of(
                str_at(c, key),
                &["Honor", "Ignore"],
                &format!("{cp}.{key}"),
                out,
            );
        }
        if let Some(sel) = c.get("labelSelector").filter(|s| s.is_object()) {
            label_selector(sel, &format!("{cp}.labelSelector"), out);
        }
    }
}

/// `validateNodeSelectorRequirement` / `validateNodeFieldSelectorRequirement`.
fn node_selector_term(term: &Value, path: &str, out: &mut Out) {
    for (i, e) in items(term, "matchExpressions").into_iter().enumerate() {
        let ep = format!("{path}.matchExpressions[{i}]");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match str_at(e, "operator") {
            Some("In" | "NotIn") if values == 0 => out.add(
                format!("{ep}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Some("Exists" | "DoesNotExist") if values > 0 => out.add(
                format!("{ep}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            Some("Gt" | "Lt") => {
                let one_int = strings(e, "values")
                    .first()
                    .is_some_and(|v| v.parse::<i64>().is_ok());
                if values != 1 || !one_int {
                    out.add(
                        format!("{ep}.values"),
                        "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
                    );
                }
            }
            Some("In" | "NotIn" | "Exists" | "DoesNotExist") | None => {}
            Some(op) => out.add(
                format!("{ep}.operator"),
                unsupported(op, &["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"]),
            ),
        }
        if let Some(k) = str_at(e, "key")
            && !is_qualified_name(k)
        {
            out.add(
                format!("{ep}.key"),
                format!("Invalid value {k:?}: must be a qualified name"),
            );
        }
    }
    for (i, e) in items(term, "matchFields").into_iter().enumerate() {
        let ep = format!("{path}.matchFields[{i}]");
        if str_at(e, "key") != Some("metadata.name") {
            out.add(
                format!("{ep}.key"),
                "Invalid value: not a valid field selector key",
            );
        }
        match str_at(e, "operator") {
            Some("In" | "NotIn") if strings(e, "values").len() != 1 => out.add(
                format!("{ep}.values"),
                "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            ),
            Some("In" | "NotIn") => {}
            Some(op) => out.add(format!("{ep}.operator"), unsupported(op, &["In", "NotIn"])),
            None => {}
        }
    }
}

/// `validateAffinity`: node selector terms and pod (anti-)affinity terms.
fn affinity(spec: &Value, base: &str, out: &mut Out) {
    let Some(aff) = spec.get("affinity").filter(|a| a.is_object()) else {
        return;
    };
    let ap = format!("{base}.affinity");
    if let Some(node) = aff.get("nodeAffinity").filter(|n| n.is_object()) {
        let np = format!("{ap}.nodeAffinity");
        if let Some(req) = node
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|r| r.is_object())
        {
            let rp = format!("{np}.requiredDuringSchedulingIgnoredDuringExecution");
            let terms = items(req, "nodeSelectorTerms");
            if terms.is_empty() {
                out.add(
                    format!("{rp}.nodeSelectorTerms"),
                    "Required value: must have at least one node selector term",
                );
            }
            for (i, t) in terms.into_iter().enumerate() {
                node_selector_term(t, &format!("{rp}.nodeSelectorTerms[{i}]"), out);
            }
        }
        for (i, p) in items(node, "preferredDuringSchedulingIgnoredDuringExecution")
            .into_iter()
            .enumerate()
        {
            let pp = format!("{np}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            weight(p, &pp, out);
            if let Some(t) = p.get("preference").filter(|t| t.is_object()) {
                node_selector_term(t, &format!("{pp}.preference"), out);
            }
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = aff.get(kind).filter(|a| a.is_object()) else {
            continue;
        };
        let kp = format!("{ap}.{kind}");
        for (i, t) in items(pa, "requiredDuringSchedulingIgnoredDuringExecution")
            .into_iter()
            .enumerate()
        {
            pod_affinity_term(
                t,
                &format!("{kp}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
                out,
            );
        }
        for (i, w) in items(pa, "preferredDuringSchedulingIgnoredDuringExecution")
            .into_iter()
            .enumerate()
        {
            let wp = format!("{kp}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            weight(w, &wp, out);
            if let Some(t) = w.get("podAffinityTerm").filter(|t| t.is_object()) {
                pod_affinity_term(t, &format!("{wp}.podAffinityTerm"), out);
            }
        }
    }
}

fn weight(p: &Value, path: &str, out: &mut Out) {
    if let Some(w) = int_at(p, "weight")
        && !(1..=100).contains(&w)
    {
        out.add(
            format!("{path}.weight"),
            format!("Invalid value {w}: must be in the range 1-100"),
        );
    }
}

/// `validatePodAffinityTerm`.
fn pod_affinity_term(t: &Value, path: &str, out: &mut Out) {
    match str_at(t, "topologyKey") {
        None | Some("") => out.add(
            format!("{path}.topologyKey"),
            "Required value: can not be empty",
        ),
        Some(k) if !is_qualified_name(k) => out.add(
            format!("{path}.topologyKey"),
            format!("Invalid value {k:?}: must be a qualified name"),
        ),
        _ => {}
    }
    for sel in ["labelSelector", "namespaceSelector"] {
        if let Some(s) = t.get(sel).filter(|s| s.is_object()) {
            label_selector(s, &format!("{path}.{sel}"), out);
        }
    }
}

/// `validateDNSPolicy` / `validatePodDNSConfig`.
fn dns(spec: &Value, base: &str, out: &mut Out) {
    let policy = str_at(spec, "dnsPolicy").unwrap_or("");
    one_of(
        Some(policy),
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        &format!("{base}.dnsPolicy"),
        out,
    );
    let config = spec.get("dnsConfig").filter(|c| c.is_object());
    if policy == "None" {
        match config {
            None => out.add(
                format!("{base}.dnsConfig"),
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ),
            Some(c) if strings(c, "nameservers").is_empty() => out.add(
                format!("{base}.dnsConfig.nameservers"),
                "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            ),
            _ => {}
        }
    }
    if let Some(c) = config {
        let ns = strings(c, "nameservers");
        if ns.len() > 3 {
            out.add(
                format!("{base}.dnsConfig.nameservers"),
                "Invalid value: must not have more than 3 nameservers",
            );
        }
        for (i, n) in ns.iter().enumerate() {
            if !super::common::is_ip(n) {
                out.add(
                    format!("{base}.dnsConfig.nameservers[{i}]"),
                    format!("Invalid value {n:?}: must be a valid IP address"),
                );
            }
        }
        if strings(c, "searches").len() > 32 {
            out.add(
                format!("{base}.dnsConfig.searches"),
                "Invalid value: must not have more than 32 search paths",
            );
        }
    }
}

/// `ValidatePodSecurityContext` / `ValidateSecurityContext`: ids in range,
/// seccomp and AppArmor profiles, privilege escalation.
fn security_context(sc: Option<&Value>, path: &str, pod: bool, out: &mut Out) {
    let Some(sc) = sc.filter(|s| s.is_object()) else {
        return;
    };
    let ids: &[&str] = if pod {
        &["runAsUser", "runAsGroup", "fsGroup"]
    } else {
        &["runAsUser", "runAsGroup"]
    };
    for key in ids {
        if let Some(n) = int_at(sc, key)
            && !(0..=i64::from(i32::MAX)).contains(&n)
        {
            out.add(
                format!("{path}.{key}"),
                format!("Invalid value {n}: must be between 0 and 2147483647, inclusive"),
            );
        }
    }
    for key in ["seccompProfile", "appArmorProfile"] {
        let Some(p) = sc.get(key).filter(|p| p.is_object()) else {
            continue;
        };
        let ty = str_at(p, "type").unwrap_or("");
        let localhost = str_at(p, "localhostProfile").filter(|l| !l.is_empty());
        match ty {
            "Localhost" if localhost.is_none() => out.add(
                format!("{path}.{key}.localhostProfile"),
                "Required value: must be set when seccomp type is Localhost",
            ),
            "RuntimeDefault" | "Unconfined" if localhost.is_some() => out.add(
                format!("{path}.{key}.localhostProfile"),
                "Invalid value: can only be set when the type is Localhost",
            ),
            "" | "Localhost" | "RuntimeDefault" | "Unconfined" => {}
            other => out.add(
                format!("{path}.{key}.type"),
                unsupported(other, &["Localhost", "RuntimeDefault", "Unconfined"]),
            ),
        }
    }
    if !pod
        && sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false)
        && sc.get("privileged").and_then(Value::as_bool) == Some(true)
    {
        out.add(
            path,
            "Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        );
    }
}
