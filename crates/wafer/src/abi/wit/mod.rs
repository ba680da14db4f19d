//! `abi: wit`, the typed call.
//!
//! Guest contract:
//!
//! * a **component** exports the function `method` names (`func`,
//!   `iface#func` or `pkg:ns/iface#func`); its signature is the component's
//!   own. WASI imports (wasi:cli, wasi:io, …) are linked against an empty
//!   context; what the guest prints goes to the log.
//! * a **core module** exports functions following the canonical ABI, with
//!   the signature from the entry's `wit` (or, for a numeric export without
//!   `wit`, from its core type). It is wrapped into a component once, at
//!   load (see `core_module`).
//!
//! Arguments and results cross as JSON ([`crate::values`]). A guest's
//! `result` error is data in the answer, not a failed call. Functions that
//! take or return resources, futures or streams are refused at load.

mod core_exports;
mod core_module;
mod export;

use serde_json::Value;
use wasmtime::component::types::{ComponentFunc, Type};
use wasmtime::component::{ComponentExportIndex, Func, InstancePre, Linker, Val};
use wasmtime::{Engine, Store};

use super::LoadError;
use super::wasi_command::check_imports;
use crate::compiler::Compiler;
use crate::host::HostState;
use crate::registry::FunctionConfig;
use crate::values::{self, ValueError, wit_signature, wit_type};
use core_exports::kebab_name;

/// A typed function, compiled and pre-linked.
pub(crate) struct WitFunction {
    pre: InstancePre<HostState>,
    export: ComponentExportIndex,
    params: Vec<(String, Type)>,
    has_result: bool,
    signature: String,
    /// No imports: the component can be instantiated and called without a
    /// fiber, synchronously.
    sync: bool,
}

impl WitFunction {
    /// Compiles `module` (a component, or a core module wrapped into one)
    /// and resolves its imports and the export `method` ahead of any call.
    pub fn load(
        compiler: &Compiler,
        linker: &Linker<HostState>,
        module: &[u8],
        config: &FunctionConfig,
        source_field: &'static str,
    ) -> Result<Self, LoadError> {
        let method = config
            .method
            .as_deref()
            .ok_or_else(|| LoadError::new("method", "missing"))?;
        let component_bytes;
        let is_core = wasmparser::Parser::is_core_wasm(module);
        let bytes = if is_core {
            let field = if config.wit.is_some() {
                "wit"
            } else {
                "method"
            };
            component_bytes = core_module::wrap_core_module(module, config.wit.as_deref(), method)
                .map_err(|m| LoadError::new(field, m))?;
            &component_bytes[..]
        } else {
            if config.wit.is_some() {
                tracing::debug!("`wit` is ignored for a component: it carries its own");
            }
            module
        };
        let engine = compiler.engine();
        let component = compiler.component(bytes).map_err(|e| {
            LoadError::new(
                source_field,
                format!("not a loadable WebAssembly binary: {e:#}"),
            )
        })?;
        // A wrapped core module exports its functions under their WIT names.
        let export_name = match kebab_name(method) {
            Some(name) if is_core => name,
            _ => method.to_string(),
        };
        let (export, func_ty) = export::find_function(engine, &component, &export_name)
            .map_err(|m| LoadError::new("method", m))?;
        refuse_resources(&func_ty).map_err(|m| LoadError::new("method", m))?;
        if !is_core {
            check_imports(engine, &component).map_err(|m| LoadError::new(source_field, m))?;
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::new(source_field, format!("cannot link its imports: {e:#}")))?;
        Ok(WitFunction {
            pre,
            export,
            params: func_ty
                .params()
                .map(|(name, ty)| (name.to_string(), ty))
                .collect(),
            has_result: func_ty.results().len() > 0,
            signature: wit_signature(&func_ty),
            sync: component.component_type().imports(engine).len() == 0,
        })
    }

    /// The engine the function was compiled for.
    pub fn engine(&self) -> &Engine {
        self.pre.component().engine()
    }

    /// The function's WIT signature: `func(a: s32, b: s32) -> s32`.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Converts JSON arguments to values of the parameters' types.
    pub fn args(&self, args: Vec<Value>) -> Result<Vec<Val>, ValueError> {
        values::args_from_json(&self.params, args)
    }

    /// The parameters' names and types.
    pub fn params(&self) -> &[(String, Type)] {
        &self.params
    }

    /// How many values the function returns (0 or 1).
    pub fn result_count(&self) -> usize {
        usize::from(self.has_result)
    }

    /// The result as JSON: `null` when the function returns nothing.
    pub fn result_json(&self, results: Vec<Val>) -> Value {
        results
            .into_iter()
            .next()
            .map_or(Value::Null, values::into_json)
    }

    /// Whether calls run synchronously: the component imports nothing, so
    /// nothing in it can wait, and a direct call is three times cheaper
    /// than one on a fiber and scales across cores (BENCHMARKS.md).
    pub fn is_sync(&self) -> bool {
        self.sync
    }

    /// A new instance in `store`, and the function to call in it.
    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Func> {
        let instance = if self.sync {
            self.pre.instantiate(&mut *store)?
        } else {
            self.pre.instantiate_async(&mut *store).await?
        };
        instance
            .get_func(&mut *store, self.export)
            .ok_or_else(|| wasmtime::Error::msg("the export vanished after instantiation"))
    }

    /// Calls `func` with `args` on a fiber, writing `results` (of
    /// [`Self::result_count`] values).
    pub async fn call(
        &self,
        store: &mut Store<HostState>,
        func: Func,
        args: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        func.call_async(&mut *store, args, results).await
    }

    /// Calls `func` directly on this thread; only for [`Self::is_sync`]
    /// functions.
    pub fn call_sync(
        &self,
        store: &mut Store<HostState>,
        func: Func,
        args: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        func.call(&mut *store, args, results)
    }
}

/// Refuses functions whose values cannot cross as JSON.
fn refuse_resources(func: &ComponentFunc) -> Result<(), String> {
    let params = func
        .params()
        .map(|(name, ty)| (format!("parameter {name}"), ty));
    let results = func.results().map(|ty| ("result".to_string(), ty));
    for (what, ty) in params.chain(results) {
        if let Some(found) = find_unrepresentable(&ty) {
            return Err(format!(
                "{what} has type {}, which holds a {found}; resources, futures and streams cannot cross as JSON",
                wit_type(&ty)
            ));
        }
    }
    Ok(())
}

fn find_unrepresentable(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Own(_) | Type::Borrow(_) => Some("resource"),
        Type::Future(_) => Some("future"),
        Type::Stream(_) => Some("stream"),
        Type::ErrorContext => Some("error-context"),
        Type::List(l) => find_unrepresentable(&l.ty()),
        Type::FixedLengthList(l) => find_unrepresentable(&l.ty()),
        Type::Map(m) => find_unrepresentable(&m.key()).or_else(|| find_unrepresentable(&m.value())),
        Type::Option(o) => find_unrepresentable(&o.ty()),
        Type::Result(r) => r
            .ok()
            .and_then(|t| find_unrepresentable(&t))
            .or_else(|| r.err().and_then(|t| find_unrepresentable(&t))),
        Type::Tuple(t) => t.types().find_map(|t| find_unrepresentable(&t)),
        Type::Record(r) => r.fields().find_map(|f| find_unrepresentable(&f.ty)),
        Type::Variant(v) => v
            .cases()
            .find_map(|c| c.ty.and_then(|t| find_unrepresentable(&t))),
        _ => None,
    }
}
