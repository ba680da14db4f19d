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
use wasmtime::component::{ComponentExportIndex, Func, InstancePre, Val};
use wasmtime::{Engine, Store};

use super::{Abi, Answer, Fault, LoadContext, LoadError, Prepared, Site, Step};
use crate::call::{Input, InputForm, Output};
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::values::{self, wit_signature, wit_type};
use core_exports::kebab_name;

/// `abi: wit`.
pub(crate) struct Wit;

impl Abi for Wit {
    fn load(&self, cx: &LoadContext<'_>, module: &[u8]) -> Result<Box<dyn Prepared>, LoadError> {
        Ok(Box::new(WitFunction::load(cx, module)?))
    }
}

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
    fn load(cx: &LoadContext<'_>, module: &[u8]) -> Result<Self, LoadError> {
        let method = cx.method.ok_or_else(|| {
            LoadError::new(
                ProblemKind::MissingField,
                "method",
                "missing required field (the export to call)",
            )
        })?;
        let component_bytes;
        let is_core = wasmparser::Parser::is_core_wasm(module);
        let bytes = if is_core {
            let (kind, field) = if cx.wit.is_some() {
                (ProblemKind::Signature, "wit")
            } else {
                (ProblemKind::Export, "method")
            };
            component_bytes = core_module::wrap_core_module(module, cx.wit, method)
                .map_err(|m| LoadError::new(kind, field, m))?;
            &component_bytes[..]
        } else {
            if cx.wit.is_some() {
                tracing::debug!("`wit` is ignored for a component: it carries its own");
            }
            module
        };
        let engine = cx.compiler.engine();
        let component = cx.component(bytes)?;
        // A wrapped core module exports its functions under their WIT names.
        let export_name = match kebab_name(method) {
            Some(name) if is_core => name,
            _ => method.to_string(),
        };
        let (export, func_ty) = export::find_function(engine, &component, &export_name)
            .map_err(|m| LoadError::new(ProblemKind::Export, "method", m))?;
        refuse_resources(&func_ty)
            .map_err(|m| LoadError::new(ProblemKind::Signature, "method", m))?;
        let pre = cx.link_component(&component)?;
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

    /// The arguments as values of the parameters' types, and whether the
    /// answer goes back as JSON.
    fn arguments(&self, input: Input) -> Result<(Vec<Val>, bool), Fault> {
        match input {
            Input::Json(args) => values::args_from_json(&self.params, args)
                .map(|vals| (vals, true))
                .map_err(Fault::Arguments),
            Input::Vals(vals) => values::check_args(&self.params, &vals)
                .map(|()| (vals, false))
                .map_err(Fault::Arguments),
            other => Err(Fault::WrongInput(format!(
                "is a typed function (abi: wit): call it with arguments, not {}",
                other.form()
            ))),
        }
    }

    /// The result (a function returns at most one) as the answer, in the
    /// form the arguments came in.
    fn answer(&self, result: Option<Val>, as_json: bool) -> Answer {
        let guest_error = matches!(result, Some(Val::Result(Err(_))));
        let output = match result {
            _ if as_json => Output::Json(result.map_or(Value::Null, values::into_json)),
            Some(val) => Output::Vals(vec![val]),
            None => Output::Vals(Vec::new()),
        };
        Answer {
            output,
            guest_error,
        }
    }

    /// The part of the result slot the function writes.
    fn results<'r>(&self, slot: &'r mut [Val; 1]) -> &'r mut [Val] {
        &mut slot[..usize::from(self.has_result)]
    }

    /// The result written to the slot.
    fn result(&self, slot: [Val; 1]) -> Option<Val> {
        let [result] = slot;
        self.has_result.then_some(result)
    }

    /// Keeps the export to call in the store's ABI state.
    fn keep_func(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::component::Instance,
    ) -> Result<(), Fault> {
        let func = instance.get_func(&mut *store, self.export).ok_or_else(|| {
            Fault::Wasm(wasmtime::Error::msg(
                "the export vanished after instantiation",
            ))
        })?;
        store.data_mut().set_abi_state(func);
        Ok(())
    }
}

impl Prepared for WitFunction {
    fn engine(&self) -> &Engine {
        self.pre.component().engine()
    }

    fn signature(&self) -> &str {
        &self.signature
    }

    fn input_form(&self) -> InputForm {
        InputForm::Typed
    }

    fn params(&self) -> &[(String, Type)] {
        &self.params
    }

    fn reuses_instances(&self) -> bool {
        true
    }

    /// A direct call is three times cheaper than one on a fiber and
    /// scales across cores (BENCHMARKS.md).
    fn is_sync(&self) -> bool {
        self.sync
    }

    fn instantiate<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
    ) -> Step<'a, Result<(), Fault>> {
        if let Err(fault) = site.set_up_wasi(store.data_mut()) {
            return Step::Ready(Err(fault));
        }
        if self.sync {
            let instance = self.pre.instantiate(&mut *store).map_err(Fault::Wasm);
            return Step::Ready(instance.and_then(|instance| self.keep_func(store, &instance)));
        }
        Step::Pending(Box::pin(async move {
            let instance = self
                .pre
                .instantiate_async(&mut *store)
                .await
                .map_err(Fault::Wasm)?;
            self.keep_func(store, &instance)
        }))
    }

    fn invoke<'a>(
        &'a self,
        _site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>> {
        let func = *store
            .data()
            .abi_state::<Func>()
            .expect("a wit instance keeps its export's Func");
        let (args, as_json) = match self.arguments(input) {
            Ok(arguments) => arguments,
            Err(fault) => return Step::Ready(Err(fault)),
        };
        // On the stack: a JSON call allocates no result vector.
        let mut slot = [Val::Bool(false)];
        if self.sync {
            let called = func.call(&mut *store, &args, self.results(&mut slot));
            return Step::Ready(
                called
                    .map(|()| self.answer(self.result(slot), as_json))
                    .map_err(Fault::Wasm),
            );
        }
        Step::Pending(Box::pin(async move {
            func.call_async(&mut *store, &args, self.results(&mut slot))
                .await
                .map_err(Fault::Wasm)?;
            Ok(self.answer(self.result(slot), as_json))
        }))
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
