//! One module per subcommand: its arguments (clap) and its `run`.

pub mod bench;
pub mod cache;
pub mod call;
pub mod check;
pub mod compile;
pub mod exec;
pub mod hash;
pub mod inspect;
pub mod pipelines;
pub mod run;

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde_json::Value;
use wafer::files::Accept;

use crate::exit::Failure;

/// A current-thread tokio runtime: one call needs no more, and starts
/// fastest.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::failed)
}

/// Loads the registry at `path`, failing with exit code 2 when the path
/// itself cannot be read.
pub fn load_registry(path: &Path) -> Result<wafer::Registry, Failure> {
    wafer::Registry::load(path).map_err(Failure::input)
}

/// The most `--args-file` may hold: 16 MiB of JSON.
pub const MAX_ARGS_FILE_BYTES: u64 = 16 << 20;

/// The most `--stdin-file` may hold: 256 MiB, kept in memory for the
/// program.
pub const MAX_STDIN_FILE_BYTES: u64 = 256 << 20;

/// Reads a module file (a regular file, at most
/// [`wafer::files::MAX_MODULE_BYTES`]), or stdin for `-`.
pub fn read_module(path: &Path) -> Result<Vec<u8>, Failure> {
    read_bounded(path, wafer::files::MAX_MODULE_BYTES, Accept::RegularFile)
}

/// Reads an input file of at most `limit` bytes (a FIFO or device is fine),
/// or stdin for `-`.
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, Failure> {
    read_bounded(path, limit, Accept::Stream)
}

fn read_bounded(path: &Path, limit: u64, accept: Accept) -> Result<Vec<u8>, Failure> {
    let bytes = if path == Path::new("-") {
        wafer::files::read_stream(std::io::stdin().lock(), Path::new("stdin"), limit)
    } else {
        wafer::files::read(path, limit, accept)
    };
    bytes.map_err(|e| Failure::input(anyhow!(e)))
}

/// `text` cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    const KEEP: usize = 40;
    match text.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
        None => text.to_string(),
    }
}

/// Writes `text` and a newline to stdout.
pub fn print_line(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
        .map_err(Failure::failed)
}

/// Where fetched modules and compiled code are kept between runs.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// The cache folder (created private, 0700) [default: $WAFER_CACHE_DIR,
    /// else $XDG_CACHE_HOME/wafer, else ~/.cache/wafer; empty variables count
    /// as unset]
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Keep nothing on disk: fetch and compile everything again.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl CacheArgs {
    /// The cache folder, unless `--no-cache`.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        Some(
            self.cache_dir
                .clone()
                .unwrap_or_else(wafer::sources::DiskCache::default_dir),
        )
    }

    /// Runtime options using this cache.
    pub fn options(&self) -> wafer::RuntimeOptions {
        wafer::RuntimeOptions {
            cache_dir: self.dir(),
            ..Default::default()
        }
    }
}

/// A progress line on stderr, `compiling done/total`, when stderr is a
/// terminal; cleared at the end.
pub fn compile_progress() -> impl FnMut(usize, usize) {
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |done, total| {
        if show {
            eprint!("\rcompiling {done}/{total}");
            if done == total {
                eprint!("\r\x1b[K");
            }
        }
    }
}

/// The function to run and its arguments: shared by `call` and `bench`.
#[derive(clap::Args)]
pub struct FunctionArgs {
    /// The function's id: `namespace:name`, or a Dapr component's name.
    pub id: String,
    /// The arguments: one JSON value each for a typed function; for a WASI
    /// program, each one argv entry as written.
    #[arg(value_name = "ARG", allow_negative_numbers = true)]
    args: Vec<String>,
    /// Read the arguments from a file holding a JSON array (`-` for stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    args_file: Option<PathBuf>,
    /// The registry: a folder walked for registry files, or one file.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    registry: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
}

impl FunctionArgs {
    /// The arguments, parsed.
    pub fn json_args(&self) -> Result<Vec<Value>, Failure> {
        if let Some(file) = &self.args_file {
            let bytes = read_input(file, MAX_ARGS_FILE_BYTES)?;
            return match serde_json::from_slice(&bytes) {
                Ok(Value::Array(items)) => Ok(items),
                Ok(_) => Err(Failure::input(anyhow!(
                    "{}: expected a JSON array of arguments",
                    file.display()
                ))),
                Err(e) => Err(Failure::input(anyhow!("{}: not JSON: {e}", file.display()))),
            };
        }
        self.args
            .iter()
            .enumerate()
            .map(|(i, text)| {
                serde_json::from_str(text).map_err(|e| {
                    let short = shorten(text);
                    let hint = if short == *text {
                        format!("; write strings with quotes: '\"{text}\"'")
                    } else {
                        "; write strings with quotes".to_string()
                    };
                    Failure::input(anyhow!("args[{i}]: `{short}` is not JSON ({e}){hint}"))
                })
            })
            .collect()
    }

    /// A WASI program's argv after its name: the ARGs as written, or the
    /// `--args-file` array (strings as they are, other values as JSON).
    fn program_args(&self) -> Result<Vec<String>, Failure> {
        if self.args_file.is_none() {
            return Ok(self.args.clone());
        }
        Ok(wafer::CommandInput::from_json_args(self.json_args()?).args)
    }

    /// The call's input in the form `function` takes: JSON arguments for a
    /// typed function, argv and `stdin` for a WASI program.
    pub fn input(
        &self,
        function: &wafer::Function,
        stdin: Vec<u8>,
    ) -> Result<wafer::Input, Failure> {
        Ok(match function.input_form() {
            wafer::InputForm::Program => wafer::Input::Program(
                wafer::CommandInput::new()
                    .args(self.program_args()?)
                    .stdin(stdin),
            ),
            wafer::InputForm::Http => {
                return Err(Failure::input(anyhow!(
                    "{} is a wasi:http proxy: serve it with an http.endpoint and `wafer run`",
                    self.id
                )));
            }
            _ => wafer::Input::Json(self.json_args()?),
        })
    }

    /// A runtime over the registry; problems elsewhere in the registry are
    /// a warning, not a failure.
    pub fn runtime(&self) -> Result<wafer::Runtime, Failure> {
        let registry = load_registry(&self.registry)?;
        let unknown = registry.get(&self.id).is_none() && registry.refusal(&self.id).is_none();
        let unread: Vec<_> = registry
            .problems()
            .iter()
            .filter(|p| p.entry.is_none())
            .collect();
        if unknown && let Some(first) = unread.first() {
            let more = match unread.len() {
                1 => String::new(),
                n => format!(" (and {} more; `wafer check` lists them)", n - 1),
            };
            return Err(Failure::input(anyhow!(
                "no function {} in the registry; it may be in a file that was refused: {first}{more}",
                self.id
            )));
        }
        let others: Vec<_> = registry
            .problems()
            .iter()
            .filter(|p| p.entry.as_deref() != Some(&self.id))
            .collect();
        if !others.is_empty() {
            // Say where: a user looking at the entry's own file should know
            // whether the problems are in it.
            let own_file = registry.get(&self.id).map(|entry| entry.file.as_path());
            let in_own_file = others
                .iter()
                .filter(|p| p.file.as_deref() == own_file)
                .count();
            match own_file {
                Some(file) if in_own_file == others.len() => tracing::warn!(
                    problems = others.len(),
                    "Other entries of {} have problems; `wafer check` lists them.",
                    file.display()
                ),
                _ => tracing::warn!(
                    problems = others.len(),
                    "The registry has problems in other entries or files; `wafer check` lists them."
                ),
            }
        }
        wafer::Runtime::with_options(registry, self.cache.options()).map_err(Failure::failed)
    }
}
