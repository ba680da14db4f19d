//! wafer runs WebAssembly functions declared in a YAML registry.
//!
//! The main types, in the order a call meets them:
//!
//! * [`Registry`]: entries loaded from Wippy `_index.yaml` files and Dapr
//!   component files, with every problem located by file, entry and field.
//! * [`Runtime`]: the registry plus the one [`engine::WaferEngine`]; the
//!   single entry point ([`Runtime::invoke`], with the JSON adapter
//!   [`Runtime::call`]) for every surface.
//! * [`Function`]: one loaded function with its pool of instances, called
//!   through [`Function::invoke`] whatever its ABI.
//! * [`Input`] and [`Output`]: what goes into a call and comes out of it.
//! * [`proxy`]: an HTTP request served by a wasi:http proxy component.
//! * [`values`]: how JSON arguments and results map onto WIT types.
//! * [`wasi`]: the sandbox a guest sees, and the grant model.
//! * [`sources`]: modules named by URL, and the disk cache shared with
//!   compiled code ([`RuntimeOptions::cache_dir`]).
//! * [`limits`]: execution time, memory and output caps.
//! * [`metrics`]: call counts by outcome, latency, instances; rendered in
//!   the Prometheus text format by [`Runtime::metrics_text`].
//!
//! Wiring it up:
//!
//! 1. load a registry with [`Registry::load`] (or [`Registry::from_yaml`]);
//! 2. build a [`Runtime`] over it;
//! 3. call functions by id with JSON arguments.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = wafer::Registry::from_yaml("inline.yaml", r#"
//! version: "1.0"
//! namespace: demo
//! entries:
//!   - name: add
//!     kind: function.wat
//!     source: |
//!       (module (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))
//!     method: add
//! "#);
//! let runtime = wafer::Runtime::new(registry)?;
//! let sum = runtime.call("demo:add", vec![2.into(), 40.into()]).await?;
//! assert_eq!(sum, 42);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod abi;
mod blocking;
mod call;
mod compiler;
pub mod engine;
pub mod error;
pub mod files;
mod function;
mod guest_log;
pub mod hash;
mod host;
pub mod inspect;
pub mod limits;
mod message;
pub mod metrics;
pub mod pools;
pub mod printable;
pub mod proxy;
pub mod registry;
mod runtime;
mod shards;
pub mod sources;
pub mod values;
pub mod wasi;

pub use call::{CommandInput, CommandOutput, Input, InputForm, Output};
pub use compiler::CompileStats;
pub use error::{EngineError, Error, ErrorKind, Problem, ProblemKind, Result};
pub use function::Function;
pub use hash::Sha256Hash;
pub use message::{Message, Metadata, TAG_METADATA};
pub use registry::Registry;
pub use runtime::{Carried, ModuleSpec, Runtime, RuntimeOptions};
