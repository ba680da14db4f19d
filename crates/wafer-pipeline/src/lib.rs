//! wafer's stream engine: a message at a time (in batches) from an input,
//! through Wasm processors, to an output, acknowledged only once the
//! output has it.
//!
//! * [`config`]: a Benthos-shaped config, from a file or a registry entry.
//! * [`inputs`], [`processors`], [`outputs`]: the components, each one file
//!   and one line in its module's table.
//! * [`Pipeline`]: a config built into components ([`Pipeline::build`]) and
//!   run to the end of its input or until stopped ([`Pipeline::run`]), or
//!   only checked ([`Pipeline::check`]).
//!
//! Every processor calls its guest through the runtime's one call path
//! ([`wafer::Function::invoke`]), so limits, pools and metrics are the
//! same as for any other call.
//!
//! ```no_run
//! # async fn run(runtime: std::sync::Arc<wafer::Runtime>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = wafer_pipeline::config::PipelineConfig::from_file("upper.yaml".as_ref())
//!     .map_err(|problems| format!("{} problems", problems.len()))?;
//! let pipeline = wafer_pipeline::Pipeline::build(&runtime, config)
//!     .map_err(|problems| format!("{} problems", problems.len()))?;
//! let summary = pipeline.run(std::future::pending()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

pub mod config;
mod dependencies;
mod engine;
pub mod fluentbit;
pub mod inputs;
mod modules;
mod nats;
pub mod outputs;
pub mod parsers;
pub mod processors;

use std::future::Future;
use std::pin::Pin;

pub use dependencies::Dependencies;
pub use engine::{
    PART_METADATA, Pipeline, PipelineError, Settled, Sink, Stage, Stopped, Stopping, Summary,
    Tracked, TrackedAck, max_batches_in_flight,
};
pub use wafer::{Message, Metadata};

/// A boxed future that may move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a component's build step has at hand.
pub struct BuildContext<'a> {
    /// The runtime its functions are loaded into and called through.
    pub runtime: &'a std::sync::Arc<wafer::Runtime>,
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The pipeline's processing workers: the instances a processor needs.
    pub threads: usize,
    /// What relative paths are relative to: the registry file's folder for
    /// a registry entry, the working directory (as in Benthos) for a
    /// pipeline file.
    pub base_dir: Option<&'a std::path::Path>,
    /// The build only checks the config (`wafer check`, which may run
    /// beside the pipelines it checks): a component validates its fields
    /// and compiles or loads what it would run, as for a real build, but
    /// takes no resource outside the runtime: it binds no socket, and
    /// creates or writes nothing. The component is never run.
    pub check_only: bool,
    /// What the components load as they build: a reload compares it.
    pub(crate) dependencies: dependencies::Recorder,
}

impl BuildContext<'_> {
    /// `path` as the pipeline means it.
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        match self.base_dir {
            Some(base) => base.join(path),
            None => path.into(),
        }
    }
}

/// The entry of `kind` in a component table, or an error listing the
/// supported ones.
pub(crate) fn lookup<B: Copy>(
    table: &[(&'static str, B)],
    what: &str,
    kind: &str,
) -> Result<B, config::ComponentError> {
    table
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, build)| *build)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
            config::ComponentError::new(
                wafer::ProblemKind::UnknownKind,
                "",
                format!(
                    "wafer has no {what} `{kind}` (supported: {})",
                    known.join(", ")
                ),
            )
        })
}
