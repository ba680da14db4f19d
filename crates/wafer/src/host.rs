//! The state every store carries: an empty WASI context (built only when
//! the guest first touches WASI), its resource table, the guest's log
//! streams and the current call's deadline.
//!
//! Linking is not granting: the WASI interfaces toolchains import are always
//! linked, but the context has no env, no args, no files and no network.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::guest_log::GuestLog;

/// Store data for one instance.
pub(crate) struct HostState {
    table: ResourceTable,
    wasi: Option<WasiCtx>,
    stdout: GuestLog,
    stderr: GuestLog,
    /// When the running call must stop; read by the epoch callback.
    pub deadline: Instant,
    /// Set when the engine is interrupted; read by the epoch callback.
    pub interrupted: Arc<AtomicBool>,
}

impl HostState {
    /// A state for an instance of `function`.
    pub fn new(function: Arc<str>, interrupted: Arc<AtomicBool>) -> Self {
        HostState {
            table: ResourceTable::new(),
            wasi: None,
            stdout: GuestLog::new(function.clone(), "stdout"),
            stderr: GuestLog::new(function, "stderr"),
            deadline: Instant::now(),
            interrupted,
        }
    }

    /// Whether the engine was interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// Logs the rest of the call's output.
    pub fn end_call(&self) {
        self.stdout.end_call();
        self.stderr.end_call();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (stdout, stderr) = (&self.stdout, &self.stderr);
        // Built on first use: seeding its random generators is a large share
        // of instantiation, and most typed functions never touch WASI.
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtxBuilder::new()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}
