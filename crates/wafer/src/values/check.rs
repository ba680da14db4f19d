//! Checking component values against WIT types, for callers that build
//! [`Val`]s themselves (the typed embedding API).

use wasmtime::component::Val;
use wasmtime::component::types::Type;

use super::ValueError;
use super::from_json::Path;
use super::wit_type::short_wit_type;

/// Checks `args` against `params`: the count, then each value's type, to
/// any depth.
///
/// # Errors
///
/// The first mismatch, located like JSON argument errors
/// (`args[0].tags[2]: expected string, found u32`).
pub fn check_args(params: &[(String, Type)], args: &[Val]) -> Result<(), ValueError> {
    if args.len() != params.len() {
        return Err(ValueError {
            path: "args".into(),
            message: format!(
                "expected {} argument(s), found {}",
                params.len(),
                args.len()
            ),
        });
    }
    params
        .iter()
        .zip(args)
        .enumerate()
        .try_for_each(|(i, ((_, ty), val))| check(ty, val, Path::Arg(i)))
}

fn check(ty: &Type, val: &Val, path: Path) -> Result<(), ValueError> {
    let mismatch = || {
        ValueError::at(
            path,
            format!("expected {}, found {}", short_wit_type(ty), kind(val)),
        )
    };
    let each = |ty: &Type, items: &[Val]| {
        items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check(ty, item, Path::Index(&path, i)))
    };
    let payload = |ty: Option<Type>, val: Option<&Val>, at: &str| match (ty, val) {
        (None, None) => Ok(()),
        (Some(ty), Some(val)) => check(&ty, val, Path::Field(&path, at)),
        _ => Err(mismatch()),
    };
    match (ty, val) {
        (Type::Bool, Val::Bool(_))
        | (Type::S8, Val::S8(_))
        | (Type::U8, Val::U8(_))
        | (Type::S16, Val::S16(_))
        | (Type::U16, Val::U16(_))
        | (Type::S32, Val::S32(_))
        | (Type::U32, Val::U32(_))
        | (Type::S64, Val::S64(_))
        | (Type::U64, Val::U64(_))
        | (Type::Float32, Val::Float32(_))
        | (Type::Float64, Val::Float64(_))
        | (Type::Char, Val::Char(_))
        | (Type::String, Val::String(_)) => Ok(()),
        (Type::List(list), Val::List(items)) => each(&list.ty(), items),
        (Type::FixedLengthList(list), Val::FixedLengthList(items))
            if items.len() == list.len() as usize =>
        {
            each(&list.ty(), items)
        }
        (Type::Tuple(tuple), Val::Tuple(items)) if items.len() == tuple.types().len() => tuple
            .types()
            .zip(items)
            .enumerate()
            .try_for_each(|(i, (ty, item))| check(&ty, item, Path::Index(&path, i))),
        (Type::Map(map), Val::Map(pairs)) => {
            pairs.iter().enumerate().try_for_each(|(i, (k, v))| {
                check(&map.key(), k, Path::Index(&path, i))?;
                check(&map.value(), v, Path::Index(&path, i))
            })
        }
        (Type::Record(record), Val::Record(fields)) if fields.len() == record.fields().len() => {
            record
                .fields()
                .zip(fields)
                .try_for_each(|(field, (name, val))| {
                    if field.name != name {
                        return Err(ValueError::at(
                            path,
                            format!("expected field `{}`, found `{name}`", field.name),
                        ));
                    }
                    check(&field.ty, val, Path::Field(&path, field.name))
                })
        }
        (Type::Variant(variant), Val::Variant(name, val)) => {
            match variant.cases().find(|c| c.name == name) {
                Some(case) => payload(case.ty, val.as_deref(), name),
                None => Err(mismatch()),
            }
        }
        (Type::Enum(e), Val::Enum(name)) if e.names().any(|n| n == name) => Ok(()),
        (Type::Option(_), Val::Option(None)) => Ok(()),
        (Type::Option(option), Val::Option(Some(val))) => check(&option.ty(), val, path),
        (Type::Result(result), Val::Result(Ok(val))) => payload(result.ok(), val.as_deref(), "ok"),
        (Type::Result(result), Val::Result(Err(val))) => {
            payload(result.err(), val.as_deref(), "err")
        }
        (Type::Flags(flags), Val::Flags(names))
            if names.iter().all(|n| flags.names().any(|f| f == n)) =>
        {
            Ok(())
        }
        _ => Err(mismatch()),
    }
}

/// The kind of a value, for error messages.
fn kind(val: &Val) -> &'static str {
    match val {
        Val::Bool(_) => "bool",
        Val::S8(_) => "s8",
        Val::U8(_) => "u8",
        Val::S16(_) => "s16",
        Val::U16(_) => "u16",
        Val::S32(_) => "s32",
        Val::U32(_) => "u32",
        Val::S64(_) => "s64",
        Val::U64(_) => "u64",
        Val::Float32(_) => "f32",
        Val::Float64(_) => "f64",
        Val::Char(_) => "char",
        Val::String(_) => "string",
        Val::List(_) => "a list",
        Val::Map(_) => "a map",
        Val::Record(_) => "a record",
        Val::Tuple(_) => "a tuple",
        Val::Variant(..) => "a variant",
        Val::Enum(_) => "an enum",
        Val::Option(_) => "an option",
        Val::Result(_) => "a result",
        Val::Flags(_) => "flags",
        Val::FixedLengthList(_) => "a fixed-length list",
        Val::Resource(_) => "a resource",
        Val::Future(_) => "a future",
        Val::Stream(_) => "a stream",
        Val::ErrorContext(_) => "an error-context",
    }
}
