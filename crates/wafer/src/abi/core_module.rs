//! What the message ABIs (`benthos`, `fluentbit`) share: a core module
//! instantiated once and called once per message, synchronously when it
//! imports nothing that may wait, on a fiber otherwise.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use wasmtime::{
    AsContextMut, Instance, InstancePre, Module, Store, TypedFunc, WasmParams, WasmResults,
};
use wasmtime_wasi::I32Exit;

use super::{Fault, LoadContext, LoadError, Site, Step};
use crate::error::ProblemKind;
use crate::host::HostState;
use crate::limits::{DeadlineReached, InterruptRaised, Limits};

/// How the host calls into the guest: directly in a synchronous store,
/// through `call_async` on a fiber otherwise.
#[derive(Clone, Copy)]
pub(super) enum Mode {
    Sync,
    Async,
}

/// `bytes` compiled, when they are a core module; `guest` says what the
/// ABI expects ("a Benthos guest").
pub(super) fn compile(
    cx: &LoadContext<'_>,
    bytes: &[u8],
    guest: &str,
) -> Result<Module, LoadError> {
    let field = cx.source_field;
    if !wasmparser::Parser::is_core_wasm(bytes) {
        return Err(LoadError::new(
            ProblemKind::InvalidModule,
            field,
            format!("{guest} is a core WebAssembly module, not a component"),
        ));
    }
    cx.compiler.module(bytes).map_err(|e| {
        LoadError::new(
            ProblemKind::InvalidModule,
            field,
            format!("not a loadable WebAssembly binary: {e:#}"),
        )
    })
}

/// `func(params)` in `mode`.
pub(super) async fn call<P, R>(
    mode: Mode,
    mut store: impl AsContextMut<Data = HostState>,
    func: &TypedFunc<P, R>,
    params: P,
) -> wasmtime::Result<R>
where
    P: WasmParams + Send + Sync,
    R: WasmResults + Send + Sync,
{
    match mode {
        Mode::Sync => func.call(&mut store, params),
        Mode::Async => func.call_async(&mut store, params).await,
    }
}

/// A new instance of `pre` in `store`: its exports kept (`keep`), its
/// start function run once, then `after` (the ABI's own set-up);
/// synchronously when `sync`, else on a fiber, with the sandbox's WASI
/// preview 1 context.
pub(super) fn instantiate<'a, A, F>(
    pre: &'a InstancePre<HostState>,
    sync: bool,
    site: &'a Site,
    store: &'a mut Store<HostState>,
    keep: impl Fn(&mut Store<HostState>, &Instance) -> Result<(), Fault> + Send + 'a,
    after: A,
) -> Step<'a, Result<(), Fault>>
where
    A: FnOnce(Mode, &'a mut Store<HostState>) -> F + Send + 'a,
    F: Future<Output = wasmtime::Result<()>> + Send + 'a,
{
    if sync {
        return Step::Ready((|| {
            let instance = pre.instantiate(&mut *store).map_err(Fault::Wasm)?;
            keep(store, &instance)?;
            if let Some(start) = initializer(store, &instance) {
                started(start.call(&mut *store, ()))?;
            }
            ready(after(Mode::Sync, store)).map_err(Fault::Wasm)
        })());
    }
    let host = store.data_mut();
    let mut builder = match site.sandbox.instance_builder(host) {
        Ok(builder) => builder,
        Err(e) => return Step::Ready(Err(Fault::Sandbox(e))),
    };
    host.set_wasi_p1(&mut builder);
    Step::Pending(Box::pin(async move {
        let instance = pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Fault::Wasm)?;
        keep(store, &instance)?;
        if let Some(start) = initializer(store, &instance) {
            started(start.call_async(&mut *store, ()).await)?;
        }
        after(Mode::Async, store).await.map_err(Fault::Wasm)
    }))
}

/// A fresh instance of `pre` in a fresh store, in place of one that
/// failed on a message: its pool slot and memory are given back at once,
/// the call's deadlines carry over and the start function gets a whole
/// limit. Set up as [`instantiate`] does.
pub(super) async fn replace_instance<'a, A, F>(
    pre: &'a InstancePre<HostState>,
    sync: bool,
    site: &'a Site,
    store: &'a mut Store<HostState>,
    keep: impl Fn(&mut Store<HostState>, &Instance) -> Result<(), Fault> + Send + 'a,
    after: A,
) -> Result<(), Fault>
where
    A: FnOnce(Mode, &'a mut Store<HostState>) -> F + Send + 'a,
    F: Future<Output = wasmtime::Result<()>> + Send + 'a,
{
    let next = store.data_mut().take_over_call(site);
    *store = next.into_store(pre.module().engine(), !sync);
    store.data_mut().renew_deadline(&site.limits);
    store.set_epoch_deadline(1);
    match instantiate(pre, sync, site, store, keep, after) {
        Step::Ready(done) => done,
        Step::Pending(starting) => starting.await,
    }
}

/// Whether a message the guest failed on is passed over, the batch going
/// on in a fresh instance ([`replace_instance`]): not when the engine is
/// stopping (Ctrl-C) nor when the caller's own deadline passed (the whole
/// call is over).
pub(super) fn passes_over(error: &wasmtime::Error, store: &Store<HostState>) -> bool {
    !(error.is::<InterruptRaised>()
        || (error.is::<DeadlineReached>() && store.data().deadline_by_caller()))
}

/// How a message's failure reads in its `error`, `guest` naming the guest
/// ("the filter") and `item` what it failed on ("record"): one line,
/// without the wasm backtrace.
pub(super) fn describe_failure(
    guest: &str,
    item: &str,
    error: &wasmtime::Error,
    store: &Store<HostState>,
    limits: &Limits,
) -> String {
    if error.is::<DeadlineReached>() {
        format!(
            "{guest} ran past its time limit ({} ms) on this {item}",
            limits.max_execution.as_millis()
        )
    } else if store.data().memory.was_refused() {
        format!(
            "{guest} ran out of memory (its limit is {} bytes) on this {item}",
            limits.max_memory_bytes
        )
    } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        format!("{guest} trapped on this {item}: {trap}")
    } else {
        format!("{guest} failed on this {item}: {}", error.root_cause())
    }
}

/// The start function to run once per instance, if the guest has one:
/// `_initialize` (a reactor) or `_start` (a command, as TinyGo builds
/// them, whose runtime needs it), as wazero runs them at instantiation.
fn initializer(store: &mut Store<HostState>, instance: &Instance) -> Option<TypedFunc<(), ()>> {
    ["_initialize", "_start"]
        .into_iter()
        .find_map(|name| instance.get_typed_func::<(), ()>(&mut *store, name).ok())
}

/// A start function that ends with `proc_exit(0)` ended well.
fn started(outcome: wasmtime::Result<()>) -> Result<(), Fault> {
    match outcome {
        Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => Ok(()),
        other => other.map_err(Fault::Wasm),
    }
}

/// Checks the exports the host calls that `module` has, each given as
/// (name, i32 parameters, i32 results): a mismatch is a load problem
/// rather than a failure of every instance. A missing one is not checked.
pub(super) fn check_i32_exports(
    module: &Module,
    expected: &[(&str, usize, usize)],
) -> Result<(), String> {
    for &(name, params, results) in expected {
        let Some(export) = module.get_export(name) else {
            continue;
        };
        let fits = export.func().is_some_and(|f| {
            f.params().len() == params
                && f.params().all(|t| t.is_i32())
                && f.results().len() == results
                && f.results().all(|t| t.is_i32())
        });
        if !fits {
            let i32s = |n: usize| vec!["i32"; n].join(", ");
            return Err(format!(
                "its export `{name}` is not a function ({}) -> ({}), as the host calls it",
                i32s(params),
                i32s(results)
            ));
        }
    }
    Ok(())
}

/// `run` as a step: finished at once in a synchronous store, whose calls
/// never wait; a boxed future otherwise.
pub(super) fn step<'a, T>(sync: bool, run: impl Future<Output = T> + Send + 'a) -> Step<'a, T> {
    if sync {
        Step::Ready(ready(run))
    } else {
        Step::Pending(Box::pin(run))
    }
}

/// The result of a future that cannot wait: a synchronous store's calls
/// never do.
pub(super) fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(done) => done,
        Poll::Pending => unreachable!("a synchronous store never waits"),
    }
}
