//! Fluent Bit's Wasm plugins and config files on wafer's stream engine.
//!
//! # Records
//!
//! A Fluent Bit record travels as an ordinary [`wafer::Message`]:
//!
//! * `bytes`: the record's body, a JSON object (UTF-8);
//! * `timestamp`: its event time (Fluent Bit's `sec.nsec`);
//! * metadata [`TAG`]: its tag, set by the input that made it.
//!
//! So the Fluent Bit components (inputs `exec_wasi`, `dummy`,
//! `stdin_records`; processor `wasm_filter`; outputs `fluentbit_stdout`,
//! `fluentbit_file`, `fluentbit_http`) mix with the Benthos ones in any
//! pipeline, and a Fluent Bit config file ([`config`]) is translated into
//! such pipelines, one per input, its `Match` rules resolved against the
//! input's tag when it is built.
//!
//! * [`config`]: classic `.conf` and YAML Fluent Bit configs, translated.
//! * [`format`]: records rendered as Fluent Bit's outputs render them.
//! * [`value`]: Fluent Bit's way of writing values (`On`, `4k`, `a,b`).

pub mod config;
pub mod format;
pub mod value;

/// The metadata key holding a record's Fluent Bit tag, the one the
/// `fluentbit` ABI reads.
pub const TAG: &str = wafer::TAG_METADATA;

/// The world of a Fluent Bit Wasm plugin (`exec_wasi`, `wasm_filter`):
/// each of `accessible_paths` opened read-write at the same path in the
/// guest (WAMR's `dir_list`, so `.` is `.`), nothing else. Relative paths
/// are the pipeline's ([`crate::BuildContext::resolve`]). The grant is
/// logged, as Fluent Bit's default of `.` is easy to miss.
pub fn sandbox(
    plugin: &str,
    accessible_paths: &[String],
    cx: &crate::BuildContext<'_>,
) -> wafer::wasi::Sandbox {
    let mounts = accessible_paths
        .iter()
        .map(|path| wafer::wasi::MountGrant {
            host: cx.resolve(path),
            guest: path.clone(),
            read_only: false,
        })
        .collect();
    if !cx.check_only && !accessible_paths.is_empty() {
        tracing::info!(
            pipeline = cx.pipeline,
            "{plugin} may read and write {} (accessible_paths)",
            accessible_paths.join(", ")
        );
    }
    wafer::wasi::Sandbox {
        mounts,
        ..Default::default()
    }
}

/// Fluent Bit's default `accessible_paths`: the working directory.
pub fn default_accessible_paths() -> Vec<String> {
    vec![".".to_string()]
}
