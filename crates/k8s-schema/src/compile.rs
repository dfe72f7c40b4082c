//! Compiles an OpenAPI v3 schema (Kubernetes' dialect, which is also what CRDs
//! use) or a JSON schema into a flat arena of [`Node`]s, resolving `$ref`s once.
//! Recursive definitions become cycles in the arena, never infinite trees.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bump when the compiled form or its meaning changes: it keys the disk cache.
pub const COMPILER_VERSION: u32 = 4;

/// The OpenAPI name of `resource.Quantity` (CPU, memory, storage sizes).
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// A JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ty {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

impl Ty {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "object" => Ty::Object,
            "array" => Ty::Array,
            "string" => Ty::String,
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "boolean" => Ty::Boolean,
            "null" => Ty::Null,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Ty::Object => "object",
            Ty::Array => "array",
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::Boolean => "boolean",
            Ty::Null => "null",
        }
    }
}

/// Index of a node in [`Compiled::nodes`].
pub type NodeId = u32;

/// One compiled schema node. Only the keywords that validation uses are kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Node {
    /// Allowed types; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<Ty>,
    /// `null` is a value here (OpenAPI `nullable` or `type: null`). Elsewhere a
    /// `null` field means "unset" (see [`Node::default`] and [`Node::zero_null`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
    /// `default`: what the API server puts in place of an absent or `null`
    /// field (CRD defaulting; built-in schemas list the Go zero value of
    /// value-typed fields, such as `{}` for a struct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A node of a built-in type: JSON `null` decodes to the Go zero value
    /// (`{}`, `""`, `0`, `false`, an empty list), which is then validated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub zero_null: bool,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, NodeId>,
    /// The schema had a `properties` keyword (even an empty one).
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_properties: bool,
    /// `additionalProperties: <schema>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<NodeId>,
    /// `additionalProperties: false`, always enforced.
    #[serde(default, skip_serializing_if = "is_false")]
    pub additional_false: bool,
    /// `additionalProperties: true` was explicit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub additional_true: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub int_or_string: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub preserve_unknown: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub embedded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(skip)]
    pub pattern_re: OnceLock<Option<Arc<regex::Regex>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub exclusive_minimum: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub exclusive_maximum: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_properties: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_properties: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<NodeId>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Node {
    /// Unknown keys are rejected here in strict mode: the schema lists its
    /// properties and says nothing that admits others (kubeconform -strict).
    pub fn closed(&self) -> bool {
        self.has_properties
            && self.additional.is_none()
            && !self.additional_true
            && !self.preserve_unknown
    }

    /// The compiled `pattern`, or `None` when it is absent or not valid here.
    pub fn pattern_regex(&self) -> Option<Arc<regex::Regex>> {
        self.pattern_re
            .get_or_init(|| {
                self.pattern
                    .as_deref()
                    .and_then(|p| regex::Regex::new(p).ok())
                    .map(Arc::new)
            })
            .clone()
    }
}

/// A compiled kind: an arena of nodes and its root.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Compiled {
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

impl Compiled {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    pub fn root_node(&self) -> &Node {
        self.node(self.root)
    }
}

/// Loads a referenced document by id (a path or URL) for cross-document refs.
pub trait DocLoader {
    fn load(&self, base: &str, reference: &str) -> Option<(String, Arc<Value>)>;
}

/// A loader that knows only the documents it was given.
pub struct NoLoader;

impl DocLoader for NoLoader {
    fn load(&self, _: &str, _: &str) -> Option<(String, Arc<Value>)> {
        None
    }
}

/// Builds one [`Compiled`] arena; can compile several roots into it.
pub struct Compiler<'a> {
    nodes: Vec<Node>,
    memo: HashMap<String, NodeId>,
    loader: &'a dyn DocLoader,
    docs: HashMap<String, Arc<Value>>,
    /// Nodes of a built-in type: `null` decodes to the Go zero value.
    pub builtin: bool,
}

impl<'a> Compiler<'a> {
    pub fn new(loader: &'a dyn DocLoader) -> Self {
        Self {
            nodes: Vec::new(),
            memo: HashMap::new(),
            loader,
            docs: HashMap::new(),
            builtin: false,
        }
    }

    /// Registers a document so `$ref`s into it resolve without the loader.
    pub fn add_document(&mut self, id: &str, doc: Arc<Value>) {
        self.docs.insert(id.to_string(), doc);
    }

    /// Compiles the schema at JSON pointer `pointer` of document `doc_id`.
    pub fn compile_pointer(&mut self, doc_id: &str, pointer: &str) -> Option<NodeId> {
        let key = format!("{doc_id}#{pointer}");
        if let Some(id) = self.memo.get(&key) {
            return Some(*id);
        }
        let doc = self.docs.get(doc_id)?.clone();
        let schema = doc.pointer(pointer)?;
        let id = self.alloc();
        self.memo.insert(key, id);
        let mut node = self.build(schema, doc_id);
        // A Quantity is a plain string in OpenAPI; the API server parses it
        // (resource.ParseQuantity) while decoding, so give it a format we check.
        if pointer.ends_with(QUANTITY) && node.format.is_none() {
            node.format = Some("quantity".into());
        }
        self.nodes[id as usize] = node;
        Some(id)
    }

    /// Compiles an inline schema value whose `$ref`s resolve against `doc_id`.
    pub fn compile_value(&mut self, schema: &Value, doc_id: &str) -> NodeId {
        if let Some(target) = self.single_ref(schema)
            && let Some(id) = self.resolve_ref(&target, doc_id)
        {
            return id;
        }
        let id = self.alloc();
        let node = self.build(schema, doc_id);
        self.nodes[id as usize] = node;
        id
    }

    /// Replaces property `name` of node `parent` (used to graft ObjectMeta
    /// into CRD schemas, whose `metadata` is only `type: object`).
    pub fn set_property(&mut self, parent: NodeId, name: &str, child: NodeId) {
        let node = &mut self.nodes[parent as usize];
        node.properties.insert(name.to_string(), child);
        node.has_properties = true;
    }

    pub fn finish(self, root: NodeId) -> Compiled {
        Compiled {
            nodes: self.nodes,
            root,
        }
    }

    fn alloc(&mut self) -> NodeId {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as NodeId
    }

    /// `{$ref}` or `{allOf: [{$ref}]}` with nothing else that validates:
    /// the node is the referenced one.
    fn single_ref(&self, schema: &Value) -> Option<String> {
        let map = schema.as_object()?;
        let validating = |k: &str| {
            !matches!(
                k,
                "description" | "default" | "example" | "title" | "$ref" | "allOf"
            ) && !k.starts_with("x-kubernetes-patch")
                && k != "x-kubernetes-list-type"
                && k != "x-kubernetes-list-map-keys"
                && k != "x-kubernetes-map-type"
        };
        if map.keys().any(|k| validating(k)) {
            return None;
        }
        if let Some(r) = map.get("$ref").and_then(Value::as_str) {
            if map.contains_key("allOf") {
                return None;
            }
            return Some(r.to_string());
        }
        let all = map.get("allOf")?.as_array()?;
        if all.len() != 1 {
            return None;
        }
        let inner = all[0].as_object()?;
        if inner.len() != 1 {
            return None;
        }
        inner
            .get("$ref")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn resolve_ref(&mut self, reference: &str, doc_id: &str) -> Option<NodeId> {
        let (file, pointer) = match reference.split_once('#') {
            Some((file, pointer)) => (file, pointer),
            None => (reference, ""),
        };
        let target_doc = if file.is_empty() {
            doc_id.to_string()
        } else {
            let (id, doc) = self.loader.load(doc_id, file)?;
            self.docs.entry(id.clone()).or_insert(doc);
            id
        };
        self.compile_pointer(&target_doc, pointer)
    }

    fn build(&mut self, schema: &Value, doc_id: &str) -> Node {
        let mut node = Node {
            zero_null: self.builtin,
            ..Node::default()
        };
        let Some(map) = schema.as_object() else {
            // `true` / `{}`: anything; `false`: nothing.
            if schema == &Value::Bool(false) {
                node.not = Some(self.any_node());
            }
            return node;
        };
        if let Some(r) = map.get("$ref").and_then(Value::as_str)
            && let Some(id) = self.resolve_ref(r, doc_id)
        {
            node.all_of.push(id);
        }
        match map.get("type") {
            Some(Value::String(t)) => node.types.extend(Ty::parse(t)),
            Some(Value::Array(ts)) => node
                .types
                .extend(ts.iter().filter_map(Value::as_str).filter_map(Ty::parse)),
            _ => {}
        }
        if node.types.contains(&Ty::Null) {
            node.nullable = true;
        }
        if map.get("nullable") == Some(&Value::Bool(true)) {
            node.nullable = true;
        }
        node.default = map.get("default").filter(|d| !d.is_null()).cloned();
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            node.has_properties = true;
            for (name, sub) in props {
                let id = self.compile_value(sub, doc_id);
                node.properties.insert(name.clone(), id);
            }
        }
        match map.get("additionalProperties") {
            Some(Value::Bool(false)) => node.additional_false = true,
            Some(Value::Bool(true)) => node.additional_true = true,
            Some(sub @ Value::Object(_)) => node.additional = Some(self.compile_value(sub, doc_id)),
            _ => {}
        }
        if let Some(req) = map.get("required").and_then(Value::as_array) {
            node.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        match map.get("items") {
            Some(sub @ Value::Object(_)) => node.items = Some(self.compile_value(sub, doc_id)),
            Some(Value::Array(subs)) if !subs.is_empty() => {
                node.items = Some(self.compile_value(&subs[0], doc_id))
            }
            _ => {}
        }
        if let Some(values) = map.get("enum").and_then(Value::as_array) {
            node.enum_values = values.clone();
        }
        let flag = |k: &str| map.get(k) == Some(&Value::Bool(true));
        node.int_or_string = flag("x-kubernetes-int-or-string");
        node.preserve_unknown = flag("x-kubernetes-preserve-unknown-fields");
        node.embedded = flag("x-kubernetes-embedded-resource");
        node.format = map
            .get("format")
            .and_then(Value::as_str)
            .map(str::to_string);
        node.pattern = map
            .get("pattern")
            .and_then(Value::as_str)
            .map(str::to_string);
        node.minimum = map.get("minimum").and_then(Value::as_f64);
        node.maximum = map.get("maximum").and_then(Value::as_f64);
        match map.get("exclusiveMinimum") {
            Some(Value::Bool(b)) => node.exclusive_minimum = *b,
            Some(Value::Number(n)) => {
                node.minimum = n.as_f64();
                node.exclusive_minimum = true;
            }
            _ => {}
        }
        match map.get("exclusiveMaximum") {
            Some(Value::Bool(b)) => node.exclusive_maximum = *b,
            Some(Value::Number(n)) => {
                node.maximum = n.as_f64();
                node.exclusive_maximum = true;
            }
            _ => {}
        }
        let uint = |k: &str| map.get(k).and_then(Value::as_u64);
        node.min_length = uint("minLength");
        node.max_length = uint("maxLength");
        node.min_items = uint("minItems");
        node.max_items = uint("maxItems");
        node.min_properties = uint("minProperties");
        node.max_properties = uint("maxProperties");
        for (key, out) in [("allOf", 0), ("anyOf", 1), ("oneOf", 2)] {
            if let Some(subs) = map.get(key).and_then(Value::as_array) {
                let ids: Vec<NodeId> = subs.iter().map(|s| self.compile_value(s, doc_id)).collect();
                match out {
                    0 => node.all_of.extend(ids),
                    1 => node.any_of = ids,
                    _ => node.one_of = ids,
                }
            }
        }
        if let Some(sub) = map.get("not") {
            node.not = Some(self.compile_value(sub, doc_id));
        }
        node
    }

    fn any_node(&mut self) -> NodeId {
        let id = self.alloc();
        self.nodes[id as usize].nullable = true;
        id
    }
}
