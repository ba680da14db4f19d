//! Core export names as WIT sees them.
//!
//! WIT names are kebab-case (`add-two`); core exports are often written as
//! their source language spells them (`add_two` from Rust's `#[no_mangle]`,
//! `addTwo` from JavaScript). Before a core module is wrapped, each export
//! whose name is not a WIT identifier gets a kebab-case alias, so the
//! entry's `wit` (or `method`) can name it either way.

use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{ExternalKind, Parser, Payload};

/// `add_two` and `addTwo` → `add-two`; `None` when no WIT identifier
/// comes out (`add_2`, `ünïcode`).
pub(crate) fn kebab_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len() + 4);
    let mut after_lower = false;
    for c in name.chars() {
        match c {
            '_' | '-' => {
                if !out.is_empty() && !out.ends_with('-') {
                    out.push('-');
                }
                after_lower = false;
            }
            'A'..='Z' => {
                if after_lower {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
                after_lower = false;
            }
            'a'..='z' | '0'..='9' => {
                out.push(c);
                after_lower = true;
            }
            _ => return None,
        }
    }
    let valid = !out.is_empty()
        && out
            .split('-')
            .all(|word| word.starts_with(|c: char| c.is_ascii_lowercase()));
    valid.then_some(out)
}

/// The module with a kebab-case alias for every function export whose
/// name is not already a WIT identifier; unchanged when there is none.
pub(crate) fn with_kebab_aliases(module: &[u8]) -> Result<Vec<u8>, String> {
    let invalid = |e: wasmparser::BinaryReaderError| format!("not a valid core module: {e}");
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::ExportSection(reader) = payload.map_err(invalid)? {
            for export in reader {
                let export = export.map_err(invalid)?;
                exports.push((export.name.to_string(), export.kind, export.index));
            }
        }
    }
    let aliases: Vec<(String, u32)> = exports
        .iter()
        .filter(|(_, kind, _)| *kind == ExternalKind::Func)
        .filter_map(|(name, _, index)| Some((kebab_name(name)?, *index)).filter(|(k, _)| k != name))
        .filter(|(alias, _)| !exports.iter().any(|(name, _, _)| name == alias))
        .collect();
    if aliases.is_empty() {
        return Ok(module.to_vec());
    }
    let mut out = Module::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(invalid)? {
            Payload::ExportSection(_) => {
                let mut section = ExportSection::new();
                for (name, kind, index) in &exports {
                    section.export(name, export_kind(*kind)?, *index);
                }
                for (alias, index) in &aliases {
                    section.export(alias, ExportKind::Func, *index);
                }
                out.section(&section);
            }
            payload => {
                if let Some((id, range)) = payload.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &module[range],
                    });
                }
            }
        }
    }
    Ok(out.finish())
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind, String> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        other => return Err(format!("unsupported export kind {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_language_names_become_kebab_case() {
        assert_eq!(kebab_name("add_two").as_deref(), Some("add-two"));
        assert_eq!(kebab_name("addTwo").as_deref(), Some("add-two"));
        assert_eq!(kebab_name("answer").as_deref(), Some("answer"));
        assert_eq!(kebab_name("to_utf8").as_deref(), Some("to-utf8"));
        assert_eq!(kebab_name("add_2"), None);
        assert_eq!(kebab_name("_start").as_deref(), Some("start"));
        assert_eq!(kebab_name("dé"), None);
    }

    #[test]
    fn aliases_are_added_and_the_module_stays_valid() {
        let module = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "add_two") (param i32) (result i32) local.get 0 i32.const 2 i32.add) (@custom "note" "kept"))"#,
        )
        .unwrap();
        let aliased = with_kebab_aliases(&module).unwrap();
        wasmparser::Validator::new().validate_all(&aliased).unwrap();
        let description = crate::inspect::inspect(&aliased).unwrap();
        assert_eq!(
            description.exports,
            [
                "memory: memory",
                "add_two: func(i32) -> i32",
                "add-two: func(i32) -> i32"
            ]
        );
        let plain =
            wat::parse_str(r#"(module (func (export "answer") (result i32) i32.const 42))"#)
                .unwrap();
        assert_eq!(with_kebab_aliases(&plain).unwrap(), plain);
    }
}
