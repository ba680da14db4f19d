//! `abi: http-proxy`, a wasi:http proxy component.
//!
//! Guest contract: a component exporting `wasi:http/incoming-handler`
//! (0.2.x), the `wasi:http/proxy` world. Each call hands the guest one
//! request (method, path with query, headers, a streamed body) and a
//! `response-outparam`; the response goes out through the call's
//! responder as soon as the guest sets it, while the guest goes on
//! streaming its body (and trailers). Imports are linked as for any
//! component: WASI against the entry's sandbox, wasi:http's outgoing
//! handler behind the outbound guard.
//!
//! Instances are fresh per request unless the entry's pool keeps them
//! (`pool.type` other than `inline`; `max_calls` recycles one after that
//! many requests, as `wasmtime serve --max-instance-reuse-count`): a
//! reused guest keeps its state between requests.

use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

use crate::abi::{Abi, Answer, Fault, LoadContext, LoadError, Prepared, Site, Step};
use crate::call::{Input, InputForm, Output};
use crate::error::ProblemKind;
use crate::host::HostState;

/// `abi: http-proxy`.
pub(crate) struct HttpProxy;

impl Abi for HttpProxy {
    fn load(&self, cx: &LoadContext<'_>, module: &[u8]) -> Result<Box<dyn Prepared>, LoadError> {
        Ok(Box::new(ProxyComponent::load(cx, module)?))
    }
}

/// What a function that has no `method` was expected to be, for the
/// problem when it is not.
const NOT_A_PROXY: &str = "missing required field (the export to call); without one the module \
                           is served as a wasi:http proxy, but";

/// A proxy component, compiled and pre-linked.
struct ProxyComponent {
    pre: ProxyPre<HostState>,
}

impl ProxyComponent {
    fn load(cx: &LoadContext<'_>, module: &[u8]) -> Result<Self, LoadError> {
        if wasmparser::Parser::is_core_wasm(module) {
            return Err(LoadError::new(
                ProblemKind::MissingField,
                "method",
                format!("{NOT_A_PROXY} it is a core module, not a component"),
            ));
        }
        let component = cx.component(module)?;
        let pre = cx.link_component(&component)?;
        let pre = ProxyPre::new(pre).map_err(|_| {
            LoadError::new(
                ProblemKind::MissingField,
                "method",
                format!("{NOT_A_PROXY} it does not export wasi:http/incoming-handler"),
            )
        })?;
        Ok(ProxyComponent { pre })
    }
}

impl Prepared for ProxyComponent {
    fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    fn signature(&self) -> &str {
        "wasi:http/incoming-handler"
    }

    fn input_form(&self) -> InputForm {
        InputForm::Http
    }

    fn reuses_instances(&self) -> bool {
        true
    }

    fn is_sync(&self) -> bool {
        false
    }

    fn instantiate<'a>(
        &'a self,
        site: &'a Site,
        store: &'a mut Store<HostState>,
    ) -> Step<'a, Result<(), Fault>> {
        Step::Pending(Box::pin(async move {
            site.set_up_wasi(store.data_mut())?;
            let proxy = self
                .pre
                .instantiate_async(&mut *store)
                .await
                .map_err(Fault::Wasm)?;
            store.data_mut().set_abi_state(proxy);
            Ok(())
        }))
    }

    fn invoke<'a>(
        &'a self,
        _site: &'a Site,
        store: &'a mut Store<HostState>,
        input: Input,
    ) -> Step<'a, Result<Answer, Fault>> {
        let call = match input {
            Input::Http(call) => call,
            other => {
                return Step::Ready(Err(Fault::WrongInput(format!(
                    "is a wasi:http proxy: it serves HTTP requests, not {}",
                    other.form()
                ))));
            }
        };
        Step::Pending(Box::pin(async move {
            let (request, https, respond) = call.into_parts();
            let scheme = if https { Scheme::Https } else { Scheme::Http };
            let mut http = store.data_mut().http();
            let request = http
                .new_incoming_request(scheme, request)
                .map_err(Fault::Wasm)?;
            let out = http.new_response_outparam(respond).map_err(Fault::Wasm)?;
            let handler = store
                .data()
                .abi_state::<Proxy>()
                .expect("a proxy instance keeps its exports")
                .wasi_http_incoming_handler()
                .clone();
            handler
                .call_handle(&mut *store, request, out)
                .await
                .map_err(Fault::Wasm)?;
            Ok(Answer {
                output: Output::Http,
                guest_error: false,
            })
        }))
    }
}
