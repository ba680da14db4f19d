//! Describing a WebAssembly binary: what it imports, what it exports, and,
//! for a component, its WIT world.

use std::fmt::Write;

use wasmparser::{CompositeInnerType, ExternalKind, FuncType, Parser, Payload, TypeRef};
use wit_component::WitPrinter;
use wit_parser::decoding::{DecodedWasm, decode};

/// Whether a binary is a core module or a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A core WebAssembly module.
    CoreModule,
    /// A component.
    Component,
}

/// What [`inspect`] found.
#[derive(Debug, Clone)]
pub struct Description {
    /// Module or component.
    pub kind: BinaryKind,
    /// Imports, one line each: `wasi:cli/environment@0.2.3` or
    /// `env::log: func(i32, i32)`.
    pub imports: Vec<String>,
    /// Exports, one line each.
    pub exports: Vec<String>,
    /// A component's WIT world; `None` for a core module.
    pub wit: Option<String>,
}

/// Describes a binary or WAT text.
///
/// # Errors
///
/// When the bytes are neither valid WebAssembly nor WAT.
///
/// ```
/// let d = wafer::inspect::inspect(br#"(module (func (export "answer") (result i32) i32.const 42))"#).unwrap();
/// assert_eq!(d.exports, ["answer: func() -> i32"]);
/// ```
pub fn inspect(bytes: &[u8]) -> Result<Description, String> {
    let binary = wat::parse_bytes(bytes).map_err(|e| format!("not WebAssembly: {e}"))?;
    if Parser::is_component(&binary) {
        describe_component(&binary)
    } else if Parser::is_core_wasm(&binary) {
        describe_core_module(&binary)
    } else if let Some(version) = binary.strip_prefix(b"\0asm").and_then(|rest| rest.get(..4)) {
        Err(format!(
            "a WebAssembly binary of version {} (bytes {version:02x?}), which neither wafer nor wasmtime reads: modules are version 1, components 0x1000d",
            u32::from_le_bytes(version.try_into().expect("four bytes"))
        ))
    } else {
        Err("not WebAssembly: no \\0asm header".into())
    }
}

fn describe_component(binary: &[u8]) -> Result<Description, String> {
    let decoded = decode(binary).map_err(|e| format!("not a valid component: {e:#}"))?;
    let DecodedWasm::Component(resolve, world_id) = decoded else {
        return Err("this is a WIT package, not a component".into());
    };
    let world = &resolve.worlds[world_id];
    let names = |items: &wit_parser::IndexMap<wit_parser::WorldKey, wit_parser::WorldItem>| {
        items
            .keys()
            .map(|key| resolve.name_world_key(key))
            .collect::<Vec<_>>()
    };
    let mut printer = WitPrinter::default();
    let package = world
        .package
        .ok_or("the component's world has no package")?;
    printer
        .print(&resolve, package, &[])
        .map_err(|e| format!("cannot print its WIT: {e:#}"))?;
    Ok(Description {
        kind: BinaryKind::Component,
        imports: names(&world.imports),
        exports: names(&world.exports),
        wit: Some(printer.output.to_string()),
    })
}

fn describe_core_module(binary: &[u8]) -> Result<Description, String> {
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new();
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let invalid = |e: wasmparser::BinaryReaderError| format!("not a valid module: {e}");
    for payload in Parser::new(0).parse_all(binary) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(func) => Some(func.clone()),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    let what = match import.ty {
                        TypeRef::Func(t) => {
                            funcs.push(t);
                            signature(types.get(t as usize).and_then(Option::as_ref))
                        }
                        TypeRef::Memory(_) => "memory".into(),
                        TypeRef::Table(_) => "table".into(),
                        TypeRef::Global(_) => "global".into(),
                        TypeRef::Tag(_) => "tag".into(),
                        _ => "item".into(),
                    };
                    imports.push(format!("{}::{}: {what}", import.module, import.name));
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    funcs.push(t.map_err(invalid)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    let what = match export.kind {
                        ExternalKind::Func => {
                            let ty = funcs
                                .get(export.index as usize)
                                .and_then(|&t| types.get(t as usize));
                            signature(ty.and_then(Option::as_ref))
                        }
                        ExternalKind::Memory => "memory".into(),
                        ExternalKind::Table => "table".into(),
                        ExternalKind::Global => "global".into(),
                        _ => "item".into(),
                    };
                    exports.push(format!("{}: {what}", export.name));
                }
            }
            _ => {}
        }
    }
    Ok(Description {
        kind: BinaryKind::CoreModule,
        imports,
        exports,
        wit: None,
    })
}

fn signature(ty: Option<&FuncType>) -> String {
    let Some(ty) = ty else { return "func".into() };
    let list = |types: &[wasmparser::ValType]| {
        types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!("func({})", list(ty.params()));
    match ty.results() {
        [] => {}
        [one] => write!(out, " -> {one}").unwrap(),
        many => write!(out, " -> ({})", list(many)).unwrap(),
    }
    out
}
