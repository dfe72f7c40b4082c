//! Validates a JSON value against a [`Compiled`] schema and reports every
//! violation with a JSON path (`spec.template.spec.containers[0].image`).

use serde::Serialize;
use serde_json::Value;

use super::compile::{Compiled, Node, NodeId, Ty};

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaError {
    /// Where, as a JSON path from the object root; empty for the root.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Validates `value`. `strict` rejects fields the schema does not list
/// (as `kubeconform -strict` does); explicit `additionalProperties: false` is
/// enforced either way.
pub fn validate(schema: &Compiled, value: &Value, strict: bool) -> Vec<SchemaError> {
    let mut v = Validator {
        schema,
        strict,
        errors: Vec::new(),
    };
    let mut path = String::new();
    v.check(schema.root, value, &mut path);
    v.errors
}

struct Validator<'a> {
    schema: &'a Compiled,
    strict: bool,
    errors: Vec<SchemaError>,
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(ty: Ty, value: &Value) -> bool {
    match ty {
        Ty::Object => value.is_object(),
        Ty::Array => value.is_array(),
        Ty::String => value.is_string(),
        Ty::Integer => is_integer(value),
        Ty::Number => value.is_number(),
        Ty::Boolean => value.is_boolean(),
        Ty::Null => value.is_null(),
    }
}

/// A short rendering of a value for messages.
fn show(value: &Value) -> String {
    let s = value.to_string();
    if s.len() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn push_key(path: &mut String, key: &str) {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    if simple {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push_str(&format!("[{}]", Value::String(key.to_string())));
    }
}

/// The known field closest to a misspelt one, when it is close enough.
fn suggest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    let mut best: Option<(&String, usize)> = None;
    for candidate in known {
        let d = edit_distance(&key.to_lowercase(), &candidate.to_lowercase());
        if d <= 2.max(key.len() / 4) && best.is_none_or(|(_, bd)| d < bd) {
            best = Some((candidate, d));
        }
    }
    best.map(|(c, _)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Validator<'_> {
    fn err(&mut self, path: &str, message: String) {
        self.errors.push(SchemaError {
            path: path.to_string(),
            message,
        });
    }

    fn check(&mut self, id: NodeId, value: &Value, path: &mut String) {
        let schema = self.schema;
        let node: &Node = schema.node(id);
        if value.is_null() {
            // As the API server: a nullable field keeps null; a defaulted one
            // gets its default (CRD defaulting; for built-in types the schema's
            // default is the Go zero value); a built-in field gets the zero
            // value its Go type decodes null to. Anything else must not be null.
            if node.nullable {
                return;
            }
            if let Some(d) = &node.default {
                return self.check(id, d, path);
            }
            if node.zero_null {
                if let Some(zero) = self.zero_value(id) {
                    self.check(id, &zero, path);
                }
                return;
            }
        }
        // Type.
        if node.int_or_string {
            if !(is_integer(value) || value.is_string()) {
                self.err(
                    path,
                    format!(
                        "expected integer or string, got {} {}",
                        type_of(value),
                        show(value)
                    ),
                );
                return;
            }
        } else if !node.types.is_empty() && !node.types.iter().any(|t| type_matches(*t, value)) {
            let expected: Vec<&str> = node.types.iter().map(|t| t.name()).collect();
            self.err(
                path,
                format!(
                    "expected {}, got {} {}",
                    expected.join(" or "),
                    type_of(value),
                    show(value)
                ),
            );
            return;
        }
        if !node.enum_values.is_empty() && !node.enum_values.iter().any(|e| enum_eq(e, value)) {
            let allowed: Vec<String> = node.enum_values.iter().map(show).collect();
            self.err(
                path,
                format!("{} is not one of [{}]", show(value), allowed.join(", ")),
            );
        }
        match value {
            Value::Object(map) => self.check_object(node, map, path),
            Value::Array(items) => {
                if let Some(min) = node.min_items
                    && (items.len() as u64) < min
                {
                    self.err(path, format!("has {} items, fewer than {min}", items.len()));
                }
                if let Some(max) = node.max_items
                    && (items.len() as u64) > max
                {
                    self.err(path, format!("has {} items, more than {max}", items.len()));
                }
                if let Some(item) = node.items {
                    for (i, v) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        self.check(item, v, path);
                        path.truncate(len);
                    }
                }
            }
            Value::String(s) => self.check_string(node, s, path),
            Value::Number(_) => self.check_number(node, value, path),
            _ => {}
        }
        // Combinators.
        for sub in node.all_of.clone() {
            self.check(sub, value, path);
        }
        if !node.any_of.is_empty() && !node.int_or_string {
            self.check_alternatives(&node.any_of.clone(), value, path, false);
        }
        if !node.one_of.is_empty() && !node.int_or_string {
            self.check_alternatives(&node.one_of.clone(), value, path, true);
        }
        if let Some(not) = node.not
            && self.trial(not, value, path).is_empty()
        {
            self.err(path, "matches a schema it must not match".into());
        }
    }

    /// A `null` field of an object that the API server treats as absent:
    /// CRDs prune non-nullable nulls without a default
    /// (`PruneNonNullableNullsWithoutDefaults` in apiextensions-apiserver);
    /// built-in types decode them to a zero value that means "unset".
    fn null_is_unset(&self, id: NodeId) -> bool {
        let node = self.schema.node(id);
        !node.nullable && node.default.is_none()
    }

    /// The Go zero value a built-in node decodes `null` to; `None` when it
    /// cannot be told (no type) or is no constraint (a Quantity's zero is 0).
    fn zero_value(&self, id: NodeId) -> Option<Value> {
        let node = self.schema.node(id);
        if node.int_or_string {
            return Some(Value::from(0));
        }
        if node.format.as_deref() == Some("quantity") {
            return None;
        }
        match node.types.first() {
            Some(Ty::Object) => Some(Value::Object(serde_json::Map::new())),
            Some(Ty::Array) => Some(Value::Array(Vec::new())),
            Some(Ty::String) => Some(Value::String(String::new())),
            Some(Ty::Integer | Ty::Number) => Some(Value::from(0)),
            Some(Ty::Boolean) => Some(Value::Bool(false)),
            Some(Ty::Null) => None,
            None => node.all_of.first().and_then(|r| self.zero_value(*r)),
        }
    }

    fn trial(&self, id: NodeId, value: &Value, path: &mut String) -> Vec<SchemaError> {
        let mut sub = Validator {
            schema: self.schema,
            strict: self.strict,
            errors: Vec::new(),
        };
        sub.check(id, value, path);
        sub.errors
    }

    fn check_alternatives(&mut self, alts: &[NodeId], value: &Value, path: &mut String, one: bool) {
        let results: Vec<Vec<SchemaError>> =
            alts.iter().map(|a| self.trial(*a, value, path)).collect();
        let passing = results.iter().filter(|r| r.is_empty()).count();
        if passing == 0 {
            // Types only: say which types are allowed.
            let simple: Option<Vec<&str>> = alts
                .iter()
                .map(|a| {
                    let n = self.schema.node(*a);
                    (n.types.len() == 1 && !n.has_properties && n.enum_values.is_empty())
                        .then(|| n.types[0].name())
                })
                .collect();
            match simple {
                Some(types) => self.err(
                    path,
                    format!(
                        "expected {}, got {} {}",
                        types.join(" or "),
                        type_of(value),
                        show(value)
                    ),
                ),
                None => {
                    let best = results.into_iter().min_by_key(Vec::len).unwrap_or_default();
                    if best.is_empty() {
                        self.err(path, "matches none of the allowed schemas".into());
                    } else {
                        self.errors.extend(best);
                    }
                }
            }
        } else if one && passing > 1 {
            // Kubernetes' oneOf for int-or-string/quantity never overlaps; a
            // structural CRD oneOf of `required` lists may.
            let all_required_only = alts.iter().all(|a| {
                let n = self.schema.node(*a);
                n.types.is_empty() && !n.has_properties
            });
            if !all_required_only {
                self.err(
                    path,
                    format!("matches {passing} schemas where exactly one is allowed"),
                );
            }
        }
    }

    fn check_object(
        &mut self,
        node: &Node,
        map: &serde_json::Map<String, Value>,
        path: &mut String,
    ) {
        for req in &node.required {
            let unset = match map.get(req) {
                None => true,
                Some(v) => {
                    v.is_null()
                        && node
                            .properties
                            .get(req)
                            .is_some_and(|c| self.null_is_unset(*c))
                }
            };
            if unset {
                let len = path.len();
                push_key(path, req);
                self.err(path, "required field is missing".into());
                path.truncate(len);
            }
        }
        if let Some(min) = node.min_properties
            && (map.len() as u64) < min
        {
            self.err(path, format!("has {} fields, fewer than {min}", map.len()));
        }
        if let Some(max) = node.max_properties
            && (map.len() as u64) > max
        {
            self.err(path, format!("has {} fields, more than {max}", map.len()));
        }
        if node.embedded {
            for key in ["apiVersion", "kind"] {
                if !map.get(key).is_some_and(Value::is_string) {
                    let len = path.len();
                    push_key(path, key);
                    self.err(
                        path,
                        "an embedded resource needs a string apiVersion and kind".into(),
                    );
                    path.truncate(len);
                }
            }
        }
        let reject_unknown = node.additional_false || (self.strict && node.closed());
        for (key, v) in map {
            let len = path.len();
            push_key(path, key);
            if let Some(child) = node.properties.get(key) {
                if !(v.is_null() && self.null_is_unset(*child)) {
                    self.check(*child, v, path);
                }
            } else if let Some(add) = node.additional {
                if !(v.is_null() && self.null_is_unset(add)) {
                    self.check(add, v, path);
                }
            } else if node.embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                // Embedded resources always admit their type meta and metadata.
            } else if reject_unknown {
                let hint = suggest(key, node.properties.keys())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.err(path, format!("unknown field {key:?}{hint}"));
            }
            path.truncate(len);
        }
    }

    fn check_string(&mut self, node: &Node, s: &str, path: &str) {
        let len = s.chars().count() as u64;
        if let Some(min) = node.min_length
            && len < min
        {
            self.err(
                path,
                format!(
                    "{} is shorter than {min} characters",
                    show(&Value::String(s.into()))
                ),
            );
        }
        if let Some(max) = node.max_length
            && len > max
        {
            self.err(path, format!("is longer than {max} characters"));
        }
        if let Some(problem) = format_problem(node, s) {
            self.err(
                path,
                format!("{} {problem}", show(&Value::String(s.into()))),
            );
        }
        if let Some(re) = node.pattern_regex()
            && !re.is_match(s)
        {
            self.err(
                path,
                format!(
                    "{} does not match pattern {}",
                    show(&Value::String(s.into())),
                    node.pattern.as_deref().unwrap_or_default()
                ),
            );
        }
    }

    fn check_number(&mut self, node: &Node, value: &Value, path: &str) {
        let Some(n) = value.as_f64() else { return };
        if let Some(min) = node.minimum
            && (n < min || (node.exclusive_minimum && n == min))
        {
            self.err(
                path,
                format!("{} is less than the minimum {min}", show(value)),
            );
        }
        if let Some(max) = node.maximum
            && (n > max || (node.exclusive_maximum && n == max))
        {
            self.err(
                path,
                format!("{} is greater than the maximum {max}", show(value)),
            );
        }
        match node.format.as_deref() {
            Some("int32")
                if is_integer(value) && !(i32::MIN as f64..=i32::MAX as f64).contains(&n) =>
            {
                self.err(path, format!("{} does not fit in int32", show(value)));
            }
            Some("int64") if is_integer(value) && !fits_i64(value) => {
                self.err(path, format!("{} does not fit in int64", show(value)));
            }
            _ => {}
        }
    }
}

fn enum_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn fits_i64(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64()
                || (!n.is_u64()
                    && n.as_f64().is_some_and(|f| {
                        (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                    }))
        }
        _ => true,
    }
}

/// What is wrong with a string under its `format`, if anything. Built-in
/// nodes follow the Go decoder of their type; CRD nodes follow the format
/// registry of the API server's OpenAPI validator (kube-openapi strfmt).
fn format_problem(node: &Node, s: &str) -> Option<&'static str> {
    let ok = match node.format.as_deref()? {
        "date-time" if node.zero_null => super::formats::is_rfc3339(s),
        "date-time" | "datetime" => super::formats::is_strfmt_date_time(s),
        "byte" if node.zero_null => super::formats::is_go_base64(s),
        "byte" => super::formats::is_strfmt_base64(s),
        "quantity" => super::formats::parse_quantity(s).is_ok(),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match node.format.as_deref() {
        Some("byte") => "is not base64 (format byte)",
        Some("quantity") => {
            "is not a quantity: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        }
        _ => "is not an RFC 3339 date-time (format date-time)",
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::compile::{Compiler, NoLoader};

    fn compile(schema: Value, builtin: bool) -> Compiled {
        let mut c = Compiler::new(&NoLoader);
        c.builtin = builtin;
        c.add_document("s", Arc::new(schema));
        let root = c.compile_pointer("s", "").unwrap();
        c.finish(root)
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "duration": {"type": "string"},
            "mode": {"type": "string", "default": "fast", "enum": ["fast", "slow"]},
            "note": {"type": "string", "nullable": true},
            "items": {"type": "array", "items": {"type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}}}},
        }})
    }

    #[test]
    fn null_is_unset_unless_nullable_or_defaulted() {
        for builtin in [false, true] {
            let c = compile(schema(), builtin);
            // Optional nulls are pruned (CRD) or unset (built-in); nullable keeps null.
            let ok = json!({"name": "a", "duration": null, "mode": null, "note": null});
            assert!(validate(&c, &ok, true).is_empty(), "{builtin}");
            // A required null is a missing field either way.
            let errors = validate(&c, &json!({"name": null}), true);
            assert_eq!(errors.len(), 1, "{builtin}: {errors:?}");
            assert_eq!(errors[0].path, "name");
        }
    }

    #[test]
    fn null_list_items_differ_between_crds_and_built_in_types() {
        let obj = json!({"name": "a", "items": [null]});
        // CRDs do not prune inside lists: null is not an object.
        let crd = validate(&compile(schema(), false), &obj, true);
        assert!(crd[0].message.contains("got null"), "{crd:?}");
        // A built-in list item decodes to the zero struct, whose required
        // fields are then missing.
        let builtin = validate(&compile(schema(), true), &obj, true);
        assert_eq!(builtin[0].path, "items[0].id", "{builtin:?}");
    }

    #[test]
    fn formats() {
        let c = compile(
            json!({"type": "object", "properties": {
                "t": {"type": "string", "format": "date-time"},
                "b": {"type": "string", "format": "byte"},
                "n": {"type": "integer", "format": "int64"},
            }}),
            true,
        );
        assert!(
            validate(
                &c,
                &json!({"t": "2024-01-01T00:00:00Z", "b": "YQ==", "n": 1}),
                true
            )
            .is_empty()
        );
        let errors = validate(
            &c,
            &json!({"t": "yesterday", "b": "a!", "n": 18_446_744_073_709_551_615u64}),
            true,
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
