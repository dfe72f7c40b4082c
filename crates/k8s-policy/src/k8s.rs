//! The Kubernetes CEL library functions the platform's policies use, beyond
//! the CEL standard library and the strings extension: the regex library's
//! `find` and `findAll` (k8s.io/apiserver/pkg/cel/library/regex.go), and the
//! quantity library's `quantity`, `isQuantity`, `sign`, `isGreaterThan`,
//! `isLessThan`, `compareTo` and `asApproximateFloat`
//! (k8s.io/apiserver/pkg/cel/library/quantity.go), compared as floats.

use std::sync::Arc;

use cel::extractors::This;
use cel::{Context, ExecutionError, Value};

fn compile(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| ExecutionError::function_error(function, e))
}

/// `'abc 123'.find('[0-9]+') == '123'`; `''` when nothing matches.
fn find(This(this): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    let re = compile("find", &pattern)?;
    Ok(Value::String(Arc::new(
        re.find(&this)
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
    )))
}

/// `'123 abc 456'.findAll('[0-9]+') == ['123', '456']`.
fn find_all(This(this): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    let re = compile("findAll", &pattern)?;
    Ok(Value::List(Arc::new(
        re.find_iter(&this)
            .map(|m| Value::String(Arc::new(m.as_str().to_string())))
            .collect(),
    )))
}

/// A parsed `resource.Quantity`, as the CEL value `quantity(...)` gives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KQuantity(f64);

// Parsing never yields NaN.
impl Eq for KQuantity {}

impl cel::objects::Opaque for KQuantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}

fn parse(function: &str, text: &str) -> Result<KQuantity, ExecutionError> {
    k8s_schema::formats::parse_quantity(text)
        .map(|q| KQuantity(q.0))
        .map_err(|e| ExecutionError::function_error(function, format!("{text:?}: {e}")))
}

fn quantity(text: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::Opaque(Arc::new(parse("quantity", &text)?)))
}

fn is_quantity(text: Arc<String>) -> bool {
    k8s_schema::formats::parse_quantity(&text).is_ok()
}

fn as_quantity(function: &str, v: &Value) -> Result<f64, ExecutionError> {
    match v {
        Value::Opaque(o) => o
            .downcast_ref::<KQuantity>()
            .map(|q| q.0)
            .ok_or_else(|| ExecutionError::function_error(function, "not a quantity")),
        other => Err(ExecutionError::function_error(
            function,
            format!("not a quantity: {other:?}"),
        )),
    }
}

fn compare(function: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, ExecutionError> {
    let (a, b) = (as_quantity(function, a)?, as_quantity(function, b)?);
    a.partial_cmp(&b)
        .ok_or_else(|| ExecutionError::function_error(function, "incomparable"))
}

fn is_greater_than(This(this): This<Value>, other: Value) -> Result<bool, ExecutionError> {
    Ok(compare("isGreaterThan", &this, &other)?.is_gt())
}

fn is_less_than(This(this): This<Value>, other: Value) -> Result<bool, ExecutionError> {
    Ok(compare("isLessThan", &this, &other)?.is_lt())
}

fn compare_to(This(this): This<Value>, other: Value) -> Result<i64, ExecutionError> {
    Ok(compare("compareTo", &this, &other)? as i64)
}

fn sign(This(this): This<Value>) -> Result<i64, ExecutionError> {
    let v = as_quantity("sign", &this)?;
    Ok(if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    })
}

fn as_approximate_float(This(this): This<Value>) -> Result<f64, ExecutionError> {
    as_quantity("asApproximateFloat", &this)
}

/// Adds the functions to a root context.
pub(crate) fn register(ctx: &mut Context) {
    // Names not in the standard library or the strings extension: these
    // registrations cannot collide.
    let _ = ctx.add_function("find", find);
    let _ = ctx.add_function("findAll", find_all);
    let _ = ctx.add_function("quantity", quantity);
    let _ = ctx.add_function("isQuantity", is_quantity);
    let _ = ctx.add_function("isGreaterThan", is_greater_than);
    let _ = ctx.add_function("isLessThan", is_less_than);
    let _ = ctx.add_function("compareTo", compare_to);
    let _ = ctx.add_function("sign", sign);
    let _ = ctx.add_function("asApproximateFloat", as_approximate_float);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> Value {
        let env = crate::env();
        let p = env.compile(src).unwrap();
        let mut ctx = Context::with_env(env);
        register(&mut ctx);
        p.execute(&ctx).unwrap()
    }

    #[test]
    fn find_and_find_all() {
        assert_eq!(eval("'abc 123'.find('[0-9]+')"), Value::from("123"));
        assert_eq!(eval("'abc'.find('[0-9]+')"), Value::from(""));
        assert_eq!(
            eval("'1 a 22'.findAll('[0-9]+') == ['1', '22']"),
            Value::Bool(true)
        );
        assert_eq!(eval("'a/b:1.2'.find(':[^/:@]+$')"), Value::from(":1.2"));
    }

    #[test]
    fn quantities() {
        let t = Value::Bool(true);
        assert_eq!(eval("quantity('500m').isLessThan(quantity('1'))"), t);
        assert_eq!(eval("quantity('1Gi').isGreaterThan(quantity('1G'))"), t);
        assert_eq!(eval("quantity('1000m').compareTo(quantity('1')) == 0"), t);
        assert_eq!(
            eval("quantity('0').sign() == 0 && quantity('-1').sign() == -1"),
            t
        );
        assert_eq!(eval("isQuantity('1Ki') && !isQuantity('1 apple')"), t);
        assert_eq!(eval("quantity(string(2)).asApproximateFloat() == 2.0"), t);
        let env = crate::env();
        let p = env.compile("quantity('lots')").unwrap();
        let mut ctx = Context::with_env(env);
        register(&mut ctx);
        assert!(
            p.execute(&ctx).is_err(),
            "an unparsable quantity is an error"
        );
    }

    #[test]
    fn strings_extension_is_there() {
        assert_eq!(
            eval("'A,B'.lowerAscii().split(',') == ['a', 'b']"),
            Value::Bool(true)
        );
    }
}
