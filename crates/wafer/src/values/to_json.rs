//! Component values → JSON.

use serde_json::{Map, Number, Value};
use wasmtime::component::Val;

/// Converts a value returned by a guest to JSON, following the mapping in
/// [`crate::values`]. Strings and field names are moved, not copied.
pub fn into_json(val: Val) -> Value {
    match val {
        Val::Bool(b) => Value::Bool(b),
        Val::S8(n) => Value::from(n),
        Val::U8(n) => Value::from(n),
        Val::S16(n) => Value::from(n),
        Val::U16(n) => Value::from(n),
        Val::S32(n) => Value::from(n),
        Val::U32(n) => Value::from(n),
        Val::S64(n) => Value::from(n),
        Val::U64(n) => Value::from(n),
        // Through the shortest decimal text, so 0.1f32 is written 0.1 and
        // not 0.10000000149011612.
        Val::Float32(f) => float(f.to_string().parse().unwrap_or(f64::from(f))),
        Val::Float64(f) => float(f),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.into_iter().map(into_json).collect())
        }
        Val::Map(pairs) if pairs.iter().all(|(k, _)| matches!(k, Val::String(_))) => Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| match k {
                    Val::String(k) => (k, into_json(v)),
                    _ => unreachable!("checked by the guard"),
                })
                .collect(),
        ),
        Val::Map(pairs) => Value::Array(
            pairs
                .into_iter()
                .map(|(k, v)| Value::Array(vec![into_json(k), into_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, v)| (name, into_json(v)))
                .collect(),
        ),
        Val::Variant(case, None) | Val::Enum(case) => Value::String(case),
        Val::Variant(case, Some(payload)) => single(case, into_json(*payload)),
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) if matches!(*inner, Val::Option(_)) => {
            single("some".into(), into_json(*inner))
        }
        Val::Option(Some(inner)) => into_json(*inner),
        Val::Result(Ok(payload)) => {
            single("ok".into(), payload.map_or(Value::Null, |p| into_json(*p)))
        }
        Val::Result(Err(payload)) => {
            single("err".into(), payload.map_or(Value::Null, |p| into_json(*p)))
        }
        Val::Flags(names) => Value::Array(names.into_iter().map(Value::String).collect()),
        // Functions that pass these are refused at load.
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

fn single(key: String, value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(key, value);
    Value::Object(map)
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}
