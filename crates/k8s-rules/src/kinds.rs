//! Further kinds' rules: Services, Ingress and IngressClass, NetworkPolicy,
//! RBAC, PriorityClass, LimitRange and ResourceQuota.

use std::collections::HashSet;

use serde_json::Value;

use super::common::{
    is_cidr, is_ip, items, label_selector, one_of, quantity, strings, unsupported,
};
use super::{
    Out, at, int_at, is_dns1123_subdomain, is_path_segment_name, is_port_name, is_port_num,
    is_qualified_name, obj, str_at,
};
use k8s_schema::Gvk;

/// The parts of `ValidateService` the first rule does not hold: duplicate
/// ports, traffic policies, session affinity, IPs and source ranges.
pub(super) fn service_more(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    let ty = str_at(spec, "type")
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP");
    let mut seen = HashSet::new();
    for (i, p) in items(spec, "ports").into_iter().enumerate() {
        let proto = str_at(p, "protocol")
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        if let Some(port) = int_at(p, "port")
            && !seen.insert((port, proto))
        {
            out.add(
                format!("spec.ports[{i}]"),
                format!("Duplicate value: {{port: {port}, protocol: {proto}}}"),
            );
        }
    }
    let external_ips = strings(spec, "externalIPs");
    for (i, ip) in external_ips.iter().enumerate() {
        if !is_ip(ip) {
            out.add(
                format!("spec.externalIPs[{i}]"),
                format!("Invalid value {ip:?}: must be a valid IP address"),
            );
        }
    }
    let externally_accessible = matches!(ty, "LoadBalancer" | "NodePort")
        || (ty == "ClusterIP" && !external_ips.is_empty());
    match str_at(spec, "externalTrafficPolicy").filter(|p| !p.is_empty()) {
        Some(p) if !externally_accessible => out.add(
            "spec.externalTrafficPolicy",
            format!("Invalid value {p:?}: may only be set for externally-accessible services"),
        ),
        Some(p) => one_of(
            Some(p),
            &["Cluster", "Local"],
            "spec.externalTrafficPolicy",
            out,
        ),
        None => {}
    }
    one_of(
        str_at(spec, "internalTrafficPolicy"),
        &["Cluster", "Local"],
        "spec.internalTrafficPolicy",
        out,
    );
    one_of(
        str_at(spec, "sessionAffinity"),
        &["ClientIP", "None"],
        "spec.sessionAffinity",
        out,
    );
    if let Some(t) = spec
        .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
        .and_then(Value::as_i64)
        && !(1..=86400).contains(&t)
    {
        out.add(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            format!("Invalid value {t}: must be greater than 0 and less than 86400"),
        );
    }
    one_of(
        str_at(spec, "ipFamilyPolicy"),
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
        "spec.ipFamilyPolicy",
        out,
    );
    for (i, f) in strings(spec, "ipFamilies").iter().enumerate() {
        one_of(
            Some(f),
            &["IPv4", "IPv6"],
            &format!("spec.ipFamilies[{i}]"),
            out,
        );
    }
    if let Some(ip) = str_at(spec, "clusterIP").filter(|ip| !ip.is_empty() && *ip != "None")
        && !is_ip(ip)
    {
        out.add(
            "spec.clusterIP",
            format!("Invalid value {ip:?}: must be a valid IP address or 'None'"),
        );
    }
    let ranges = strings(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() && ty != "LoadBalancer" {
        out.add(
            "spec.loadBalancerSourceRanges",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        );
    }
    for (i, r) in ranges.iter().enumerate() {
        if !is_cidr(r.trim()) {
            out.add(
                format!("spec.loadBalancerSourceRanges[{i}]"),
                format!("Invalid value {r:?}: must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24"),
            );
        }
    }
    if let Some(n) = int_at(spec, "healthCheckNodePort")
        && n != 0
        && (ty != "LoadBalancer" || str_at(spec, "externalTrafficPolicy") != Some("Local"))
    {
        out.add(
            "spec.healthCheckNodePort",
            "Invalid value: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        );
    }
}

/// The parts of `ValidateIngressSpec` the first rule does not hold: pathType,
/// the class name, TLS hosts.
pub(super) fn ingress_more(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    if let Some(class) = str_at(spec, "ingressClassName")
        && !is_dns1123_subdomain(class)
    {
        out.add(
            "spec.ingressClassName",
            format!("Invalid value {class:?}: must be a DNS-1123 subdomain"),
        );
    }
    for (i, rule) in items(spec, "rules").into_iter().enumerate() {
        let Some(http) = rule.get("http").filter(|h| h.is_object()) else {
            continue;
        };
        for (j, p) in items(http, "paths").into_iter().enumerate() {
            let pp = format!("spec.rules[{i}].http.paths[{j}].pathType");
            match str_at(p, "pathType") {
                None | Some("") => out.add(pp, "Required value: pathType must be specified"),
                Some(t) => one_of(
                    Some(t),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                    &pp,
                    out,
                ),
            }
        }
    }
    for (i, tls) in items(spec, "tls").into_iter().enumerate() {
        for (j, host) in strings(tls, "hosts").iter().enumerate() {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if !is_dns1123_subdomain(bare) {
                out.add(
                    format!("spec.tls[{i}].hosts[{j}]"),
                    format!("Invalid value {host:?}: must be a DNS-1123 subdomain, optionally with a leading '*.'"),
                );
            }
        }
    }
}

/// `ValidateIngressClass` / `validateIngressClassParametersReference`.
pub(super) fn ingress_class(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    match str_at(spec, "controller") {
        None | Some("") => out.add("spec.controller", "Required value"),
        Some(c) if c.len() > 250 => out.add(
            "spec.controller",
            "Too long: may not be more than 250 bytes",
        ),
        Some(c) => {
            let ok = c
                .split_once('/')
                .is_some_and(|(domain, path)| is_dns1123_subdomain(domain) && !path.is_empty());
            if !ok {
                out.add(
                    "spec.controller",
                    format!("Invalid value {c:?}: must be a domain-prefixed path (such as \"acme.io/foo\")"),
                );
            }
        }
    }
    let Some(params) = spec.get("parameters").filter(|p| p.is_object()) else {
        return;
    };
    for key in ["kind", "name"] {
        match str_at(params, key) {
            None | Some("") => out.add(format!("spec.parameters.{key}"), "Required value"),
            Some(v) if !is_path_segment_name(v) => out.add(
                format!("spec.parameters.{key}"),
                format!("Invalid value {v:?}: may not contain '/' or '%'"),
            ),
            _ => {}
        }
    }
    let scope = str_at(params, "scope").unwrap_or("Cluster");
    let namespace = str_at(params, "namespace").filter(|n| !n.is_empty());
    match (scope, namespace) {
        ("Cluster", Some(_)) => out.add(
            "spec.parameters.namespace",
            "Forbidden: `parameters.scope` is set to 'Cluster'",
        ),
        ("Namespace", None) => out.add(
            "spec.parameters.namespace",
            "Required value: `parameters.scope` is set to 'Namespace'",
        ),
        ("Cluster" | "Namespace", _) => {}
        (other, _) => out.add(
            "spec.parameters.scope",
            unsupported(other, &["Cluster", "Namespace"]),
        ),
    }
}

/// `ValidateNetworkPolicySpec` (networking): ports and end ports, peers,
/// IP blocks, policy types.
pub(super) fn network_policy(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    if let Some(sel) = spec.get("podSelector").filter(|s| s.is_object()) {
        label_selector(sel, "spec.podSelector", out);
    }
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(spec, dir).into_iter().enumerate() {
            let rp = format!("spec.{dir}[{i}]");
            for (j, p) in items(rule, "ports").into_iter().enumerate() {
                np_port(p, &format!("{rp}.ports[{j}]"), out);
            }
            for (j, peer) in items(rule, peers).into_iter().enumerate() {
                np_peer(peer, &format!("{rp}.{peers}[{j}]"), out);
            }
        }
    }
    let types = strings(spec, "policyTypes");
    if types.len() > 2 {
        out.add(
            "spec.policyTypes",
            "Invalid value: may not specify more than two policyTypes",
        );
    }
    for (i, t) in types.iter().enumerate() {
        one_of(
            Some(t),
            &["Egress", "Ingress"],
            &format!("spec.policyTypes[{i}]"),
            out,
        );
    }
}

/// `ValidateNetworkPolicyPort`.
fn np_port(p: &Value, path: &str, out: &mut Out) {
    one_of(
        str_at(p, "protocol"),
        &["SCTP", "TCP", "UDP"],
        &format!("{path}.protocol"),
        out,
    );
    let port = p.get("port").filter(|v| !v.is_null());
    let end = int_at(p, "endPort");
    match port {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !is_port_num(n) {
                out.add(
                    format!("{path}.port"),
                    format!("Invalid value {n}: must be between 1 and 65535, inclusive"),
                );
            }
            if let Some(e) = end {
                if e < n {
                    out.add(
                        format!("{path}.endPort"),
                        format!("Invalid value {e}: must be greater than or equal to `port`"),
                    );
                } else if !is_port_num(e) {
                    out.add(
                        format!("{path}.endPort"),
                        format!("Invalid value {e}: must be between 1 and 65535, inclusive"),
                    );
                }
            }
        }
        Some(Value::String(s)) => {
            if !is_port_name(s) {
                out.add(
                    format!("{path}.port"),
                    format!("Invalid value {s:?}: must be an IANA_SVC_NAME"),
                );
            }
            if end.is_some() {
                out.add(
                    format!("{path}.endPort"),
                    "Invalid value: may not be specified when `port` is non-numeric",
                );
            }
        }
        None if end.is_some() => out.add(
            format!("{path}.endPort"),
            "Required value: may not be specified when `port` is not specified",
        ),
        _ => {}
    }
}

/// `ValidateNetworkPolicyPeer` / `ValidateIPBlock`.
fn np_peer(peer: &Value, path: &str, out: &mut Out) {
    let set = ["podSelector", "namespaceSelector", "ipBlock"]
        .iter()
        .filter(|k| peer.get(**k).is_some_and(Value::is_object))
        .count();
    if set == 0 {
        out.add(path, "Required value: must specify a peer");
    }
    if peer.get("ipBlock").is_some_and(Value::is_object) && set > 1 {
        out.add(path, "Forbidden: may not specify more than 1 peer");
    }
    for sel in ["podSelector", "namespaceSelector"] {
        if let Some(s) = peer.get(sel).filter(|s| s.is_object()) {
            label_selector(s, &format!("{path}.{sel}"), out);
        }
    }
    let Some(block) = peer.get("ipBlock").filter(|b| b.is_object()) else {
        return;
    };
    let cidr = str_at(block, "cidr").unwrap_or("");
    if cidr.is_empty() {
        out.add(format!("{path}.ipBlock.cidr"), "Required value");
        return;
    }
    if !is_cidr(cidr) {
        out.add(
            format!("{path}.ipBlock.cidr"),
            format!("Invalid value {cidr:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
        );
        return;
    }
    let bits = |c: &str| c.split_once('/').and_then(|(_, b)| b.parse::<u32>().ok());
    for (i, e) in strings(block, "except").iter().enumerate() {
        let ep = format!("{path}.ipBlock.except[{i}]");
        if !is_cidr(e) {
            out.add(
                ep,
                format!("Invalid value {e:?}: must be a valid CIDR value"),
            );
        } else if bits(e) <= bits(cidr) {
            out.add(
                ep,
                format!("Invalid value {e:?}: must be a strict subset of `cidr`"),
            );
        }
    }
}

/// `ValidatePolicyRule` (rbac): verbs, and either resources with API groups
/// or (cluster-wide only) non-resource URLs.
fn policy_rules(object: &Value, namespaced: bool, out: &mut Out) {
    for (i, r) in items(object, "rules").into_iter().enumerate() {
        let rp = format!("rules[{i}]");
        if strings(r, "verbs").is_empty() {
            out.add(
                format!("{rp}.verbs"),
                "Required value: verbs must contain at least one value",
            );
        }
        let urls = strings(r, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                out.add(
                    format!("{rp}.nonResourceURLs"),
                    "Invalid value: namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !strings(r, "apiGroups").is_empty() || !strings(r, "resources").is_empty() {
                out.add(
                    format!("{rp}.nonResourceURLs"),
                    "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if r.get("apiGroups")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            out.add(
                format!("{rp}.apiGroups"),
                "Required value: resource rules must supply at least one api group",
            );
        }
        if strings(r, "resources").is_empty() {
            out.add(
                format!("{rp}.resources"),
                "Required value: resource rules must supply at least one resource",
            );
        }
    }
}

pub(super) fn role(gvk: &Gvk, object: &Value, out: &mut Out) {
    policy_rules(object, gvk.kind == "Role", out);
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` /
/// `ValidateRoleBindingSubject`.
pub(super) fn binding(gvk: &Gvk, object: &Value, out: &mut Out) {
    let namespaced = gvk.kind == "RoleBinding";
    if let Some(r) = object.get("roleRef").filter(|r| r.is_object()) {
        if str_at(r, "apiGroup") != Some("rbac.authorization.k8s.io") {
            out.add(
                "roleRef.apiGroup",
                unsupported(
                    str_at(r, "apiGroup").unwrap_or(""),
                    &["rbac.authorization.k8s.io"],
                ),
            );
        }
        let kinds: &[&str] = if namespaced {
            &["ClusterRole", "Role"]
        } else {
            &["ClusterRole"]
        };
        match str_at(r, "kind") {
            Some(k) if kinds.contains(&k) => {}
            k => out.add("roleRef.kind", unsupported(k.unwrap_or(""), kinds)),
        }
        match str_at(r, "name") {
            None | Some("") => out.add("roleRef.name", "Required value"),
            Some(n) if !is_path_segment_name(n) => out.add(
                "roleRef.name",
                format!("Invalid value {n:?}: may not contain '/' or '%'"),
            ),
            _ => {}
        }
    }
    for (i, s) in items(object, "subjects").into_iter().enumerate() {
        let sp = format!("subjects[{i}]");
        let name = str_at(s, "name").unwrap_or("");
        if name.is_empty() {
            out.add(format!("{sp}.name"), "Required value");
        }
        let group = str_at(s, "apiGroup").unwrap_or("");
        match str_at(s, "kind").unwrap_or("") {
            "ServiceAccount" => {
                if !name.is_empty() && !is_dns1123_subdomain(name) {
                    out.add(
                        format!("{sp}.name"),
                        format!("Invalid value {name:?}: must be a DNS-1123 subdomain"),
                    );
                }
                if !group.is_empty() {
                    out.add(format!("{sp}.apiGroup"), unsupported(group, &[""]));
                }
                if !namespaced && str_at(s, "namespace").is_none_or(str::is_empty) {
                    out.add(format!("{sp}.namespace"), "Required value");
                }
            }
            // SetDefaults_Subject fills an empty apiGroup for these.
            "User" | "Group" => {
                if !group.is_empty() && group != "rbac.authorization.k8s.io" {
                    out.add(
                        format!("{sp}.apiGroup"),
                        unsupported(group, &["rbac.authorization.k8s.io"]),
                    );
                }
            }
            other => out.add(
                format!("{sp}.kind"),
                unsupported(other, &["Group", "ServiceAccount", "User"]),
            ),
        }
    }
}

/// `ValidatePriorityClass` (scheduling): a user value at most 10^9, the
/// `system-` prefix reserved, the preemption policy.
pub(super) fn priority_class(_: &Gvk, object: &Value, out: &mut Out) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let system = ["system-node-critical", "system-cluster-critical"].contains(&name);
    if name.starts_with("system-") && !system {
        out.add(
            "metadata.name",
            "Forbidden: priority class names with 'system-' prefix are reserved",
        );
    }
    if let Some(v) = int_at(object, "value")
        && v > 1_000_000_000
        && !system
    {
        out.add(
            "value",
            format!("Forbidden: maximum allowed value of a user defined priority is 1000000000, have {v}"),
        );
    }
    one_of(
        str_at(object, "preemptionPolicy"),
        &["Never", "PreemptLowerPriority"],
        "preemptionPolicy",
        out,
    );
}

/// `ValidateLimitRange`: min ≤ defaultRequest ≤ default ≤ max per resource,
/// ratios at least 1, the type's own limits.
pub(super) fn limit_range(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    for (i, l) in items(spec, "limits").into_iter().enumerate() {
        let lp = format!("spec.limits[{i}]");
        let ty = str_at(l, "type").unwrap_or("");
        if ty.is_empty() {
            out.add(format!("{lp}.type"), "Required value");
        } else if !is_qualified_name(ty) {
            out.add(
                format!("{lp}.type"),
                format!("Invalid value {ty:?}: must be a qualified name"),
            );
        }
        let get = |field: &str, res: &str| l.get(field).and_then(|m| m.get(res)).and_then(quantity);
        let mut resources: Vec<String> = Vec::new();
        for field in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for (k, v) in obj(l, field).into_iter().flatten() {
                if !resources.contains(k) {
                    resources.push(k.clone());
                }
                if let Some(q) = quantity(v)
                    && q < 0.0
                {
                    out.add(
                        format!("{lp}.{field}[{k:?}]"),
                        format!("Invalid value {v}: must be greater than or equal to 0"),
                    );
                }
            }
        }
        if ty == "Pod" {
            for field in ["default", "defaultRequest"] {
                if obj(l, field).is_some_and(|m| !m.is_empty()) {
                    out.add(
                        format!("{lp}.{field}"),
                        "Forbidden: may not be specified when `type` is 'Pod'",
                    );
                }
            }
        }
        if ty == "PersistentVolumeClaim"
            && get("min", "storage").is_none()
            && get("max", "storage").is_none()
        {
            out.add(
                format!("{lp}.min"),
                "Required value: either minimum or maximum storage value is required, but neither was provided",
            );
        }
        for res in &resources {
            let (min, max, def, req, ratio) = (
                get("min", res),
                get("max", res),
                get("default", res),
                get("defaultRequest", res),
                get("maxLimitRequestRatio", res),
            );
            let bad =
                |a: Option<f64>, b: Option<f64>| matches!((a, b), (Some(a), Some(b)) if a > b);
            if bad(min, max) {
                out.add(
                    format!("{lp}.min[{res:?}]"),
                    "Invalid value: min value is greater than max value",
                );
            }
            if bad(req, max) {
                out.add(
                    format!("{lp}.defaultRequest[{res:?}]"),
                    "Invalid value: default request value is greater than max value",
                );
            }
            if bad(def, max) {
                out.add(
                    format!("{lp}.default[{res:?}]"),
                    "Invalid value: default value is greater than max value",
                );
            }
            if bad(min, req) {
                out.add(
                    format!("{lp}.defaultRequest[{res:?}]"),
                    "Invalid value: min value is greater than default request value",
                );
            }
            if bad(min, def) {
                out.add(
                    format!("{lp}.default[{res:?}]"),
                    "Invalid value: min value is greater than default value",
                );
            }
            if bad(req, def) {
                out.add(
                    format!("{lp}.defaultRequest[{res:?}]"),
                    "Invalid value: default request value is greater than default limit value",
                );
            }
            if let Some(r) = ratio
                && r < 1.0
            {
                out.add(
                    format!("{lp}.maxLimitRequestRatio[{res:?}]"),
                    "Invalid value: ratio is less than 1",
                );
            }
        }
    }
}

/// `IsStandardQuotaResourceName` and the names a quota may hold.
fn is_quota_resource(name: &str) -> bool {
    const STANDARD: [&str; 21] = [
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "count/pods",
        "storage",
    ];
    name.contains('/')
        || STANDARD.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

/// `ValidateResourceQuotaSpec` / `validateResourceQuotaResourceName`.
pub(super) fn resource_quota(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    for (k, v) in obj(spec, "hard").into_iter().flatten() {
        let kp = format!("spec.hard[{k:?}]");
        if !is_qualified_name(k) {
            out.add(
                kp.clone(),
                format!("Invalid value {k:?}: must be a qualified name"),
            );
        } else if !is_quota_resource(k) {
            out.add(
                kp.clone(),
                format!("Invalid value {k:?}: must be a standard resource for quota"),
            );
        }
        if let Some(q) = quantity(v)
            && q < 0.0
        {
            out.add(
                kp,
                format!("Invalid value {v}: must be greater than or equal to 0"),
            );
        }
    }
    const SCOPES: [&str; 7] = [
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
        "VolumeAttributesClass",
    ];
    for (i, s) in strings(spec, "scopes").iter().enumerate() {
        one_of(Some(s), &SCOPES, &format!("spec.scopes[{i}]"), out);
    }
    if let Some(sel) = spec.get("scopeSelector").filter(|s| s.is_object()) {
        for (i, e) in items(sel, "matchExpressions").into_iter().enumerate() {
            let ep = format!("spec.scopeSelector.matchExpressions[{i}]");
            one_of(
                str_at(e, "scopeName"),
                &SCOPES,
                &format!("{ep}.scopeName"),
                out,
            );
            one_of(
                str_at(e, "operator"),
                &["DoesNotExist", "Exists", "In", "NotIn"],
                &format!("{ep}.operator"),
                out,
            );
        }
    }
}
