//! `wasm_filter`: Fluent Bit's `wasm` filter. `wasm_path` names a core
//! module following Fluent Bit's filter ABI (see `wafer`'s `abi:
//! fluentbit`), `function_name` the export called once per record,
//! `event_format` how records cross (`json`, the default, or `msgpack`).
//!
//! * `accessible_paths` (default `.`, as in Fluent Bit; the grant is
//!   logged) are the folders the guest may open, each at the same path.
//! * `wasm_heap_size` and `wasm_stack_size` size WAMR's own heap and
//!   stack in Fluent Bit (8 KiB each by default, raised only). wafer needs
//!   neither: the host's copies of a record go through the guest's
//!   `malloc` or into pages grown for them, and wasmtime's stack is the
//!   engine's. So they are accepted and only raise the memory limit: the
//!   instance may grow to `limits.max_memory_bytes` plus
//!   `wasm_heap_size`.
//! * wafer's own `limits` (as a registry function's) are optional.
//!
//! The module is compiled once; the pipeline's workers share a pool of as
//! many instances, each reused for every record. A record the filter
//! traps on (or runs past its time limit on) is flagged (a Fluent Bit
//! config drops it: `on_error: drop`) and the rest of its batch goes on in
//! a fresh instance: each record is filtered once.

use std::sync::Arc;

use serde::Deserialize;
use wafer::registry::{Abi, EventFormat, LimitsConfig};
use wafer::{Function, Message, ModuleSpec};

use super::{Processor, invoke_messages};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::{default_accessible_paths, sandbox, value};
use crate::modules::{self, ModuleFields};
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmFilterConfig {
    #[serde(deserialize_with = "value::text")]
    wasm_path: String,
    #[serde(deserialize_with = "value::text")]
    function_name: String,
    #[serde(default)]
    event_format: EventFormat,
    #[serde(default = "default_accessible_paths", deserialize_with = "value::list")]
    accessible_paths: Vec<String>,
    #[serde(default, deserialize_with = "value::size")]
    wasm_heap_size: u64,
    /// Accepted for Fluent Bit's configs; wasmtime's stack is the
    /// engine's.
    #[serde(default, rename = "wasm_stack_size", deserialize_with = "value::size")]
    _wasm_stack_size: u64,
    #[serde(default)]
    limits: LimitsConfig,
}

struct WasmFilter {
    function: Arc<Function>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Processor>, ComponentError> {
    let parsed: WasmFilterConfig = config.parse()?;
    let mut limits = parsed.limits.limits();
    limits.max_memory_bytes = limits
        .max_memory_bytes
        .saturating_add(parsed.wasm_heap_size);
    let spec = ModuleSpec {
        abi: Abi::Fluentbit,
        method: Some(parsed.function_name),
        event_format: parsed.event_format,
        sandbox: sandbox("wasm_filter", &parsed.accessible_paths, cx),
        limits,
        pool: modules::worker_pool(cx),
    };
    let fields = ModuleFields {
        path: "wasm_path",
        export: "function_name",
    };
    let function = modules::load(config, cx, fields, &parsed.wasm_path, spec)?;
    Ok(Box::new(WasmFilter { function }))
}

impl Processor for WasmFilter {
    fn process(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
        if batch.is_empty() {
            return Box::pin(std::future::ready(batch));
        }
        Box::pin(invoke_messages(&self.function, batch))
    }
}
