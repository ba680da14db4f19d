//! Loading a component's Wasm module into the runtime: the one way the
//! `wasm`, `wasm_filter` and `exec_wasi` components get their function.

use std::sync::Arc;

use wafer::registry::{PoolConfig, PoolKind};
use wafer::{Function, ModuleSpec, ProblemKind};

use crate::BuildContext;
use crate::config::{ComponentConfig, ComponentError};

/// Where a component names its module and its export, for problems.
pub(crate) struct ModuleFields<'a> {
    /// The field holding the module's path (`module_path`, `wasm_path`).
    pub path: &'a str,
    /// The field naming the export (`function`, `function_name`).
    pub export: &'a str,
}

/// The module at `path` (relative to the pipeline), compiled once and
/// loaded as function `<pipeline>/<component>`, with `spec`. A problem
/// names the field at fault.
pub(crate) fn load(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
    fields: ModuleFields<'_>,
    path: &str,
    spec: ModuleSpec,
) -> Result<Arc<Function>, ComponentError> {
    let path = cx.resolve(path);
    let module = wafer::files::read(
        &path,
        wafer::files::MAX_MODULE_BYTES,
        wafer::files::Accept::RegularFile,
    )
    .map_err(|e| ComponentError::new(ProblemKind::Unreadable, fields.path, e.to_string()))?;
    cx.dependencies.module(&path, &module);
    let id = format!("{}/{}", cx.pipeline, config.name());
    cx.runtime.load_module(&id, &module, spec).map_err(|e| {
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
            fields.export
        } else {
            fields.path
        };
        ComponentError::new(kind, field, message)
    })
}

/// A pool that starts instances as the pipeline's `threads` workers need
/// them, at most one each, and keeps them for the next batch.
pub(crate) fn worker_pool(cx: &BuildContext<'_>) -> wafer::pools::PoolPolicy {
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
    wafer::pools::PoolPolicy::from_config(Some(&pool))
}
