//! Workload controllers, autoscaling and disruption budgets:
//! k8s.io/kubernetes/pkg/apis/{apps,batch,autoscaling,policy}/validation.

use serde_json::Value;

use super::common::{
    IntOrPercent, int_or_percent, items, join, label_selector, non_negative, one_of, quantity,
    unsupported,
};
use super::pvc::claim_spec;
use super::{Out, at, int_at, is_dns1123_label, is_path_segment_name, str_at};
use k8s_schema::Gvk;

/// `ValidateDeploymentSpec` / `ValidateStatefulSetSpec` /
/// `ValidateDaemonSetSpec` / `ValidateReplicaSetSpec`: the selector's
/// expressions, the counters, the update strategy.
pub(super) fn workload_spec(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    if let Some(sel) = spec.get("selector").filter(|s| s.is_object()) {
        label_selector(sel, "spec.selector", out);
    }
    for key in ["minReadySeconds", "revisionHistoryLimit"] {
        non_negative(spec, key, "spec", out);
    }
    match gvk.kind.as_str() {
        "Deployment" => deployment(spec, out),
        "StatefulSet" => statefulset(spec, out),
        "DaemonSet" => daemonset(spec, out),
        _ => {}
    }
}

/// `ValidateDeploymentStrategy` / `ValidateRollingUpdateDeployment`.
fn deployment(spec: &Value, out: &mut Out) {
    if let Some(p) = int_at(spec, "progressDeadlineSeconds") {
        let min_ready = int_at(spec, "minReadySeconds").unwrap_or(0);
        if p < 0 {
            out.add(
                "spec.progressDeadlineSeconds",
                format!("Invalid value {p}: must be greater than or equal to 0"),
            );
        } else if p <= min_ready {
            out.add(
                "spec.progressDeadlineSeconds",
                format!("Invalid value {p}: must be greater than minReadySeconds"),
            );
        }
    }
    let strategy = spec.get("strategy").filter(|s| s.is_object());
    let ty = strategy
        .and_then(|s| str_at(s, "type"))
        .filter(|t| !t.is_empty())
        .unwrap_or("RollingUpdate");
    let rolling = strategy
        .and_then(|s| s.get("rollingUpdate"))
        .filter(|r| r.is_object());
    match ty {
        "Recreate" => {
            if rolling.is_some() {
                out.add(
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        "RollingUpdate" => rolling_update(rolling, "spec.strategy.rollingUpdate", true, out),
        other => out.add(
            "spec.strategy.type",
            unsupported(other, &["Recreate", "RollingUpdate"]),
        ),
    }
}

/// `maxUnavailable` (at most 100%) and `maxSurge`, not both 0 (each
/// defaulted to 25% for Deployments, to 1 and 0 for DaemonSets).
fn rolling_update(rolling: Option<&Value>, path: &str, deployment: bool, out: &mut Out) {
    let get = |k: &str| rolling.and_then(|r| r.get(k)).filter(|v| !v.is_null());
    let unavailable = int_or_percent(
        get("maxUnavailable"),
        &format!("{path}.maxUnavailable"),
        true,
        out,
    );
    let surge = int_or_percent(get("maxSurge"), &format!("{path}.maxSurge"), false, out);
    let (unavailable_default, surge_default) = if deployment {
        (IntOrPercent::Percent(25), IntOrPercent::Percent(25))
    } else {
        (IntOrPercent::Int(1), IntOrPercent::Int(0))
    };
    let unavailable = match get("maxUnavailable") {
        None => Some(unavailable_default),
        Some(_) => unavailable,
    };
    let surge = match get("maxSurge") {
        None => Some(surge_default),
        Some(_) => surge,
    };
    if let (Some(u), Some(s)) = (unavailable, surge)
        && u.is_zero()
        && s.is_zero()
    {
        out.add(
            format!("{path}.maxUnavailable"),
            "Invalid value: may not be 0 when `maxSurge` is 0",
        );
    }
}

/// `ValidateStatefulSetSpec`.
fn statefulset(spec: &Value, out: &mut Out) {
    one_of(
        str_at(spec, "podManagementPolicy"),
        &["OrderedReady", "Parallel"],
        "spec.podManagementPolicy",
        out,
    );
    if let Some(s) = spec.get("updateStrategy").filter(|s| s.is_object()) {
        let ty = str_at(s, "type").unwrap_or("");
        one_of(
            Some(ty),
            &["OnDelete", "RollingUpdate"],
            "spec.updateStrategy.type",
            out,
        );
        if let Some(r) = s.get("rollingUpdate").filter(|r| r.is_object()) {
            if ty == "OnDelete" {
                out.add(
                    "spec.updateStrategy.rollingUpdate",
                    "Invalid value: only allowed for updateStrategy 'RollingUpdate'",
                );
            }
            non_negative(r, "partition", "spec.updateStrategy.rollingUpdate", out);
        }
    }
    if let Some(p) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|p| p.is_object())
    {
        for key in ["whenDeleted", "whenScaled"] {
            one_of(
                str_at(p, key),
                &["Delete", "Retain"],
                &format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                out,
            );
        }
    }
    if let Some(o) = spec.get("ordinals").filter(|o| o.is_object()) {
        non_negative(o, "start", "spec.ordinals", out);
    }
    for (i, t) in items(spec, "volumeClaimTemplates").into_iter().enumerate() {
        let tp = format!("spec.volumeClaimTemplates[{i}]");
        if let Some(name) = t.pointer("/metadata/name").and_then(Value::as_str)
            && !is_dns1123_label(name)
        {
            out.add(
                format!("{tp}.metadata.name"),
                format!("Invalid value {name:?}: must be a DNS-1123 label"),
            );
        }
        if let Some(cs) = t.get("spec").filter(|s| s.is_object()) {
            claim_spec(cs, &format!("{tp}.spec"), out);
        } else {
            claim_spec(
                &Value::Object(Default::default()),
                &format!("{tp}.spec"),
                out,
            );
        }
    }
}

/// `ValidateDaemonSetUpdateStrategy` / `ValidateRollingUpdateDaemonSet`.
fn daemonset(spec: &Value, out: &mut Out) {
    let strategy = spec.get("updateStrategy").filter(|s| s.is_object());
    let ty = strategy
        .and_then(|s| str_at(s, "type"))
        .filter(|t| !t.is_empty())
        .unwrap_or("RollingUpdate");
    match ty {
        "OnDelete" => {}
        "RollingUpdate" => rolling_update(
            strategy
                .and_then(|s| s.get("rollingUpdate"))
                .filter(|r| r.is_object()),
            "spec.updateStrategy.rollingUpdate",
            false,
            out,
        ),
        other => out.add(
            "spec.updateStrategy.type",
            unsupported(other, &["OnDelete", "RollingUpdate"]),
        ),
    }
}

/// `validateJobSpec` (batch) at `base` (`spec`, or a CronJob's
/// `spec.jobTemplate.spec`).
fn job_spec(spec: &Value, base: &str, out: &mut Out) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        non_negative(spec, key, base, out);
    }
    let mode = str_at(spec, "completionMode").unwrap_or("NonIndexed");
    one_of(
        Some(mode),
        &["Indexed", "NonIndexed"],
        &join(base, "completionMode"),
        out,
    );
    // SetDefaults_Job sets both counts to 1 when neither is given.
    if mode == "Indexed"
        && int_at(spec, "completions").is_none()
        && int_at(spec, "parallelism").is_some()
    {
        out.add(
            join(base, "completions"),
            "Required value: when completion mode is Indexed",
        );
    }
    if mode != "Indexed" {
        for key in ["backoffLimitPerIndex", "successPolicy"] {
            if spec.get(key).is_some_and(|v| !v.is_null()) {
                out.add(
                    join(base, key),
                    "Invalid value: requires indexed completion mode",
                );
            }
        }
    }
    if spec.get("maxFailedIndexes").is_some_and(|v| !v.is_null())
        && spec.get("backoffLimitPerIndex").is_none_or(Value::is_null)
    {
        out.add(
            join(base, "maxFailedIndexes"),
            "Required value: when maxFailedIndexes is specified, backoffLimitPerIndex is required",
        );
    }
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true)
        && let Some(sel) = spec.get("selector").filter(|s| s.is_object())
    {
        label_selector(sel, &join(base, "selector"), out);
    }
    let Some(pfp) = spec.get("podFailurePolicy").filter(|p| p.is_object()) else {
        return;
    };
    let restart = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if restart != "Never" {
        out.add(
            join(base, "template.spec.restartPolicy"),
            format!("Invalid value {restart:?}: only \"Never\" is supported when podFailurePolicy is specified"),
        );
    }
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    for (i, rule) in items(pfp, "rules").into_iter().enumerate() {
        let rp = format!("{}.rules[{i}]", join(base, "podFailurePolicy"));
        match str_at(rule, "action") {
            Some("FailIndex") if !per_index => out.add(
                format!("{rp}.action"),
                "Forbidden: may not be used when backoffLimitPerIndex is not specified",
            ),
            Some("Count" | "FailIndex" | "FailJob" | "Ignore") | None => {}
            Some(other) => out.add(
                format!("{rp}.action"),
                unsupported(other, &["Count", "FailIndex", "FailJob", "Ignore"]),
            ),
        }
        let codes = rule.get("onExitCodes").filter(|c| c.is_object());
        let conditions = rule
            .get("onPodConditions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty());
        match (codes, conditions) {
            (Some(_), Some(_)) => out.add(
                rp.clone(),
                "Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
            ),
            (None, None) => out.add(
                rp.clone(),
                "Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
            ),
            _ => {}
        }
        if let Some(c) = codes {
            let cp = format!("{rp}.onExitCodes");
            let op = str_at(c, "operator").unwrap_or("");
            one_of(Some(op), &["In", "NotIn"], &format!("{cp}.operator"), out);
            let values: Vec<i64> = c
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            if values.is_empty() {
                out.add(
                    format!("{cp}.values"),
                    "Invalid value: at least one value is required",
                );
            }
            if op == "In" && values.contains(&0) {
                out.add(
                    format!("{cp}.values"),
                    "Invalid value 0: must not be 0 for the In operator",
                );
            }
            if values.windows(2).any(|w| w[0] >= w[1]) {
                out.add(
                    format!("{cp}.values"),
                    "Invalid value: must be ordered and unique",
                );
            }
        }
    }
}

pub(super) fn job(_: &Gvk, object: &Value, out: &mut Out) {
    if let Some(spec) = at(object, "spec").filter(|s| s.is_object()) {
        job_spec(spec, "spec", out);
    }
}

/// `validateCronJobSpec` / `validateScheduleFormat` / `ValidateTimeZone`.
pub(super) fn cronjob(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    match str_at(spec, "schedule") {
        None | Some("") => out.add("spec.schedule", "Required value"),
        Some(s) => {
            if s.contains("TZ") {
                out.add(
                    "spec.schedule",
                    format!("Invalid value {s:?}: cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
                );
            } else if let Err(why) = cron_schedule(s) {
                out.add("spec.schedule", format!("Invalid value {s:?}: {why}"));
            }
        }
    }
    if let Some(tz) = str_at(spec, "timeZone")
        && !is_time_zone(tz)
    {
        out.add(
            "spec.timeZone",
            format!("Invalid value {tz:?}: unknown time zone {tz}"),
        );
    }
    one_of(
        str_at(spec, "concurrencyPolicy"),
        &["Allow", "Forbid", "Replace"],
        "spec.concurrencyPolicy",
        out,
    );
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(spec, key, "spec", out);
    }
    if let Some(js) = spec.pointer("/jobTemplate/spec").filter(|s| s.is_object()) {
        job_spec(js, "spec.jobTemplate.spec", out);
    }
}

/// The robfig/cron standard parser the CronJob validation uses: five
/// fields or a `@descriptor`.
fn cron_schedule(s: &str) -> Result<(), String> {
    let s = s.trim();
    if let Some(d) = s.strip_prefix('@') {
        if let Some(every) = d.strip_prefix("every ") {
            return if go_duration(every.trim()) {
                Ok(())
            } else {
                Err(format!("failed to parse duration {every}"))
            };
        }
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ => Err(format!("unrecognized descriptor: @{d}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, &MONTHS, 1),
        (0, 6, &DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            cron_range(part, min, max, names, first)?;
        }
    }
    Ok(())
}

fn cron_range(part: &str, min: u32, max: u32, names: &[&str], first: u32) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (part, None),
    };
    let value = |t: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(t)) {
            return Ok(i as u32 + first);
        }
        t.parse::<u32>()
            .map_err(|_| format!("failed to parse int from {t}"))
    };
    let (start, end) = if range == "*" || range == "?" {
        (min, max)
    } else {
        match range.split_once('-') {
            Some((a, b)) => (value(a)?, value(b)?),
            None => {
                let v = value(range)?;
                (v, if step.is_some() { max } else { v })
            }
        }
    };
    if let Some(step) = step {
        let n: u32 = step
            .parse()
            .map_err(|_| format!("failed to parse int from {step}"))?;
        if n == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {part}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {part}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {part}"
        ));
    }
    Ok(())
}

/// Go's `time.ParseDuration` syntax: `[-+]?(<number><unit>)+` or `0`.
fn go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        let Some(unit) = unit else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// What `time.LoadLocation` can load, as far as syntax tells: `UTC`, or an
/// IANA `Area/Location` (the full database is the server's; a misspelt city
/// is left to `--server`). `Local` is refused by `ValidateTimeZone`.
fn is_time_zone(tz: &str) -> bool {
    const AREAS: [&str; 11] = [
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Etc",
        "Indian",
        "Pacific",
    ];
    const SINGLE: [&str; 18] = [
        "UTC",
        "GMT",
        "UCT",
        "Zulu",
        "Universal",
        "Greenwich",
        "EST",
        "MST",
        "HST",
        "EST5EDT",
        "CST6CDT",
        "MST7MDT",
        "PST8PDT",
        "CET",
        "EET",
        "MET",
        "WET",
        "Japan",
    ];
    if tz.is_empty() {
        return true;
    }
    if SINGLE.contains(&tz) {
        return true;
    }
    let Some((area, rest)) = tz.split_once('/') else {
        return false;
    };
    let legacy = ["US", "Canada", "Brazil", "Mexico", "Chile"];
    (AREAS.contains(&area) || legacy.contains(&area))
        && !rest.is_empty()
        && rest.split('/').all(|p| {
            !p.is_empty()
                && p != ".."
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+'))
        })
}

/// `ValidateHorizontalPodAutoscalerSpec` (autoscaling, v1 and v2).
pub(super) fn hpa(gvk: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    let min = int_at(spec, "minReplicas");
    let max = int_at(spec, "maxReplicas");
    if let Some(n) = min
        && n < 1
    {
        out.add(
            "spec.minReplicas",
            format!("Invalid value {n}: must be greater than or equal to 1"),
        );
    }
    if let Some(n) = max {
        if n < 1 {
            out.add(
                "spec.maxReplicas",
                format!("Invalid value {n}: must be greater than 0"),
            );
        } else if let Some(m) = min
            && m > n
        {
            out.add(
                "spec.maxReplicas",
                format!("Invalid value {n}: must be greater than or equal to `minReplicas`"),
            );
        }
    }
    if let Some(r) = spec.get("scaleTargetRef").filter(|r| r.is_object()) {
        for key in ["kind", "name"] {
            match str_at(r, key) {
                None | Some("") => out.add(format!("spec.scaleTargetRef.{key}"), "Required value"),
                Some(v) if !is_path_segment_name(v) => out.add(
                    format!("spec.scaleTargetRef.{key}"),
                    format!("Invalid value {v:?}: may not contain '/' or '%'"),
                ),
                _ => {}
            }
        }
    }
    if gvk.version == "v1" {
        if let Some(n) = int_at(spec, "targetCPUUtilizationPercentage")
            && n < 1
        {
            out.add(
                "spec.targetCPUUtilizationPercentage",
                format!("Invalid value {n}: must be greater than 0"),
            );
        }
        return;
    }
    for (i, m) in items(spec, "metrics").into_iter().enumerate() {
        metric(m, &format!("spec.metrics[{i}]"), out);
    }
    if let Some(b) = spec.get("behavior").filter(|b| b.is_object()) {
        for dir in ["scaleUp", "scaleDown"] {
            if let Some(rules) = b.get(dir).filter(|r| r.is_object()) {
                scaling_rules(rules, &format!("spec.behavior.{dir}"), out);
            }
        }
    }
}

const METRIC_SOURCES: [(&str, &str); 5] = [
    ("ContainerResource", "containerResource"),
    ("External", "external"),
    ("Object", "object"),
    ("Pods", "pods"),
    ("Resource", "resource"),
];

/// `validateMetricSpec` / `validateMetricTarget`.
fn metric(m: &Value, path: &str, out: &mut Out) {
    let ty = str_at(m, "type").unwrap_or("");
    let set: Vec<&str> = METRIC_SOURCES
        .iter()
        .filter(|(_, f)| m.get(*f).is_some_and(Value::is_object))
        .map(|(t, _)| *t)
        .collect();
    let Some((_, field)) = METRIC_SOURCES.iter().find(|(t, _)| *t == ty) else {
        if ty.is_empty() {
            out.add(
                format!("{path}.type"),
                "Required value: must specify a metric source type",
            );
        } else {
            out.add(
                format!("{path}.type"),
                unsupported(
                    ty,
                    &[
                        "ContainerResource",
                        "External",
                        "Object",
                        "Pods",
                        "Resource",
                    ],
                ),
            );
        }
        return;
    };
    if !set.contains(&ty) {
        out.add(
            format!("{path}.{field}"),
            "Required value: must populate information for the given metric source",
        );
    }
    if set.len() > 1 || (set.len() == 1 && set[0] != ty) {
        out.add(
            format!("{path}.type"),
            "Forbidden: must populate the given metric source only",
        );
    }
    let Some(source) = m.get(*field).filter(|s| s.is_object()) else {
        return;
    };
    let sp = format!("{path}.{field}");
    if matches!(ty, "Resource" | "ContainerResource")
        && str_at(source, "name").is_none_or(str::is_empty)
    {
        out.add(
            format!("{sp}.name"),
            "Required value: must specify a resource name",
        );
    }
    if ty == "ContainerResource" && str_at(source, "container").is_none_or(str::is_empty) {
        out.add(
            format!("{sp}.container"),
            "Required value: must specify a container",
        );
    }
    let Some(target) = source.get("target").filter(|t| t.is_object()) else {
        return;
    };
    let tp = format!("{sp}.target");
    match str_at(target, "type") {
        None | Some("") => out.add(
            format!("{tp}.type"),
            "Required value: must specify a metric target type",
        ),
        Some("Utilization" | "Value" | "AverageValue") => {}
        Some(other) => out.add(
            format!("{tp}.type"),
            unsupported(other, &["AverageValue", "Utilization", "Value"]),
        ),
    }
    for key in ["value", "averageValue"] {
        if let Some(q) = target.get(key).and_then(quantity)
            && q <= 0.0
        {
            out.add(format!("{tp}.{key}"), "Invalid value: must be positive");
        }
    }
    if let Some(u) = int_at(target, "averageUtilization")
        && u < 1
    {
        out.add(
            format!("{tp}.averageUtilization"),
            format!("Invalid value {u}: must be greater than 0"),
        );
    }
    if matches!(ty, "Resource" | "ContainerResource") {
        let util = target
            .get("averageUtilization")
            .is_some_and(|v| !v.is_null());
        let avg = target.get("averageValue").is_some_and(|v| !v.is_null());
        if !util && !avg {
            out.add(
                tp.clone(),
                "Required value: must set either a target raw value or a target utilization",
            );
        }
        if util && avg {
            out.add(
                tp,
                "Forbidden: may not set both a target raw value and a target utilization",
            );
        }
    }
}

/// `validateScalingRules`.
fn scaling_rules(rules: &Value, path: &str, out: &mut Out) {
    if let Some(w) = int_at(rules, "stabilizationWindowSeconds")
        && !(0..=3600).contains(&w)
    {
        out.add(
            format!("{path}.stabilizationWindowSeconds"),
            format!("Invalid value {w}: must be between 0 and 3600"),
        );
    }
    one_of(
        str_at(rules, "selectPolicy"),
        &["Disabled", "Max", "Min"],
        &format!("{path}.selectPolicy"),
        out,
    );
    for (i, p) in items(rules, "policies").into_iter().enumerate() {
        let pp = format!("{path}.policies[{i}]");
        one_of(
            str_at(p, "type"),
            &["Percent", "Pods"],
            &format!("{pp}.type"),
            out,
        );
        if let Some(v) = int_at(p, "value")
            && v <= 0
        {
            out.add(
                format!("{pp}.value"),
                format!("Invalid value {v}: must be greater than zero"),
            );
        }
        if let Some(s) = int_at(p, "periodSeconds")
            && !(1..=1800).contains(&s)
        {
            out.add(
                format!("{pp}.periodSeconds"),
                format!(
                    "Invalid value {s}: must be greater than zero and less than or equal to 1800"
                ),
            );
        }
    }
}

/// `ValidatePodDisruptionBudgetSpec` (policy).
pub(super) fn pdb(_: &Gvk, object: &Value, out: &mut Out) {
    let Some(spec) = at(object, "spec").filter(|s| s.is_object()) else {
        return;
    };
    let has = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    if has("minAvailable") && has("maxUnavailable") {
        out.add(
            "spec",
            "Invalid value: minAvailable and maxUnavailable cannot be both set",
        );
    }
    for key in ["minAvailable", "maxUnavailable"] {
        int_or_percent(
            spec.get(key).filter(|v| !v.is_null()),
            &format!("spec.{key}"),
            true,
            out,
        );
    }
    if let Some(sel) = spec.get("selector").filter(|s| s.is_object()) {
        label_selector(sel, "spec.selector", out);
    }
    one_of(
        str_at(spec, "unhealthyPodEvictionPolicy"),
        &["AlwaysAllow", "IfHealthyBudget"],
        "spec.unhealthyPodEvictionPolicy",
        out,
    );
}
