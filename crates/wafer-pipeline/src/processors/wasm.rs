//! `wasm`: Benthos' processor. `module_path` names a core module following
//! Benthos' message ABI (see `wafer`'s `abi: benthos`), `function` the
//! export called once per message (default `process`). wafer's own
//! `limits` (as a registry function's) are optional.
//!
//! The module is compiled once; the pipeline's workers share a pool of as
//! many instances, each started once and reused for every message.

use std::sync::Arc;

use serde::Deserialize;
use wafer::registry::{Abi, LimitsConfig, PoolConfig, PoolKind};
use wafer::{Function, Message, ModuleSpec, ProblemKind};

use super::{Processor, invoke_messages};
use crate::config::{ComponentConfig, ComponentError};
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
    let path = cx.resolve(&parsed.module_path);
    let module = wafer::files::read(
        &path,
        wafer::files::MAX_MODULE_BYTES,
        wafer::files::Accept::RegularFile,
    )
    .map_err(|e| ComponentError::new(ProblemKind::Unreadable, "module_path", e.to_string()))?;
    let pool = PoolConfig {
        kind: PoolKind::Lazy,
        size: None,
        workers: None,
        buffer: None,
        max_size: Some(cx.threads as u32),
        min_size: None,
        idle_timeout_ms: None,
        warm_start: None,
        max_calls: None,
    };
    let spec = ModuleSpec {
        abi: Abi::Benthos,
        method: Some(parsed.function),
        sandbox: Default::default(),
        limits: parsed.limits.limits(),
        pool: wafer::pools::PoolPolicy::from_config(Some(&pool)),
    };
    let id = format!("{}/{}", cx.pipeline, config.name());
    let function = cx.runtime.load_module(&id, &module, spec).map_err(|e| {
        let kind = match &e {
            wafer::Error::Refused { problems, .. } => problems
                .first()
                .map_or(ProblemKind::InvalidModule, |p| p.kind),
            _ => ProblemKind::InvalidModule,
        };
        let message = match e {
            wafer::Error::Refused { problems, .. } => problems
                .into_iter()
                .map(|p| p.message)
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let field = if kind == ProblemKind::Export {
            "function"
        } else {
            "module_path"
        };
        ComponentError::new(kind, field, message)
    })?;
    Ok(Box::new(Wasm { function }))
}

impl Processor for Wasm {
    fn process(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
        Box::pin(invoke_messages(&self.function, batch))
    }
}
