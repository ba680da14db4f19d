//! JSON → component values, checked against the WIT type, with the path of
//! the first mismatch (`args[0].tags[2]`).

use std::fmt;

use serde_json::{Number, Value};
use wasmtime::component::Val;
use wasmtime::component::types::{OptionType, Type};

use super::ValueError;
use super::wit_type::short_wit_type;

/// Where a value sits inside the arguments. Rendered only on error, so the
/// happy path never formats a string.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Arg(usize),
    Index(&'a Path<'a>, usize),
    Field(&'a Path<'a>, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Arg(i) => write!(f, "args[{i}]"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

type Converted = Result<Val, ValueError>;

fn mismatch(path: Path, ty: &Type, json: &Value) -> ValueError {
    ValueError::at(
        path,
        format!("expected {}, found {}", short_wit_type(ty), describe(json)),
    )
}

/// A short description of a JSON value for error messages.
fn describe(json: &Value) -> String {
    let text = match json {
        Value::Null => return "null".into(),
        Value::Bool(b) => return format!("boolean {b}"),
        Value::Number(n) => return format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(a) => return format!("an array of {}", a.len()),
        Value::Object(_) => return "an object".into(),
    };
    if text.len() > 40 {
        format!("{}…\"", &text[..text.floor_char_boundary(38)])
    } else {
        text
    }
}

/// Converts `json` to a value of type `ty`, moving its strings and arrays
/// rather than copying them.
pub(crate) fn from_json(ty: &Type, json: Value, path: Path) -> Converted {
    match (ty, json) {
        (Type::Bool, Value::Bool(b)) => Ok(Val::Bool(b)),
        (Type::S8, Value::Number(n)) => integer(&n, ty, path).map(Val::S8),
        (Type::U8, Value::Number(n)) => integer(&n, ty, path).map(Val::U8),
        (Type::S16, Value::Number(n)) => integer(&n, ty, path).map(Val::S16),
        (Type::U16, Value::Number(n)) => integer(&n, ty, path).map(Val::U16),
        (Type::S32, Value::Number(n)) => integer(&n, ty, path).map(Val::S32),
        (Type::U32, Value::Number(n)) => integer(&n, ty, path).map(Val::U32),
        (Type::S64, Value::Number(n)) => integer(&n, ty, path).map(Val::S64),
        (Type::U64, Value::Number(n)) => integer(&n, ty, path).map(Val::U64),
        (Type::Float32, json) => float(&json)
            .filter(|f| !f.is_finite() || f.abs() <= f64::from(f32::MAX))
            .map(|f| Val::Float32(f as f32))
            .ok_or_else(|| mismatch(path, ty, &json)),
        (Type::Float64, json) => float(&json)
            .map(Val::Float64)
            .ok_or_else(|| mismatch(path, ty, &json)),
        (Type::Char, Value::String(s)) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Val::Char(c)),
                _ => Err(mismatch(path, ty, &Value::String(s))),
            }
        }
        (Type::String, Value::String(s)) => Ok(Val::String(s)),
        (Type::List(list), Value::Array(items)) => elements(&list.ty(), items, path).map(Val::List),
        (Type::FixedLengthList(list), Value::Array(items))
            if items.len() == list.len() as usize =>
        {
            elements(&list.ty(), items, path).map(Val::FixedLengthList)
        }
        (Type::Tuple(tuple), Value::Array(items)) if items.len() == tuple.types().len() => tuple
            .types()
            .zip(items)
            .enumerate()
            .map(|(i, (ty, item))| from_json(&ty, item, Path::Index(&path, i)))
            .collect::<Result<_, _>>()
            .map(Val::Tuple),
        (Type::Map(map), Value::Object(object)) if map.key() == Type::String => {
            let value_ty = map.value();
            let mut pairs = Vec::with_capacity(object.len());
            for (k, v) in object {
                let value = from_json(&value_ty, v, Path::Field(&path, &k))?;
                pairs.push((Val::String(k), value));
            }
            Ok(Val::Map(pairs))
        }
        (Type::Map(map), Value::Array(pairs)) => pairs
            .into_iter()
            .enumerate()
            .map(|(i, pair)| {
                let at = Path::Index(&path, i);
                match pair {
                    Value::Array(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        let (k, v) = (kv.next().unwrap(), kv.next().unwrap());
                        Ok((
                            from_json(&map.key(), k, at)?,
                            from_json(&map.value(), v, at)?,
                        ))
                    }
                    other => Err(ValueError::at(
                        at,
                        format!("expected a [key, value] pair, found {}", describe(&other)),
                    )),
                }
            })
            .collect::<Result<_, _>>()
            .map(Val::Map),
        (Type::Record(record), Value::Object(mut object)) => {
            let mut fields = Vec::with_capacity(record.fields().len());
            for field in record.fields() {
                let at = Path::Field(&path, field.name);
                let value = match (object.remove(field.name), &field.ty) {
                    (Some(value), ty) => from_json(ty, value, at)?,
                    (None, Type::Option(_)) => Val::Option(None),
                    (None, ty) => {
                        return Err(ValueError::at(
                            at,
                            format!("missing field (expected {})", short_wit_type(ty)),
                        ));
                    }
                };
                fields.push((field.name.to_string(), value));
            }
            if let Some(extra) = object.keys().next() {
                let message = format!("unknown field (expected {})", short_wit_type(ty));
                return Err(ValueError::at(Path::Field(&path, extra), message));
            }
            Ok(Val::Record(fields))
        }
        (Type::Variant(variant), Value::String(name)) => {
            match variant.cases().find(|c| c.name == name) {
                Some(case) if case.ty.is_none() => Ok(Val::Variant(name, None)),
                Some(_) => Err(ValueError::at(
                    path,
                    format!("case `{name}` needs a payload: {{\"{name}\": …}}"),
                )),
                None => Err(mismatch(path, ty, &Value::String(name))),
            }
        }
        (Type::Variant(variant), Value::Object(object)) if object.len() == 1 => {
            let (name, payload) = object.into_iter().next().unwrap();
            let Some(case) = variant.cases().find(|c| c.name == name) else {
                return Err(ValueError::at(
                    path,
                    format!("expected {}, found case `{name}`", short_wit_type(ty)),
                ));
            };
            let at = Path::Field(&path, &name);
            let payload = match (case.ty, payload) {
                (None, Value::Null) => None,
                (None, _) => return Err(ValueError::at(at, "this case has no payload; give null")),
                (Some(ty), payload) => Some(Box::new(from_json(&ty, payload, at)?)),
            };
            Ok(Val::Variant(name, payload))
        }
        (Type::Enum(e), Value::String(name)) if e.names().any(|n| n == name) => Ok(Val::Enum(name)),
        (Type::Enum(e), Value::Number(n)) => n
            .as_u64()
            .and_then(|i| e.names().nth(usize::try_from(i).ok()?))
            .map(|name| Val::Enum(name.to_string()))
            .ok_or_else(|| mismatch(path, ty, &Value::Number(n))),
        (Type::Option(_), Value::Null) => Ok(Val::Option(None)),
        (Type::Option(option), json) => some(option, json, path),
        (Type::Result(result), Value::Object(object)) if object.len() == 1 => {
            let (key, payload) = object.into_iter().next().unwrap();
            let (payload_ty, is_ok) = match key.as_str() {
                "ok" => (result.ok(), true),
                "err" => (result.err(), false),
                _ => {
                    return Err(ValueError::at(
                        path,
                        format!("expected {}, found case `{key}`", short_wit_type(ty)),
                    ));
                }
            };
            let at = Path::Field(&path, &key);
            let payload = match (payload_ty, payload) {
                (None, Value::Null) => None,
                (None, _) => {
                    return Err(ValueError::at(
                        at,
                        "this result case has no payload; give null",
                    ));
                }
                (Some(ty), payload) => Some(Box::new(from_json(&ty, payload, at)?)),
            };
            Ok(Val::Result(if is_ok { Ok(payload) } else { Err(payload) }))
        }
        (Type::Flags(flags), Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(name) if flags.names().any(|n| n == name) => Ok(name),
                other => Err(ValueError::at(
                    Path::Index(&path, i),
                    format!(
                        "expected a flag of {}, found {}",
                        short_wit_type(ty),
                        describe(&other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()
            .map(Val::Flags),
        (
            Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext,
            _,
        ) => Err(ValueError::at(
            path,
            format!("{} cannot be passed as JSON", short_wit_type(ty)),
        )),
        (ty, json) => Err(mismatch(path, ty, &json)),
    }
}

fn elements(ty: &Type, items: Vec<Value>, path: Path) -> Result<Vec<Val>, ValueError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| from_json(ty, item, Path::Index(&path, i)))
        .collect()
}

/// `option<T>`: a non-null value is the payload; when `T` is itself an
/// option, `{"some": v}` spells a present value that may be `null`.
fn some(option: &OptionType, json: Value, path: Path) -> Converted {
    let inner = option.ty();
    let payload = match (&inner, json) {
        (Type::Option(_), Value::Object(mut object))
            if object.len() == 1 && object.contains_key("some") =>
        {
            object.remove("some").unwrap()
        }
        (_, json) => json,
    };
    Ok(Val::Option(Some(Box::new(from_json(
        &inner, payload, path,
    )?))))
}

/// An integer of type `T`, exact: out-of-range and fractional numbers are
/// refused rather than wrapped or rounded.
fn integer<T: TryFrom<i64> + TryFrom<u64>>(
    n: &Number,
    ty: &Type,
    path: Path,
) -> Result<T, ValueError> {
    let converted = if let Some(u) = n.as_u64() {
        T::try_from(u).ok()
    } else if let Some(i) = n.as_i64() {
        T::try_from(i).ok()
    } else {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .and_then(|f| T::try_from(f as i64).ok())
    };
    converted.ok_or_else(|| mismatch(path, ty, &Value::Number(n.clone())))
}

fn float(json: &Value) -> Option<f64> {
    match json {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}
