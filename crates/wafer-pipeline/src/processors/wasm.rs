//! `wasm`: Benthos' processor. `module_path` names a core module following
//! Benthos' message ABI (see `wafer`'s `abi: benthos`), `function` the
//! export called once per message (default `process`). wafer's own
//! `limits` (as a registry function's) are optional.
//!
//! The module is compiled once; the pipeline's workers share a pool of as
//! many instances, each started once and reused for every message.

use std::sync::Arc;

use serde::Deserialize;
use wafer::registry::{Abi, LimitsConfig};
use wafer::{Function, Message, ModuleSpec};

use super::{Processor, invoke_messages};
use crate::config::{ComponentConfig, ComponentError};
use crate::modules::{self, ModuleFields};
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmConfig {
    module_path: String,
    #[serde(default = "default_function")]
    function: String,
    #[serde(default)]
    limits: LimitsConfig,
}

fn default_function() -> String {
    "process".into()
}

struct Wasm {
    function: Arc<Function>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Processor>, ComponentError> {
    let parsed: WasmConfig = config.parse()?;
    let spec = ModuleSpec {
        abi: Abi::Benthos,
        method: Some(parsed.function),
        event_format: Default::default(),
        sandbox: Default::default(),
        limits: parsed.limits.limits(),
        pool: modules::worker_pool(cx),
    };
    let fields = ModuleFields {
        path: "module_path",
        export: "function",
    };
    let function = modules::load(config, cx, fields, &parsed.module_path, spec)?;
    Ok(Box::new(Wasm { function }))
}

impl Processor for Wasm {
    fn process(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
        Box::pin(invoke_messages(&self.function, batch))
    }
}
