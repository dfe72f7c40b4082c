//! Kyverno's CEL policies, evaluated offline.
//!
//! A [`PolicySet`] holds the `ValidatingPolicy` and `PolicyException` objects
//! (`policies.kyverno.io/v1alpha1`) of a tree. [`PolicySet::evaluate`] judges
//! one object as a CREATE admission request would be judged: the policy's
//! `matchConstraints` (resource rules, exclusions, namespace and object
//! selectors), its `matchConditions`, the exceptions that name it, then its
//! `variables` and `validations` in order. A validation that is false is a
//! [`Violation`] carrying the rule's own message; an expression that does not
//! compile or evaluate is an [`PolicyError`] naming it, never a pass.
//!
//! [`admission_policies`] gives the same text to the API server as
//! ValidatingAdmissionPolicies (the oracle, and enforcement where Kyverno
//! cannot run).
//!
//! The CEL environment is the standard library, the strings extension and the
//! Kubernetes functions in [`k8s`] (regex `find`/`findAll`; quantity
//! `quantity`, `isQuantity`, comparisons, `sign`, `asApproximateFloat`).

mod admission;
mod k8s;
mod matching;

use std::sync::Arc;

use cel::{Context, Env, Program};
use serde_json::Value;

pub use admission::{Binding, admission_policies};
pub use matching::resource_of;

/// The group of Kyverno's CEL policy kinds.
pub const GROUP: &str = "policies.kyverno.io";

/// A policy or an exception that cannot be loaded, or an expression that
/// cannot be evaluated on an object.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{kind} {name}: {message}")]
    Invalid {
        kind: String,
        name: String,
        message: String,
    },
    #[error("{kind} {name}: expression {expression:?} does not compile: {message}")]
    Compile {
        kind: String,
        name: String,
        expression: String,
        message: String,
    },
    #[error("{kind} {name}: expression {expression:?} cannot be evaluated: {message}")]
    Evaluate {
        kind: String,
        name: String,
        expression: String,
        message: String,
    },
}

/// What a policy does with a violation (`spec.validationActions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Deny,
    Audit,
    Warn,
}

/// One failed validation of one policy on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub policy: String,
    /// The validation's expression, to name the rule.
    pub expression: String,
    /// The rule's message (its `message`, its `messageExpression`, or
    /// `failed expression: <expression>` as the API server writes it).
    pub message: String,
    pub actions: Vec<Action>,
}

impl Violation {
    /// True when the cluster refuses the object for it.
    pub fn denies(&self) -> bool {
        self.actions.contains(&Action::Deny)
    }
}

/// What the policies say of one object.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    /// Expressions that could not be evaluated on this object.
    pub errors: Vec<PolicyError>,
    /// Policies whose rules matched the object.
    pub matched: Vec<String>,
    /// Policies an exception lifted for the object, with the exception's name.
    pub excepted: Vec<(String, String)>,
}

struct Expr {
    source: String,
    program: Program,
}

struct Named {
    name: String,
    expr: Expr,
}

struct Validation {
    expr: Expr,
    message: Option<String>,
    message_expression: Option<Expr>,
}

/// One loaded `ValidatingPolicy`.
pub struct Policy {
    pub name: String,
    pub actions: Vec<Action>,
    /// `spec.matchConstraints`, as written.
    pub match_constraints: Value,
    match_conditions: Vec<Named>,
    variables: Vec<Named>,
    validations: Vec<Validation>,
}

/// One loaded `PolicyException`.
pub struct Exception {
    pub name: String,
    pub namespace: String,
    /// `(kind, name)` of the policies it lifts.
    pub policy_refs: Vec<(String, String)>,
    match_conditions: Vec<Named>,
}

/// The policies and exceptions of one tree or cluster.
pub struct PolicySet {
    env: Arc<Env>,
    pub policies: Vec<Policy>,
    pub exceptions: Vec<Exception>,
    /// Namespace labels by name, for `namespaceSelector`.
    namespaces: std::collections::HashMap<String, Value>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn env() -> Arc<Env> {
    let mut env = Env::stdlib();
    // The strings extension of cel-go is the Kubernetes strings library.
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension registers once");
    Arc::new(env)
}

impl PolicySet {
    /// True when [`PolicySet::load`] reads `object`: a ValidatingPolicy, a
    /// PolicyException or a Namespace.
    pub fn reads(object: &Value) -> bool {
        let api = str_at(object, &["apiVersion"]).unwrap_or_default();
        let kind = str_at(object, &["kind"]).unwrap_or_default();
        let group = api.split_once('/').map(|(g, _)| g).unwrap_or("");
        matches!(
            (group, kind),
            (GROUP, "ValidatingPolicy") | (GROUP, "PolicyException")
        ) || (api == "v1" && kind == "Namespace")
    }

    /// Loads every ValidatingPolicy and PolicyException among `objects`, and
    /// remembers the Namespaces' labels; other objects are ignored.
    pub fn load<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self, Vec<PolicyError>> {
        let env = env();
        let mut set = PolicySet {
            env,
            policies: Vec::new(),
            exceptions: Vec::new(),
            namespaces: Default::default(),
        };
        let mut errors = Vec::new();
        for o in objects {
            let api = str_at(o, &["apiVersion"]).unwrap_or_default();
            let kind = str_at(o, &["kind"]).unwrap_or_default();
            let group = api.split_once('/').map(|(g, _)| g).unwrap_or("");
            match (group, kind) {
                (GROUP, "ValidatingPolicy") => match set.policy(o) {
                    Ok(p) => set.policies.push(p),
                    Err(e) => errors.extend(e),
                },
                (GROUP, "PolicyException") => match set.exception(o) {
                    Ok(e) => set.exceptions.push(e),
                    Err(e) => errors.extend(e),
                },
                ("", "Namespace") if api == "v1" => {
                    if let Some(name) = str_at(o, &["metadata", "name"]) {
                        let labels = o
                            .pointer("/metadata/labels")
                            .cloned()
                            .unwrap_or_else(|| Value::Object(Default::default()));
                        set.namespaces.insert(name.to_string(), labels);
                    }
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// True when there is no policy to apply.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    fn compile(&self, kind: &str, name: &str, source: &str) -> Result<Expr, PolicyError> {
        let program = self.env.compile(source).map_err(|e| PolicyError::Compile {
            kind: kind.into(),
            name: name.into(),
            expression: source.into(),
            message: e.to_string(),
        })?;
        Ok(Expr {
            source: source.into(),
            program,
        })
    }

    fn named_list(
        &self,
        kind: &str,
        name: &str,
        list: Option<&Value>,
        errors: &mut Vec<PolicyError>,
    ) -> Vec<Named> {
        let mut out = Vec::new();
        for item in list.and_then(Value::as_array).into_iter().flatten() {
            let (Some(n), Some(e)) = (str_at(item, &["name"]), str_at(item, &["expression"]))
            else {
                errors.push(PolicyError::Invalid {
                    kind: kind.into(),
                    name: name.into(),
                    message: format!(
                        "a condition or variable needs a name and an expression: {item}"
                    ),
                });
                continue;
            };
            match self.compile(kind, name, e) {
                Ok(expr) => out.push(Named {
                    name: n.to_string(),
                    expr,
                }),
                Err(err) => errors.push(err),
            }
        }
        out
    }

    fn policy(&self, o: &Value) -> Result<Policy, Vec<PolicyError>> {
        const KIND: &str = "ValidatingPolicy";
        let name = str_at(o, &["metadata", "name"])
            .unwrap_or("<unnamed>")
            .to_string();
        let invalid = |message: String| PolicyError::Invalid {
            kind: KIND.into(),
            name: name.clone(),
            message,
        };
        let spec = o.get("spec").cloned().unwrap_or(Value::Null);
        let mut errors = Vec::new();
        let mut actions = Vec::new();
        for a in spec
            .get("validationActions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match a.as_str() {
                Some("Deny") => actions.push(Action::Deny),
                Some("Audit") => actions.push(Action::Audit),
                Some("Warn") => actions.push(Action::Warn),
                _ => errors.push(invalid(format!("unknown validationAction {a}"))),
            }
        }
        if actions.is_empty() {
            errors.push(invalid("spec.validationActions is empty".into()));
        }
        let Some(constraints) = spec.get("matchConstraints").cloned() else {
            errors.push(invalid(
                "spec.matchConstraints is missing: the policy would match nothing".into(),
            ));
            return Err(errors);
        };
        if let Some(f) = str_at(&spec, &["failurePolicy"])
            && f != "Fail"
        {
            // An evaluation error is reported, never taken as a pass.
            errors.push(invalid(format!(
                "failurePolicy {f}: only Fail is judged offline (an error would pass silently)"
            )));
        }
        let match_conditions =
            self.named_list(KIND, &name, spec.get("matchConditions"), &mut errors);
        let variables = self.named_list(KIND, &name, spec.get("variables"), &mut errors);
        let mut validations = Vec::new();
        for v in spec
            .get("validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(e) = str_at(v, &["expression"]) else {
                errors.push(invalid(format!("a validation without expression: {v}")));
                continue;
            };
            let expr = match self.compile(KIND, &name, e) {
                Ok(x) => x,
                Err(err) => {
                    errors.push(err);
                    continue;
                }
            };
            let message_expression = match str_at(v, &["messageExpression"]) {
                Some(m) => match self.compile(KIND, &name, m) {
                    Ok(x) => Some(x),
                    Err(err) => {
                        errors.push(err);
                        continue;
                    }
                },
                None => None,
            };
            validations.push(Validation {
                expr,
                message: str_at(v, &["message"]).map(str::to_string),
                message_expression,
            });
        }
        let written = spec
            .get("validations")
            .and_then(Value::as_array)
            .is_some_and(|v| !v.is_empty());
        if !written {
            errors.push(invalid("spec.validations is empty".into()));
        }
        if errors.is_empty() {
            Ok(Policy {
                name,
                actions,
                match_constraints: constraints,
                match_conditions,
                variables,
                validations,
            })
        } else {
            Err(errors)
        }
    }

    fn exception(&self, o: &Value) -> Result<Exception, Vec<PolicyError>> {
        const KIND: &str = "PolicyException";
        let name = str_at(o, &["metadata", "name"])
            .unwrap_or("<unnamed>")
            .to_string();
        let namespace = str_at(o, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        let spec = o.get("spec").cloned().unwrap_or(Value::Null);
        let mut errors = Vec::new();
        let policy_refs: Vec<(String, String)> = spec
            .get("policyRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                Some((
                    str_at(r, &["kind"])?.to_string(),
                    str_at(r, &["name"])?.to_string(),
                ))
            })
            .collect();
        if policy_refs.is_empty() {
            errors.push(PolicyError::Invalid {
                kind: KIND.into(),
                name: name.clone(),
                message: "spec.policyRefs names no policy".into(),
            });
        }
        let match_conditions =
            self.named_list(KIND, &name, spec.get("matchConditions"), &mut errors);
        if errors.is_empty() {
            Ok(Exception {
                name,
                namespace,
                policy_refs,
                match_conditions,
            })
        } else {
            Err(errors)
        }
    }

    /// Judges `object` as a CREATE request: every policy that matches it,
    /// unless an exception lifts that policy for it.
    pub fn evaluate(&self, object: &Value) -> Verdict {
        let mut verdict = Verdict::default();
        let namespace = str_at(object, &["metadata", "namespace"]);
        let namespace_object = namespace.map(|ns| {
            let mut labels = self
                .namespaces
                .get(ns)
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            if let Some(m) = labels.as_object_mut() {
                // The API server sets it on every Namespace.
                m.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(ns.into()),
                );
            }
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": labels}})
        });
        // Most objects match no policy: they are not given to CEL at all.
        let matching: Vec<&Policy> = self
            .policies
            .iter()
            .filter(|p| matching::matches(&p.match_constraints, object, namespace_object.as_ref()))
            .collect();
        if matching.is_empty() {
            return verdict;
        }
        let request = matching::request(object);
        let object_val = match cel::to_value(object) {
            Ok(v) => v,
            Err(e) => {
                verdict.errors.push(PolicyError::Invalid {
                    kind: "object".into(),
                    name: str_at(object, &["metadata", "name"])
                        .unwrap_or_default()
                        .into(),
                    message: format!("cannot be given to CEL: {e}"),
                });
                return verdict;
            }
        };
        let ns_val = namespace_object
            .as_ref()
            .and_then(|n| cel::to_value(n).ok())
            .unwrap_or(cel::Value::Null);
        let request_val = cel::to_value(&request).unwrap_or(cel::Value::Null);
        let mut root = Context::with_env(self.env.clone());
        k8s::register(&mut root);
        root.add_variable_from_value("object", object_val);
        root.add_variable_from_value("oldObject", cel::Value::Null);
        root.add_variable_from_value("params", cel::Value::Null);
        root.add_variable_from_value("namespaceObject", ns_val);
        root.add_variable_from_value("request", request_val);

        'policies: for policy in matching {
            let eval = |ctx: &Context, e: &Expr| -> Result<cel::Value, PolicyError> {
                e.program.execute(ctx).map_err(|err| PolicyError::Evaluate {
                    kind: "ValidatingPolicy".into(),
                    name: policy.name.clone(),
                    expression: e.source.clone(),
                    message: err.to_string(),
                })
            };
            let truth = |ctx: &Context, e: &Expr| -> Result<bool, PolicyError> {
                match eval(ctx, e)? {
                    cel::Value::Bool(b) => Ok(b),
                    other => Err(PolicyError::Evaluate {
                        kind: "ValidatingPolicy".into(),
                        name: policy.name.clone(),
                        expression: e.source.clone(),
                        message: format!("gives {other:?}, not a bool"),
                    }),
                }
            };
            for c in &policy.match_conditions {
                match truth(&root, &c.expr) {
                    Ok(true) => {}
                    Ok(false) => continue 'policies,
                    Err(e) => {
                        verdict.errors.push(e);
                        continue 'policies;
                    }
                }
            }
            verdict.matched.push(policy.name.clone());
            for ex in self.exceptions.iter().filter(|ex| {
                ex.policy_refs
                    .iter()
                    .any(|(k, n)| k == "ValidatingPolicy" && n == &policy.name)
            }) {
                let mut all = true;
                for c in &ex.match_conditions {
                    match c.expr.program.execute(&root) {
                        Ok(cel::Value::Bool(true)) => {}
                        Ok(cel::Value::Bool(false)) => {
                            all = false;
                            break;
                        }
                        other => {
                            verdict.errors.push(PolicyError::Evaluate {
                                kind: "PolicyException".into(),
                                name: ex.name.clone(),
                                expression: c.expr.source.clone(),
                                message: format!("{other:?}"),
                            });
                            all = false;
                            break;
                        }
                    }
                }
                if all {
                    verdict
                        .excepted
                        .push((policy.name.clone(), ex.name.clone()));
                    continue 'policies;
                }
            }
            // Variables in order, each seeing the ones before it.
            let mut vars: Vec<(String, cel::Value)> = Vec::new();
            let mut scope = root.new_inner_scope();
            scope.add_variable_from_value("variables", variables_map(&vars));
            for v in &policy.variables {
                match eval(&scope, &v.expr) {
                    Ok(value) => vars.push((v.name.clone(), value)),
                    Err(e) => {
                        verdict.errors.push(e);
                        continue 'policies;
                    }
                }
                scope.add_variable_from_value("variables", variables_map(&vars));
            }
            for v in &policy.validations {
                match truth(&scope, &v.expr) {
                    Ok(true) => {}
                    Ok(false) => {
                        let message = v
                            .message_expression
                            .as_ref()
                            .and_then(|m| match m.program.execute(&scope) {
                                Ok(cel::Value::String(s)) if !s.trim().is_empty() => {
                                    Some(s.to_string())
                                }
                                _ => None,
                            })
                            .or_else(|| v.message.clone())
                            .unwrap_or_else(|| format!("failed expression: {}", v.expr.source));
                        verdict.violations.push(Violation {
                            policy: policy.name.clone(),
                            expression: v.expr.source.clone(),
                            message,
                            actions: policy.actions.clone(),
                        });
                    }
                    Err(e) => verdict.errors.push(e),
                }
            }
        }
        verdict
    }
}

fn variables_map(vars: &[(String, cel::Value)]) -> cel::Value {
    let map: std::collections::HashMap<cel::objects::Key, cel::Value> = vars
        .iter()
        .map(|(k, v)| (cel::objects::Key::from(k.as_str()), v.clone()))
        .collect();
    cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, actions: &[&str], spec: Value) -> Value {
        let mut p = json!({"apiVersion": "policies.kyverno.io/v1alpha1", "kind": "ValidatingPolicy",
            "metadata": {"name": name},
            "spec": {"validationActions": actions, "matchConstraints": {"resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]}}});
        if let (Some(m), Some(s)) = (p["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in s {
                m.insert(k.clone(), v.clone());
            }
        }
        p
    }

    fn cm(ns: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}, "data": data})
    }

    #[test]
    fn a_false_validation_is_a_violation_with_the_rules_message() {
        let p = policy(
            "has-a",
            &["Deny"],
            json!({
            "variables": [{"name": "keys", "expression": "object.data"}],
            "validations": [
                {"expression": "'a' in variables.keys", "message": "needs a"},
                {"expression": "size(variables.keys) < 2", "messageExpression": "'too many: ' + string(size(variables.keys))"},
                {"expression": "!('z' in variables.keys)"}]}),
        );
        let set = PolicySet::load([&p]).unwrap();
        assert!(
            set.evaluate(&cm("x", json!({"a": "1"})))
                .violations
                .is_empty()
        );
        let v = set
            .evaluate(&cm("x", json!({"b": "1", "c": "2", "z": "3"})))
            .violations;
        let messages: Vec<&str> = v.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "needs a",
                "too many: 3",
                "failed expression: !('z' in variables.keys)"
            ]
        );
        assert!(v.iter().all(Violation::denies));
    }

    #[test]
    fn an_expression_that_cannot_be_evaluated_is_an_error_naming_it() {
        let p = policy(
            "broken",
            &["Audit"],
            json!({"validations": [{"expression": "object.spec.replicas > 1"}]}),
        );
        let set = PolicySet::load([&p]).unwrap();
        let verdict = set.evaluate(&cm("x", json!({})));
        assert!(verdict.violations.is_empty());
        assert_eq!(verdict.errors.len(), 1);
        let text = verdict.errors[0].to_string();
        assert!(
            text.contains("ValidatingPolicy broken") && text.contains("object.spec.replicas > 1"),
            "{text}"
        );
        // A validation that is not a bool is no pass either.
        let p = policy(
            "not-bool",
            &["Deny"],
            json!({"validations": [{"expression": "'yes'"}]}),
        );
        let verdict = PolicySet::load([&p]).unwrap().evaluate(&cm("x", json!({})));
        assert_eq!(verdict.errors.len(), 1, "{:?}", verdict.errors);
    }

    #[test]
    fn what_cannot_load_is_said() {
        let bad = policy(
            "bad",
            &["Deny"],
            json!({"validations": [{"expression": "object.("}]}),
        );
        let errors = PolicySet::load([&bad]).err().unwrap();
        assert!(
            matches!(&errors[0], PolicyError::Compile { name, .. } if name == "bad"),
            "{errors:?}"
        );
        let ignore = policy(
            "ignore",
            &["Deny"],
            json!({"failurePolicy": "Ignore", "validations": [{"expression": "true"}]}),
        );
        assert!(PolicySet::load([&ignore]).is_err());
        let none = policy(
            "none",
            &[],
            json!({"validations": [{"expression": "true"}]}),
        );
        assert!(PolicySet::load([&none]).is_err());
    }

    #[test]
    fn selectors_exceptions_and_actions() {
        let deny = policy(
            "no-z",
            &["Deny"],
            json!({"validations": [{"expression": "!('z' in object.data)", "message": "no z"}]}),
        );
        let mut deny = deny;
        deny["spec"]["matchConstraints"]["namespaceSelector"] =
            json!({"matchLabels": {"tier": "apps"}});
        let mut audit = policy(
            "no-z-audit",
            &["Audit"],
            json!({"validations": [{"expression": "!('z' in object.data)", "message": "no z"}]}),
        );
        audit["spec"]["matchConstraints"]["namespaceSelector"] =
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["apps"]}]});
        let exception = json!({"apiVersion": "policies.kyverno.io/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "lab", "namespace": "kyverno"},
            "spec": {"policyRefs": [{"kind": "ValidatingPolicy", "name": "no-z-audit"}],
                "matchConditions": [{"name": "lab", "expression": "object.metadata.namespace == 'lab'"}]}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"tier": "apps"}}});
        let set = PolicySet::load([&deny, &audit, &exception, &ns]).unwrap();
        let z = json!({"z": "1"});
        let shop = set.evaluate(&cm("shop", z.clone()));
        assert_eq!(shop.violations.len(), 1);
        assert_eq!(shop.violations[0].policy, "no-z");
        let other = set.evaluate(&cm("other", z.clone()));
        assert_eq!(other.violations.len(), 1);
        assert_eq!(other.violations[0].policy, "no-z-audit");
        assert!(!other.violations[0].denies());
        let lab = set.evaluate(&cm("lab", z));
        assert!(lab.violations.is_empty());
        assert_eq!(
            lab.excepted,
            [("no-z-audit".to_string(), "lab".to_string())]
        );
        // Not a ConfigMap: no rule matches.
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}, "data": {"z": ""}});
        assert!(set.evaluate(&secret).matched.is_empty());
    }
}
