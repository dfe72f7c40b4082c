//! The Kubernetes CEL library functions the platform's policies use, beyond
//! the CEL standard library and the strings extension: the regex library's
//! `find` and `findAll` (k8s.io/apiserver/pkg/cel/library/regex.go).

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

/// Adds the functions to a root context.
pub(crate) fn register(ctx: &mut Context) {
    // Names not in the standard library or the strings extension: these
    // registrations cannot collide.
    let _ = ctx.add_function("find", find);
    let _ = ctx.add_function("findAll", find_all);
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
    fn strings_extension_is_there() {
        assert_eq!(
            eval("'A,B'.lowerAscii().split(',') == ['a', 'b']"),
            Value::Bool(true)
        );
    }
}
