//! WIT spelling of component types, for signatures and error messages.
//!
//! Component types carry no type names, so records, variants, enums and
//! flags are written structurally: `record { id: u32, name: string }`.

use std::fmt::Write;

use wasmtime::component::types::{ComponentFunc, Type};

/// Writes `ty` in WIT syntax, nested types in full.
pub fn wit_type(ty: &Type) -> String {
    let mut out = String::new();
    write_type(&mut out, ty, false);
    out
}

/// Writes `ty` for an error message: records, variants and friends list
/// their member names only, so the message stays on one short line.
pub fn short_wit_type(ty: &Type) -> String {
    let mut out = String::new();
    write_type(&mut out, ty, true);
    out
}

/// Writes a function's signature: `func(a: s32, b: s32) -> s32`.
pub fn wit_signature(func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", wit_type(&ty)))
        .collect();
    let mut out = format!("func({})", params.join(", "));
    let results: Vec<Type> = func.results().collect();
    match results.as_slice() {
        [] => {}
        [one] => write!(out, " -> {}", wit_type(one)).unwrap(),
        many => {
            let list: Vec<String> = many.iter().map(wit_type).collect();
            write!(out, " -> ({})", list.join(", ")).unwrap()
        }
    }
    out
}

fn write_type(out: &mut String, ty: &Type, short: bool) {
    let simple = match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::Own(_) => "own<resource>",
        Type::Borrow(_) => "borrow<resource>",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
        _ => "",
    };
    if !simple.is_empty() {
        out.push_str(simple);
        return;
    }
    match ty {
        Type::List(list) => wrap(out, "list", &[list.ty()], short),
        Type::FixedLengthList(list) => {
            out.push_str("list<");
            write_type(out, &list.ty(), short);
            write!(out, ", {}>", list.len()).unwrap();
        }
        Type::Map(map) => wrap(out, "map", &[map.key(), map.value()], short),
        Type::Tuple(tuple) => wrap(out, "tuple", &tuple.types().collect::<Vec<_>>(), short),
        Type::Option(option) => wrap(out, "option", &[option.ty()], short),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => out.push_str("result"),
            (Some(ok), None) => wrap(out, "result", &[ok], short),
            (ok, Some(err)) => {
                out.push_str("result<");
                match ok {
                    Some(ok) => write_type(out, &ok, short),
                    None => out.push('_'),
                }
                out.push_str(", ");
                write_type(out, &err, short);
                out.push('>');
            }
        },
        Type::Record(record) => {
            let fields = record.fields().map(|f| (f.name.to_string(), Some(f.ty)));
            members(out, "record", fields, ": ", short)
        }
        Type::Variant(variant) => {
            let cases = variant.cases().map(|c| (c.name.to_string(), c.ty));
            members(out, "variant", cases, "", short)
        }
        Type::Enum(e) => members(
            out,
            "enum",
            e.names().map(|n| (n.to_string(), None)),
            "",
            true,
        ),
        Type::Flags(f) => members(
            out,
            "flags",
            f.names().map(|n| (n.to_string(), None)),
            "",
            true,
        ),
        _ => out.push_str("unknown"),
    }
}

fn wrap(out: &mut String, name: &str, args: &[Type], short: bool) {
    out.push_str(name);
    out.push('<');
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_type(out, arg, short);
    }
    out.push('>');
}

/// `record { a: s32, b: string }`, `variant { none, some(s32) }`.
fn members(
    out: &mut String,
    keyword: &str,
    members: impl Iterator<Item = (String, Option<Type>)>,
    separator: &str,
    short: bool,
) {
    write!(out, "{keyword} {{ ").unwrap();
    for (i, (name, ty)) in members.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&name);
        if let (Some(ty), false) = (ty, short) {
            if separator.is_empty() {
                out.push('(');
                write_type(out, &ty, short);
                out.push(')');
            } else {
                out.push_str(separator);
                write_type(out, &ty, short);
            }
        }
    }
    out.push_str(" }");
}
