//! JSON ↔ WIT values: how arguments get in and results get out of a typed
//! (`abi: wit`) call.
//!
//! | WIT | JSON |
//! |---|---|
//! | `bool` | `true` / `false` |
//! | `s8` … `u64` | an integer, exact to 64 bits; out of range is an error |
//! | `f32`, `f64` | a number; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings |
//! | `char` | a one-character string |
//! | `string` | a string |
//! | `list<T>` (also `list<u8>`), `list<T, N>` | an array |
//! | `tuple<…>` | an array of exactly that length |
//! | `record` | an object; every field required except `option` ones; kebab-case keys kept; unknown keys are errors |
//! | `option<T>` | `null` or the value; `{"some": v}` where `T` is itself an option |
//! | `result<T, E>` | `{"ok": v}` / `{"err": e}` (`null` for no payload) |
//! | `variant` | `{"case": payload}`; a case without payload as `"case"` |
//! | `enum` | the case name (its index accepted) |
//! | `flags` | an array of the names that are set |
//! | `map<string, V>` | an object; other keys as an array of `[k, v]` pairs |
//!
//! Resources, futures and streams do not cross as JSON; functions that use
//! them are refused when they are loaded.

mod check;
mod from_json;
mod to_json;
mod wit_type;

use serde_json::Value;
pub use wasmtime::component::Val;
pub use wasmtime::component::types::Type;

pub use check::check_args;
pub use to_json::into_json;
pub use wit_type::{short_wit_type, wit_signature, wit_type};

use from_json::Path;

/// Arguments that do not fit a function's signature: where and why.
///
/// `Display`: `args[0].tags[2]: expected string, found number 5`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValueError {
    /// Where inside the arguments: `args`, `args[0]`, `args[0].tags[2]`.
    pub path: String,
    /// What is wrong, with the expected WIT type.
    pub message: String,
}

impl ValueError {
    fn at(path: Path, message: impl Into<String>) -> Self {
        ValueError {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// Converts JSON arguments to values for a function with `params`, moving
/// strings and arrays out of `args`.
///
/// # Errors
///
/// A wrong argument count, or the first argument that does not fit its
/// parameter's type, with the parameter's name and the path inside it.
///
/// ```
/// # use wasmtime::component::types::Type;
/// # use serde_json::json;
/// let params = [("a".to_string(), Type::S32), ("b".to_string(), Type::S32)];
/// let vals = wafer::values::args_from_json(&params, vec![json!(2), json!(40)]).unwrap();
/// assert_eq!(vals.len(), 2);
/// let err = wafer::values::args_from_json(&params, vec![json!(2), json!("x")]).unwrap_err();
/// assert_eq!(err.to_string(), "args[1] (b): expected s32, found string \"x\"");
/// ```
pub fn args_from_json(params: &[(String, Type)], args: Vec<Value>) -> Result<Vec<Val>, ValueError> {
    if args.len() != params.len() {
        let expected: Vec<String> = params
            .iter()
            .map(|(n, t)| format!("{n}: {}", short_wit_type(t)))
            .collect();
        return Err(ValueError {
            path: "args".into(),
            message: format!(
                "expected {} argument(s) ({}), found {}",
                params.len(),
                expected.join(", "),
                args.len()
            ),
        });
    }
    params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, ((name, ty), arg))| {
            from_json::from_json(ty, arg, Path::Arg(i)).map_err(|mut e| {
                let top = format!("args[{i}]");
                e.path = match e.path.strip_prefix(&top) {
                    Some(rest) => format!("{top} ({name}){rest}"),
                    None => e.path,
                };
                e
            })
        })
        .collect()
}

/// Converts one JSON value to a value of type `ty`; errors are located
/// from `args[0]`.
///
/// # Errors
///
/// The first place where `json` does not fit `ty`.
pub fn from_json(ty: &Type, json: Value) -> Result<Val, ValueError> {
    from_json::from_json(ty, json, Path::Arg(0))
}

/// A value written as text (a URL's path segment or query parameter) as
/// the JSON a parameter of type `ty` takes: the text itself for strings,
/// chars, enums and flags; otherwise the text read as JSON (`42`, `true`,
/// `[1, 2]`), or the text itself when it is not JSON.
///
/// ```
/// use serde_json::json;
/// use wasmtime::component::types::Type;
/// assert_eq!(wafer::values::json_from_text(&Type::String, "123"), json!("123"));
/// assert_eq!(wafer::values::json_from_text(&Type::S32, "123"), json!(123));
/// assert_eq!(wafer::values::json_from_text(&Type::S32, "abc"), json!("abc"));
/// ```
pub fn json_from_text(ty: &Type, text: &str) -> Value {
    match ty {
        Type::String | Type::Char | Type::Enum(_) => Value::String(text.to_string()),
        Type::Flags(_) => Value::Array(
            text.split(',')
                .filter(|f| !f.is_empty())
                .map(|f| Value::String(f.to_string()))
                .collect(),
        ),
        _ => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
    }
}
