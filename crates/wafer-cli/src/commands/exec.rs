//! `wafer exec FILE.wasm [-- ARGS...]`: run a WASI program like
//! `wasmtime run`, inside wafer's sandbox.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use bytesize::ByteSize;
use wafer::limits::Limits;
use wafer::registry::LimitsConfig;
use wafer::wasi::{EnvBinding, EnvSource, MountGrant, OutputMode, Sandbox, Stdin};
use wafer::{CommandInput, Input, Output, Registry, Runtime};

use super::call::{call_failure, interruptible_runtime};
use super::{CacheArgs, read_module};
use crate::exit::Failure;

/// Run a WASI program (a wasip1 core module or a wasip2 component).
///
/// stdin, stdout and stderr are passed through; wafer exits with the
/// program's exit status. argv[0] is the file name without `.wasm`.
/// Nothing of the host reaches the program unless a flag grants it: no
/// environment, no files, no network. Limits default as for registry
/// entries (10 s, 256 MiB of memory, 16 MiB of output).
///
/// Example: wafer exec hello.wasm --mount ./data:/data:ro -- --verbose
#[derive(clap::Args)]
pub struct ExecArgs {
    /// The program.
    file: PathBuf,
    /// Arguments after argv[0] (write them after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// Mount a host folder at an absolute guest path; `:ro` refuses writes,
    /// `:rw` (the default) allows them.
    #[arg(long, value_name = "HOST:GUEST[:ro|:rw]")]
    mount: Vec<String>,
    /// Set an environment variable in the guest.
    #[arg(long, value_name = "K=V")]
    env: Vec<String>,
    /// The guest's working directory (wasip2's initial-cwd, and PWD).
    #[arg(long, value_name = "GUEST_PATH")]
    cwd: Option<String>,
    /// Stop the program after this many milliseconds.
    #[arg(long, value_name = "N", default_value_t = wafer::limits::DEFAULT_MAX_EXECUTION_MS, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Most linear memory the program may use (`64MiB`, `1GB`, bytes).
    #[arg(long, value_name = "BYTES", default_value_t = ByteSize(wafer::limits::DEFAULT_MAX_MEMORY_BYTES), value_parser = parse_size)]
    max_memory: ByteSize,
    /// Most bytes of stdout and stderr together.
    #[arg(long, value_name = "BYTES", default_value_t = ByteSize(wafer::limits::DEFAULT_MAX_OUTPUT_BYTES), value_parser = parse_size)]
    max_output: ByteSize,
    /// A deterministic world: fixed clocks, seeded randomness, instant
    /// sleeps (Dapr's strictSandbox).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

fn parse_size(text: &str) -> Result<ByteSize, String> {
    text.parse::<ByteSize>().map_err(|_| {
        format!("`{text}` is not a size like 64MiB, 1GB or a number of bytes below 2^64")
    })
}

pub fn run(args: ExecArgs) -> Result<(), Failure> {
    let sandbox = sandbox(&args).map_err(Failure::input)?;
    let limits = limits(&args).map_err(Failure::input)?;
    let module = read_module(&args.file)?;
    let runtime = Runtime::with_options(Registry::default(), args.cache.options())
        .map_err(Failure::failed)?;
    let tokio = interruptible_runtime(&runtime)?;
    let id = args.file.display().to_string();
    let program = runtime
        .program(&id, &module, sandbox, limits)
        .map_err(call_failure)?;
    let input = CommandInput {
        args: args.args.clone(),
        stdin: Stdin::Inherit,
        output: OutputMode::PassThrough,
    };
    let outcome = tokio.block_on(program.invoke(Input::Program(input)));
    // The guest may still block on stdin; do not wait for it.
    tokio.shutdown_background();
    // What the program wrote last may still sit in a buffer: a failure to
    // write it fails the command too.
    std::io::Write::flush(&mut std::io::stdout())
        .context("cannot write the program's output")
        .map_err(Failure::failed)?;
    match outcome.map(Output::into_program) {
        Ok(Some(output)) if output.exit_code != 0 => Err(Failure::exit(output.exit_code)),
        Ok(_) => Ok(()),
        Err(error) => Err(call_failure(error)),
    }
}

/// The flags' limits, checked as the registry checks an entry's `limits`.
fn limits(args: &ExecArgs) -> anyhow::Result<Limits> {
    let config = LimitsConfig {
        max_execution_ms: Some(args.timeout_ms),
        max_memory_bytes: Some(args.max_memory.as_u64()),
        max_output_bytes: Some(args.max_output.as_u64()),
        ..LimitsConfig::default()
    };
    if let Some((field, message)) = config.problems().into_iter().next() {
        let flag = match field {
            "max_execution_ms" => "--timeout-ms",
            "max_memory_bytes" => "--max-memory",
            _ => "--max-output",
        };
        return Err(anyhow!("{flag}: {message}"));
    }
    Ok(config.limits())
}

fn sandbox(args: &ExecArgs) -> anyhow::Result<Sandbox> {
    let cwd = args
        .cwd
        .as_deref()
        .map(wafer::wasi::guest_path)
        .transpose()
        .map_err(|e| anyhow!("--cwd: {e}"))?;
    let mut sandbox = Sandbox {
        program_name: wafer::wasi::program_name(&args.file.to_string_lossy()).unwrap_or_default(),
        cwd,
        strict: args.strict,
        ..Sandbox::default()
    };
    for mount in &args.mount {
        sandbox.mounts.push(parse_mount(mount)?);
    }
    for pair in &args.env {
        let (name, value) = pair
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| anyhow!("--env {pair}: expected NAME=VALUE with a name"))?;
        sandbox.env.push(EnvBinding {
            name: name.to_string(),
            source: EnvSource::Value(value.to_string()),
        });
    }
    Ok(sandbox)
}

/// `HOST:GUEST[:ro|:rw]`.
fn parse_mount(text: &str) -> anyhow::Result<MountGrant> {
    let (rest, read_only) = if let Some(rest) = text.strip_suffix(":ro") {
        (rest, true)
    } else if let Some(rest) = text.strip_suffix(":rw") {
        (rest, false)
    } else {
        (text, false)
    };
    let (host, guest) = rest
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--mount {text}: expected HOST:GUEST[:ro|:rw]"))?;
    let guest = wafer::wasi::guest_path(guest).map_err(|e| anyhow!("--mount {text}: {e}"))?;
    let host = std::fs::canonicalize(host)
        .with_context(|| format!("--mount {text}: cannot open {host}"))?;
    Ok(MountGrant {
        host,
        guest,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_with_and_without_ro() {
        let dir = std::env::temp_dir();
        let text = format!("{}:/data:ro", dir.display());
        let mount = parse_mount(&text).unwrap();
        assert!(mount.read_only);
        assert_eq!(mount.guest, "/data");
        assert!(
            !parse_mount(&format!("{}:/out", dir.display()))
                .unwrap()
                .read_only
        );
        assert!(parse_mount(&format!("{}:relative", dir.display())).is_err());
        assert!(parse_mount("no-separator").is_err());
    }
}
