//! `exec_wasi`: Fluent Bit's input of that name (`plugins/in_exec_wasi`):
//! a WASI program run to completion every tick, each line of its stdout a
//! record.
//!
//! * `wasi_path`: the program, a wasip1 core module (or a wasip2
//!   component), compiled once when the pipeline is built and run through
//!   the runtime's `wasi-command` ABI, a fresh instance each run, with no
//!   arguments and an empty stdin (Fluent Bit hands it its own stdin, which a
//!   pipeline may be reading). Its exit status is ignored (a non-zero
//!   one is logged at debug level), as in Fluent Bit; a trap or a run past
//!   wafer's time limit (10 s) is logged and that tick gives nothing. What
//!   it writes to stderr goes to the guest log (`wafer::guest`, shown by
//!   default), as Fluent Bit leaves it on its own stderr. stdout and
//!   stderr together are kept up to wafer's output limit (16 MiB); a run
//!   that writes more fails.
//! * `accessible_paths` (default `.`): folders the program may read and
//!   write, each at the same path inside the guest, as WAMR maps them;
//!   nothing else of the host. The grant is logged at start.
//! * `interval_sec` (default 1) and `interval_nsec`: the program runs
//!   after each interval, the first after one interval, as Fluent Bit's
//!   timer fires. `oneshot`: it runs once, at start, and the input ends
//!   (so `wafer run` exits once its records are written; Fluent Bit keeps
//!   running with nothing more to do).
//! * `buf_size` (default 4096): stdout is split as `fgets(buf, buf_size)`
//!   splits it: at most `buf_size - 1` bytes a piece, a piece ending in a
//!   newline loses it (so a long line becomes several records, and a line
//!   of exactly `buf_size - 1` bytes is followed by an empty one); a zero
//!   byte ends the piece's text, as C strings end there.
//! * Each piece is `{"wasi_stdout": "<piece>"}` (invalid UTF-8 replaced),
//!   made now; with `parser` (an inline definition, see
//!   [`crate::parsers`]) it is the parsed record, at the time the parser
//!   found, if any. A piece the parser refuses is logged and dropped.
//! * `tag` (default `exec_wasi`): the records' tag.
//!
//! # Memory and stack
//!
//! WAMR gives a Fluent Bit guest a fixed *app heap* (`wasm_heap_size`,
//! default 8 KiB) on top of its linear memory, where the host copies data
//! and where a guest without its own allocator mallocs; its stack is
//! `wasm_stack_size`. In wafer a guest's linear memory grows on demand up
//! to `limits.max_memory_bytes` (256 MiB by default), which holds any such
//! heap: `wasm_heap_size` only ever raises that cap, to its own value when
//! larger. `wasm_stack_size` is checked and otherwise ignored: wasmtime
//! gives every guest the engine's stack (512 KiB), more than WAMR's
//! defaults.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use wafer::registry::Abi;
use wafer::{CommandInput, Function, Input as CallInput, Message, ModuleSpec, Output, ProblemKind};

use super::{Input, MAX_BATCH};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::{TAG, value};
use crate::modules::{self, ModuleFields};
use crate::parsers::{Parser, ParserConfig};
use crate::{BoxFuture, BuildContext, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecWasiConfig {
    #[serde(deserialize_with = "value::text")]
    wasi_path: String,
    #[serde(
        default = "crate::fluentbit::default_accessible_paths",
        deserialize_with = "value::list"
    )]
    accessible_paths: Vec<String>,
    #[serde(default = "one", deserialize_with = "value::int")]
    interval_sec: i64,
    #[serde(default, deserialize_with = "value::int")]
    interval_nsec: i64,
    #[serde(default, deserialize_with = "value::bool")]
    oneshot: bool,
    #[serde(default = "default_buf_size", deserialize_with = "value::size")]
    buf_size: u64,
    #[serde(default)]
    parser: Option<ParserConfig>,
    #[serde(default, deserialize_with = "value::optional_size")]
    wasm_heap_size: Option<u64>,
    #[serde(default, deserialize_with = "value::optional_size")]
    wasm_stack_size: Option<u64>,
    #[serde(default = "default_tag", deserialize_with = "value::text")]
    tag: String,
}

fn one() -> i64 {
    1
}

fn default_buf_size() -> u64 {
    4096
}

fn default_tag() -> String {
    "exec_wasi".into()
}

struct ExecWasi {
    name: String,
    program: Arc<Function>,
    interval: Duration,
    oneshot: bool,
    buf_size: usize,
    parser: Option<Parser>,
    tag: String,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Input>, ComponentError> {
    let parsed: ExecWasiConfig = config.parse()?;
    let buf_size = usize::try_from(parsed.buf_size)
        .ok()
        .filter(|&n| n >= 2)
        .ok_or_else(|| {
            ComponentError::invalid(
                "buf_size",
                "at least 2 bytes: each line is read in pieces of buf_size - 1 bytes",
            )
        })?;
    let parser = Parser::for_field(parsed.parser.as_ref())?;
    for path in &parsed.accessible_paths {
        if !cx.resolve(path).is_dir() {
            return Err(ComponentError::new(
                ProblemKind::Unreadable,
                "accessible_paths",
                format!("`{path}` is not a folder"),
            ));
        }
    }
    let name = config.name().to_string();
    let mut sandbox =
        crate::fluentbit::sandbox(&format!("exec_wasi {name}"), &parsed.accessible_paths, cx);
    sandbox.program_name = wafer::wasi::program_name(&parsed.wasi_path).unwrap_or_default();
    let memory = parsed
        .wasm_heap_size
        .unwrap_or(0)
        .max(wafer::limits::DEFAULT_MAX_MEMORY_BYTES);
    let spec = ModuleSpec {
        abi: Abi::WasiCommand,
        method: None,
        event_format: Default::default(),
        sandbox,
        limits: wafer::limits::Limits::with_defaults(None, Some(memory), None),
        pool: wafer::pools::PoolPolicy::from_config(None),
    };
    let fields = ModuleFields {
        path: "wasi_path",
        export: "wasi_path",
    };
    let program = modules::load(config, cx, fields, &parsed.wasi_path, spec)?;
    // Fluent Bit's fallback for an interval of zero or less.
    let interval = if parsed.interval_sec <= 0 && parsed.interval_nsec <= 0 {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(parsed.interval_sec.max(0).unsigned_abs())
            + Duration::from_nanos(parsed.interval_nsec.max(0).unsigned_abs())
    }
    // Beyond a century it may as well be never; an Instant cannot reach
    // much further.
    .min(Duration::from_secs(100 * 365 * 24 * 3600));
    // Checked as a size, otherwise ignored (see the module doc).
    let _ = parsed.wasm_stack_size;
    Ok(Box::new(ExecWasi {
        name,
        program,
        interval,
        oneshot: parsed.oneshot,
        buf_size,
        parser,
        tag: parsed.tag,
    }))
}

impl ExecWasi {
    /// One run of the program: its stdout, empty when it failed.
    async fn run_once(&self) -> Vec<u8> {
        let outcome = self
            .program
            .invoke(CallInput::Program(CommandInput::new()))
            .await;
        let run = match outcome.map(Output::into_program) {
            Ok(Some(run)) => run,
            Ok(None) => return Vec::new(),
            Err(error) => {
                tracing::error!(input = %self.name, %error, "exec_wasi: the program failed; this run gives no records");
                return Vec::new();
            }
        };
        log_stderr(self.program.id(), &run.stderr);
        if run.exit_code != 0 {
            tracing::debug!(input = %self.name, status = run.exit_code, "exec_wasi: the program exited with a non-zero status (ignored, as in Fluent Bit)");
        }
        run.stdout
    }

    /// The record of one piece of stdout; `None` when the parser refused
    /// it (logged).
    fn record(&self, piece: &[u8], now: SystemTime) -> Option<Message> {
        let (bytes, time) = match &self.parser {
            None => {
                let text = String::from_utf8_lossy(piece);
                let record = serde_json::json!({ "wasi_stdout": text }).to_string();
                (record.into_bytes(), None)
            }
            Some(parser) => match parser.parse_to_bytes(piece) {
                Ok(parsed) => parsed,
                Err(error) => {
                    tracing::error!(input = %self.name, %error, line = %String::from_utf8_lossy(piece), "exec_wasi: the parser refused a line; it is dropped");
                    return None;
                }
            },
        };
        Some(Message {
            bytes: bytes.into(),
            metadata: [(TAG.to_string(), self.tag.clone())].into(),
            timestamp: time.unwrap_or(now),
            error: None,
        })
    }

    /// One run's records, sent as they are made, a batch at a time (a
    /// program may print many short lines); `false` when the pipeline
    /// stopped.
    async fn run_and_send(&self, sink: &mut Sink) -> bool {
        let stdout = self.run_once().await;
        let now = SystemTime::now();
        let mut pieces = fgets_pieces(&stdout, self.buf_size);
        loop {
            let mut batch = Vec::new();
            for piece in pieces.by_ref() {
                batch.extend(self.record(piece, now));
                if batch.len() == MAX_BATCH {
                    break;
                }
            }
            if batch.is_empty() {
                return true;
            }
            if sink.send(batch).await.is_err() {
                return false;
            }
        }
    }
}

/// Most bytes of a run's stderr logged.
const STDERR_LOG_CAP: usize = 64 << 10;

/// The program's stderr, which Fluent Bit leaves on its own stderr, as
/// guest log lines (the log wafer gives every guest's output).
fn log_stderr(id: &str, stderr: &[u8]) {
    let kept = &stderr[..stderr.len().min(STDERR_LOG_CAP)];
    for line in String::from_utf8_lossy(kept).lines() {
        tracing::info!(target: "wafer::guest", function = %id, stream = "stderr", "{line}");
    }
    if stderr.len() > kept.len() {
        tracing::warn!(function = %id, "exec_wasi: {} more bytes of stderr not logged", stderr.len() - kept.len());
    }
}

/// `stdout` cut as successive `fgets(buf, buf_size)` calls cut it, each
/// piece chomped of its newline and ended at a zero byte.
fn fgets_pieces(stdout: &[u8], buf_size: usize) -> impl Iterator<Item = &[u8]> {
    let most = buf_size.saturating_sub(1).max(1);
    let mut rest = stdout;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let window = &rest[..rest.len().min(most)];
        let len = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |newline| newline + 1);
        let (piece, after) = rest.split_at(len);
        rest = after;
        let text = &piece[..piece.iter().position(|&b| b == 0).unwrap_or(piece.len())];
        Some(text.strip_suffix(b"\n").unwrap_or(text))
    })
}

impl Input for ExecWasi {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            if self.oneshot {
                self.run_and_send(&mut sink).await;
                return Ok(());
            }
            let first = tokio::time::Instant::now() + self.interval;
            let mut ticks = tokio::time::interval_at(first, self.interval);
            // A run longer than the interval delays the next, as Fluent
            // Bit's timer collector does: runs never overlap or pile up.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                if !self.run_and_send(&mut sink).await {
                    return Ok(());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(stdout: &str, buf_size: usize) -> Vec<String> {
        fgets_pieces(stdout.as_bytes(), buf_size)
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn stdout_splits_as_fgets_splits_it() {
        assert_eq!(pieces("ab\ncd\n", 8), ["ab", "cd"]);
        assert_eq!(pieces("abcdefghij\nk", 5), ["abcd", "efgh", "ij", "k"]);
        // Exactly buf_size - 1 bytes: the newline comes alone, an empty piece.
        assert_eq!(pieces("abcd\nx\n", 5), ["abcd", "", "x"]);
        assert_eq!(pieces("\n\n", 5), ["", ""]);
        assert_eq!(pieces("a\0b\nc", 16), ["a", "c"]);
        assert!(pieces("", 16).is_empty());
    }
}
