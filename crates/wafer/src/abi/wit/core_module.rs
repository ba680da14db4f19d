//! Core modules called through WIT: the module is wrapped into a component
//! with wit-component, so components and core modules share one typed path.
//!
//! The signature comes from the entry's `wit`: WIT function declarations as
//! in an interface body (`answer: func() -> s32;`), type definitions
//! allowed. Each declared function must be a core export of the same name
//! that follows the canonical ABI; strings and lists need the module to
//! export `memory` and `cabi_realloc`. Without `wit`, a numeric export's
//! signature is read from its core type (`i32` → `s32`, `i64` → `s64`,
//! `f32`, `f64`).

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmparser::{Parser, Payload, TypeRef, ValType};
use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

use super::core_exports::{kebab_name, with_kebab_aliases};
use crate::error::one_line;

/// Wraps a core module into a component exporting the functions of `wit`,
/// or, without `wit`, the numeric export `method`.
///
/// # Errors
///
/// A message saying which part failed: the WIT does not parse, an export is
/// missing or has another type, the module lacks `cabi_realloc`.
pub(crate) fn wrap_core_module(
    module: &[u8],
    wit: Option<&str>,
    method: &str,
) -> Result<Vec<u8>, String> {
    let declarations = match wit {
        Some(wit) => wit.to_string(),
        None => numeric_export_declaration(module, method)?,
    };
    let module = &with_kebab_aliases(module)?;
    let body = exports_from_declarations(&declarations);
    // Same line as the user's first line, so WIT errors point at their line.
    let document = format!("package wafer:entry; world entry {{ {body}\n}}\n");
    let mut resolve = Resolve::default();
    let package = resolve.push_str("wit", &document).map_err(|e| {
        format!(
            "wit does not parse: {}",
            user_location(&one_line(&resolve.render_error(&e)))
        )
    })?;
    let world = resolve
        .select_world(&[package], Some("entry"))
        .map_err(|e| format!("wit: {}", one_line(&format!("{e:#}"))))?;
    let mut bytes = module.to_vec();
    embed_component_metadata(&mut bytes, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| format!("cannot attach the WIT to the module: {e:#}"))?;
    let imports_preview1 = imports_module(module, WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME)?;
    ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .and_then(|encoder| {
            // wasip1 toolchains (TinyGo, wasi-sdk, Rust's wasm32-wasip1)
            // import `wasi_snapshot_preview1`: the reactor adapter turns those
            // imports into WASI p2 ones, linked like any component's.
            if imports_preview1 {
                encoder.adapter(
                    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )
            } else {
                Ok(encoder)
            }
        })
        .and_then(|mut encoder| encoder.encode())
        .map_err(|e| format!("the core module does not match its wit: {e:#}"))
}

/// Whether the core module imports anything from module `name`.
fn imports_module(module: &[u8], name: &str) -> Result<bool, String> {
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::ImportSection(reader) =
            payload.map_err(|e| format!("not a valid core module: {e}"))?
        {
            for import in reader.into_imports() {
                if import.map_err(|e| e.to_string())?.module == name {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// `… (at wit:2:23)` → `… (line 2)`: lines match the entry's `wit`, columns
/// do not (`export ` was inserted before each function).
fn user_location(message: &str) -> String {
    let Some(start) = message.rfind(" (at wit:") else {
        return message.to_string();
    };
    let line: String = message[start + 9..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    format!("{} (line {line})", &message[..start])
}

/// Turns interface-body declarations into world items: each top-level
/// `name: func…` becomes `export name: func…`; type definitions stay.
fn exports_from_declarations(wit: &str) -> String {
    let mut out = String::with_capacity(wit.len() + 32);
    let bytes = wit.as_bytes();
    let mut depth = 0usize;
    let mut at_item_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &wit[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(rest.len(), |n| n + 1);
            out.push_str(&rest[..end]);
            i += end;
            continue;
        }
        if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |n| n + 2);
            out.push_str(&rest[..end]);
            i += end;
            continue;
        }
        let c = rest.chars().next().unwrap();
        if at_item_start && depth == 0 && !c.is_whitespace() {
            if is_function_item(rest) {
                out.push_str("export ");
            }
            at_item_start = false;
        }
        match c {
            '{' | '(' | '<' => depth += 1,
            '}' | ')' | '>' => {
                depth = depth.saturating_sub(1);
                at_item_start = depth == 0 && c == '}';
            }
            ';' if depth == 0 => at_item_start = true,
            '-' if rest.starts_with("->") => {
                out.push_str("->");
                i += 2;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Whether the text starts with `name: func` (or `name: async func`).
fn is_function_item(text: &str) -> bool {
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '%'))
        .unwrap_or(0);
    if name_end == 0 {
        return false;
    }
    let after = text[name_end..].trim_start();
    let Some(after) = after.strip_prefix(':') else {
        return false;
    };
    let after = after.trim_start();
    let after = after.strip_prefix("async").map_or(after, str::trim_start);
    after.starts_with("func")
}

/// `method: func(p0: s32, …) -> s32;` from the core type of export `method`.
fn numeric_export_declaration(module: &[u8], method: &str) -> Result<String, String> {
    let mut types = Vec::new();
    let mut func_types = Vec::new();
    let mut export = None;
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(|e| format!("not a valid core module: {e}"))? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    types.push(ty.map_err(|e| e.to_string())?);
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let TypeRef::Func(index) = import.map_err(|e| e.to_string())?.ty {
                        func_types.push(index);
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for index in reader {
                    func_types.push(index.map_err(|e| e.to_string())?);
                }
            }
            Payload::ExportSection(reader) => {
                for item in reader {
                    let item = item.map_err(|e| e.to_string())?;
                    if item.name == method && item.kind == wasmparser::ExternalKind::Func {
                        export = Some(item.index);
                    }
                }
            }
            _ => {}
        }
    }
    let index = export.ok_or_else(|| format!("the module exports no function `{method}`"))?;
    let ty = func_types
        .get(index as usize)
        .and_then(|&t| types.get(t as usize))
        .ok_or_else(|| format!("export `{method}` has no type"))?;
    let wit_of = |v: &ValType| match v {
        ValType::I32 => Ok("s32"),
        ValType::I64 => Ok("s64"),
        ValType::F32 => Ok("f32"),
        ValType::F64 => Ok("f64"),
        other => Err(format!(
            "export `{method}` uses {other}, which has no WIT form; give the entry a `wit`"
        )),
    };
    let params: Vec<String> = ty
        .params()
        .iter()
        .enumerate()
        .map(|(i, p)| Ok(format!("p{i}: {}", wit_of(p)?)))
        .collect::<Result<_, String>>()?;
    let result = match ty.results() {
        [] => String::new(),
        [one] => format!(" -> {}", wit_of(one)?),
        _ => {
            return Err(format!(
                "export `{method}` returns several values; give the entry a `wit`"
            ));
        }
    };
    let name = kebab_name(method).ok_or_else(|| {
        format!(
            "export `{method}` has no WIT name (WIT names are like add-two); give the entry a `wit`"
        )
    })?;
    Ok(format!("{name}: func({}){result};", params.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_become_exports_and_types_stay() {
        let wit = "record point { x: s32, y: s32 }\n// a comment: func\nmove: func(p: point, by: s32) -> point;\nanswer: func() -> s32;";
        let world = exports_from_declarations(wit);
        assert_eq!(
            world,
            "record point { x: s32, y: s32 }\n// a comment: func\nexport move: func(p: point, by: s32) -> point;\nexport answer: func() -> s32;"
        );
    }

    #[test]
    fn seed_answer_module_wraps() {
        let module =
            wat::parse_str(r#"(module (func (export "answer") (result i32) i32.const 42))"#)
                .unwrap();
        let component =
            wrap_core_module(&module, Some("answer: func() -> s32;"), "answer").unwrap();
        assert!(wasmparser::Parser::is_component(&component));
        let derived = wrap_core_module(&module, None, "answer").unwrap();
        assert!(wasmparser::Parser::is_component(&derived));
    }

    #[test]
    fn mismatched_wit_is_explained() {
        let module =
            wat::parse_str(r#"(module (func (export "answer") (result i32) i32.const 42))"#)
                .unwrap();
        let err =
            wrap_core_module(&module, Some("answer: func() -> string;"), "answer").unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }
}
