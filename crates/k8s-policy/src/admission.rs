//! The API server's own form of a ValidatingPolicy: a
//! ValidatingAdmissionPolicy and its binding, with the policy's match
//! constraints, match conditions, variables, validations and messages as
//! written, and each PolicyException that names the policy as one more
//! match condition that negates the exception's own. The API server then
//! evaluates the same CEL text with its own engine.

use serde_json::{Value, json};

/// Which actions the bindings carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The policy's own `validationActions` (Deny, Audit, Warn).
    AsWritten,
    /// Deny for every policy: whether a rule flags an object at all.
    Deny,
}

/// The ValidatingAdmissionPolicies and bindings that the ValidatingPolicies
/// and PolicyExceptions among `objects` say; other objects are ignored.
pub fn admission_policies(objects: &[Value], binding: Binding) -> Vec<Value> {
    let is = |o: &Value, kind: &str| {
        o["kind"] == kind
            && o["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with(crate::GROUP))
    };
    let mut out = Vec::new();
    for p in objects.iter().filter(|o| is(o, "ValidatingPolicy")) {
        let Some(name) = p["metadata"]["name"].as_str() else {
            continue;
        };
        let spec = &p["spec"];
        let mut conditions = spec["matchConditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for ex in objects.iter().filter(|o| is(o, "PolicyException")) {
            let names_it = ex["spec"]["policyRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["kind"] == "ValidatingPolicy" && r["name"] == name);
            if !names_it {
                continue;
            }
            let all: Vec<String> = ex["spec"]["matchConditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["expression"].as_str())
                .map(|e| format!("({e})"))
                .collect();
            // An exception without conditions lifts the policy everywhere.
            let expression = if all.is_empty() {
                "false".to_string()
            } else {
                format!("!({})", all.join(" && "))
            };
            conditions.push(json!({
                "name": format!("not-excepted-by-{}", ex["metadata"]["name"].as_str().unwrap_or("exception")),
                "expression": expression,
            }));
        }
        let mut vap_spec = json!({
            "failurePolicy": "Fail",
            "matchConstraints": spec["matchConstraints"],
            "validations": spec["validations"],
        });
        if !conditions.is_empty() {
            vap_spec["matchConditions"] = json!(conditions);
        }
        if let Some(v) = spec.get("variables") {
            vap_spec["variables"] = v.clone();
        }
        let actions = match binding {
            Binding::Deny => json!(["Deny"]),
            Binding::AsWritten => spec["validationActions"].clone(),
        };
        out.push(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name}, "spec": vap_spec}));
        out.push(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name}, "spec": {"policyName": name, "validationActions": actions}}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_become_negated_match_conditions() {
        let policy = json!({"apiVersion": "policies.kyverno.io/v1alpha1", "kind": "ValidatingPolicy",
            "metadata": {"name": "p"}, "spec": {"validationActions": ["Audit"],
                "matchConstraints": {"resourceRules": []},
                "matchConditions": [{"name": "own", "expression": "true"}],
                "validations": [{"expression": "false", "message": "m"}]}});
        let ex = json!({"apiVersion": "policies.kyverno.io/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "kyverno"}, "spec": {
                "policyRefs": [{"kind": "ValidatingPolicy", "name": "p"}],
                "matchConditions": [{"name": "a", "expression": "x"}, {"name": "b", "expression": "y"}]}});
        let out = admission_policies(&[policy.clone(), ex.clone()], Binding::AsWritten);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0]["spec"]["matchConditions"],
            json!([{"name": "own", "expression": "true"},
                {"name": "not-excepted-by-e", "expression": "!((x) && (y))"}])
        );
        assert_eq!(out[0]["spec"]["validations"], policy["spec"]["validations"]);
        assert_eq!(out[1]["spec"]["validationActions"], json!(["Audit"]));
        let out = admission_policies(&[policy, ex], Binding::Deny);
        assert_eq!(out[1]["spec"]["validationActions"], json!(["Deny"]));
    }
}
